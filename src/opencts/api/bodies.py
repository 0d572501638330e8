"""JSON in and out for every router: one body parser, so every API answers bad bodies the same way."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from opencts.api.deps import read_body, require_json
from opencts.errors import BadRequest, MalformedJSON
from opencts.validation import describe

M = TypeVar("M", bound=BaseModel)

#: management calls carry small bodies; only trace ingest takes more (5 MiB, its own limit)
MAX_BODY = 1024 * 1024


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def json_body(request: Request, model: type[M], *, limit: int = MAX_BODY) -> M:
    """The body as ``model``: 415 for another content type, 413 past ``limit``, 400 naming the field."""
    require_json(request)
    raw = await read_body(request, limit)
    if not raw.strip():
        raise MalformedJSON("request body is empty; send a JSON object")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedJSON("request body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None

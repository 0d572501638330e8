"""IAM: a project's source tokens (``sources.tokens``), created, listed and revoked.

The paths are under ``/v3/projects/{project_id}``, so the project is scoped as for every project route
(a password token acts only in its own project; an AK/SK in the projects of its account), and the
self-audit files each create and revoke under IAM in that project. The token is in the creation's answer
and nowhere else (the self-audit redacts it: ``token`` is a secret-looking key).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.clock import now_ms
from opencts.iam.principal import Principal
from opencts.sources import tokens

router = APIRouter(tags=["iam"])
_PATH = "/v3/projects/{project_id}/source-tokens"
Creator = Annotated[Principal, Depends(require("iam:sourceTokens:create"))]
Lister = Annotated[Principal, Depends(require("iam:sourceTokens:list"))]
Revoker = Annotated[Principal, Depends(require("iam:sourceTokens:delete"))]


class CreateSourceTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=64)
    source: str = Field(
        "kubernetes", max_length=16, description="kubernetes (default), s3, or generic (the ingest API)"
    )


@router.post(_PATH, name="createSourceToken", status_code=201, summary="Create a source token (shown once)")
async def create_source_token(
    project_id: str, request: Request, services: ServicesDep, caller: Creator
) -> Response:
    req = await json_body(request, CreateSourceTokenBody, limit=4096)
    made, token = await services.db.write(
        lambda conn: tokens.create(
            conn,
            project_id=project_id,
            name=req.name,
            source=req.source,
            created_by=caller.user_id,
            now=now_ms(),
        )
    )
    body: dict[str, Any] = {"source_token": {**made.as_dict(), "token": token}}
    return json_response(body, 201)


@router.get(_PATH, name="listSourceTokens", summary="A project's source tokens, never the tokens themselves")
async def list_source_tokens(project_id: str, services: ServicesDep, caller: Lister) -> Response:
    found = await services.db.read(lambda conn: tokens.list_tokens(conn, project_id=project_id))
    return json_response({"source_tokens": [t.as_dict() for t in found]})


@router.delete(
    _PATH + "/{token_id}", name="deleteSourceToken", summary="Revoke a source token: refused from now on"
)
async def delete_source_token(
    project_id: str, token_id: str, services: ServicesDep, caller: Revoker
) -> Response:
    revoked = await services.db.write(
        lambda conn: tokens.revoke(conn, project_id=project_id, token_id=token_id, now=now_ms())
    )
    services.authenticator.forget_source_tokens()
    return json_response({"source_token": revoked.as_dict()})

"""``/health``: 200 once the lifespan has opened the database and started the consumers."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from opencts import __version__
from opencts.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Readiness")
async def health(services: ServicesDep) -> Response:
    body = {"status": "ok", "version": __version__, "database": services.db.dialect}
    return Response(orjson.dumps(body), media_type="application/json")

"""``/health``: 200 once the lifespan has opened the database and started the consumers.

Anyone may ask, so it says only that the service is up: the version and the database kind would tell an
anonymous caller which known flaws to try.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from opencts.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Readiness")
async def health(services: ServicesDep) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")

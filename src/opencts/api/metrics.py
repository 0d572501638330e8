"""``/metrics``: the Prometheus text page, for a scraper with the scrape token or for an administrator.

Who may scrape: whoever sends ``Authorization: Bearer`` with ``OPENCTS_METRICS_TOKEN`` (a scraper cannot
sign requests), or any signed request or token of a principal allowed ``cts:metrics:scrape`` (Tenant
Administrator, CTS Administrator, CTS FullAccess). The figures cover every account of the deployment, so a
read-only role does not get them. With ``OPENCTS_METRICS_ADDRESS`` set the page is served on that address
instead, and here there is no such API; with ``OPENCTS_METRICS_ENABLED=0``, nowhere.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from opencts.api.auth import authenticate, scope
from opencts.api.deps import Services, ServicesDep
from opencts.errors import Forbidden, NotFound, Unauthorized
from opencts.metrics.exposition import CONTENT_TYPE, render, scrape_registry

router = APIRouter(tags=["operations"])

SCRAPE_ACTION = "cts:metrics:scrape"


def registry_of(request: Request, services: Services) -> CollectorRegistry:
    """The app's scrape registry, built on first use."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if not isinstance(registry, CollectorRegistry):
        registry = request.app.state.metrics_registry = scrape_registry(services.db)
    return registry


async def _allowed(request: Request, services: Services) -> None:
    token = services.settings.metrics_token
    authorization = request.headers.get("authorization", "")
    if token is not None and authorization[:7].lower() == "bearer ":
        if hmac.compare_digest(authorization[7:].strip(), token.get_secret_value()):
            return
        raise Unauthorized("the scrape token is not valid")
    principal = await scope(request, services, await authenticate(request, services))
    if not principal.can(SCRAPE_ACTION):
        raise Forbidden(f"permission denied: {SCRAPE_ACTION} is not granted to user {principal.user_name}")


@router.get("/metrics", name="getMetrics", summary="Prometheus metrics (scrape token or administrator)")
async def metrics(request: Request, services: ServicesDep) -> Response:
    settings = services.settings
    if not settings.metrics_enabled or settings.metrics_address is not None:
        raise NotFound(f"no such API: GET {request.url.path}")
    await _allowed(request, services)
    body = await asyncio.to_thread(render, registry_of(request, services))
    return Response(body, media_type=CONTENT_TYPE)

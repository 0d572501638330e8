"""One log line per request, and the HTTP metrics, from a single middleware.

The line names the request id (the ``X-Request-Id`` the client got, and the ``request_id`` of the call's
self-audit trace), the principal, the route, the status and the duration. The route is the template
(``/v3/{project_id}/traces``), never the path or query as sent: those can hold a confirmation token or a
filter value nobody asked to have in the log. Nothing of the headers or the body is logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencts.iam.principal import Principal
from opencts.metrics.instruments import HTTP_REQUESTS_BY, HTTP_SECONDS_BY

log = logging.getLogger("opencts.access")


def _principal(state: dict[str, Any]) -> str | None:
    principal = state.get("principal")
    if isinstance(principal, Principal):
        return f"{principal.domain_name}/{principal.user_name}"
    return None


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        request_id = ""
        logged = log.isEnabledFor(logging.INFO)  # the id sent is looked for only when a line is written

        async def watch(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                if logged:
                    for name, value in message.get("headers", ()):
                        if name == b"x-request-id":
                            request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._done(scope, status, request_id, time.perf_counter() - started)

    @staticmethod
    def _done(scope: Scope, status: int, request_id: str, seconds: float) -> None:
        route = scope.get("route")
        name = getattr(route, "name", None) or "unmatched"
        HTTP_REQUESTS_BY(name, status).inc()
        HTTP_SECONDS_BY(name).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        template = getattr(route, "path", None) or "-"
        state = scope.get("state") or {}
        fields = {
            "request_id": request_id or state.get("request_id", ""),
            "principal": _principal(state),
            "method": scope["method"],
            "route": template,
            "route_name": name,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        log.info(
            "%s %s %s %d %.1fms principal=%s request_id=%s",
            scope["method"],
            template,
            name,
            status,
            seconds * 1000,
            fields["principal"] or "-",
            fields["request_id"],
            extra={"fields": fields},
        )

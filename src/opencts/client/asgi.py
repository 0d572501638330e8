"""ASGI middleware (FastAPI, Starlette): each state-changing request of the app becomes a CTS trace.

The trace is recorded after the response has started, by a call that only appends to the client's buffer:
the request never waits on OpenCTS, and an OpenCTS that is down changes nothing for the app (its traces
wait in the client's outbox). An error inside the middleware's own recording is logged, never raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from starlette.requests import Request

from opencts.client.hooks import STATE_CHANGING, Recorder, RequestHooks
from opencts.client.recording import Resource, trace_name_for

__all__ = ["OpenCTSMiddleware", "Recorder"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _default_user(request: Request) -> str | None:
    """``request.state.user_name`` if the app set it, else Starlette's authenticated ``user``."""
    name = getattr(request.state, "user_name", None)
    if name:
        return str(name)
    user = request.scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return str(getattr(user, "display_name", "") or getattr(user, "username", "")) or None
    return None


def _default_name(request: Request) -> str:
    """The route's name (FastAPI: the endpoint function's), else the method."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    return trace_name_for(str(name) if name else request.method.lower())


class OpenCTSMiddleware:
    """Records ``methods`` requests: user from ``user(request)``, resource from ``resource(request)``,
    trace name from ``name(request)``; source IP (the first ``X-Forwarded-For`` address when
    ``trust_forwarded``), the ``X-Request-Id`` header (or a new id), status as ``code`` and rating."""

    def __init__(
        self,
        app: ASGIApp,
        client: Recorder,
        *,
        user: Callable[[Request], str | None] = _default_user,
        resource: Callable[[Request], Resource | None] | None = None,
        name: Callable[[Request], str] = _default_name,
        methods: Collection[str] = STATE_CHANGING,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.hooks = RequestHooks(
            client, user=user, resource=resource, name=name, methods=methods, trust_forwarded=trust_forwarded
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.hooks.methods:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        request = Request(scope)
        headers = request.headers
        self.hooks.record(
            request,
            status,
            peer=request.client.host if request.client else None,
            forwarded=headers.get("x-forwarded-for"),
            request_id=headers.get("x-request-id"),
        )

"""WSGI middleware (Flask, any WSGI app): each state-changing request of the app becomes a CTS trace.

The status is taken when the app calls ``start_response`` and the trace recorded then (or with status 500
when the app raises first), by a call that only appends to the client's buffer, so a request never waits
on OpenCTS and an OpenCTS that is down changes nothing for the app.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from opencts.client.hooks import STATE_CHANGING, Recorder, RequestHooks
from opencts.client.recording import Resource, trace_name_for

__all__ = ["OpenCTSMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _default_user(environ: Environ) -> str | None:
    """``environ["opencts.user"]`` if the app set it (Flask: ``request.environ``), else ``REMOTE_USER``."""
    value = environ.get("opencts.user") or environ.get("REMOTE_USER")
    return str(value) if value else None


def _default_name(environ: Environ) -> str:
    """``environ["opencts.trace_name"]`` if the app set it, else Flask's endpoint, else the method."""
    name = environ.get("opencts.trace_name")
    if not name:
        rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
        name = getattr(rule, "endpoint", None) or str(environ.get("REQUEST_METHOD", "request")).lower()
    return trace_name_for(str(name))


class OpenCTSMiddleware:
    """Wraps a WSGI app (``app.wsgi_app = OpenCTSMiddleware(app.wsgi_app, client)`` in Flask)."""

    def __init__(
        self,
        app: WSGIApp,
        client: Recorder,
        *,
        user: Callable[[Environ], str | None] = _default_user,
        resource: Callable[[Environ], Resource | None] | None = None,
        name: Callable[[Environ], str] = _default_name,
        methods: Collection[str] = STATE_CHANGING,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.hooks = RequestHooks(
            client, user=user, resource=resource, name=name, methods=methods, trust_forwarded=trust_forwarded
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in self.hooks.methods:
            return self.app(environ, start_response)
        recorded = False

        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record(environ, int(status.split(" ", 1)[0]))
            return start_response(status, headers, *exc_info)

        try:
            return self.app(environ, start)
        except BaseException:
            if not recorded:
                self._record(environ, 500)
            raise

    def _record(self, environ: Environ, status: int) -> None:
        self.hooks.record(
            environ,
            status,
            peer=environ.get("REMOTE_ADDR"),
            forwarded=environ.get("HTTP_X_FORWARDED_FOR"),
            request_id=environ.get("HTTP_X_REQUEST_ID"),
        )

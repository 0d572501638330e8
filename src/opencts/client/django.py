"""Django middleware: each state-changing request becomes a CTS trace.

Add ``"opencts.client.django.OpenCTSMiddleware"`` to ``MIDDLEWARE`` (after the authentication middleware,
so ``request.user`` is known). The client is built once from ``OPENCTS_CLIENT_*`` variables, or set by the
app with :func:`set_client`; the user is ``request.user``'s user name, the trace name the URL pattern's
name (else the view's), the resource what the optional ``OPENCTS_RESOURCE`` setting (a dotted path to a
``callable(request) -> Resource | None``) returns. Recording only appends to the client's buffer, so a
request never waits on OpenCTS, and an error while recording is logged, never raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from opencts.client.hooks import STATE_CHANGING, Recorder, RequestHooks
from opencts.client.recording import trace_name_for

__all__ = ["OpenCTSMiddleware", "set_client"]

_client: list[Recorder] = []
_lock = threading.Lock()


def set_client(client: Recorder) -> None:
    """Use ``client`` for every request (instead of one built from the environment)."""
    with _lock:
        _client[:] = [client]


def _get_client() -> Recorder:
    with _lock:
        if not _client:
            from opencts.client.sync import Client

            _client.append(Client())
        return _client[0]


class _SharedClient:
    """The process's client, built at the first request that is recorded (not when Django imports us)."""

    def record(self, trace_name: str, **fields: Any) -> str | None:
        return _get_client().record(trace_name, **fields)


def _user(request: Any) -> str | None:
    user = getattr(request, "user", None)
    return (user.get_username() or None) if user is not None and user.is_authenticated else None


def _name(request: Any) -> str:
    match = getattr(request, "resolver_match", None)
    label = (match.url_name or match.view_name) if match is not None else request.method.lower()
    return trace_name_for(str(label))


class OpenCTSMiddleware:
    """Records POST, PUT, PATCH and DELETE requests of a Django project."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        path = getattr(settings, "OPENCTS_RESOURCE", None)
        self.hooks: RequestHooks[Any] = RequestHooks(
            _SharedClient(),
            user=_user,
            resource=import_string(path) if path else None,
            name=_name,
            methods=STATE_CHANGING,
            trust_forwarded=bool(getattr(settings, "OPENCTS_TRUST_FORWARDED", False)),
        )

    def __call__(self, request: Any) -> Any:
        if request.method not in self.hooks.methods:
            return self.get_response(request)
        status = 500
        try:
            response = self.get_response(request)
            status = int(response.status_code)
            return response
        finally:
            self._record(request, status)

    def _record(self, request: Any, status: int) -> None:
        meta = request.META
        self.hooks.record(
            request,
            status,
            peer=meta.get("REMOTE_ADDR"),
            forwarded=meta.get("HTTP_X_FORWARDED_FOR"),
            request_id=meta.get("HTTP_X_REQUEST_ID"),
        )

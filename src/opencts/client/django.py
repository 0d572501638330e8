"""Django middleware: each state-changing request becomes a CTS trace.

Add ``"opencts.client.django.OpenCTSMiddleware"`` to ``MIDDLEWARE`` (after the authentication middleware,
so ``request.user`` is known). The client is built once from ``OPENCTS_CLIENT_*`` variables, or set by the
app with :func:`set_client`; the user is ``request.user``'s user name, the trace name the URL pattern's
name (else the view's), the resource what the optional ``OPENCTS_RESOURCE`` setting (a dotted path to a
``callable(request) -> Resource | None``) returns. Recording only appends to the client's buffer, so a
request never waits on OpenCTS, and an error while recording is logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from opencts.client.asgi import STATE_CHANGING, Recorder
from opencts.client.recording import new_trace_id, trace_name_for

__all__ = ["OpenCTSMiddleware", "set_client"]

log = logging.getLogger("opencts.client")
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


class OpenCTSMiddleware:
    """Records POST, PUT, PATCH and DELETE requests of a Django project."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        path = getattr(settings, "OPENCTS_RESOURCE", None)
        self.resource: Callable[[Any], Any] | None = import_string(path) if path else None
        self.trust_forwarded = bool(getattr(settings, "OPENCTS_TRUST_FORWARDED", False))

    def __call__(self, request: Any) -> Any:
        if request.method not in STATE_CHANGING:
            return self.get_response(request)
        status = 500
        try:
            response = self.get_response(request)
            status = int(response.status_code)
            return response
        finally:
            self._record(request, status)

    def _record(self, request: Any, status: int) -> None:
        try:
            user = getattr(request, "user", None)
            name = user.get_username() if user is not None and user.is_authenticated else None
            match = getattr(request, "resolver_match", None)
            label = (match.url_name or match.view_name) if match is not None else request.method.lower()
            ip = request.META.get("REMOTE_ADDR")
            if self.trust_forwarded and (forwarded := request.META.get("HTTP_X_FORWARDED_FOR")):
                ip = str(forwarded).split(",")[0].strip()
            _get_client().record(
                trace_name_for(str(label)),
                user=name or None,
                resource=self.resource(request) if self.resource else None,
                status=status,
                source_ip=ip,
                request_id=request.META.get("HTTP_X_REQUEST_ID") or new_trace_id(),
            )
        except Exception:  # auditing must never break the app's request
            log.exception("OpenCTS middleware could not record a request")

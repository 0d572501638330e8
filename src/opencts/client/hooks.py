"""What the framework middlewares (ASGI, WSGI, Django) share: which requests they record, how the app's
callables name the user, resource and operation, and the one call that records, which never raises.

Each middleware only knows how its framework hands over a request and its status; turning that into a
trace is done once, here, so the three record the same fields the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any, Generic, Protocol, TypeVar

from opencts.client.recording import Resource, new_trace_id

__all__ = ["STATE_CHANGING", "Recorder", "RequestHooks", "client_address"]

log = logging.getLogger("opencts.client")

#: the methods that change something, and so are audited by default
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

R = TypeVar("R")


class Recorder(Protocol):
    """What a middleware needs of a client (``Client`` or ``AsyncClient``)."""

    def record(self, trace_name: str, **fields: Any) -> str | None: ...


def client_address(peer: str | None, forwarded: str | None, trust_forwarded: bool) -> str | None:
    """The peer's address, or the first ``X-Forwarded-For`` hop when the app sits behind a proxy it trusts."""
    if trust_forwarded and forwarded:
        return forwarded.split(",")[0].strip()
    return peer


class RequestHooks(Generic[R]):
    """The app's callables over its request type ``R`` and the recording they feed."""

    def __init__(
        self,
        client: Recorder,
        *,
        user: Callable[[R], str | None],
        resource: Callable[[R], Resource | None] | None,
        name: Callable[[R], str],
        methods: Collection[str],
        trust_forwarded: bool,
    ) -> None:
        self.client = client
        self.user = user
        self.resource = resource
        self.name = name
        self.methods = frozenset(m.upper() for m in methods)
        self.trust_forwarded = trust_forwarded

    def record(
        self, request: R, status: int, *, peer: str | None, forwarded: str | None, request_id: str | None
    ) -> None:
        try:
            self.client.record(
                self.name(request),
                user=self.user(request),
                resource=self.resource(request) if self.resource else None,
                status=status,
                source_ip=client_address(peer, forwarded, self.trust_forwarded),
                request_id=request_id or new_trace_id(),
            )
        except Exception:  # auditing must never break the app's request
            log.exception("OpenCTS middleware could not record a request")

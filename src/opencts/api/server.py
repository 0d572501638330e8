"""How ``opencts serve`` runs uvicorn: no forwarding headers believed by the server, and a read deadline.

uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise; OpenCTS turns that off here and
believes forwarding headers only from the proxies the operator lists (:func:`opencts.api.app.create_app`
installs that middleware), so the same rule holds under any ASGI server.

uvicorn closes idle keep-alive connections but waits for ever on a request whose headers never finish or
whose body is shorter than its ``Content-Length``. :class:`DeadlineProtocol` gives every request a time
limit, from the moment the connection opens (or its previous answer ends) until the request's last byte;
a request that is not all there by then is answered 408 and its connection closed, so slow or lying
clients cannot hold connections and their buffers open.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from opencts.config import Settings


def _timeout_response() -> bytes:
    rid = uuid.uuid4().hex
    body = orjson.dumps(
        {
            "error_code": "CTS.0408",
            "error_msg": "the request was not received in time",
            "request_id": rid,
        }
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {rid}\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for receiving each whole request."""

    read_timeout: float = 30.0
    _deadline: asyncio.TimerHandle | None = None
    _received: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._received = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._received = False
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.read_timeout, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        awaiting_headers = cycle is None or cycle.response_complete
        awaiting_body = cycle is not None and cycle.more_body and not cycle.response_started
        if not (awaiting_headers or awaiting_body):
            return  # the whole request is in; the answer may take as long as it takes
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() now answers http.disconnect
            cycle.message_event.set()
        if self._received:  # an idle keep-alive connection is simply closed, as uvicorn does
            self.transport.write(_timeout_response())
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``uvicorn.run`` needs beyond the app, host and port."""
    deadline = {"read_timeout": settings.request_timeout_seconds}
    protocol = type("DeadlineProtocol", (DeadlineProtocol,), deadline)
    return {"http": protocol, "proxy_headers": False}

"""Real peers of SMN for tests and benchmarks: an SMTP server and an HTTP receiver, both on 127.0.0.1.

Nothing is faked: the SMTP sink is aiosmtpd speaking SMTP on a socket and the receiver is ``http.server`` on
a socket, so every byte OpenCTS sends crosses a real TCP connection. aiosmtpd is a development dependency
(the ``dev`` extra), imported only when a sink starts, so this module imports without it.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from opencts.testing.ports import free_port

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

LINK = re.compile(r"https?://\S+")


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], port: int = 0) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 from a thread (on a free port unless given); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def links_in(text: str, marker: str) -> list[str]:
    """The plain http(s) URLs in ``text`` that contain ``marker`` (e.g. ``/confirm?token=``)."""
    return [u for u in LINK.findall(text) if marker in u]


@dataclass
class Mail:
    message: EmailMessage
    at: float

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return str(body.get_content()) if body is not None else ""

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["X-Smn-Message-Id"] or "")


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that accepts every message and keeps it, with when it was accepted.

    ``stop()`` then ``start()`` again listens on the same port: an SMTP relay that was down and is back.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.mails.append(Mail(msg, time.time()))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def all(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.all() if str(m.message["To"]) == address]


@dataclass
class Received:
    doc: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class HttpReceiver:
    """A webhook (or SMS gateway) on 127.0.0.1: records every JSON POST, answers 200, or 503 while ``down``.

    With ``auto_confirm`` it GETs the ``subscribe_url`` of a SubscriptionConfirmation, as a subscriber would.
    ``delay`` holds each answer back (a slow receiver), after the request has been recorded.
    """

    port: int = field(default_factory=free_port)
    auto_confirm: bool = True
    delay: float = 0.0
    down: bool = False
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> HttpReceiver:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.down:
                    receiver._refuse(self)
                    return
                doc = orjson.loads(raw)
                with receiver._lock:
                    receiver.received.append(Received(doc, dict(self.headers.items()), time.time()))
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    return  # the sender went away while the answer was held back
                if receiver.auto_confirm and doc.get("type") == "SubscriptionConfirmation":
                    threading.Thread(target=httpx.get, args=(doc["subscribe_url"],), daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _refuse(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.refused += 1
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def posts(self, kind: str | None = None) -> list[Received]:
        """The POSTs received so far, of one ``type`` (e.g. ``Notification``) or all."""
        with self._lock:
            return [r for r in self.received if kind is None or r.doc.get("type") == kind]

    def docs(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r.doc for r in self.posts(kind)]

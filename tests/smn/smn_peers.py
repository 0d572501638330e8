"""Real peers for SMN tests and the latency benchmark: an SMTP server, an HTTP receiver, a running OpenCTS.

Nothing is faked: the SMTP sink is aiosmtpd speaking SMTP on a socket, the receiver is ``http.server`` on a
socket, and OpenCTS runs under uvicorn on a free port, so every byte crosses a real TCP connection.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from opencts.api.app import create_app
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.iam.signature import HmacAuth

LINK = re.compile(r"https?://\S+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    def message_id(self) -> str:
        return str(self.message["X-Smn-Message-Id"] or "")


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that accepts every message and keeps it, with when it was accepted."""

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
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if str(m.message["To"]) == address]


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
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.down:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
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
                    return  # the sender died while we were slow (the restart test kills it)
                if receiver.auto_confirm and doc.get("type") == "SubscriptionConfirmation":
                    threading.Thread(target=httpx.get, args=(doc["subscribe_url"],), daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def docs(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.doc for r in self.received if kind is None or r.doc.get("type") == kind]


async def anonymous(method: str, url: str, *, as_json: bool = True) -> httpx.Response:
    """A request without credentials (a link followed); async, since the loop may serve OpenCTS.

    ``as_json`` asks for the JSON answer a program reads; without it the links answer HTML pages.
    """
    headers = {"Accept": "application/json"} if as_json else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url, headers=headers)


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait (without blocking the loop, which may be serving OpenCTS) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class RunningServer:
    url: str
    app: FastAPI
    creds: BootstrapCredentials
    client: httpx.AsyncClient

    @property
    def project(self) -> str:
        return self.creds.project_id

    @property
    def base(self) -> str:
        return f"/v2/{self.creds.project_id}/notifications"

    async def topic(self, name: str) -> str:
        resp = await self.client.post(f"{self.base}/topics", json={"name": name, "display_name": name})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["topic_urn"])

    async def subscribe(self, topic_urn: str, protocol: str, endpoint: str, **extra: Any) -> str:
        resp = await self.client.post(
            f"{self.base}/topics/{topic_urn}/subscriptions",
            json={"protocol": protocol, "endpoint": endpoint, **extra},
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["subscription_urn"])

    async def status(self, subscription_urn: str) -> int:
        subs = (await self.client.get(f"{self.base}/subscriptions")).json()["subscriptions"]
        return int(next(s["status"] for s in subs if s["subscription_urn"] == subscription_urn))

    async def wait_status(self, subscription_urn: str, status: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while await self.status(subscription_urn) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"{subscription_urn} did not reach status {status} in {timeout}s")
            await asyncio.sleep(0.05)

    async def publish(self, topic_urn: str, **body: Any) -> str:
        resp = await self.client.post(f"{self.base}/topics/{topic_urn}/publish", json=body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["message_id"])

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get(f"{self.base}/deliveries", params=params)
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["deliveries"]
        return found


@asynccontextmanager
async def running_server(data_dir: Path, port: int | None = None) -> AsyncIterator[RunningServer]:
    """OpenCTS under uvicorn in this event loop, on a real port; SMN settings come from OPENCTS_* env."""
    port = port or free_port()
    settings = Settings(data_dir=data_dir, bind=f"127.0.0.1:{port}")
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 30, "the server to start")
        if task.done():
            task.result()
        creds = read_credentials(settings.credentials_path)
        url = f"http://127.0.0.1:{port}"
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        async with httpx.AsyncClient(base_url=url, auth=auth, timeout=30) as client:
            yield RunningServer(url, app, creds, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

"""The client behind a rate-limiting gateway (what nginx's ``limit_req`` or an API gateway puts in front of
OpenCTS): a 429 with ``Retry-After`` is waited out, not hammered, and the batch still lands once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from client_helpers import client_settings, stored
from opencts.client import Client
from opencts.testing.ports import free_port
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow


class Gateway:
    """Forwards every request to ``upstream`` unchanged (the signature covers the Host the client used,
    so the Host header is passed through), except that the first ``limited`` POSTs get a 429."""

    def __init__(self, upstream: str, limited: int, retry_after: str) -> None:
        self.upstream = upstream
        self.limited = limited
        self.retry_after = retry_after
        self.port = free_port()
        self.posts: list[tuple[float, int]] = []  # (when, status answered)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with gateway._lock:
                    refuse = gateway.limited > 0
                    gateway.limited -= 1 if refuse else 0
                if refuse:
                    self._answer(429, {"Retry-After": gateway.retry_after}, b"")
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
                    resp = httpx.post(gateway.upstream + self.path, content=body, headers=headers, timeout=30)
                    self._answer(resp.status_code, {"Content-Type": "application/json"}, resp.content)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                with gateway._lock:
                    gateway.posts.append((time.monotonic(), status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Gateway:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def gateway(live_server: ServerProcess) -> Iterator[Gateway]:
    with Gateway(live_server.url, limited=2, retry_after="1") as gw:
        yield gw


def test_429_retry_after_is_waited_out(live_server: ServerProcess, gateway: Gateway, tmp_path: Path) -> None:
    # backoff alone would retry within 0.3 s; only Retry-After makes the client wait a whole second
    settings = client_settings(live_server, tmp_path / "spool", endpoint=gateway.url, retry_max=0.3)
    with Client(settings) as client:
        for _ in range(25):
            client.record("createThing", user="carol", status=201)
        assert client.flush(20)
        stats = client.stats()
    assert stats.accepted == 25 and stats.dropped == 0
    statuses = [status for _, status in gateway.posts]
    assert statuses[:2] == [429, 429] and statuses[2:] and set(statuses[2:]) <= {200, 201}
    waits = [b[0] - a[0] for a, b in zip(gateway.posts, gateway.posts[1:], strict=False)][:2]
    assert all(w >= 0.95 for w in waits), f"retried {waits} s after a 429 with Retry-After: 1"
    assert stored(live_server, settings.service_type) == 25  # the refused attempts added nothing

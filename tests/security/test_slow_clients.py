"""Slow or lying clients cannot hold connections open: a request must arrive whole within a deadline.

uvicorn alone waits for ever on headers that never finish or a body shorter than its Content-Length, so
200 such requests held 200 connections (and their buffers) indefinitely. Against the real ``opencts
serve`` with a 2 s deadline, every one must be answered 408 or closed within a bound.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from opencts.testing.server import ServerProcess, start_server

DEADLINE_S = 2.0
BOUND_S = DEADLINE_S + 10  # generous for a loaded machine; without the deadline nothing closes at all
HALF_SENT = [
    b"GET /health HTTP/1.1\r\nHost: opencts\r\nX-Never-Ending: ",  # headers never finish
    b"POST /v3/auth/tokens HTTP/1.1\r\nHost: opencts\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"auth": ',  # a body shorter than its Content-Length
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("slow") / "data"
    live = start_server(data_dir, {"OPENCTS_REQUEST_TIMEOUT_SECONDS": str(DEADLINE_S)})
    try:
        yield live
    finally:
        live.stop()


def address(server: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def ready_reads(sel: selectors.BaseSelector, timeout: float) -> Iterator[tuple[socket.socket, bytes]]:
    """What each readable socket has to say now: bytes, or b"" when the server closed (or reset) it."""
    for key, _ in sel.select(timeout=timeout):
        peer = key.fileobj
        assert isinstance(peer, socket.socket)
        try:
            yield peer, peer.recv(65536)
        except ConnectionResetError:
            yield peer, b""


def test_two_hundred_half_sent_requests_are_closed_within_a_bound(server: ServerProcess) -> None:
    sel = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    started = time.monotonic()
    for i in range(200):
        sock = socket.create_connection(address(server), timeout=5)
        sock.sendall(HALF_SENT[i % 2])
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        received[sock] = b""
    open_ = set(received)
    closed_after: list[float] = []
    while open_ and time.monotonic() - started < BOUND_S:
        for peer, data in ready_reads(sel, 0.5):
            if data:
                received[peer] += data
                continue
            closed_after.append(time.monotonic() - started)
            sel.unregister(peer)
            open_.discard(peer)
    for sock in received:
        sock.close()
    assert not open_, f"{len(open_)} of 200 half-sent requests still open after {BOUND_S} s"
    assert max(closed_after) < BOUND_S
    answers = [data for data in received.values() if data]
    assert len(answers) == 200  # each sent something, so each was told why
    assert all(a.startswith(b"HTTP/1.1 408 ") and b'"error_code":"CTS.0408"' in a for a in answers)


def test_a_request_that_arrives_whole_is_answered_and_the_connection_kept(server: ServerProcess) -> None:
    """The deadline starts again after each answer: a keep-alive connection serves request after request."""
    with socket.create_connection(address(server), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: opencts\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(65536)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_client_trickling_its_headers_is_cut_at_the_deadline_too(server: ServerProcess) -> None:
    """The deadline is for the whole request, not for each idle gap: a byte every 100 ms does not help."""
    socks = []
    for _ in range(10):
        sock = socket.create_connection(address(server), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: opencts\r\n")
        sock.setblocking(False)
        socks.append(sock)
    answers = dict.fromkeys(socks, b"")
    open_ = set(socks)
    started = time.monotonic()
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    while open_ and time.monotonic() - started < BOUND_S:
        for sock in list(open_):
            try:
                sock.send(b"X")  # one more byte of a header that never ends
            except (BrokenPipeError, ConnectionResetError):
                pass
        for peer, data in ready_reads(sel, 0.1):
            answers[peer] += data
            if not data:
                sel.unregister(peer)
                open_.discard(peer)
    for sock in socks:
        sock.close()
    assert not open_, f"{len(open_)} of 10 trickling clients still open after {BOUND_S} s"
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values())

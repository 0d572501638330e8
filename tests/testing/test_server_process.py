"""``ServerProcess`` runs ``opencts serve`` as a user would, and reports a server that cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow


def test_a_started_server_answers_signed_requests_and_stops(live_server: ServerProcess) -> None:
    with live_server.client() as client:
        resp = client.get(f"/v3/{live_server.creds.project_id}/traces")
    assert resp.status_code == 200, resp.text
    assert live_server.process.poll() is None


def test_a_server_that_cannot_start_fails_with_its_output(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = ServerProcess(tmp_path / "data", port=busy.getsockname()[1])
        with pytest.raises(AssertionError, match="already in use"):
            server.start(30)
    assert server.process.poll() is not None

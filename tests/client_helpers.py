"""What the client's tests share: settings that point a client at a real OpenCTS, and counting what it
stored. Each test records under its own ``service_type``, so tests sharing one server count only theirs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from opencts.client.settings import ClientSettings
from opencts.testing.server import ServerProcess, signer
from opencts.testing.waiting import wait_for


def service_type() -> str:
    """A service type no other test records under."""
    return f"T{uuid.uuid4().hex[:12]}"


def client_settings(server: ServerProcess, spool_dir: Path | None, **overrides: Any) -> ClientSettings:
    """Settings of a client recording into ``server``'s project as its bootstrap admin; fast flushes and
    retries, so a test waits little. ``spool_dir`` None keeps batches in memory."""
    creds = server.creds
    values: dict[str, Any] = {
        "endpoint": server.url,
        "project_id": creds.project_id,
        "access_key": creds.access_key,
        "secret_key": creds.secret_key,
        "service_type": service_type(),
        "flush_interval": 0.05,
        "retry_base": 0.05,
        "retry_max": 0.3,
        "spool": spool_dir is not None,
        "spool_dir": spool_dir,
        "spool_fsync": False,
        "shutdown_timeout": 5.0,
    }
    values.update(overrides)
    return ClientSettings(**values)


def stored(server: ServerProcess, service: str, **filters: str) -> int:
    """How many traces of ``service`` the server holds (the last hour)."""
    with httpx.Client(base_url=server.url, auth=signer(server.creds), timeout=30) as http:
        resp = http.get(
            f"/v3/{server.creds.project_id}/traces/count", params={"service_type": service, **filters}
        )
    assert resp.status_code == 200, resp.text
    return int(resp.json()["count"])


def traces(server: ServerProcess, service: str, limit: int = 200) -> list[dict[str, Any]]:
    """The newest traces of ``service``, as ListTraces returns them."""
    with httpx.Client(base_url=server.url, auth=signer(server.creds), timeout=30) as http:
        resp = http.get(
            f"/v3/{server.creds.project_id}/traces", params={"service_type": service, "limit": limit}
        )
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["traces"]
    return found


def wait_stored(server: ServerProcess, service: str, count: int, timeout: float = 30.0) -> None:
    """Wait until the server holds ``count`` traces of ``service``; fails if it ever holds more."""

    def reached() -> bool:
        n = stored(server, service)
        assert n <= count, f"{n} traces stored, expected {count}"
        return n == count

    wait_for(reached, timeout, f"{count} traces of {service}", interval=0.1)

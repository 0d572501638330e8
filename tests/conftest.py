"""Shared fixtures: real SQLite and PostgreSQL databases, the app with its lifespan, signed clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fastapi import FastAPI

from opencts.api.app import create_app
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.iam.secrets import SecretBox, parse_master_key
from opencts.iam.signature import HmacAuth
from opencts.store import Database, migrate
from opencts.store.trace_log import TraceRow

POSTGRES_ADMIN_URL = os.environ.get("OPENCTS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read OPENCTS_* variables; a developer's shell must not change what tests see."""
    for name in list(os.environ):
        if name.startswith(("OPENCTS_", "HUAWEICLOUD_SDK_")):
            monkeypatch.delenv(name)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"opencts_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in ``tmp_path``, or a fresh PostgreSQL database, as the fixture's param says."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database(database_url(request, tmp_path))
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.close()


TraceFactory = Callable[..., dict[str, Any]]


def trace_row(trace_id: str, **columns: Any) -> TraceRow:
    """A stored row of a management trace for store-level tests; keyword arguments override columns."""
    values: dict[str, Any] = {
        "project_id": "p1",
        "trace_id": trace_id,
        "kind": "system",
        "time": 1_700_000_000_000,
        "record_time": 1_700_000_000_000,
        "trace_name": "login",
        "trace_rating": "normal",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "resource_type": None,
        "resource_id": None,
        "resource_name": None,
        "user_name": "alice",
        "access_key_id": None,
        "tracker_name": "system",
        "enterprise_project_id": None,
        "body": orjson.dumps({"trace_id": trace_id}),
    }
    values.update(columns)
    return TraceRow(**values)


@pytest.fixture
def make_trace() -> TraceFactory:
    """A valid management trace a few seconds old; keyword arguments override fields."""
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> dict[str, Any]:
        n = next(counter)
        trace: dict[str, Any] = {
            "trace_id": str(uuid.uuid4()),
            "trace_name": "createServer",
            "trace_type": "ApiCall",
            "trace_rating": "normal",
            "service_type": "ECS",
            "resource_type": "ecs",
            "resource_id": f"srv-{n}",
            "resource_name": f"web-{n}",
            "time": now_ms() - 5_000 - n,
            "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
            "source_ip": "10.1.2.3",
            "code": 200,
            "request": {"server": {"name": f"web-{n}"}},
            "response": {"id": f"srv-{n}"},
        }
        trace.update(overrides)
        return {k: v for k, v in trace.items() if v is not None}

    return make


@dataclass
class Api:
    """An in-process app with its lifespan running, and a client signed as the bootstrap admin."""

    app: FastAPI
    client: httpx.AsyncClient
    creds: BootstrapCredentials
    settings: Settings

    @property
    def project(self) -> str:
        return self.creds.project_id

    async def put(self, traces: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post(f"/v3/{self.project}/traces", json={"traces": traces})

    async def list(self, **params: Any) -> httpx.Response:
        return await self.client.get(f"/v3/{self.project}/traces", params=params)


def signed_client(app: FastAPI, creds: BootstrapCredentials, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=base_url,
        auth=HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id),
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    # ingest parsed in place: worker processes would cost every test a second; tests/traces/test_workers.py
    # drives the pool
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0)
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        creds = read_credentials(settings.credentials_path)
        async with signed_client(app, creds, "http://127.0.0.1:8080") as client:
            yield Api(app, client, creds, settings)


@dataclass
class LiveServer:
    """``opencts serve`` in its own process, on a free port, with its own data dir."""

    url: str
    data_dir: Path
    creds: BootstrapCredentials
    process: Any


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> LiveServer:
    import subprocess
    import sys
    import time

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    env.update(extra_env or {})
    exe = Path(sys.executable).with_name("opencts")
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--data-dir",
            str(data_dir),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return LiveServer(url, data_dir, read_credentials(data_dir / "credentials.json"), proc)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy in 30 s")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except Exception:
        server.process.kill()
    if server.process.stderr:
        server.process.stderr.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live") / "data")
    try:
        yield server
    finally:
        stop_server(server)


def master_box(data_dir: Path) -> SecretBox:
    """The box of the master key a server generated in ``data_dir``, for tests that edit its database."""
    return SecretBox(parse_master_key((data_dir / "master.key").read_text(), source="master.key"))

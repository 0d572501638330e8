"""Shared fixtures: real SQLite and PostgreSQL databases, the app with its lifespan, signed clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cts_helpers import Api, TraceFactory, database_url, in_process_api
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.store import Database, migrate
from opencts.testing.peers import HttpReceiver, SmtpSink
from opencts.testing.ports import free_port
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from opencts.testing.server import ServerProcess

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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database(database_url(request, tmp_path))
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.close()


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


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    # ingest parsed in place: worker processes would cost every test a second; tests/traces/test_workers.py
    # drives the pool
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0)
    async with in_process_api(settings) as api:
        yield api


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``opencts serve`` process the whole session shares (tests that need their own start one)."""
    with ServerProcess(tmp_path_factory.mktemp("live") / "data") as server:
        yield server


@pytest.fixture(scope="session")
def relay_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose SMTP relay is a port where nothing listens: email is accepted, then goes dead."""
    env = {"OPENCTS_SMTP_HOST": "127.0.0.1", "OPENCTS_SMTP_PORT": str(free_port())}
    with ServerProcess(tmp_path_factory.mktemp("relay-down") / "data", env) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """An SMTP server (aiosmtpd) on a free port, keeping every message."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    """A webhook that confirms its subscription as a subscriber would, and keeps every POST."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def gateway() -> Iterator[HttpReceiver]:
    """A receiver that confirms nothing: an SMS gateway, or a webhook whose test confirms it another way."""
    with HttpReceiver(auto_confirm=False) as receiver:
        yield receiver


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_server(_moto_server: S3Server) -> str:
    """The endpoint URL of an S3 server (moto's, over HTTP), emptied for this test.

    One server serves the session (moto keeps buckets in this process's memory; each test starts with
    none). A test that stops or restarts its server opens its own ``opencts.testing.s3.S3Server``.
    """
    _moto_server.reset()
    return _moto_server.url


@pytest.fixture
def s3_settings(tmp_path: Path, s3_server: str) -> Settings:
    """Settings whose buckets live in the test's S3 server (``OPENCTS_STORAGE_URL=s3://``)."""
    return Settings(
        data_dir=tmp_path / "data",
        bind="127.0.0.1:8080",
        ingest_workers=0,
        storage_url="s3://",
        s3_endpoint=s3_server,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )

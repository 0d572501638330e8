"""``/ready`` against real failures: a database that goes away and comes back, a schema that is not this
code's, a consumer that stops stepping. ``/health`` stays up through all of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from cts_helpers import in_process_api
from opencts.api.app import create_app
from opencts.config import Settings
from opencts.consumers import ConsumerRunner


def anonymous(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe")


async def ready_status(client: httpx.AsyncClient) -> tuple[int, list[str]]:
    resp = await client.get("/ready")
    return resp.status_code, resp.json().get("failing", [])


def _rename(admin_url: str, old: str, new: str) -> None:
    """Take database ``old`` away under another name (its sessions ended first), or give it back."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for _ in range(50):  # the app's pool may reconnect between the two statements; try again
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (old,))
            try:
                admin.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.05)
    raise AssertionError(f"could not rename {old}")


@pytest.mark.postgres
async def test_ready_follows_the_database(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, ingest_workers=0)
    app = create_app(settings)  # consumers running, as in production
    admin_url = postgres_url.rsplit("/", 1)[0] + "/test"
    name = postgres_url.rsplit("/", 1)[1]
    async with app.router.lifespan_context(app), anonymous(app) as client:
        assert await ready_status(client) == (200, [])
        await asyncio.to_thread(_rename, admin_url, name, name + "_away")
        try:
            assert await ready_status(client) == (503, ["database"])
            assert (await client.get("/health")).status_code == 200  # alive, only not ready
        finally:
            await asyncio.to_thread(_rename, admin_url, name + "_away", name)
        for _ in range(50):  # the pool finds its connections dead and opens new ones
            if (await ready_status(client))[0] == 200:
                break
            await asyncio.sleep(0.1)
        assert await ready_status(client) == (200, [])


async def test_ready_checks_schema_and_consumers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app), anonymous(app) as client:
        resp = await client.get("/ready")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready"}
        runners: list[ConsumerRunner] = app.state.consumer_runners
        assert {r.consumer.name for r in runners} >= {"retention", "catalogue", "notifier"}

        # retention sleeps a minute between steps: nothing refreshes its heartbeat during the test
        retention = next(r for r in runners if r.consumer.name == "retention")
        for _ in range(200):  # its first step runs at start, later on a loaded machine: let it finish
            if retention.steps:
                break
            await asyncio.sleep(0.05)
        assert retention.steps == 1
        retention.beat -= 3600  # as if its last step finished an hour ago
        assert await ready_status(client) == (503, ["consumers"])
        retention.beat = time.monotonic()
        assert await ready_status(client) == (200, [])

        task = next(t for t in app.state.consumer_tasks if t.get_name() == "catalogue")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert await ready_status(client) == (503, ["consumers"])


async def test_ready_refuses_a_schema_of_another_version(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    async with in_process_api(settings) as api, anonymous(api.app) as client:
        assert await ready_status(client) == (200, [])
        db = api.app.state.services.db
        db.write_sync(lambda conn: conn.execute(text("UPDATE alembic_version SET version_num = '0001'")))
        assert await ready_status(client) == (503, ["migrations"])

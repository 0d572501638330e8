"""The ingest worker pool: the same rows and verdicts as preparing in place, the same 4xx, no lost batch."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import orjson
import pytest

from cts_helpers import TraceFactory, signed_client
from opencts.api.app import create_app
from opencts.clock import DAY_MS, now_ms
from opencts.config import Settings
from opencts.errors import BadRequest, MalformedJSON
from opencts.iam.bootstrap import read_credentials
from opencts.store.trace_log import TraceRow
from opencts.testing.server import start_server
from opencts.testing.waiting import wait_for
from opencts.traces.ingest import PreparedBatch
from opencts.traces.workers import IN_PLACE_BYTES, PreparePool, prepare_body

PROJECT = "0" * 32
RETENTION_MS = 7 * DAY_MS


@pytest.fixture
async def pool() -> AsyncIterator[PreparePool]:
    made = PreparePool(1)
    for started in made.start():
        assert started.result(timeout=60)
    try:
        yield made
    finally:
        made.close()


def executor_of(pool: PreparePool) -> ProcessPoolExecutor | None:
    """The pool's current executor (read through a call: it changes under mypy's narrowing)."""
    return pool._executor


def large_body(make_trace: TraceFactory, n: int = 400) -> bytes:
    traces = [make_trace() for _ in range(n)]
    traces[7]["trace_name"] = "1-starts-with-a-digit"  # one rejected trace among them
    traces[9]["trace_id"] = traces[8]["trace_id"]  # and one duplicate within the batch
    del traces[11]["trace_id"]  # and one whose id the server makes
    raw = orjson.dumps({"traces": traces})
    assert len(raw) >= IN_PLACE_BYTES  # so it really crosses to a worker
    return raw


def comparable(batch: PreparedBatch) -> tuple[object, ...]:
    generated = batch.results[11].trace_id
    # which id the server made for the trace sent without one differs between two preparations
    rows = [
        tuple("generated" if value == generated else value for value in row)
        + (orjson.loads(row.body) | {"trace_id": "generated" if row.trace_id == generated else row.trace_id},)
        for row in batch.rows
    ]
    rows = [row[:16] + row[17:] for row in rows]  # the body, parsed, is the last value now
    verdicts = [(r.index, r.status, r.reason) for r in batch.results]
    return rows, verdicts, batch.row_results


async def test_a_worker_prepares_exactly_what_the_event_loop_would(
    pool: PreparePool, make_trace: TraceFactory
) -> None:
    raw, now = large_body(make_trace), now_ms()
    shipped = await pool.prepare(raw, project_id=PROJECT, now=now, retention_ms=RETENTION_MS)
    in_place = prepare_body(raw, project_id=PROJECT, now=now, retention_ms=RETENTION_MS)
    assert all(type(row) is TraceRow for row in shipped.rows)
    assert comparable(shipped) == comparable(in_place)
    statuses = [r.status for r in shipped.results]
    assert statuses.count("rejected") == 1 and statuses.count("duplicate") == 1
    assert "trace_name" in (shipped.results[7].reason or "")


async def test_a_bad_large_body_gets_the_same_error_from_a_worker(
    pool: PreparePool, make_trace: TraceFactory
) -> None:
    raw = large_body(make_trace)
    with pytest.raises(MalformedJSON, match="not valid JSON"):
        await pool.prepare(raw[:-1], project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS)
    too_many = orjson.dumps({"traces": [make_trace() for _ in range(1001)]})
    with pytest.raises(BadRequest, match="at most 1000 traces") as caught:
        await pool.prepare(too_many, project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS)
    assert caught.value.status == 400


async def test_a_killed_worker_costs_no_batch_and_the_pool_recovers(
    pool: PreparePool, make_trace: TraceFactory
) -> None:
    executor = pool._pool()
    for pid in list(executor._processes):  # what an OOM killer would do
        os.kill(pid, signal.SIGKILL)
    raw = large_body(make_trace)
    first = await pool.prepare(raw, project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS)
    assert len(first.rows) == 398  # prepared in place: the producer never hears of the dead worker
    assert executor_of(pool) is None
    meanwhile = await pool.prepare(raw, project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS)
    assert len(meanwhile.rows) == 398 and executor_of(pool) is None  # in place until the restart delay ends
    pool._retry_at = 0.0
    again = await pool.prepare(raw, project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS)
    assert len(again.rows) == 398
    assert executor_of(pool) is not None and executor_of(pool) is not executor  # a new pool took over


async def test_a_closed_pool_prepares_in_place(make_trace: TraceFactory) -> None:
    closed = PreparePool(1)
    closed.close()
    batch = await closed.prepare(
        large_body(make_trace), project_id=PROJECT, now=now_ms(), retention_ms=RETENTION_MS
    )
    assert len(batch.rows) == 398 and executor_of(closed) is None  # no pool started after shutdown


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_ingest_through_the_pool_end_to_end(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, make_trace: TraceFactory
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=url, ingest_workers=1)
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        creds = read_credentials(settings.credentials_path)
        url = f"/v3/{creds.project_id}/traces"
        async with signed_client(app, creds, "http://127.0.0.1:8080") as client:
            raw = large_body(make_trace)
            sent = await client.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert sent.status_code == 200, sent.text
            doc = sent.json()
            assert (doc["accepted"], doc["duplicates"], doc["rejected"]) == (398, 1, 1)
            retried = await client.post(url, content=raw, headers={"Content-Type": "application/json"})
            again = retried.json()  # idempotent through the pool too; a trace sent without an id is new
            assert (again["accepted"], again["duplicates"], again["rejected"]) == (1, 398, 1)
            listed = await client.get(url, params={"limit": 200})
            assert listed.json()["meta_data"]["count"] == 200
            all_bad = orjson.dumps({"traces": [make_trace(trace_type="Nope") for _ in range(400)]})
            refused = await client.post(url, content=all_bad, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400 and refused.json()["error_code"] == "CTS.0001"
            assert "x-request-id" in refused.headers


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(k) for k in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has exited


@pytest.mark.slow
def test_workers_of_a_killed_server_exit_too(tmp_path: Path) -> None:
    """kill -9 (or the OOM killer) never lets the server shut its pool down: the workers notice alone."""
    server = start_server(tmp_path / "data", {"OPENCTS_INGEST_WORKERS": "1"})

    def workers() -> list[int]:
        children = _children(server.pid)
        return [p for p in children if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]

    try:
        # the pool starts its worker during start-up
        pids = wait_for(workers, 10, "an ingest worker to start", interval=0.1)
    finally:
        server.kill()
    wait_for(lambda: not any(_alive(p) for p in pids), 10, "the workers of the killed server to exit")

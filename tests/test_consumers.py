"""The consumer mechanism: cursors, resumption, at-least-once, and retention as its first user."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cts_helpers import trace_row
from opencts.clock import DAY_MS
from opencts.consumers import ConsumerRunner, get_cursor, set_cursor
from opencts.store import Database, trace_log
from opencts.store.trace_log import TraceRow
from opencts.traces.retention import RetentionConsumer


def rows(start: int, n: int, record_time: int = 1000) -> list[TraceRow]:
    return [
        trace_row(f"t{i}", project_id="p", time=record_time, record_time=record_time)
        for i in range(start, start + n)
    ]


class Recorder:
    name = "recorder"
    batch_size = 7
    wake_on_append = True
    with_body = True
    poll_seconds = 0.01

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on

    async def process(self, batch: list[Any]) -> int | None:
        for r in batch:
            trace_id = orjson.loads(r.body)["trace_id"]
            if trace_id == self.fail_on:
                raise RuntimeError("boom")
            self.seen.append(trace_id)
        return None


async def test_a_consumer_sees_everything_once_and_resumes_from_its_cursor(database: Database) -> None:
    database.write_sync(lambda c: trace_log.append(c, rows(0, 20)))
    first = Recorder()
    assert await ConsumerRunner(database, first).drain() == 20
    assert first.seen == [f"t{i}" for i in range(20)]
    database.write_sync(lambda c: trace_log.append(c, rows(20, 5)))
    resumed = Recorder()  # a new process: only the stored cursor carries over
    await ConsumerRunner(database, resumed).drain()
    assert resumed.seen == [f"t{i}" for i in range(20, 25)]


async def test_a_failed_batch_is_seen_again(database: Database) -> None:
    database.write_sync(lambda c: trace_log.append(c, rows(0, 10)))
    failing = Recorder(fail_on="t8")
    with pytest.raises(RuntimeError):
        await ConsumerRunner(database, failing).drain()
    retry = Recorder()
    await ConsumerRunner(database, retry).drain()
    assert retry.seen[0] == "t7"  # the batch t7..t13 was not committed, so it comes again
    assert retry.seen[-1] == "t9"


def test_cursors_only_move_forward(database: Database) -> None:
    database.write_sync(lambda c: set_cursor(c, "x", 10))
    database.write_sync(lambda c: set_cursor(c, "x", 4))
    assert database.read_sync(lambda c: get_cursor(c, "x")) == 10


async def test_retention_deletes_only_expired_traces(database: Database) -> None:
    day = DAY_MS
    now = 100 * day
    database.write_sync(lambda c: trace_log.append(c, rows(0, 30, record_time=now - 8 * day)))
    database.write_sync(lambda c: trace_log.append(c, rows(30, 10, record_time=now - 1 * day)))
    consumer = RetentionConsumer(database, retention_ms=7 * day, clock=lambda: now)
    consumer.batch_size = 12
    runner = ConsumerRunner(database, consumer)
    await runner.drain()
    assert consumer.deleted == 30
    assert database.read_sync(lambda c: trace_log.count(c)) == 10
    # the cursor waits at the first unexpired trace and moves on when time does
    consumer.clock = lambda: now + 7 * day
    await runner.drain()
    assert database.read_sync(lambda c: trace_log.count(c)) == 1  # the newest stays, see the next test


async def test_an_expired_log_never_restarts_its_sequence(database: Database) -> None:
    """Were the log emptied, SQLite would number the next trace 1, below every consumer's cursor."""
    day = DAY_MS
    now = 100 * day
    database.write_sync(lambda c: trace_log.append(c, rows(0, 5, record_time=now - 8 * day)))
    retention = ConsumerRunner(database, RetentionConsumer(database, retention_ms=7 * day, clock=lambda: now))
    await retention.drain()
    newest = database.read_sync(trace_log.last_seq)
    assert database.read_sync(lambda c: trace_log.count(c)) == 1
    database.write_sync(lambda c: trace_log.append(c, rows(5, 1, record_time=now)))
    assert database.read_sync(trace_log.last_seq) == newest + 1
    recorder = Recorder()
    await ConsumerRunner(database, recorder).drain()
    assert recorder.seen[-1] == "t5"
    await retention.drain()  # now the old newest row has a successor and goes too
    assert database.read_sync(lambda c: trace_log.count(c)) == 1

"""Group commit: concurrent batches share transactions, every caller gets its own verdicts, a failed
group fails only its own callers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cts_helpers import trace_row
from opencts.clock import DAY_MS
from opencts.consumers import LogSignal
from opencts.errors import Overloaded
from opencts.store import Database, migrate, trace_log
from opencts.store.trace_log import TraceRow
from opencts.testing.waiting import until
from opencts.traces.submitter import SELF
from opencts.traces.writer import GroupCommit, TraceWriter


def row(trace_id: str, *, service: str = "ECS", name: str | None = "createServer") -> TraceRow:
    # a None name breaks the NOT NULL constraint on purpose
    return trace_row(trace_id, trace_name=name, service_type=service, time=1_700_000_000_000 + len(trace_id))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'w.db'}")
    migrate.upgrade(made)
    try:
        yield made
    finally:
        made.close()


async def hold_writer(db: Database) -> tuple[threading.Event, asyncio.Task[object]]:
    """Occupy the database's writer thread until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def hold(conn: object) -> bool:
        started.set()
        return release.wait(10)

    blocker = asyncio.ensure_future(db.write(hold))
    await until(started.is_set, 10, "the writer thread to be held")
    return release, blocker


async def taken(commits: GroupCommit, waiting: int = 0) -> None:
    """Wait until the flusher has taken what was appended, leaving ``waiting`` batches in the queue."""
    await until(lambda: commits._flusher is not None and len(commits._queue) == waiting, 10, "the flusher")


async def test_concurrent_batches_share_a_transaction_and_keep_their_own_verdicts(db: Database) -> None:
    commits = GroupCommit(db)
    release, blocker = await hold_writer(db)
    first = asyncio.ensure_future(commits.append([row("a"), row("b")], shed=True))
    await taken(commits)
    # these three queue behind the first and go in one transaction; "b" raced its original
    rest = [
        asyncio.ensure_future(commits.append(batch, shed=True))
        for batch in ([row("c")], [row("b"), row("d")], [row("d"), row("e")])
    ]
    release.set()
    await blocker
    answers = [await first, *[await r for r in rest]]
    assert answers == [{"a", "b"}, {"c"}, {"d"}, {"e"}]  # the first batch to name a new id claims it
    assert db.read_sync(lambda c: trace_log.count(c, "p1")) == 5


async def test_a_failed_group_fails_its_callers_only_and_the_index_stays_in_order(db: Database) -> None:
    index = db.term_index
    assert index is not None
    commits = GroupCommit(db, max_rows=1)  # one batch a group: good, bad, good
    release, blocker = await hold_writer(db)
    good = asyncio.ensure_future(commits.append([row("g1", service="VPC")], shed=True))
    await taken(commits)
    bad = asyncio.ensure_future(commits.append([row("x", name=None)], shed=True))
    later = asyncio.ensure_future(commits.append([row("g2", service="VPC")], shed=True))
    release.set()
    await blocker
    assert await good == {"g1"}
    with pytest.raises(sqlite3.IntegrityError, match="(?i)not null"):
        await bad
    assert await later == {"g2"}
    # both good groups were fed to the term index before their callers heard back, in seq order
    seqs = db.read_sync(lambda c: [r.seq for r in trace_log.read_after(c, 0, 10, with_body=False)])
    assert index.upto == max(seqs)
    found = index.candidates("p1", "system", {"service_type": "VPC"})
    assert list(found) == seqs


async def test_a_full_queue_is_refused_before_anything_is_parsed(db: Database) -> None:
    commits = GroupCommit(db, max_pending=1)
    release, blocker = await hold_writer(db)
    first = asyncio.ensure_future(commits.append([row("a")], shed=True))
    await taken(commits)
    queued = asyncio.ensure_future(commits.append([row("b")], shed=True))
    await taken(commits, waiting=1)
    with pytest.raises(Overloaded, match="retry shortly") as refused:
        commits.refuse_if_full()
    assert refused.value.status == 429
    release.set()
    await blocker
    assert (await first, await queued) == ({"a"}, {"b"})


def trace(trace_id: str, time: int) -> dict[str, object]:
    return {
        "trace_id": trace_id,
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "time": time,
    }


async def test_concurrent_batches_are_committed_together_with_exact_verdicts(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    migrate.upgrade(db)
    try:
        from opencts.clock import now_ms

        now = now_ms()
        writer = TraceWriter(db, LogSignal(), retention_ms=DAY_MS)
        transactions = 0
        real_write = db.write

        async def counting_write(fn, **kw):  # type: ignore[no-untyped-def]
            nonlocal transactions
            transactions += 1
            return await real_write(fn, **kw)

        db.write = counting_write  # type: ignore[method-assign]
        batches = [[trace(f"b{b}-{i}", now - 1000) for i in range(50)] for b in range(8)]
        batches.append([trace("b0-0", now - 1000), trace("b0-1", now - 1000)])  # a retry racing its original
        results = await asyncio.gather(*(writer.write("p", batch, submitter=SELF) for batch in batches))
        assert transactions < len(batches)
        assert [r.status for r in results[0]] == ["accepted"] * 50
        assert [r.status for r in results[-1]] == ["duplicate", "duplicate"]
        assert db.read_sync(lambda c: trace_log.count(c, "p")) == 400
    finally:
        db.close()

"""The one path by which traces enter the log: producers' batches and OpenCTS's own audit trail alike.

Keeping a single path means the same validation, the same tracker policy (a disabled tracker records
nothing) and the same wake-up of consumers apply to every trace, whoever made it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

from opencts.clock import now_ms
from opencts.consumers import LogSignal
from opencts.errors import Overloaded
from opencts.metrics import instruments as metrics
from opencts.store import Database
from opencts.store.trace_log import TraceRow, append_keys, feed_index
from opencts.traces.ingest import PreparedBatch, TraceResult, prepare, settle
from opencts.traces.submitter import Submitter
from opencts.traces.workers import PreparePool

log = logging.getLogger(__name__)


class Policy(Protocol):
    def refuse(self, *, kind: str, service_type: str, trace_name: str, tracker_name: str) -> str | None: ...


PolicyLookup = Callable[[str], Awaitable[Policy | None]]


_Group = list[tuple[Sequence[TraceRow], "asyncio.Future[set[str]]"]]


class GroupCommit:
    """Appends batches from concurrent callers in shared transactions.

    While one transaction runs, batches that arrive wait in a queue, and the next transaction takes them
    all (up to ``max_rows``). SQLite writes each index page a transaction touches once per commit, so four
    batches in one commit cost far less than four commits. Each caller still gets its answer only after
    its rows are durable.
    """

    def __init__(self, db: Database, *, max_rows: int = 8000, max_pending: int = 64) -> None:
        self.db = db
        self.max_rows = max_rows
        self.max_pending = max_pending
        self._queue: list[tuple[Sequence[TraceRow], asyncio.Future[set[str]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def refuse_if_full(self) -> None:
        """429 while the queue is full: checked before a batch is parsed as well as before it queues."""
        if len(self._queue) >= self.max_pending:
            metrics.INGEST_OVERLOADED.inc()
            raise Overloaded("too many trace batches are waiting to be written; retry shortly", retry_after=1)

    async def append(self, rows: Sequence[TraceRow], *, shed: bool) -> set[str]:
        """The trace ids of ``rows`` that were new, once they are committed."""
        if shed:
            self.refuse_if_full()
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, future))
        metrics.WRITE_QUEUE.set(len(self._queue))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Write group after group; while one is written, answer the one before.

        Answering a group means feeding its rows to the term index first (a trace is findable when its
        producer hears it was accepted), which holds the GIL for every row. Done on the writer's thread,
        it would delay the next transaction by that much; done here, it overlaps SQLite's work on the
        next group, which needs no GIL. Groups are fed in commit order, so the index sees seqs in order.
        """
        written: tuple[_Group, Sequence[TraceRow], dict[tuple[str, str], int]] | None = None
        while self._queue or written is not None:
            writing: asyncio.Future[dict[tuple[str, str], int]] | None = None
            if self._queue:
                group, rows = self._take()
                metrics.WRITE_QUEUE.set(len(self._queue))
                metrics.COMMIT_ROWS.observe(len(rows))
                writing = asyncio.ensure_future(self.db.write(partial(append_keys, rows=rows)))
                started = time.perf_counter()
            if written is not None:
                self._answer(*written)
                written = None
            if writing is None:
                continue
            try:
                written = (group, rows, await writing)
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
            except Exception as exc:  # every waiting caller learns of the failure; nothing is half-done
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)

    def _take(self) -> tuple[_Group, list[TraceRow]]:
        taken, size = 0, 0
        while taken < len(self._queue) and (taken == 0 or size + len(self._queue[taken][0]) <= self.max_rows):
            size += len(self._queue[taken][0])
            taken += 1
        group, self._queue = self._queue[:taken], self._queue[taken:]
        return group, [row for batch, _ in group for row in batch]

    def _answer(self, group: _Group, rows: Sequence[TraceRow], inserted: dict[tuple[str, str], int]) -> None:
        index = self.db.term_index
        if index is not None:
            try:
                feed_index(index, rows, inserted)
            except Exception:  # the rows are durable: queries catch the index up from the log instead
                log.exception("feeding the term index failed; it will catch up from the log")
        for batch, future in group:
            # A retry racing its original in the same group: the first batch claims "accepted".
            mine = {r.trace_id for r in batch if inserted.pop((r.project_id, r.trace_id), None) is not None}
            if not future.done():
                future.set_result(mine)


class TraceWriter:
    def __init__(
        self,
        db: Database,
        signal: LogSignal,
        *,
        retention_ms: int,
        policy: PolicyLookup | None = None,
        max_pending: int = 64,
        pool: PreparePool | None = None,
    ) -> None:
        self.db = db
        self.signal = signal
        self.retention_ms = retention_ms
        self.policy = policy
        self.commits = GroupCommit(db, max_pending=max_pending)
        self.pool = pool or PreparePool(0)

    async def write(
        self, project_id: str, items: Sequence[Any], *, submitter: Submitter, shed: bool = True
    ) -> list[TraceResult]:
        """Validate, apply the project's tracker policy, append durably; one verdict per item.

        ``submitter`` is who hands these traces over (never anything the items say about themselves).
        """
        batch = prepare(
            items, project_id=project_id, now=now_ms(), retention_ms=self.retention_ms, submitter=submitter
        )
        return await self._write(project_id, batch, shed=shed)

    async def write_body(self, project_id: str, raw: bytes, *, submitter: Submitter) -> list[TraceResult]:
        """:meth:`write` for an ingest body as received: parsed and validated by the worker pool."""
        self.commits.refuse_if_full()  # no parsing for a batch that could not queue anyway
        batch = await self.pool.prepare(
            raw, project_id=project_id, now=now_ms(), retention_ms=self.retention_ms, submitter=submitter
        )
        return await self._write(project_id, batch, shed=True)

    async def write_prepared(self, project_id: str, batch: PreparedBatch) -> list[TraceResult]:
        """:meth:`write` for a batch the caller prepared (and checked) itself: the webhooks of
        ``opencts.sources`` refuse a whole batch when one of its events is malformed."""
        return await self._write(project_id, batch, shed=True)

    async def _write(self, project_id: str, batch: PreparedBatch, *, shed: bool) -> list[TraceResult]:
        if self.policy is not None and batch.rows:
            policy = await self.policy(project_id)
            if policy is not None:
                batch = batch.without(
                    lambda row: policy.refuse(
                        kind=row.kind,
                        service_type=row.service_type,
                        trace_name=row.trace_name,
                        tracker_name=row.tracker_name,
                    )
                )
        inserted: set[str] = set()
        if batch.rows:
            rows = batch.rows
            inserted = await self.commits.append(rows, shed=shed)
            if inserted:
                self.signal.notify()
        results = settle(batch, inserted)
        _count(results, len(inserted))
        return results


def _count(results: Sequence[TraceResult], accepted: int) -> None:
    """The batch's verdicts in the ingest metrics; rejections are classed only when there are any."""
    metrics.INGEST_BATCH.observe(len(results))
    metrics.INGEST_TRACES_BY("accepted").inc(accepted)
    if len(results) == accepted:
        return
    rejected = 0
    for result in results:
        if result.reason is not None:
            rejected += 1
            metrics.INGEST_REJECTIONS_BY(metrics.rejection_reason(result.reason)).inc()
    metrics.INGEST_TRACES_BY("rejected").inc(rejected)
    metrics.INGEST_TRACES_BY("duplicate").inc(len(results) - accepted - rejected)

"""Ingest batches parsed and validated in worker processes, beside the event loop.

The event loop's thread and the SQLite writer's thread share one GIL. Parsing and validating a large
batch holds it for long stretches, much of them in single C calls (``orjson.loads`` of the whole body)
that no switch interval interrupts. The writer lets go of the GIL for every SQLite step and every
commit, and each time it must win it back from the event loop: under load it would spend more time
waiting than writing. In a worker process the same work runs on another core under a GIL of its own,
and what comes back (plain tuples and verdicts) is cheap for the event loop to unpickle.

A batch of a few traces (self-audit, a probe) is cheaper to prepare in place than to send across, and a
pool that lost a worker (killed, out of memory) is replaced while that batch is prepared in place: a
producer never sees the pool's trouble. A new pool is tried at most every ``RESTART_SECONDS``, so a
machine that cannot start processes at all pays for it once in a while, not on every batch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from opencts.store.trace_log import TraceRow
from opencts.traces.ingest import PreparedBatch, Status, TraceResult, parse_batch, prepare
from opencts.traces.submitter import Submitter

log = logging.getLogger(__name__)

#: bodies smaller than this are prepared in the event loop: shipping them costs more than parsing them
IN_PLACE_BYTES = 64 * 1024
#: how long after a pool broke batches are prepared in place before a new pool is tried
RESTART_SECONDS = 10.0
#: how often a worker checks that the server that started it is still there
PARENT_CHECK_SECONDS = 1.0
#: what crosses back from a worker: rows and verdicts as plain tuples (a NamedTuple unpickles through
#: Python code, and a slotted dataclass pickles and unpickles through it, both ways)
Shipped = tuple[list[tuple[Any, ...]], list[tuple[int, str | None, Status, str | None]], list[int]]


def default_workers() -> int:
    """One per core but the one the event loop and the writer share, at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def prepare_body(
    raw: bytes, *, project_id: str, now: int, retention_ms: int, submitter: Submitter | None = None
) -> PreparedBatch:
    """Parse an ingest body and prepare its traces; raises the 4xx errors of :func:`parse_batch`."""
    return prepare(
        parse_batch(raw), project_id=project_id, now=now, retention_ms=retention_ms, submitter=submitter
    )


def _prepare_shipped(
    raw: bytes, project_id: str, now: int, retention_ms: int, submitter: Submitter | None
) -> Shipped:
    batch = prepare_body(raw, project_id=project_id, now=now, retention_ms=retention_ms, submitter=submitter)
    verdicts = [(r.index, r.trace_id, r.status, r.reason) for r in batch.results]
    return [tuple(row) for row in batch.rows], verdicts, batch.row_results


def _worker_started(server: int) -> None:
    # Ctrl-C reaches the whole process group: the server shuts its workers down itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A batch allocates some 100,000 objects that live until it is shipped: collect as the server does
    # (see ``opencts serve``), not every 700 allocations, which walked them over and over.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # the server's pid comes from the server: a worker still importing when the server died would read
    # its adoptive parent here
    threading.Thread(target=_exit_with, args=(server,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once the server that started it is gone.

    A server killed outright (kill -9, the OOM killer) never shuts its pool down, and its workers would
    wait on their queue for ever, each holding its memory: once the parent is gone, a process is adopted
    by another, so its parent id changes.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ready() -> bool:
    return True


class PreparePool:
    """Worker processes that turn ingest bodies into rows and verdicts (``workers=0``: in place)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._retry_at = 0.0

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the server has threads (writer, readers, checkpointer) and open databases
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
                initargs=(os.getpid(),),
            )
        return self._executor

    def start(self) -> list[Future[bool]]:
        """Start the workers now (an import of pydantic and the models takes a second), not at the first
        large batch; returns futures that finish once each has started."""
        if self.workers == 0:
            return []
        pool = self._pool()
        return [pool.submit(_ready) for _ in range(self.workers)]

    async def prepare(
        self, raw: bytes, *, project_id: str, now: int, retention_ms: int, submitter: Submitter | None = None
    ) -> PreparedBatch:
        if (
            self.workers == 0
            or len(raw) < IN_PLACE_BYTES
            or self._closed  # a request that arrived while the server shuts down
            or time.monotonic() < self._retry_at
        ):
            return prepare_body(
                raw, project_id=project_id, now=now, retention_ms=retention_ms, submitter=submitter
            )
        loop = asyncio.get_running_loop()
        pool = self._pool()
        try:
            tuples, verdicts, row_results = await loop.run_in_executor(
                pool, _prepare_shipped, raw, project_id, now, retention_ms, submitter
            )
        except BrokenProcessPool:
            if self._executor is pool:  # the first batch to hear of it replaces the pool, once
                log.warning("an ingest worker process died; new ones start in %.0f s", RESTART_SECONDS)
                self._executor = None
                self._retry_at = time.monotonic() + RESTART_SECONDS
                pool.shutdown(wait=False)
            return prepare_body(
                raw, project_id=project_id, now=now, retention_ms=retention_ms, submitter=submitter
            )
        new = tuple.__new__
        results = [TraceResult(*verdict) for verdict in verdicts]
        return PreparedBatch([new(TraceRow, values) for values in tuples], results, row_results)

    def close(self) -> None:
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

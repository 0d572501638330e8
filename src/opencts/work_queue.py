"""``QueueWorker``: the loop shared by the durable queues (SMN's outbox, function invocations).

A queue is a table of rows that are due at ``next_attempt_at``; a claimed row carries a lease that ends at
``next_attempt_at``, so a row whose worker died is due again. One round of the loop is one write
transaction (:meth:`QueueWorker.exchange`) that records the results finished since the last round, claims
due rows for the free slots, and says when the next row falls due, so a busy queue costs one write per
round and not one per row. Each claimed row runs as its own task (:meth:`QueueWorker.attempt`); its
result waits for the next round. ``wake()`` after a commit that queued something starts the first attempt
at once instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Connection

from opencts.clock import HOUR_MS, now_ms
from opencts.store import Database

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")

#: rows pruned in one round: a backlog goes over several rounds, never in one long write
PRUNE_BATCH = 1000


class QueueWorker(ABC, Generic[J, R]):
    """Claims due rows, runs up to ``concurrency`` at once, records results; one per queue and process."""

    #: named in logs and task names
    name = "queue"

    def __init__(
        self, db: Database, *, concurrency: int, poll_seconds: float = 1.0, clock: Callable[[], int] = now_ms
    ) -> None:
        self.db = db
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._results: list[R] = []
        self._next_due: int | None = None
        self._prune_at = 0

    @abstractmethod
    def record(self, conn: Connection, results: list[R], *, now: int) -> None:
        """Write finished attempts, each only under the claim it ran with."""

    @abstractmethod
    def claim(self, conn: Connection, *, now: int, limit: int) -> list[J]:
        """Lease up to ``limit`` due rows."""

    @abstractmethod
    def next_due(self, conn: Connection) -> int | None:
        """When the earliest queued row falls due (or its lease ends)."""

    @abstractmethod
    async def attempt(self, job: J) -> R | None:
        """Run one claimed row; None records nothing (the lease brings it back)."""

    def prune(self, conn: Connection, *, now: int) -> int:
        """Delete up to :data:`PRUNE_BATCH` finished rows old enough to go; about once an hour."""
        return 0

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def step(self) -> int:
        """Record finished attempts, claim due rows for the free slots and start them; returns how many."""
        results, self._results = self._results, []
        free = self.concurrency - len(self._inflight)
        now = self.clock()
        pruning = now >= self._prune_at

        def exchange(conn: Connection) -> tuple[list[J], int | None, int]:
            self.record(conn, results, now=now)
            jobs = self.claim(conn, now=now, limit=free) if free > 0 else []
            pruned = self.prune(conn, now=now) if pruning else 0
            return jobs, self.next_due(conn), pruned

        try:
            jobs, self._next_due, pruned = await self.db.write(exchange)
        except BaseException:
            self._results[:0] = results  # not recorded: keep them for the next round
            raise
        if pruning:  # a full batch means there is more: the next round goes on with it
            self._prune_at = now if pruned == PRUNE_BATCH else now + HOUR_MS
        for job in jobs:
            task = asyncio.create_task(self._run(job), name=f"{self.name}-attempt")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(jobs)

    async def _run(self, job: J) -> None:
        try:
            result = await self.attempt(job)
        except asyncio.CancelledError:
            raise  # shutting down: the lease brings the row back
        if result is not None:
            self._results.append(result)
        self._wake.set()

    def _more_due(self) -> bool:
        return self._next_due is not None and self._next_due <= self.clock()

    async def drain(self, timeout: float = 60.0) -> None:
        """Run everything due now (not retries scheduled later) and record it; for tests and the CLI."""
        async with asyncio.timeout(timeout):
            while True:
                claimed = await self.step()
                if self._inflight:
                    await asyncio.wait(set(self._inflight))
                    continue
                if not claimed and not self._results and not self._more_due():
                    return

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a database hiccup must not end the queue; its rows wait in the table
                log.exception("%s round failed; retrying in %.1fs", self.name, self.poll_seconds)
                await asyncio.sleep(self.poll_seconds)
                continue
            free = len(self._inflight) < self.concurrency
            if self._results or (free and self._more_due()):
                if not claimed and not self._results:
                    await asyncio.sleep(0.05)  # due rows held by another node: do not spin
                continue
            wait = self.poll_seconds
            if self._next_due is not None and free:
                wait = min(wait, max(0.0, (self._next_due - self.clock()) / 1000))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def close(self, grace: float = 5.0) -> None:
        """Let attempts in flight finish (up to ``grace`` seconds) and record them; leases cover the rest."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
            for task in self._inflight:
                task.cancel()
        if self._results:
            results, self._results = self._results, []
            now = self.clock()
            await self.db.write(lambda conn: self.record(conn, results, now=now))

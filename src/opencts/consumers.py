"""The one mechanism by which anything reacts to the trace log.

A consumer reads the log after its stored cursor, handles a batch, and the runner commits the new cursor.
Effects happen before the cursor moves, so a crash means a batch is seen again (at-least-once), never
skipped; consumers make their effects idempotent (by trace_id) where a repeat would matter.

A consumer may stop part-way through a batch by returning the last sequence number it finished (retention
does this when it reaches traces that have not expired yet); the runner then waits before looking again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from sqlalchemy import Connection, select, update

from opencts.clock import now_ms
from opencts.store import Database, trace_log
from opencts.store.tables import consumer_cursors
from opencts.store.upsert import insert_ignore

log = logging.getLogger(__name__)


class Consumer(Protocol):
    name: str
    batch_size: int
    #: wake as soon as traces are appended (alarms), or only every ``poll_seconds`` (housekeeping)
    wake_on_append: bool
    with_body: bool
    poll_seconds: float

    async def process(self, rows: list[Any]) -> int | None:
        """Handle rows (in seq order); return the last seq finished, or None when all were."""
        ...


class LogSignal:
    """Tells waiting consumers that the log grew. Losing a notification only delays them to their poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
        self._event.clear()


def get_cursor(conn: Connection, name: str) -> int:
    value = conn.execute(select(consumer_cursors.c.position).where(consumer_cursors.c.name == name)).scalar()
    return int(value) if value is not None else 0


def set_cursor(conn: Connection, name: str, position: int) -> None:
    """Move the cursor forward only: a slow duplicate runner can never rewind it."""
    now = now_ms()
    insert_ignore(
        conn, consumer_cursors, {"name": name, "position": position, "updated_at": now}, key=["name"]
    )
    conn.execute(
        update(consumer_cursors)
        .where(consumer_cursors.c.name == name, consumer_cursors.c.position < position)
        .values(position=position, updated_at=now)
    )


class ConsumerRunner:
    def __init__(self, db: Database, consumer: Consumer, signal: LogSignal | None = None) -> None:
        self.db = db
        self.consumer = consumer
        self.signal = signal if consumer.wake_on_append else None
        self.position: int | None = None
        #: when a step last completed (monotonic): the heartbeat readiness checks (``api.ready``)
        self.beat = time.monotonic()
        #: steps completed by ``run_forever`` (a probe can tell the first step from the start)
        self.steps = 0

    def stuck(self, intervals: int) -> bool:
        """No step completed in ``intervals`` poll intervals (each counted as at least a second)."""
        return time.monotonic() - self.beat > intervals * max(self.consumer.poll_seconds, 1.0)

    async def step(self) -> tuple[int, bool]:
        """One batch: returns (rows finished, whether the consumer wants to be called again at once)."""
        c = self.consumer
        if self.position is None:
            self.position = await self.db.read(lambda conn: get_cursor(conn, c.name))
        position = self.position
        rows = await self.db.read(
            lambda conn: trace_log.read_after(conn, position, c.batch_size, with_body=c.with_body)
        )
        if not rows:
            return 0, False
        done = await c.process(rows)
        new = rows[-1].seq if done is None else done
        # Row attributes are slow (a failed lookup first): count only when a consumer stopped early,
        # which is rare (retention waiting for traces to expire).
        finished = len(rows) if done is None else sum(1 for r in rows if r.seq <= new)
        if new > position:
            await self.db.write(lambda conn: set_cursor(conn, c.name, new))
            self.position = new
        return finished, new == rows[-1].seq and len(rows) == c.batch_size

    async def drain(self) -> int:
        """Run until caught up (or until the consumer holds back); for tests and the CLI."""
        total = 0
        while True:
            finished, more = await self.step()
            total += finished
            if not more:
                return total

    async def run_forever(self) -> None:
        c = self.consumer
        while True:
            try:
                _, more = await self.step()
                self.beat = time.monotonic()
                self.steps += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                # A consumer must survive a bad batch or a database hiccup; it retries after its poll.
                log.exception("consumer %s failed; retrying in %.1fs", c.name, c.poll_seconds)
                more = False
            if more:
                continue
            if self.signal is not None:
                await self.signal.wait(c.poll_seconds)
            else:
                await asyncio.sleep(c.poll_seconds)

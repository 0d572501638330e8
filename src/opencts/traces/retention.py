"""Retention, the first consumer of the log: it deletes traces older than the retention window.

The log is in record order, so expired traces are always a prefix of what the cursor has not passed yet;
deleting by sequence range is cheap and needs no index on time. ``hold`` (the transfer's
``planner.retention_hold``) keeps traces that are not in a written trace file yet; ``gate``
(:class:`~opencts.traces.retention_hold.ArchiveHold`, what the service runs) also keeps those no digest
covers yet, but only until they are ``max_hold_ms`` past their retention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection

from opencts.clock import now_ms
from opencts.store import Database, trace_log


class Gate(Protocol):
    """Decides, in a write transaction, the last seq retention may delete (None: no limit)."""

    @property
    def max_hold_ms(self) -> int: ...

    def limit(self, conn: Connection, overdue: int) -> int | None:
        """``overdue``: the last seq past its retention by more than ``max_hold_ms`` (deleted anyway)."""
        ...


class RetentionConsumer:
    name = "retention"
    batch_size = 10_000
    wake_on_append = False
    with_body = False

    def __init__(
        self,
        db: Database,
        *,
        retention_ms: int,
        poll_seconds: float = 60.0,
        clock: Callable[[], int] = now_ms,
        hold: Callable[[Connection], int | None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.db = db
        self.hold = hold
        self.gate = gate
        self.retention_ms = retention_ms
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.deleted = 0

    async def process(self, rows: list[Any]) -> int | None:
        cutoff = self.clock() - self.retention_ms
        first = rows[0].seq
        last_expired = first - 1
        for row in rows:
            if row.record_time >= cutoff:
                break
            last_expired = row.seq
        # The newest row always stays: SQLite gives a new row the largest seq plus one, so an emptied log
        # would start again at 1, below every consumer's cursor, and new traces would never be consumed.
        # The cursor stops before it, so it goes once a newer row exists.
        if last_expired >= first:
            last_expired = min(last_expired, await self.db.read(trace_log.last_seq) - 1)
        if last_expired >= first and self.hold is not None:
            held = await self.db.read(self.hold)
            if held is not None:
                last_expired = min(last_expired, held)
        if last_expired >= first and self.gate is not None:
            last_expired = await self._gated(self.gate, rows, cutoff, last_expired)
        if last_expired >= first:
            self.deleted += await self.db.write(
                lambda conn: trace_log.delete_through(conn, first - 1, last_expired)
            )
        return None if last_expired == rows[-1].seq else last_expired

    async def _gated(self, gate: Gate, rows: list[Any], cutoff: int, last_expired: int) -> int:
        """``last_expired`` as far as the gate lets it go: to its limit, or through the rows past their
        retention by more than the gate's hold, which go whatever the gate holds."""
        overdue = rows[0].seq - 1
        for row in rows:
            if row.record_time >= cutoff - gate.max_hold_ms:
                break
            overdue = row.seq
        through = min(overdue, last_expired)
        limit = await self.db.write(lambda conn: gate.limit(conn, through))
        return last_expired if limit is None else min(last_expired, limit)

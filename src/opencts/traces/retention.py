"""Retention, the first consumer of the log: it deletes traces older than the retention window.

The log is in record order, so expired traces are always a prefix of what the cursor has not passed yet;
deleting by sequence range is cheap and needs no index on time. ``hold`` (the transfer's
``planner.retention_hold``) keeps traces that are not in a written trace file yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from opencts.clock import now_ms
from opencts.store import Database, trace_log


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
    ) -> None:
        self.db = db
        self.hold = hold
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
        if last_expired >= first:
            self.deleted += await self.db.write(
                lambda conn: trace_log.delete_through(conn, first - 1, last_expired)
            )
        return None if last_expired == rows[-1].seq else last_expired

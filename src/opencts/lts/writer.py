"""The ``lts`` consumer: every trace of a tracker with LTS enabled becomes one record of its stream.

A consumer of the trace log like any other (``opencts.consumers``), with its own cursor ``lts``. Each
batch is read, routed to streams and inserted in one transaction before the cursor moves; the records
are unique per (stream, trace id), so a batch seen again (a crash before the cursor moved, or a second
node on the same PostgreSQL reading the same range) inserts nothing twice. Records are inserted in log
order, so a stream's line numbers follow the order in which its tracker recorded the traces.

The runner hands over only seqs (``with_body`` off): bodies are read here, and only for the projects
that have a stream, so a deployment without LTS pays one small query of the trackers per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, func, select

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.consumers import get_cursor
from opencts.lts import streams
from opencts.store import Database
from opencts.store.tables import consumer_cursors, lts_records, lts_sinks, traces
from opencts.store.upsert import insert_ignore_many

log = logging.getLogger(__name__)

CURSOR = "lts"
#: the cursors of LTS triggers (``functions.lts_triggers.cursor_name``), which retention waits for
TRIGGER_CURSORS = "lts-trigger:"
#: how often records older than the group's ``ttl_in_days`` are deleted
PRUNE_SECONDS = 600.0


#: the columns :func:`records` gives values of, in order
COLUMNS = ("stream_id", "project_id", "trace_id", "time", "record_time", "content")
Record = tuple[str, str, str, int, int, str]


def records(conn: Connection, first: int, last: int, *, now: int) -> list[Record]:
    """The records of log range [first, last], in log order, for the streams that take traces now.

    ``now`` is their ``record_time``: when LTS received them, which its retention counts from.
    """
    found = streams.routes(conn)
    if not found.streams:
        return []
    t = traces.c
    rows = conn.execute(
        select(t.project_id, t.kind, t.tracker_name, t.trace_id, t.time, t.body)
        .where(t.seq >= first, t.seq <= last, t.project_id.in_(sorted(found.projects)))
        .order_by(t.seq)
    ).all()
    out: list[Record] = []
    stream_of = found.stream_of
    for project_id, kind, tracker, trace_id, at, body in rows:
        sid = stream_of(project_id, kind, tracker)
        if sid is not None:
            out.append((sid, project_id, trace_id, at, now, bytes(body).decode("utf-8", "replace")))
    return out


def insert(conn: Connection, found: list[Record]) -> None:
    """Insert records whose (stream, trace id) is new; the others are there already (a replay)."""
    insert_ignore_many(conn, lts_records, COLUMNS, found, key=["stream_id", "trace_id"])


def write_range(conn: Connection, first: int, last: int, *, now: int) -> int:
    """Copy log range [first, last] to the streams in one transaction; returns the records offered."""
    found = records(conn, first, last, now=now)
    insert(conn, found)
    return len(found)


def readers_position(conn: Connection) -> int | None:
    """The last record id that every reader of the streams has done (None: no reader).

    Sinks (``lts_sinks.position``) and LTS triggers (``lts-trigger:*`` cursors) read the records after
    them; a record they have not read yet must outlive its time, or a receiver's outage longer than the
    group's ``ttl_in_days`` would lose it. Record ids rise across streams, so one lowest position is a
    safe, if broad, bound for all of them.
    """
    sinks = conn.execute(select(func.min(lts_sinks.c.position))).scalar()
    triggers = conn.execute(
        select(func.min(consumer_cursors.c.position)).where(
            consumer_cursors.c.name.like(f"{TRIGGER_CURSORS}%")
        )
    ).scalar()
    held = [int(p) for p in (sinks, triggers) if p is not None]
    return min(held) if held else None


def prune(
    conn: Connection,
    *,
    now: int,
    ttl_days: int = streams.GROUP_TTL_DAYS,
    max_hold_hours: int = 72,
    batch: int = 10_000,
) -> int:
    """Delete the records written more than ``ttl_days`` ago (LTS keeps a group's records that long),
    except those a sink or trigger has not read yet, which stay up to ``max_hold_hours`` longer.

    Records are written in log order, so the expired ones are the first line numbers: the walk goes up
    the primary key from the oldest and stops at the first record still kept. The trace's own ``time``
    plays no part (an imported trace from last year is kept as long as any other).
    """
    cutoff = now - ttl_days * DAY_MS
    hard_cutoff = cutoff - max_hold_hours * HOUR_MS
    read_through = readers_position(conn)
    r = lts_records.c
    deleted = 0
    while True:
        oldest = conn.execute(select(r.id, r.record_time).order_by(r.id).limit(batch)).all()
        through = None
        for record_id, written in oldest:
            if written >= cutoff:
                break
            if read_through is not None and record_id > read_through and written >= hard_cutoff:
                break  # unread by a sink or trigger, and still within the hold
            through = record_id
        if through is None:
            return deleted
        if read_through is not None and through > read_through:
            log.warning(
                "LTS retention: records up to %d deleted unread by a sink or trigger (held %d h past their"
                " time; see each sink's lag)",
                through,
                max_hold_hours,
            )
        deleted += conn.execute(delete(lts_records).where(r.id <= through)).rowcount or 0
        if through != oldest[-1].id:
            return deleted


def retention_hold(conn: Connection) -> int | None:
    """The last seq retention may delete while any tracker feeds a stream (None: no limit): traces the
    ``lts`` consumer has not copied yet stay, so a consumer held up (a database error, a long outage of
    this node) loses nothing to retention."""
    if not streams.routes(conn).streams:
        return None
    return get_cursor(conn, CURSOR)


def holding(other: Callable[[Connection], int | None]) -> Callable[[Connection], int | None]:
    """Retention's hold: the lower of ``other``'s (the archive's) and :func:`retention_hold`."""

    def hold(conn: Connection) -> int | None:
        limits = [h for h in (other(conn), retention_hold(conn)) if h is not None]
        return min(limits) if limits else None

    return hold


class LtsConsumer:
    """Routes the log into LTS streams (see the module docstring)."""

    name = CURSOR
    batch_size = 10_000
    #: not woken by every append: each batch is a write transaction (an fsync on SQLite) beside ingest's
    #: own, so it looks twice a second and takes what came meanwhile in one; a record is at most about
    #: half a second behind its trace
    wake_on_append = False
    with_body = False
    poll_seconds = 0.5

    def __init__(
        self, db: Database, *, max_hold_hours: int = 72, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.max_hold_hours = max_hold_hours
        self._clock = clock
        self._pruned_at: float | None = None

    async def process(self, rows: list[Any]) -> int | None:
        first, last, now = rows[0].seq, rows[-1].seq, now_ms()
        # read beside the writers (WAL), so only the insert takes SQLite's one writer lane
        found = await self.db.read(lambda conn: records(conn, first, last, now=now))
        if found:
            await self.db.write(lambda conn: insert(conn, found))
        moment = self._clock()
        if self._pruned_at is None or moment - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = moment
            await self.db.write(lambda conn: prune(conn, now=now, max_hold_hours=self.max_hold_hours))
        return None

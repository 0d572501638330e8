"""Retention gated on the archive: traces a tracker's archive has not taken yet are not deleted, for a while.

A trace the archive still needs is one the transfer has not planned yet (behind the ``transfer`` cursor),
one in a file planned but not written, or, for a tracker with ``is_support_validate``, one in a written file
that no written digest covers yet (the digest is what proves the file; deleting its traces before it is
written would leave an hour the database can no longer vouch for). Retention stops before the first such
trace.

Not forever: a bucket gone for good or a key disabled and forgotten would otherwise keep every trace in
the database. Once a trace is past its retention by more than ``OPENCTS_ARCHIVE_MAX_HOLD_HOURS`` (72 by
default), retention deletes it anyway, and each tracker whose archive still needed it gets a
``retention_state`` row: ListTrackers shows it ``status: error``, ``detail: archiveHoldExpired``, until its
archive is past the deleted range (the row keeps the range and the time, for the operator).

One write transaction per retention pass decides the limit and records the expiry, so two nodes agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update

from opencts.archive import planner
from opencts.archive.digest_rows import WRITTEN, active_chains
from opencts.archive.files import PLANNED
from opencts.clock import HOUR_MS, now_ms
from opencts.store.tables import digests, retention_state, trace_files
from opencts.store.upsert import insert_ignore

#: the ``detail`` ListTrackers shows for a tracker whose archive lost traces to retention
HOLD_EXPIRED = "archiveHoldExpired"


def needed(conn: Connection) -> dict[str, int]:
    """tracker id -> the first seq its archive still needs (files planned and unwritten, written files no
    written digest covers yet); trackers that need nothing but the unplanned log are left out."""
    f = trace_files.c
    out: dict[str, int] = {}
    rows = conn.execute(
        select(f.tracker_id, func.min(f.first_seq)).where(f.status == PLANNED).group_by(f.tracker_id)
    )
    for tracker_id, first in rows:
        out[tracker_id] = int(first)
    d = digests.c
    for chain in active_chains(conn):
        last = conn.execute(
            select(func.max(d.hour_ms)).where(
                d.tracker_id == chain.tracker_id, d.chain_start == chain.start_ms, d.status == WRITTEN
            )
        ).scalar()
        since = chain.start_ms if last is None else int(last) + HOUR_MS
        first = conn.execute(
            select(func.min(f.first_seq)).where(f.tracker_id == chain.tracker_id, f.stamp_ms >= since)
        ).scalar()
        if first is not None:
            out[chain.tracker_id] = min(out.get(chain.tracker_id, int(first)), int(first))
    return out


@dataclass
class ArchiveHold:
    """What :class:`~opencts.traces.retention.RetentionConsumer` asks before it deletes (its ``gate``)."""

    max_hold_ms: int
    clock: Callable[[], int] = now_ms

    @classmethod
    def hours(cls, hours: int) -> ArchiveHold:
        return cls(max_hold_ms=hours * HOUR_MS)

    def limit(self, conn: Connection, overdue: int) -> int | None:
        """The last seq retention may delete now (None: no limit), in a write transaction.

        ``overdue`` is the last seq past its retention by more than the hold: up to there retention
        goes on whatever the archive needs, and the trackers that needed it are recorded.
        """
        targets = planner.targets(conn)
        if not targets:
            return None
        unplanned = planner.cursor(conn) + 1
        needs = needed(conn)
        first_needed = {t.tracker_id: min(needs.get(t.tracker_id, unplanned), unplanned) for t in targets}
        held = min(first_needed.values()) - 1
        now = self.clock()
        for tracker_id, first in first_needed.items():
            if first <= overdue:
                self._record(conn, tracker_id, first, overdue, now)
        self._clear(conn, first_needed, now)
        return max(held, overdue)

    def _record(self, conn: Connection, tracker_id: str, first: int, through: int, now: int) -> None:
        values = {"expired_from": first, "expired_through": through, "expired_at": now, "cleared_at": None}
        if not insert_ignore(conn, retention_state, {"tracker_id": tracker_id, **values}, key=["tracker_id"]):
            s = retention_state.c
            current = conn.execute(
                select(s.expired_from, s.cleared_at).where(s.tracker_id == tracker_id)
            ).one()
            if current.cleared_at is None:  # the same loss goes on: keep where it began
                values["expired_from"] = min(int(current.expired_from), first)
            conn.execute(update(retention_state).where(s.tracker_id == tracker_id).values(**values))

    def _clear(self, conn: Connection, first_needed: dict[str, int], now: int) -> None:
        s = retention_state.c
        open_rows = conn.execute(select(s.tracker_id, s.expired_through).where(s.cleared_at.is_(None)))
        for tracker_id, through in open_rows.all():
            first = first_needed.get(tracker_id)
            if first is None or first > through:  # no archive any more, or past the deleted range
                conn.execute(update(retention_state).where(s.tracker_id == tracker_id).values(cleared_at=now))


def expired(conn: Connection, tracker_ids: list[str]) -> dict[str, str]:
    """The trackers among ``tracker_ids`` whose archive is still behind traces retention deleted."""
    s = retention_state.c
    rows = conn.execute(
        select(s.tracker_id).where(s.tracker_id.in_(tracker_ids), s.cleared_at.is_(None))
    ).scalars()
    return dict.fromkeys(rows, HOLD_EXPIRED)

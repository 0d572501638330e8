"""Where each tracker's transfer stands: how far behind the log head it is, what it wrote, what failed.

Nothing here is stored: every figure is read from the tables the transfer, the ledger and the digests keep
(``trace_files``, ``transfer_state``, the ``transfer`` cursor, ``ledger_trees``/``ledger_checkpoints``,
``digests``, ``retention_state``), so the status cannot drift from what happened. The definitions an
operator alarms on:

- ``transferred_seq``: every trace of the tracker with a seq up to it is in a written file (the planner's
  cursor, or just before the first file still waiting to be written).
- ``lag_traces``: the tracker's traces not in a written file yet: those in planned files plus those the
  planner has not reached.
- ``lag_seconds``: how long the oldest of those has waited (now minus its ``record_time``); 0 when none.
- ``head_lag_seconds``: how far behind the log head the transfer is in time: the head's ``record_time``
  minus the oldest waiting trace's; 0 when none waits (it stays put while no trace arrives, where
  ``lag_seconds`` grows).

The figures are read per tracker with a seq range scan of the log after the cursor (the part not planned
yet) and the tracker's file rows; the cost follows the backlog and the number of files, not the log's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from opencts.archive import files, planner
from opencts.archive.files import PLANNED, WRITTEN
from opencts.clock import DAY_MS
from opencts.ledger import repository as ledger
from opencts.store.tables import digests, retention_state, trace_files, traces, transfer_state


@dataclass(frozen=True, slots=True)
class DigestHead:
    """The newest digest of the tracker's chain: the head a verifier walks back from."""

    hour_ms: int
    object_key: str
    sha256: str
    status: str
    tree_size: int | None
    digest_end: bool
    chain_start_ms: int


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    """The project's Merkle tree and its newest signed checkpoint."""

    tree_size: int
    last_seq: int
    checkpoint_size: int | None
    checkpoint_time_ms: int | None
    checkpoint_root: str | None


@dataclass(frozen=True, slots=True)
class RetentionLoss:
    """Traces retention deleted before this tracker's archive took them, its hold having run out
    (``traces.retention_hold``): the seq range, when, and when the archive got past it (None: not yet)."""

    from_seq: int
    through_seq: int
    at_ms: int
    cleared_at_ms: int | None


@dataclass(frozen=True, slots=True)
class TrackerStatus:
    tracker_name: str
    tracker_type: str
    bucket_name: str
    #: ``error`` while the target fails (``detail``/``message`` say how, since ``error_since``), else ``ok``
    status: str
    detail: str | None
    message: str | None
    error_since_ms: int | None
    last_success_ms: int | None
    transferred_seq: int
    #: when the newest file was written
    transferred_time_ms: int | None
    head_seq: int
    head_time_ms: int | None
    lag_traces: int
    lag_seconds: float
    head_lag_seconds: float
    pending_files: int
    files_written: int
    traces_written: int
    bytes_written: int
    ledger: LedgerStatus
    digest_head: DigestHead | None
    retention_loss: RetentionLoss | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _log_filter(target: planner.Target) -> list[Any]:
    t = traces.c
    conds = [t.project_id == target.project_id, t.kind == target.kind]
    if target.kind == "data":
        conds.append(t.tracker_name == target.name)
    return conds


def _unplanned(conn: Connection, target: planner.Target, cursor: int) -> tuple[int, int | None, int | None]:
    """Count, first and last seq of the tracker's traces the planner has not reached: a range scan from the
    cursor. SQLite is told so (``NOT INDEXED``): it would take the (project, kind, time) index and read the
    project's whole log."""
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT count(*), min(seq), max(seq) FROM traces NOT INDEXED"
            " WHERE seq > ? AND project_id = ? AND kind = ?"
        )
        params: list[object] = [cursor, target.project_id, target.kind]
        if target.kind == "data":
            sql += " AND tracker_name = ?"
            params.append(target.name)
        row = conn.exec_driver_sql(sql, tuple(params)).one()
    else:
        t = traces.c
        row = conn.execute(
            select(func.count(), func.min(t.seq), func.max(t.seq)).where(t.seq > cursor, *_log_filter(target))
        ).one()
    return int(row[0]), row[1], row[2]


def _record_time(conn: Connection, seq: int | None) -> int | None:
    if seq is None:
        return None
    value = conn.execute(select(traces.c.record_time).where(traces.c.seq == seq)).scalar()
    return int(value) if value is not None else None


def _ledger(conn: Connection, project_id: str) -> LedgerStatus:
    tree = ledger.tree(conn, project_id)
    point = ledger.latest_checkpoint(conn, project_id)
    return LedgerStatus(
        tree_size=tree.size,
        last_seq=tree.last_seq,
        checkpoint_size=point.size if point else None,
        checkpoint_time_ms=point.time_ms if point else None,
        checkpoint_root=point.root.hex() if point else None,
    )


def _digest_head(conn: Connection, tracker_id: str) -> DigestHead | None:
    d = digests.c
    row = conn.execute(
        select(d.hour_ms, d.object_key, d.sha256, d.status, d.tree_size, d.digest_end, d.chain_start)
        .where(d.tracker_id == tracker_id)
        .order_by(d.hour_ms.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return DigestHead(
        hour_ms=int(row.hour_ms),
        object_key=row.object_key,
        sha256=row.sha256,
        status=row.status,
        tree_size=int(row.tree_size) if row.tree_size is not None else None,
        digest_end=bool(row.digest_end),
        chain_start_ms=int(row.chain_start),
    )


def _status(conn: Connection, target: planner.Target, cursor: int, now: int) -> TrackerStatus:
    f = trace_files.c
    mine = f.tracker_id == target.tracker_id
    written = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(f.trace_count), 0),
            func.coalesce(func.sum(f.size), 0),
            func.max(f.written_at),
        ).where(mine, f.status == WRITTEN)
    ).one()
    pending = conn.execute(
        select(func.count(), func.coalesce(func.sum(f.trace_count), 0), func.min(f.first_seq)).where(
            mine, f.status == PLANNED
        )
    ).one()
    unplanned = _unplanned(conn, target, cursor)
    # every trace of the tracker up to the cursor is in one of its files: the head is past the cursor or
    # the end of its newest file
    head = unplanned[2]
    if head is None:
        head = conn.execute(select(func.max(f.last_seq)).where(mine)).scalar()
    first_pending = pending[2] if pending[2] is not None else unplanned[1]
    oldest = _record_time(conn, int(first_pending) if first_pending is not None else None)
    head_time = _record_time(conn, int(head) if head is not None else None)
    state = conn.execute(
        select(transfer_state).where(transfer_state.c.tracker_id == target.tracker_id)
    ).first()
    failing = state is not None and state.detail is not None
    return TrackerStatus(
        tracker_name=target.name,
        tracker_type=target.kind,
        bucket_name=target.bucket,
        status="error" if failing else "ok",
        detail=state.detail if state is not None else None,
        message=state.message if failing and state is not None else None,
        error_since_ms=state.error_since if state is not None else None,
        last_success_ms=state.last_success if state is not None else None,
        transferred_seq=min(cursor, int(pending[2]) - 1) if pending[2] is not None else cursor,
        transferred_time_ms=int(written[3]) if written[3] is not None else None,
        head_seq=int(head) if head is not None else 0,
        head_time_ms=head_time,
        lag_traces=int(pending[1]) + int(unplanned[0]),
        lag_seconds=max(0.0, (now - oldest) / 1000) if oldest is not None else 0.0,
        head_lag_seconds=max(0.0, (head_time - oldest) / 1000) if oldest is not None and head_time else 0.0,
        pending_files=int(pending[0]),
        files_written=int(written[0]),
        traces_written=int(written[1]),
        bytes_written=int(written[2]),
        ledger=_ledger(conn, target.project_id),
        digest_head=_digest_head(conn, target.tracker_id),
        retention_loss=_retention_loss(conn, target.tracker_id),
    )


def _retention_loss(conn: Connection, tracker_id: str) -> RetentionLoss | None:
    r = conn.execute(select(retention_state).where(retention_state.c.tracker_id == tracker_id)).first()
    if r is None:
        return None
    return RetentionLoss(int(r.expired_from), int(r.expired_through), int(r.expired_at), r.cleared_at)


def tracker_statuses(
    conn: Connection, project_id: str, *, now: int, tracker_name: str | None = None
) -> list[TrackerStatus]:
    """The transfer status of the project's trackers with a bucket (or of the one named), by name."""
    found = [
        t
        for t in planner.targets(conn)
        if t.project_id == project_id and (tracker_name is None or t.name == tracker_name)
    ]
    cursor = planner.cursor(conn)
    return [_status(conn, t, cursor, now) for t in sorted(found, key=lambda t: t.name)]


def written_files(
    conn: Connection,
    project_id: str,
    tracker_name: str,
    *,
    day_ms: int | None = None,
    after_key: str | None = None,
    limit: int = 1000,
) -> list[files.FileRecord] | None:
    """The tracker's written files in key order (those of the UTC day starting at ``day_ms``, by the day
    in their key), after ``after_key``; None when the project has no tracker of that name with a bucket."""
    target = next(
        (t for t in planner.targets(conn) if t.project_id == project_id and t.name == tracker_name), None
    )
    if target is None:
        return None
    start, end = (day_ms, day_ms + DAY_MS) if day_ms is not None else (0, 2**62)
    return files.written_files(conn, target.tracker_id, start, end, after_key=after_key, limit=limit)


__all__ = ["DigestHead", "LedgerStatus", "TrackerStatus", "tracker_statuses", "written_files"]

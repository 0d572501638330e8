"""Each tracker's transfer health: the failure ListTrackers shows (``status: error``, ``detail``).

Kept apart from the tracker row: the tracker's stored status is the user's (enabled/disabled), this is the
transfer's. A failure is recorded with the time it started; the first success clears it.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from opencts.store.tables import transfer_state
from opencts.store.upsert import insert_ignore


def _ensure(conn: Connection, tracker_id: str, now: int) -> None:
    insert_ignore(conn, transfer_state, {"tracker_id": tracker_id, "updated_at": now}, key=["tracker_id"])


def failed(conn: Connection, tracker_id: str, detail: str, message: str, now: int) -> None:
    _ensure(conn, tracker_id, now)
    s = transfer_state.c
    current = conn.execute(select(s.detail).where(s.tracker_id == tracker_id)).scalar()
    values: dict[str, object] = {"detail": detail, "message": message, "updated_at": now}
    if current != detail:
        values["error_since"] = now
    conn.execute(update(transfer_state).where(s.tracker_id == tracker_id).values(**values))


def succeeded(conn: Connection, tracker_id: str, now: int) -> bool:
    """Clear the tracker's failure; True when it was failing (the store is back)."""
    _ensure(conn, tracker_id, now)
    s = transfer_state.c
    was = conn.execute(select(s.detail).where(s.tracker_id == tracker_id)).scalar() is not None
    conn.execute(
        update(transfer_state)
        .where(transfer_state.c.tracker_id == tracker_id)
        .values(detail=None, message=None, error_since=None, last_success=now, updated_at=now)
    )
    return was


def details(conn: Connection, tracker_ids: list[str]) -> dict[str, str]:
    """The failing trackers among ``tracker_ids``: id -> detail."""
    s = transfer_state.c
    rows = conn.execute(
        select(s.tracker_id, s.detail).where(s.tracker_id.in_(tracker_ids), s.detail.is_not(None))
    )
    return {row[0]: row[1] for row in rows}

"""The Archive page's figures: each tracker's written files and digests grouped by UTC day, read from the
records the transfer and the digest writer keep (``trace_files``, ``digests``), never from the bucket.

Both group over the tracker's own rows (``ix_trace_files_tracker_stamp``; ``digests``' primary key starts
with the tracker), so the page costs what the tracker's archive holds, not what the log holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from opencts.clock import DAY_MS
from opencts.store.tables import digests, trace_files

#: days the page lists, newest first
DAYS = 31


@dataclass(frozen=True, slots=True)
class Day:
    day: str  # YYYY-MM-DD (UTC)
    files: int
    traces: int
    bytes: int
    digests: int


def _label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, UTC).strftime("%Y-%m-%d")


def days(conn: Connection, tracker_id: str, *, now: int) -> list[Day]:
    """The newest :data:`DAYS` days of the tracker's written files (by the day in their key) and digests."""
    since = (now // DAY_MS - DAYS + 1) * DAY_MS
    day = (trace_files.c.stamp_ms // DAY_MS).label("day")
    found: dict[int, list[int]] = {}
    for d, n, traces, size in conn.execute(
        select(day, func.count(), func.sum(trace_files.c.trace_count), func.sum(trace_files.c.size))
        .where(
            trace_files.c.tracker_id == tracker_id,
            trace_files.c.stamp_ms >= since,
            trace_files.c.status == "written",
        )
        .group_by(day)
    ):
        found[int(d)] = [int(n), int(traces or 0), int(size or 0), 0]
    digest_day = (digests.c.hour_ms // DAY_MS).label("day")
    for d, n in conn.execute(
        select(digest_day, func.count())
        .where(digests.c.tracker_id == tracker_id, digests.c.hour_ms >= since, digests.c.status == "written")
        .group_by(digest_day)
    ):
        found.setdefault(int(d), [0, 0, 0, 0])[3] = int(n)
    return [Day(_label(d), *found[d]) for d in sorted(found, reverse=True)]

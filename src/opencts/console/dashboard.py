"""The dashboard's figures: the last 24 hours of the project's management traces.

Counted by the term index when it is current (:func:`figures` with ``index``): each hour's bucket bitmap
intersected with each rating's, and the services' bitmaps with the window's, so the cost follows the
number of hours and distinct values, not of traces. Otherwise (no index, or one catching up after a
restart) three grouped counts over one time range of ``ix_traces_time``, which read every trace of the
window. The page shows them as charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from opencts.clock import HOUR_MS
from opencts.store import term_index
from opencts.store.tables import traces
from opencts.store.term_index import TermIndex

HOURS = 24
TOP_SERVICES = 10


@dataclass(frozen=True, slots=True)
class Figures:
    #: (hour label, {rating: count}), oldest hour first
    per_hour: list[tuple[str, dict[str, int]]]
    by_rating: list[tuple[str, int]]
    by_service: list[tuple[str, int]]
    total: int


def figures(conn: Connection, project_id: str, *, now: int, index: TermIndex | None = None) -> Figures:
    first_hour = now // HOUR_MS - HOURS + 1
    if (
        index is not None
        and term_index.BUCKET_MS == HOUR_MS
        and index.refresh(conn, max_lag=term_index.MAX_QUERY_LAG)
    ):
        return _indexed(index, project_id, first_hour)
    since = first_hour * HOUR_MS
    where = (traces.c.project_id == project_id, traces.c.kind == "system", traces.c.time >= since)
    hour = (traces.c.time // HOUR_MS).label("hour")
    counts: dict[int, dict[str, int]] = {first_hour + i: {} for i in range(HOURS)}
    for h, rating, n in conn.execute(
        select(hour, traces.c.trace_rating, func.count()).where(*where).group_by(hour, traces.c.trace_rating)
    ):
        if int(h) in counts:
            counts[int(h)][rating] = counts[int(h)].get(rating, 0) + int(n)
    services = conn.execute(
        select(traces.c.service_type, func.count().label("n"))
        .where(*where)
        .group_by(traces.c.service_type)
        .order_by(func.count().desc(), traces.c.service_type)
        .limit(TOP_SERVICES)
    ).all()
    return _figures(counts, [(s, int(n)) for s, n in services])


def _indexed(index: TermIndex, project_id: str, first_hour: int) -> Figures:
    last_hour = first_hour + HOURS - 1
    counts = index.bucket_counts(
        project_id, "system", "trace_rating", first_bucket=first_hour, last_bucket=last_hour
    )
    services = index.top_values(
        project_id,
        "system",
        "service_type",
        first_bucket=first_hour,
        last_bucket=last_hour,
        limit=TOP_SERVICES,
    )
    return _figures(counts, [(value, n) for (value,), n in services])


def _figures(counts: dict[int, dict[str, int]], by_service: list[tuple[str, int]]) -> Figures:
    per_hour = [
        (datetime.fromtimestamp(h * 3600, UTC).strftime("%H:00"), values) for h, values in counts.items()
    ]
    ratings: dict[str, int] = {}
    for values in counts.values():
        for rating, n in values.items():
            ratings[rating] = ratings.get(rating, 0) + n
    by_rating = [(r, ratings.get(r, 0)) for r in ("normal", "warning", "incident")]
    return Figures(per_hour, by_rating, by_service, sum(ratings.values()))

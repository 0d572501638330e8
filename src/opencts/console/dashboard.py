"""The dashboard's figures: the last 24 hours of the project's management traces, counted in SQL.

Three grouped counts over one time range of ``ix_traces_time``; the page shows them as charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from opencts.clock import HOUR_MS
from opencts.store.tables import traces

HOURS = 24
TOP_SERVICES = 10


@dataclass(frozen=True, slots=True)
class Figures:
    #: (hour label, {rating: count}), oldest hour first
    per_hour: list[tuple[str, dict[str, int]]]
    by_rating: list[tuple[str, int]]
    by_service: list[tuple[str, int]]
    total: int


def figures(conn: Connection, project_id: str, *, now: int) -> Figures:
    first_hour = now // HOUR_MS - HOURS + 1
    since = first_hour * HOUR_MS
    where = (traces.c.project_id == project_id, traces.c.kind == "system", traces.c.time >= since)
    hour = (traces.c.time // HOUR_MS).label("hour")
    counts: dict[int, dict[str, int]] = {first_hour + i: {} for i in range(HOURS)}
    for h, rating, n in conn.execute(
        select(hour, traces.c.trace_rating, func.count()).where(*where).group_by(hour, traces.c.trace_rating)
    ):
        if int(h) in counts:
            counts[int(h)][rating] = counts[int(h)].get(rating, 0) + int(n)
    per_hour = [
        (datetime.fromtimestamp(h * 3600, UTC).strftime("%H:00"), values) for h, values in counts.items()
    ]
    ratings: dict[str, int] = {}
    for values in counts.values():
        for rating, n in values.items():
            ratings[rating] = ratings.get(rating, 0) + n
    by_rating = [(r, ratings.get(r, 0)) for r in ("normal", "warning", "incident")]
    services = conn.execute(
        select(traces.c.service_type, func.count().label("n"))
        .where(*where)
        .group_by(traces.c.service_type)
        .order_by(func.count().desc(), traces.c.service_type)
        .limit(TOP_SERVICES)
    ).all()
    return Figures(per_hour, by_rating, [(s, int(n)) for s, n in services], sum(ratings.values()))

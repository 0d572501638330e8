"""The dashboard's tops over the last 24 hours of management traces: operations, users, source addresses,
and the newest alarms of key event notifications.

Operations and users come from the term index (``store.term_index.TermIndex.top_values``): each value's
bitmap intersected with the hour buckets of the window, so the cost follows the number of distinct values,
not of traces. While the index is too far behind (a restart catching up), the same counts come from SQL
over ``ix_traces_time``. Source addresses are no filter column, so they are not in the index: they are
counted over the newest :data:`IP_SAMPLE` traces of the window (one descending range scan), and the page
says so when the window holds more.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, func, select

from opencts.clock import HOUR_MS
from opencts.store import term_index
from opencts.store.tables import notification_alarms, notifications, traces
from opencts.store.term_index import TermIndex

HOURS = 24
TOP = 10
#: the newest traces of the window whose source addresses are counted
IP_SAMPLE = 5_000
ALARMS = 10


@dataclass(frozen=True, slots=True)
class Alarm:
    created_at: int
    notification: str
    kind: str  # smn | fun
    outcome: str
    trace_id: str


@dataclass(frozen=True, slots=True)
class Tops:
    operations: list[tuple[str, int]]
    users: list[tuple[str, int]]
    source_ips: list[tuple[str, int]]
    #: how many traces the source addresses were counted over
    ips_counted: int
    #: True when the counts came from the term index, False from SQL
    indexed: bool
    alarms: list[Alarm]


def tops(conn: Connection, project_id: str, *, now: int, index: TermIndex | None) -> Tops:
    first_hour = now // HOUR_MS - HOURS + 1
    since = first_hour * HOUR_MS
    indexed = index is not None and index.refresh(conn, max_lag=term_index.MAX_QUERY_LAG)
    if indexed:
        assert index is not None
        first, last = since // term_index.BUCKET_MS, now // term_index.BUCKET_MS
        ops = index.top_values(
            project_id,
            "system",
            "trace_name",
            first_bucket=first,
            last_bucket=last,
            limit=TOP,
            split_by="service_type",
        )
        operations = [(f"{service} · {name}", n) for (name, service), n in ops]
        users = [
            (value, n)
            for (value,), n in index.top_values(
                project_id, "system", "user_name", first_bucket=first, last_bucket=last, limit=TOP
            )
        ]
    else:
        operations, users = _sql_tops(conn, project_id, since)
    ips, counted = _source_ips(conn, project_id, since)
    return Tops(operations, users, ips, counted, indexed, recent_alarms(conn, project_id))


def _where(project_id: str, since: int) -> tuple[ColumnElement[bool], ...]:
    return (traces.c.project_id == project_id, traces.c.kind == "system", traces.c.time >= since)


def _sql_tops(
    conn: Connection, project_id: str, since: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    n = func.count().label("n")
    ops = conn.execute(
        select(traces.c.service_type, traces.c.trace_name, n)
        .where(*_where(project_id, since))
        .group_by(traces.c.service_type, traces.c.trace_name)
        .order_by(n.desc(), traces.c.service_type, traces.c.trace_name)
        .limit(TOP)
    ).all()
    users = conn.execute(
        select(traces.c.user_name, n)
        .where(*_where(project_id, since), traces.c.user_name.is_not(None))
        .group_by(traces.c.user_name)
        .order_by(n.desc(), traces.c.user_name)
        .limit(TOP)
    ).all()
    return [(f"{s} · {t}", int(c)) for s, t, c in ops], [(str(u), int(c)) for u, c in users]


def _source_ips(conn: Connection, project_id: str, since: int) -> tuple[list[tuple[str, int]], int]:
    newest = (
        select(traces.c.source_ip)
        .where(*_where(project_id, since))
        .order_by(traces.c.time.desc(), traces.c.seq.desc())
        .limit(IP_SAMPLE)
        .subquery()
    )
    n = func.count().label("n")
    rows = conn.execute(select(newest.c.source_ip, n).group_by(newest.c.source_ip)).all()
    counted = sum(int(c) for _, c in rows)
    found = sorted(((str(ip), int(c)) for ip, c in rows if ip), key=lambda item: (-item[1], item[0]))
    return found[:TOP], counted


def recent_alarms(conn: Connection, project_id: str) -> list[Alarm]:
    """The newest alarms the project's notifications and CTS triggers raised (``notification_alarms``)."""
    rows = conn.execute(
        select(
            notification_alarms.c.created_at,
            notifications.c.name,
            notifications.c.notification_type,
            notification_alarms.c.outcome,
            notification_alarms.c.trace_id,
        )
        .join(notifications, notifications.c.notification_id == notification_alarms.c.notification_id)
        .where(notification_alarms.c.project_id == project_id)
        .order_by(notification_alarms.c.created_at.desc())
        .limit(ALARMS)
    ).all()
    return [Alarm(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

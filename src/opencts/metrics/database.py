"""Figures read from the database when scraped: the consumers' lag, the outboxes, the database's size.

They describe the deployment, not a process: every process and node sharing the database reports the same
values (a dashboard takes their ``max``). Reading them at scrape time costs a handful of indexed queries
every scrape interval and nothing on the ingest path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select, text

from opencts.clock import now_ms
from opencts.lts.sinks.gauges import collect as lts_sink_gauges
from opencts.store import Database, trace_log
from opencts.store.tables import consumer_cursors, function_invocations, smn_deliveries, traces

#: outbox states worth a series: delivered rows are many and say nothing the attempt counters do not
_SMN_OPEN = ("pending", "delivering", "dead")
_FUNCTION_OPEN = ("WAIT", "RUNNING", "FAIL")
#: consumers every deployment runs: shown (at cursor 0) even before their first cursor is written, so a
#: consumer that never started is visible as lagging; any other consumer appears with its cursor row
KNOWN_CONSUMERS = ("retention", "catalogue", "notifier", "ledger", "transfer")


@dataclass
class Snapshot:
    head_seq: int = 0
    #: consumer -> (cursor, lag in traces, lag in seconds)
    consumers: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    smn: dict[tuple[str, str], int] = field(default_factory=dict)
    functions: dict[str, int] = field(default_factory=dict)
    size_bytes: int | None = None


def _lag_seconds(conn: Connection, position: int, now: int) -> float:
    """Age of the oldest trace the consumer has not handled yet; 0 when it is caught up."""
    oldest = conn.execute(
        select(traces.c.record_time).where(traces.c.seq > position).order_by(traces.c.seq).limit(1)
    ).scalar()
    return 0.0 if oldest is None else max(0.0, (now - int(oldest)) / 1000)


def _size(db: Database, conn: Connection) -> int | None:
    if db.is_sqlite:
        path = db._path
        if not path or path == ":memory:":
            return None
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def read_snapshot(db: Database) -> Snapshot:
    """One consistent-enough read of every deployment-wide figure (one read connection, a few queries)."""

    def read(conn: Connection) -> Snapshot:
        now = now_ms()
        snap = Snapshot(head_seq=trace_log.last_seq(conn))
        cursors = dict.fromkeys(KNOWN_CONSUMERS, 0)
        for name, position in conn.execute(select(consumer_cursors.c.name, consumer_cursors.c.position)):
            cursors[str(name)] = int(position)
        for name, position in cursors.items():
            position = int(position)
            lag = max(0, snap.head_seq - position)
            snap.consumers[name] = (position, lag, _lag_seconds(conn, position, now) if lag else 0.0)
        d = smn_deliveries
        rows = conn.execute(
            select(d.c.protocol, d.c.status, func.count())
            .where(d.c.status.in_(_SMN_OPEN))
            .group_by(d.c.protocol, d.c.status)
        )
        snap.smn = {(str(p), str(s)): int(n) for p, s, n in rows}
        f = function_invocations
        rows = conn.execute(
            select(f.c.status, func.count()).where(f.c.status.in_(_FUNCTION_OPEN)).group_by(f.c.status)
        )
        snap.functions = {str(s): int(n) for s, n in rows}
        snap.size_bytes = _size(db, conn)
        return snap

    return db.read_sync(read)


class DatabaseCollector(Collector):
    """A collector that reads a :class:`Snapshot` on every scrape (on the scraping thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # names are not checked against the process's own metrics: they never collide

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = read_snapshot(self.db)
        yield GaugeMetricFamily(
            "opencts_trace_log_head_seq", "Sequence number of the newest trace.", snap.head_seq
        )
        cursor = GaugeMetricFamily(
            "opencts_consumer_cursor", "Last trace a consumer finished.", labels=["consumer"]
        )
        lag = GaugeMetricFamily(
            "opencts_consumer_lag_traces",
            "Traces appended that a consumer has not handled yet.",
            labels=["consumer"],
        )
        lag_s = GaugeMetricFamily(
            "opencts_consumer_lag_seconds",
            "Age of the oldest trace a consumer has not handled yet (0 when caught up).",
            labels=["consumer"],
        )
        for name, (position, traces_behind, seconds) in sorted(snap.consumers.items()):
            cursor.add_metric([name], position)
            lag.add_metric([name], traces_behind)
            lag_s.add_metric([name], seconds)
        yield from (cursor, lag, lag_s)
        smn = GaugeMetricFamily(
            "opencts_smn_deliveries",
            "SMN deliveries not yet delivered, by channel and status (dead = dead letters).",
            labels=["channel", "status"],
        )
        for (channel, status), n in sorted(snap.smn.items()):
            smn.add_metric([channel, status], n)
        yield smn
        fn = GaugeMetricFamily(
            "opencts_function_invocations_open",
            "Async and trigger invocations waiting, running, or failed for good (FAIL = dead letters).",
            labels=["status"],
        )
        for status, n in sorted(snap.functions.items()):
            fn.add_metric([status], n)
        yield fn
        yield from lts_sink_gauges(self.db)  # each LTS sink's lag and failures
        if snap.size_bytes is not None:
            yield GaugeMetricFamily(
                "opencts_database_size_bytes", "Size of the database (SQLite file and WAL).", snap.size_bytes
            )

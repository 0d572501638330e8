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
from sqlalchemy import Connection, text

from opencts.clock import now_ms
from opencts.lts.sinks.gauges import collect as lts_sink_gauges
from opencts.store import Database

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


#: The statements of a snapshot, as plain SQL both backends speak: a scrape runs four short statements
#: and none is rebuilt or recompiled each time (SQLAlchemy's statement building took as long as SQLite's
#: work). Each consumer's lag in seconds is the age of the first trace after its cursor (NULL: none).
_HEAD = text(
    "SELECT (SELECT coalesce(max(seq), 0) FROM traces), (SELECT record_time FROM traces ORDER BY seq LIMIT 1)"
)
_CURSORS = text(
    "SELECT c.name, c.position,"
    " (SELECT t.record_time FROM traces t WHERE t.seq > c.position ORDER BY t.seq LIMIT 1)"
    " FROM consumer_cursors c"
)
_SMN = text(
    "SELECT protocol, status, count(*) FROM smn_deliveries"
    f" WHERE status IN ({', '.join(repr(s) for s in _SMN_OPEN)}) GROUP BY protocol, status"
)
_FUNCTIONS = text(
    "SELECT status, count(*) FROM function_invocations"
    f" WHERE status IN ({', '.join(repr(s) for s in _FUNCTION_OPEN)}) GROUP BY status"
)


def _age(record_time: int | None, now: int) -> float:
    """Seconds since ``record_time`` (0 when there is none: the consumer is caught up)."""
    return 0.0 if record_time is None else max(0.0, (now - int(record_time)) / 1000)


def _size(db: Database, conn: Connection) -> int | None:
    if db.is_sqlite:
        path = db._path
        if not path or path == ":memory:":
            return None
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def read_snapshot(db: Database) -> Snapshot:
    """One consistent-enough read of every deployment-wide figure (one read connection, four queries)."""

    def read(conn: Connection) -> Snapshot:
        now = now_ms()
        head, oldest = conn.execute(_HEAD).one()
        snap = Snapshot(head_seq=int(head))
        # consumers every deployment runs are shown (at cursor 0) before their first cursor is written
        found = dict.fromkeys(KNOWN_CONSUMERS, (0, oldest))
        for name, position, first_after in conn.execute(_CURSORS):
            found[str(name)] = (int(position), first_after)
        for name, (position, first_after) in found.items():
            lag = max(0, snap.head_seq - position)
            snap.consumers[name] = (position, lag, _age(first_after, now) if lag else 0.0)
        snap.smn = {(str(p), str(s)): int(n) for p, s, n in conn.execute(_SMN)}
        snap.functions = {str(s): int(n) for s, n in conn.execute(_FUNCTIONS)}
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

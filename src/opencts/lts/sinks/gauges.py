"""The sinks' figures for ``/metrics``: lag in records and seconds, failures in a row and records delivered.

Read from the database when scraped (:class:`opencts.metrics.database.DatabaseCollector`), so every node
reports the same values, like the consumers' lag. Labelled by sink id and type (names may repeat across
streams); a sink in error has ``opencts_lts_sink_failures`` above 0.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, select

from opencts.clock import now_ms
from opencts.lts.sinks.repository import render
from opencts.store import Database
from opencts.store.tables import lts_sinks


def _read(conn: Connection) -> list[tuple[str, str, int, float, int, int]]:
    now = now_ms()
    out = []
    for row in conn.execute(select(lts_sinks).order_by(lts_sinks.c.id)):
        shown = render(conn, row, now)
        out.append(
            (
                row.id,
                row.sink_type,
                int(shown["lag_records"]),
                float(shown["lag_seconds"]),
                int(row.attempts),
                int(row.delivered),
            )
        )
    return out


def collect(db: Database) -> Iterator[GaugeMetricFamily]:
    rows = db.read_sync(_read)
    labels = ["sink", "type"]
    lag = GaugeMetricFamily(
        "opencts_lts_sink_lag_records", "Stream records a sink has not sent yet.", labels=labels
    )
    lag_s = GaugeMetricFamily(
        "opencts_lts_sink_lag_seconds",
        "Age of the oldest record a sink has not sent (0 when caught up).",
        labels=labels,
    )
    failures = GaugeMetricFamily(
        "opencts_lts_sink_failures", "Failed attempts in a row (0: the sink is healthy).", labels=labels
    )
    delivered = GaugeMetricFamily(
        "opencts_lts_sink_delivered", "Records a sink has delivered.", labels=labels
    )
    for sink_id, kind, behind, seconds, attempts, sent in rows:
        lag.add_metric([sink_id, kind], behind)
        lag_s.add_metric([sink_id, kind], seconds)
        failures.add_metric([sink_id, kind], attempts)
        delivered.add_metric([sink_id, kind], sent)
    yield from (lag, lag_s, failures, delivered)

"""The console's own reads on both backends: the dashboard's hourly counts (integer division in SQL) and
the Trace List page's rows from the log's columns, including marker paging and a trace id search."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import Connection, insert

from cts_helpers import trace_row
from opencts.clock import DAY_MS, HOUR_MS
from opencts.console import dashboard, trace_list
from opencts.store import Database, trace_log
from opencts.store.tables import trace_resources, trace_users
from opencts.store.term_index import TermIndex
from opencts.traces.query import TraceQuery, parse_query


def _page(
    conn: Connection, *, query: TraceQuery, index: TermIndex | None
) -> tuple[list[dict[str, Any]], str | None]:
    return trace_list.page(conn, project_id="p1", query=query, index=index)


NOW = 1_800_000_000_000 + 30 * 60_000  # half past an hour


def test_dashboard_counts_per_hour_rating_and_service(database: Database) -> None:
    rows = [
        trace_row("a", time=NOW - 10_000, trace_rating="normal", service_type="ECS"),
        trace_row("b", time=NOW - 20_000, trace_rating="incident", service_type="ECS"),
        trace_row("c", time=NOW - HOUR_MS, trace_rating="warning", service_type="OBS"),
        trace_row("d", time=NOW - 30 * HOUR_MS, trace_rating="normal", service_type="RDS"),  # too old
        trace_row("e", time=NOW - 10_000, project_id="p2", service_type="VPC"),  # another project
    ]
    database.write_sync(lambda conn: trace_log.append(conn, rows))
    found = database.read_sync(lambda conn: dashboard.figures(conn, "p1", now=NOW))
    assert found.total == 3
    assert len(found.per_hour) == dashboard.HOURS
    assert found.per_hour[-1][1] == {"normal": 1, "incident": 1}
    assert found.per_hour[-2][1] == {"warning": 1}
    assert dict(found.by_rating) == {"normal": 1, "warning": 1, "incident": 1}
    assert found.by_service == [("ECS", 2), ("OBS", 1)]


def test_pages_read_columns_follow_markers_and_find_one_trace(database: Database) -> None:
    rows = [
        trace_row(f"t{i}", time=NOW - 1000 * i, resource_id=f"r{i}", source_ip="10.0.0.1", code="200")
        for i in range(5)
    ]
    database.write_sync(lambda conn: trace_log.append(conn, rows))
    params = {"from": str(NOW - HOUR_MS), "to": str(NOW + 1), "limit": "2"}
    seen: list[str] = []
    marker: str | None = None
    while True:
        query = parse_query(
            {**params, **({"next": marker} if marker else {})}, now=NOW, retention_ms=HOUR_MS * 24
        )
        page, marker = database.read_sync(partial(_page, query=query, index=database.term_index))
        seen += [r["trace_id"] for r in page]
        if marker is None:
            break
    assert seen == [f"t{i}" for i in range(5)]
    assert page[-1]["source_ip"] == "10.0.0.1" and page[-1]["code"] == "200"
    one = parse_query({**params, "trace_id": "t3"}, now=NOW, retention_ms=HOUR_MS * 24)
    found, marker = database.read_sync(
        lambda conn: trace_list.page(conn, project_id="p1", query=one, index=database.term_index)
    )
    assert [r["trace_id"] for r in found] == ["t3"] and marker is None
    assert (
        database.read_sync(
            lambda conn: trace_list.find_trace(
                conn, project_id="p2", kind="system", trace_id="t3", not_before=0
            )
        )
        is None
    )


def test_suggestions_come_from_the_project_alone(database: Database) -> None:
    def fill(conn: Connection) -> None:
        conn.execute(
            insert(trace_resources),
            [
                {"project_id": "p1", "service_type": "ECS", "resource_type": "ecs", "last_seen": NOW},
                {"project_id": "p1", "service_type": "OBS", "resource_type": "bucket", "last_seen": NOW},
                {
                    "project_id": "p1",
                    "service_type": "OLD",
                    "resource_type": "x",
                    "last_seen": NOW - 8 * DAY_MS,
                },
                {"project_id": "p2", "service_type": "KMS", "resource_type": "key", "last_seen": NOW},
            ],
        )
        conn.execute(
            insert(trace_users),
            [
                {"project_id": "p1", "user_name": "alice", "last_seen": NOW},
                {"project_id": "p2", "user_name": "mallory", "last_seen": NOW},
            ],
        )

    database.write_sync(fill)
    hints = database.read_sync(lambda conn: trace_list.suggestions(conn, project_id="p1", now=NOW))
    assert hints == trace_list.Suggestions(["ECS", "OBS"], ["bucket", "ecs"], ["alice"])

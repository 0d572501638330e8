"""Stream every trace a query matches, as CSV (the console's columns) or NDJSON, in constant memory.

CTS stops a console export at 5,000 rows; we stream the whole result in keyset chunks instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from opencts.store import trace_log
from opencts.traces.query import TraceQuery

CSV_COLUMNS = (
    "Trace Name",
    "Resource Type",
    "Trace Source",
    "Resource ID",
    "Resource Name",
    "Trace Rating",
    "Operator",
    "Operation Time",
    "Source IP",
    "Code",
    "Trace Type",
    "Trace ID",
    "Request ID",
)
CHUNK = 5000
Reader = Callable[[Callable[[Any], list[Any]]], list[Any]]


def _chunks(read: Reader, project_id: str, query: TraceQuery) -> Iterator[list[Any]]:
    """Keyset chunks, each read on its own connection so no connection is held between yields."""
    after: trace_log.Position | None = None
    while True:

        def fetch(conn: Any, after: trace_log.Position | None = after) -> list[Any]:
            return trace_log.page(
                conn,
                project_id=project_id,
                kind=query.kind,
                time_from=query.time_from,
                time_to=query.time_to,
                filters=query.filters,
                after=after,
                limit=CHUNK,
            )

        rows = read(fetch)
        if rows:
            yield rows
        if len(rows) < CHUNK:
            return
        after = trace_log.Position(rows[-1].time, rows[-1].seq)


def _operation_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def csv_row(body: dict[str, Any]) -> list[Any]:
    user = body.get("user") or {}
    return [
        body.get("trace_name", ""),
        body.get("resource_type", ""),
        body.get("service_type", ""),
        body.get("resource_id", ""),
        body.get("resource_name", ""),
        body.get("trace_rating", ""),
        user.get("name") or user.get("user_name") or "",
        _operation_time(body["time"]),
        body.get("source_ip", ""),
        body.get("code", ""),
        body.get("trace_type", ""),
        body.get("trace_id", ""),
        body.get("request_id", ""),
    ]


def export_csv(read: Reader, project_id: str, query: TraceQuery) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield ("\ufeff" + buf.getvalue()).encode()  # a BOM, so spreadsheet programs read UTF-8
    for rows in _chunks(read, project_id, query):
        buf.seek(0)
        buf.truncate()
        loads = orjson.loads
        writer.writerows(csv_row(loads(r.body)) for r in rows)
        yield buf.getvalue().encode()


def export_ndjson(read: Reader, project_id: str, query: TraceQuery) -> Iterator[bytes]:
    for rows in _chunks(read, project_id, query):
        yield b"\n".join(r.body for r in rows) + b"\n"

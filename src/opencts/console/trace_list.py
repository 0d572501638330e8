"""The Trace List page's query: the console's form fields in, a ListTraces query and a page of rows out.

The URL holds the query (so a view can be bookmarked and shared) in ListTraces' own parameter names,
plus ``range`` (a preset, or ``custom`` with ``start``/``end`` as the browser's datetime-local values in
UTC) and ``search``/``search_value`` (which one field the search box matches). Validation is
ListTraces' own (``parse_query``), so the page refuses exactly what the API refuses, with the same words.

Rows are read from the log's plain columns, never the stored JSON, so a page costs what ListTraces'
index walk costs and no parsing; the expanded row shows those columns, View Trace the whole JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from opencts.clock import DAY_MS, HOUR_MS
from opencts.errors import BadRequest
from opencts.store import trace_log
from opencts.store.tables import trace_resources, trace_users
from opencts.store.term_index import TermIndex
from opencts.traces.listing import list_traces
from opencts.traces.query import TraceQuery, parse_query
from opencts.trackers.catalogue import RESOURCES_WINDOW_MS, USERS_WINDOW_MS

RANGES: dict[str, int] = {"1h": HOUR_MS, "1d": DAY_MS, "7d": 7 * DAY_MS}
#: what the search box can match: ListTraces parameter -> label
SEARCH_FIELDS: dict[str, str] = {
    "resource_id": "Resource ID",
    "resource_name": "Resource name",
    "trace_name": "Trace name",
    "trace_id": "Trace ID",
}
#: plain filters the form shows as their own fields (ListTraces names)
FIELD_FILTERS = ("service_type", "resource_type", "user", "trace_rating")
PAGE_SIZES = (10, 20, 50, 100)
LIST_COLUMNS = (
    "seq",
    "time",
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_id",
    "resource_name",
    "user_name",
    "access_key_id",
    "source_ip",
    "code",
    "request_id",
)
_DATETIME_LOCAL = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Form:
    """The form as the page shows it back, every value a string (empty when not given)."""

    range: str
    start: str
    end: str
    trace_type: str
    search: str
    search_value: str
    filters: dict[str, str]
    limit: str


def _ms_of(value: str, name: str) -> int:
    for fmt in _DATETIME_LOCAL:
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise BadRequest(f"{name} must be a date and time like 2026-01-31T13:45 (UTC), got {value[:40]!r}")


def local_text(ms: int) -> str:
    """Milliseconds as a datetime-local value (UTC, to the minute)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


def read_form(params: Mapping[str, str], *, now: int, retention_ms: int) -> tuple[Form, TraceQuery]:
    """The form and its query; raises :class:`BadRequest` with what to correct."""
    preset = params.get("range") or "1h"
    if preset not in (*RANGES, "custom"):
        raise BadRequest(f"range must be one of {', '.join(RANGES)} or custom, got {preset[:20]!r}")
    search = params.get("search") or "resource_id"
    if search not in SEARCH_FIELDS:
        raise BadRequest(f"search must be one of {', '.join(SEARCH_FIELDS)}, got {search[:40]!r}")
    listing: dict[str, str] = {}
    start, end = params.get("start", ""), params.get("end", "")
    if preset == "custom":
        if not start:
            raise BadRequest("a custom range needs a start (UTC); or choose last hour, day or week")
        listing["from"] = str(_ms_of(start, "start"))
        listing["to"] = str(_ms_of(end, "end") if end else now)
    else:
        listing["from"], listing["to"] = str(now - RANGES[preset]), str(now)
    listing["trace_type"] = params.get("trace_type") or "system"
    value = (params.get("search_value") or "").strip()
    if value:
        listing[search] = value
    filters = {name: (params.get(name) or "").strip() for name in FIELD_FILTERS}
    listing.update({k: v for k, v in filters.items() if v})
    limit = params.get("limit") or "20"
    if limit not in {str(n) for n in PAGE_SIZES}:
        raise BadRequest(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}, got {limit[:20]!r}")
    listing["limit"] = limit
    if params.get("next"):
        listing["next"] = params["next"]
    query = parse_query(listing, now=now, retention_ms=retention_ms)
    form = Form(preset, start, end, listing["trace_type"], search, value, filters, limit)
    return form, query


def export_params(form: Form) -> dict[str, str]:
    """The form's own parameters, for links (export, next page) that keep the query."""
    out = {"range": form.range, "trace_type": form.trace_type, "search": form.search, "limit": form.limit}
    if form.range == "custom":
        out["start"], out["end"] = form.start, form.end
    if form.search_value:
        out["search_value"] = form.search_value
    out.update({k: v for k, v in form.filters.items() if v})
    return out


def page(
    conn: Connection, *, project_id: str, query: TraceQuery, index: TermIndex | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of rows (as dicts of :data:`LIST_COLUMNS`) and the marker of the next (None at the end)."""
    rows, marker = list_traces(conn, project_id=project_id, query=query, index=index, columns=LIST_COLUMNS)
    if query.trace_id is not None:
        return [_from_body(r.time, r.body) for r in rows], None
    return [dict(zip(LIST_COLUMNS, r, strict=False)) for r in rows], marker


def _from_body(time: int, body: bytes) -> dict[str, Any]:
    trace: dict[str, Any] = orjson.loads(body)
    user = trace.get("user") or {}
    row = {name: trace.get(name) for name in LIST_COLUMNS}
    row.update(time=time, user_name=user.get("name"), access_key_id=user.get("access_key_id"))
    return row


def find_trace(
    conn: Connection, *, project_id: str, kind: str, trace_id: str, not_before: int
) -> dict[str, Any] | None:
    """One trace's whole JSON, or None (not in this project, or past the retention)."""
    found = trace_log.by_trace_id(
        conn, project_id=project_id, kind=kind, trace_id=trace_id, not_before=not_before
    )
    if not found:
        return None
    trace: dict[str, Any] = orjson.loads(found[0].body)
    return trace


#: suggestions offered per field: enough for any real account, bounded for a page
MAX_SUGGESTIONS = 200


@dataclass(frozen=True, slots=True)
class Suggestions:
    """What the filter fields suggest as one types: the project's own services, resource types and users
    from the catalogue the CatalogueConsumer keeps (ListTraceResources' and ListUserResources' tables),
    read for this project only, never the account's other projects."""

    services: list[str]
    resource_types: list[str]
    users: list[str]


def suggestions(conn: Connection, *, project_id: str, now: int) -> Suggestions:
    resources = conn.execute(
        select(trace_resources.c.service_type, trace_resources.c.resource_type)
        .where(
            trace_resources.c.project_id == project_id,
            trace_resources.c.last_seen >= now - RESOURCES_WINDOW_MS,
        )
        .limit(MAX_SUGGESTIONS * 4)
    ).all()
    users = conn.execute(
        select(trace_users.c.user_name)
        .where(trace_users.c.project_id == project_id, trace_users.c.last_seen >= now - USERS_WINDOW_MS)
        .order_by(trace_users.c.user_name)
        .limit(MAX_SUGGESTIONS)
    ).scalars()
    services = sorted({s for s, _ in resources})[:MAX_SUGGESTIONS]
    types = sorted({t for _, t in resources if t})[:MAX_SUGGESTIONS]
    return Suggestions(services, types, list(users))

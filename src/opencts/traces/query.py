"""ListTraces: parameters exactly as CTS defines them, answered from the log's indexes.

Differences from CTS, on purpose: several filters combine (AND) instead of one at a time; traces are
visible as soon as ingest answers (CTS: a minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opencts.errors import BadRequest

DEFAULT_LIMIT = 10
MAX_LIMIT = 200
HOUR_MS = 3_600_000

#: query parameter -> log column
FILTER_PARAMS: dict[str, str] = {
    "tracker_name": "tracker_name",
    "service_type": "service_type",
    "user": "user_name",
    "resource_id": "resource_id",
    "resource_name": "resource_name",
    "resource_type": "resource_type",
    "trace_name": "trace_name",
    "trace_rating": "trace_rating",
    "access_key_id": "access_key_id",
    "enterprise_project_id": "enterprise_project_id",
}
TRACE_TYPES = ("system", "data")
RATINGS = ("normal", "warning", "incident")


@dataclass(frozen=True, slots=True)
class TraceQuery:
    kind: str = "system"
    time_from: int = 0
    time_to: int = 0
    limit: int = DEFAULT_LIMIT
    next: str | None = None
    trace_id: str | None = None
    filters: dict[str, str] = field(default_factory=dict)


def _int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None


def parse_query(
    params: Mapping[str, str], *, now: int, retention_ms: int, max_limit: int | None = MAX_LIMIT
) -> TraceQuery:
    """Turn ListTraces query parameters into a :class:`TraceQuery`, or raise a clear :class:`BadRequest`.

    ``max_limit=None`` is for exports, which stream everything and take no ``limit``.
    """
    kind = params.get("trace_type") or "system"
    if kind not in TRACE_TYPES:
        raise BadRequest(f"trace_type must be one of {', '.join(TRACE_TYPES)}, got {kind!r}")
    limit = DEFAULT_LIMIT
    if max_limit is not None:
        given = _int(params, "limit")
        if given is not None:
            if not 1 <= given <= max_limit:
                raise BadRequest(f"limit must be between 1 and {max_limit}, got {given}")
            limit = given
    time_to = _int(params, "to")
    time_from = _int(params, "from")
    if time_to is None:
        time_to = now if time_from is None else max(now, time_from + HOUR_MS)
    if time_from is None:
        time_from = time_to - HOUR_MS
    if time_from < 0 or time_to < 0:
        raise BadRequest("from and to must be positive timestamps in milliseconds")
    if time_from >= time_to:
        raise BadRequest(f"from ({time_from}) must be earlier than to ({time_to})")
    # Traces older than the retention window are gone from the list, whatever the caller asks.
    time_from = max(time_from, now - retention_ms)
    rating = params.get("trace_rating")
    if rating and rating not in RATINGS:
        raise BadRequest(f"trace_rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    filters: dict[str, str] = {}
    for param, column in FILTER_PARAMS.items():
        value = params.get(param)
        if value:
            if len(value) > 350:
                raise BadRequest(f"{param} is longer than 350 characters")
            filters[column] = value
    marker = params.get("next") or None
    return TraceQuery(
        kind=kind,
        time_from=time_from,
        time_to=time_to,
        limit=limit,
        next=marker,
        trace_id=params.get("trace_id") or None,
        filters=filters,
    )

"""ListTraces: parameters exactly as CTS defines them, answered from the log's indexes.

Differences from CTS, on purpose: several filters combine (AND) instead of one at a time; traces are
visible as soon as ingest answers (CTS: a minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opencts.clock import HOUR_MS
from opencts.errors import BadRequest
from opencts.store.tables import FILTER_COLUMNS

DEFAULT_LIMIT = 10
MAX_LIMIT = 200

#: query parameter -> log column: each filter column under its own name, but CTS calls ``user_name`` ``user``
FILTER_PARAMS: dict[str, str] = {("user" if c == "user_name" else c): c for c in FILTER_COLUMNS}
#: free-text parameters, each bounded like the columns it is compared with
_TEXT_PARAMS = frozenset((*FILTER_PARAMS, "trace_id", "next"))
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


#: the last millisecond of year 9999: every bound and default stays far inside a signed 64-bit column
MAX_TIME_MS = 253_402_300_799_999
MAX_PARAM_CHARS = 350


def _int(params: Mapping[str, str], name: str, *, high: int = MAX_TIME_MS) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > 20:  # int() of a long digit string is slow, and nothing that long is in range anyway
        raise BadRequest(f"{name} must be an integer between 0 and {high}")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not 0 <= value <= high:
        raise BadRequest(f"{name} must be an integer between 0 and {high}, got {value}")
    return value


def _check_text(params: Mapping[str, str]) -> None:
    """Refuse what no column can hold before any query runs: the database would refuse it mid-stream."""
    for name, value in params.items():
        if "\0" in name or "\0" in value:
            raise BadRequest(f"{name[:64]!r} holds a NUL character")
        if len(value) > MAX_PARAM_CHARS and name in _TEXT_PARAMS:
            raise BadRequest(f"{name} is longer than {MAX_PARAM_CHARS} characters")


def _limit(params: Mapping[str, str], max_limit: int) -> int:
    given = _int(params, "limit")
    if given is None:
        return DEFAULT_LIMIT
    if not 1 <= given <= max_limit:
        raise BadRequest(f"limit must be between 1 and {max_limit}, got {given}")
    return given


def _window(params: Mapping[str, str], *, now: int, retention_ms: int) -> tuple[int, int]:
    """``(from, to)``: an hour up to now by default, an hour from ``from`` when only that is given."""
    time_to = _int(params, "to")
    time_from = _int(params, "from")
    if time_to is None:
        time_to = now if time_from is None else max(now, time_from + HOUR_MS)
    if time_from is None:
        time_from = time_to - HOUR_MS
    time_to = min(time_to, MAX_TIME_MS)
    if time_from >= time_to:
        raise BadRequest(f"from ({time_from}) must be earlier than to ({time_to})")
    # Traces older than the retention window are gone from the list, whatever the caller asks.
    return max(time_from, now - retention_ms), time_to


def parse_query(
    params: Mapping[str, str], *, now: int, retention_ms: int, max_limit: int | None = MAX_LIMIT
) -> TraceQuery:
    """Turn ListTraces query parameters into a :class:`TraceQuery`, or raise a clear :class:`BadRequest`.

    ``max_limit=None`` is for exports, which stream everything and take no ``limit``. Every check happens
    here, before an export's headers are sent, so a bad parameter is a 400 and never a cut stream.
    """
    _check_text(params)
    kind = params.get("trace_type") or "system"
    if kind not in TRACE_TYPES:
        raise BadRequest(f"trace_type must be one of {', '.join(TRACE_TYPES)}, got {kind!r}")
    limit = DEFAULT_LIMIT if max_limit is None else _limit(params, max_limit)
    time_from, time_to = _window(params, now=now, retention_ms=retention_ms)
    rating = params.get("trace_rating")
    if rating and rating not in RATINGS:
        raise BadRequest(f"trace_rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    filters: dict[str, str] = {}
    for param, column in FILTER_PARAMS.items():
        value = params.get(param)
        if value:
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

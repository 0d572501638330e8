"""Ingest: validate a batch, normalise each trace, append the good ones durably, report per trace.

One bad trace never drops the good ones: every trace gets its own verdict (accepted, duplicate, rejected
with the reason). The answer is produced only after the write transaction committed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from opencts.errors import BadRequest, MalformedJSON
from opencts.store.trace_log import TraceRow
from opencts.traces.model import TraceIn, access_key_id, fast_normalise, normalise, user_name
from opencts.validation import describe

MAX_BATCH_TRACES = 1000
MAX_BATCH_BYTES = 5 * 1024 * 1024
#: Producers' clocks drift; a trace stamped further ahead than this is a bug on their side.
MAX_FUTURE_MS = 15 * 60 * 1000

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(slots=True)
class TraceResult:
    index: int
    trace_id: str | None
    status: Status
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "trace_id": self.trace_id, "status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class PreparedBatch:
    rows: list[TraceRow]
    results: list[TraceResult]
    #: index into ``results`` for each row, so the write's outcome can be reported per trace
    row_results: list[int]

    def without(self, reason_for: Callable[[TraceRow], str | None]) -> PreparedBatch:
        """Reject the rows ``reason_for`` has a reason against (e.g. their tracker is disabled)."""
        rows: list[TraceRow] = []
        row_results: list[int] = []
        for row, index in zip(self.rows, self.row_results, strict=True):
            reason = reason_for(row)
            if reason is None:
                rows.append(row)
                row_results.append(index)
            else:
                self.results[index].status = "rejected"
                self.results[index].reason = reason
        return PreparedBatch(rows, self.results, row_results)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_batch(raw: bytes) -> list[Any]:
    """The ``traces`` array of an ingest body, or a clear 400."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("traces"), list):
        raise MalformedJSON('request body must be a JSON object {"traces": [...]}')
    items: list[Any] = doc["traces"]
    if not items:
        raise BadRequest("traces must hold at least one trace")
    if len(items) > MAX_BATCH_TRACES:
        raise BadRequest(f"a batch holds at most {MAX_BATCH_TRACES} traces, this one has {len(items)}")
    return items


def _given_id(item: Any) -> str | None:
    """The trace id a rejected item named, if it named one, so the producer can match the verdict."""
    given = item.get("trace_id") if isinstance(item, dict) else None
    return given if isinstance(given, str) else None


def _reference(item: Any, *, project_id: str, now: int, oldest: int) -> dict[str, Any] | str:
    """The stored body of ``item``, or the reason it is rejected: the full pydantic model, every message."""
    try:
        if not isinstance(item, dict):
            raise ValueError("each trace must be a JSON object")
        trace = TraceIn.model_validate(item)
        if trace.time <= oldest:
            raise ValueError("time is older than the retention window")
        if trace.time > now + MAX_FUTURE_MS:
            raise ValueError("time is more than 15 minutes in the future")
        return normalise(trace, project_id=project_id, record_time=now)
    except ValidationError as exc:
        return describe(exc)
    except ValueError as exc:
        return str(exc)


_ROW_FIELDS = (
    "project_id",
    "trace_id",
    "kind",
    "time",
    "record_time",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_id",
    "resource_name",
    "user_name",
    "access_key_id",
    "tracker_name",
    "enterprise_project_id",
    "body",
    "source_ip",
    "code",
    "request_id",
)
_new_row = TraceRow.__new__
_row_setters = tuple(TraceRow.__dict__[name].__set__ for name in _ROW_FIELDS)
_NUL = re.compile(rb"\\u0000")  # how orjson writes a NUL character


def _fast_row(
    project_id: str,
    body: dict[str, Any],
    encoded: bytes,
    s: tuple[Callable[[TraceRow, Any], None], ...] = _row_setters,
) -> TraceRow:
    """The row of an accepted body; the same object ``TraceRow(...)`` makes, in a third of the time.

    A frozen dataclass's ``__init__`` pays ``object.__setattr__`` per field: about 5 µs for these 20 on the
    benchmark machine, as much as all the rest of preparing a trace but validation. Setting the slots through
    their descriptors gives an equal object (``tests/traces/test_fast_path.py``). A loop over the setters
    would cost most of the gain back, hence a line per field. If TraceRow's fields ever differ from
    ``_ROW_FIELDS``, :data:`make_row` is the plain constructor instead.
    """
    get = body.get
    user = get("user")
    row = _new_row(TraceRow)
    s[0](row, project_id)
    s[1](row, body["trace_id"])
    s[2](row, body["event_type"])
    s[3](row, body["time"])
    s[4](row, body["record_time"])
    s[5](row, body["trace_name"])
    s[6](row, body["trace_rating"])
    s[7](row, body["trace_type"])
    s[8](row, body["service_type"])
    s[9](row, get("resource_type"))
    s[10](row, get("resource_id"))
    s[11](row, get("resource_name"))
    s[12](row, user_name(body) if user else None)
    s[13](row, user.get("access_key_id") if user else None)
    s[14](row, body["tracker_name"])
    s[15](row, get("enterprise_project_id"))
    s[16](row, encoded)
    s[17](row, get("source_ip"))
    s[18](row, get("code"))
    s[19](row, get("request_id"))
    return row


def _plain_row(project_id: str, body: dict[str, Any], encoded: bytes) -> TraceRow:
    return TraceRow(
        project_id=project_id,
        trace_id=body["trace_id"],
        kind=body["event_type"],
        time=body["time"],
        record_time=body["record_time"],
        trace_name=body["trace_name"],
        trace_rating=body["trace_rating"],
        trace_type=body["trace_type"],
        service_type=body["service_type"],
        resource_type=body.get("resource_type"),
        resource_id=body.get("resource_id"),
        resource_name=body.get("resource_name"),
        user_name=user_name(body),
        access_key_id=access_key_id(body),
        tracker_name=body["tracker_name"],
        enterprise_project_id=body.get("enterprise_project_id"),
        body=encoded,
        source_ip=body.get("source_ip"),
        code=body.get("code"),
        request_id=body.get("request_id"),
    )


make_row = _fast_row if tuple(f.name for f in fields(TraceRow)) == _ROW_FIELDS else _plain_row


def prepare(items: Sequence[Any], *, project_id: str, now: int, retention_ms: int) -> PreparedBatch:
    """Validate and normalise a batch: the rows to append and a verdict for every item.

    Each item first tries :func:`fast_normalise`; whatever that does not vouch for takes the reference way
    (TraceIn), which decides and words the verdict exactly as ingest always has.

    NUL characters are looked for once in the whole batch (one regex over the joined bodies costs a third
    of a search per trace). Only if there is one is the batch prepared again, trace by trace, so that a
    trace rejected for it is rejected before it can take its trace id from a later one (``duplicate``).
    """
    batch, encodings = _prepare(items, project_id, now, retention_ms, nul_per_trace=False)
    if _NUL.search(b"".join(encodings)) is None:
        return batch
    return _prepare(items, project_id, now, retention_ms, nul_per_trace=True)[0]


def _prepare(
    items: Sequence[Any], project_id: str, now: int, retention_ms: int, *, nul_per_trace: bool
) -> tuple[PreparedBatch, list[bytes]]:
    results: list[TraceResult] = []
    rows: list[TraceRow] = []
    row_results: list[int] = []
    encodings: list[bytes] = []
    seen: set[str] = set()
    oldest = now - retention_ms
    newest = now + MAX_FUTURE_MS
    dumps = orjson.dumps
    nulls = False
    for index, item in enumerate(items):
        body = None
        if type(item) is dict:
            body = fast_normalise(item, project_id, now, nulls=nulls)
            if body is None and not nulls:
                body = fast_normalise(item, project_id, now, nulls=True)
                nulls = body is not None  # this producer writes nulls: drop them first from now on
        if body is None or not oldest < body["time"] <= newest:
            outcome = _reference(item, project_id=project_id, now=now, oldest=oldest)
            if isinstance(outcome, str):
                results.append(TraceResult(index, _given_id(item), "rejected", outcome))
                continue
            body = outcome
        try:
            encoded = dumps(body)
        except orjson.JSONEncodeError as exc:  # only from Python callers: a lone surrogate, say
            reason = f"a field cannot be stored as JSON: {exc}"
            results.append(TraceResult(index, _given_id(item), "rejected", reason))
            continue
        if nul_per_trace and b"\\u0000" in encoded and _has_nul(body):  # the byte scan: a cheap pre-check
            # PostgreSQL cannot store NUL in text; refusing it here keeps one bad trace from failing a
            # whole (group-committed) transaction, and keeps both backends accepting the same traces.
            results.append(
                TraceResult(index, _given_id(item), "rejected", "a field contains a NUL character")
            )
            continue
        encodings.append(encoded)
        trace_id = body["trace_id"]
        if trace_id in seen:
            results.append(TraceResult(index, trace_id, "duplicate"))
            continue
        seen.add(trace_id)
        row_results.append(len(results))
        results.append(TraceResult(index, trace_id, "accepted"))
        rows.append(make_row(project_id, body, encoded))
    return PreparedBatch(rows, results, row_results), encodings


def settle(batch: PreparedBatch, inserted: set[str]) -> list[TraceResult]:
    """Mark rows the database already had (a retried batch) as duplicates."""
    for row, result_index in zip(batch.rows, batch.row_results, strict=True):
        if row.trace_id not in inserted:
            batch.results[result_index].status = "duplicate"
    return batch.results


def summary(results: Sequence[TraceResult]) -> dict[str, Any]:
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    return {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": [r.as_dict() for r in results],
    }

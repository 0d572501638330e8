"""Ingest: validate a batch, normalise each trace, append the good ones durably, report per trace.

One bad trace never drops the good ones: every trace gets its own verdict (accepted, duplicate, rejected
with the reason). The answer is produced only after the write transaction committed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from opencts.errors import BadRequest, MalformedJSON
from opencts.store.trace_log import TraceRow
from opencts.traces.fast_path import fast_normalise
from opencts.traces.model import TraceIn, normalise, user_name
from opencts.traces.submitter import Submitter
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


_NUL = re.compile(rb"\\u0000")  # how orjson writes a NUL character
_new_row = tuple.__new__


def make_row(project_id: str, body: dict[str, Any], encoded: bytes, submitter: str | None = None) -> TraceRow:
    """The row of an accepted body, built as the tuple it is (TraceRow's own ``__new__`` is Python code).

    ``submitter`` is the label of :class:`Submitter` whose record is in ``body``.
    """
    get = body.get
    user = get("user")
    return _new_row(
        TraceRow,
        (
            project_id,
            body["trace_id"],
            body["event_type"],
            body["time"],
            body["record_time"],
            body["trace_name"],
            body["trace_rating"],
            body["trace_type"],
            body["service_type"],
            get("resource_type"),
            get("resource_id"),
            get("resource_name"),
            user_name(body) if user else None,
            user.get("access_key_id") if user else None,
            body["tracker_name"],
            get("enterprise_project_id"),
            encoded,
            get("source_ip"),
            get("code"),
            get("request_id"),
            submitter,
        ),
    )


def prepare(
    items: Sequence[Any], *, project_id: str, now: int, retention_ms: int, submitter: Submitter | None = None
) -> PreparedBatch:
    """Validate and normalise a batch: the rows to append and a verdict for every item.

    Every stored body gets ``submitter``'s record as its ``submitter`` field; a ``submitter`` an item
    brings itself is never stored (TraceIn drops it), so only the server says who submitted a trace.

    Each item first tries :func:`fast_normalise`; whatever that does not vouch for takes the reference way
    (TraceIn), which decides and words the verdict exactly as ingest always has.

    NUL characters are looked for once in the whole batch (one regex over the joined bodies costs a third
    of a search per trace). Only if there is one is the batch prepared again, trace by trace, so that a
    trace rejected for it is rejected before it can take its trace id from a later one (``duplicate``).
    """
    batch, encodings = _prepare(items, project_id, now, retention_ms, submitter, nul_per_trace=False)
    if _NUL.search(b"".join(encodings)) is None:
        return batch
    return _prepare(items, project_id, now, retention_ms, submitter, nul_per_trace=True)[0]


def _prepare(
    items: Sequence[Any],
    project_id: str,
    now: int,
    retention_ms: int,
    submitter: Submitter | None,
    *,
    nul_per_trace: bool,
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
    record, label = (submitter.record, submitter.label) if submitter is not None else (None, None)
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
        if record is not None:
            body["submitter"] = record
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
        rows.append(make_row(project_id, body, encoded, label))
    return PreparedBatch(rows, results, row_results), encodings


def settle(batch: PreparedBatch, inserted: set[str]) -> list[TraceResult]:
    """Mark rows the database already had (a retried batch) as duplicates."""
    for row, result_index in zip(batch.rows, batch.row_results, strict=True):
        if row.trace_id not in inserted:
            batch.results[result_index].status = "duplicate"
    return batch.results


def summary(results: Sequence[TraceResult]) -> dict[str, Any]:
    """The ingest answer; one pass, and the three-key dict written out for the usual verdicts."""
    accepted = duplicates = 0
    listed: list[dict[str, Any]] = []
    add = listed.append
    for r in results:
        if r.reason is None:
            add({"index": r.index, "trace_id": r.trace_id, "status": r.status})
        else:
            add(r.as_dict())
        if r.status == "accepted":
            accepted += 1
        elif r.status == "duplicate":
            duplicates += 1
    return {
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": len(listed) - accepted - duplicates,
        "results": listed,
    }

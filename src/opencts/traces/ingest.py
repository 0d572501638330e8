"""Ingest: validate a batch, normalise each trace, append the good ones durably, report per trace.

One bad trace never drops the good ones: every trace gets its own verdict (accepted, duplicate, rejected
with the reason). The answer is produced only after the write transaction committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from opencts.errors import BadRequest, MalformedJSON
from opencts.store.trace_log import TraceRow
from opencts.traces.model import TraceIn, access_key_id, normalise, user_name
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


def prepare(items: Sequence[Any], *, project_id: str, now: int, retention_ms: int) -> PreparedBatch:
    results: list[TraceResult] = []
    rows: list[TraceRow] = []
    row_results: list[int] = []
    seen: set[str] = set()
    oldest = now - retention_ms
    for index, item in enumerate(items):
        given_id = item.get("trace_id") if isinstance(item, dict) else None
        given_id = given_id if isinstance(given_id, str) else None
        try:
            if not isinstance(item, dict):
                raise ValueError("each trace must be a JSON object")
            trace = TraceIn.model_validate(item)
            if trace.time <= oldest:
                raise ValueError("time is older than the retention window")
            if trace.time > now + MAX_FUTURE_MS:
                raise ValueError("time is more than 15 minutes in the future")
            body = normalise(trace, project_id=project_id, record_time=now)
        except ValidationError as exc:
            results.append(TraceResult(index, given_id, "rejected", describe(exc)))
            continue
        except ValueError as exc:
            results.append(TraceResult(index, given_id, "rejected", str(exc)))
            continue
        encoded = orjson.dumps(body)
        if b"\\u0000" in encoded and _has_nul(body):  # the byte scan is the cheap pre-check
            # PostgreSQL cannot store NUL in text; refusing it here keeps one bad trace from failing a
            # whole (group-committed) transaction, and keeps both backends accepting the same traces.
            results.append(TraceResult(index, given_id, "rejected", "a field contains a NUL character"))
            continue
        trace_id = body["trace_id"]
        if trace_id in seen:
            results.append(TraceResult(index, trace_id, "duplicate"))
            continue
        seen.add(trace_id)
        row_results.append(len(results))
        results.append(TraceResult(index, trace_id, "accepted"))
        rows.append(
            TraceRow(
                project_id=project_id,
                trace_id=trace_id,
                kind=body["event_type"],
                time=trace.time,
                record_time=now,
                trace_name=trace.trace_name,
                trace_rating=trace.trace_rating,
                trace_type=trace.trace_type,
                service_type=trace.service_type,
                resource_type=trace.resource_type,
                resource_id=trace.resource_id,
                resource_name=trace.resource_name,
                user_name=user_name(body),
                access_key_id=access_key_id(body),
                tracker_name=body["tracker_name"],
                enterprise_project_id=trace.enterprise_project_id,
                body=encoded,
                source_ip=trace.source_ip,
                code=body.get("code"),
                request_id=trace.request_id,
            )
        )
    return PreparedBatch(rows, results, row_results)


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

"""The invocation queue and record: every invocation (sync, async, trigger) is a row of
``function_invocations``.

Life of a queued row (async and trigger): ``WAIT`` (due at ``next_attempt_at``) → claimed: ``RUNNING``
with a fresh ``claim`` and ``next_attempt_at`` = the end of its lease (the function's timeout plus a
margin) → ``SUCCESS``, or back to ``WAIT`` with a backoff while attempts remain
(``OPENCTS_FUNCTIONS_RETRIES`` retries after the first), or ``FAIL``: a dead letter, kept with its event,
listed by the API and the CLI, and re-driven on request (back to ``WAIT`` with fresh attempts). A row
still ``RUNNING`` after its lease (the node died mid-invocation) is due again: that is how a restart or
another node resumes it. ``DISCARD`` is an async invocation cancelled before it ran. Claims go through
the SQLite writer lane (one writer) or, on PostgreSQL, ``FOR UPDATE SKIP LOCKED``, so nodes sharing a
database never run a row twice at once.

Guarantee: at least once per row. The window for a second run is a crash, or a lease that ran out, after
the handler started and before its result was recorded; the handler sees the same request id again.

A synchronous invocation is written once, when it has finished, for its log and the statistics.
Finished rows (and their logs) are pruned after ``OPENCTS_FUNCTIONS_KEEP_DAYS``; dead letters stay until
re-driven or their function is deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from opencts.clock import DAY_MS
from opencts.errors import BadRequest, NotFound
from opencts.functions.runtime import InvocationResult
from opencts.store.tables import function_invocations as inv
from opencts.store.tables import functions

WAIT, RUNNING, SUCCESS, FAIL, DISCARD = "WAIT", "RUNNING", "SUCCESS", "FAIL", "DISCARD"
QUEUED = (WAIT, RUNNING)
FINISHED = (SUCCESS, FAIL, DISCARD)

#: ``error_code`` of a finished invocation: what went wrong, as list_async_invocations reports it
ERROR_CODES = {"success": 0, "error": 1, "timeout": 2, "crashed": 3, "oom": 4}
REJECTED = 429  # refused: the function's concurrency and queue were full (a sync call's 429)
#: log kept per invocation row; the runtime caps what it captures, this caps what is stored
MAX_STORED_LOG = 256 * 1024
MAX_STORED_RESULT = 1024 * 1024


def new_request_id() -> str:
    return str(uuid.uuid4())


def enqueue(
    conn: Connection,
    *,
    project_id: str,
    func_id: str,
    source: str,
    event: bytes,
    now: int,
    trigger_id: str | None = None,
    trace_id: str | None = None,
    request_id: str | None = None,
) -> str:
    """Queue an async or trigger invocation inside the caller's transaction; returns its request id."""
    request_id = request_id or new_request_id()
    conn.execute(
        insert(inv).values(
            request_id=request_id,
            project_id=project_id,
            func_id=func_id,
            source=source,
            status=WAIT,
            event=event,
            trigger_id=trigger_id,
            trace_id=trace_id,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return request_id


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed row: enough to run it and to record its result under the claim."""

    id: int
    request_id: str
    func_id: str
    project_id: str
    claim: str
    attempt: int
    event: bytes


def claim_due(conn: Connection, *, now: int, limit: int, margin_ms: int) -> list[Job]:
    """Take up to ``limit`` due rows (oldest due first), each leased for its function's timeout plus
    ``margin_ms``: a lease shorter than the run would let another node start it a second time."""
    if limit <= 0:
        return []
    due = (inv.c.status.in_(QUEUED)) & (inv.c.next_attempt_at <= now)
    ids = list(
        conn.execute(
            select(inv.c.id)
            .where(due)
            .order_by(inv.c.next_attempt_at, inv.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return []
    rows = conn.execute(
        select(
            inv.c.id,
            inv.c.request_id,
            inv.c.func_id,
            inv.c.project_id,
            inv.c.attempts,
            inv.c.event,
            functions.c.timeout,
        )
        .join(functions, functions.c.func_id == inv.c.func_id)
        .where(inv.c.id.in_(ids))
        .order_by(inv.c.next_attempt_at, inv.c.id)
    ).all()
    jobs = []
    for r in rows:
        claim = uuid.uuid4().hex
        conn.execute(
            update(inv)
            .where(inv.c.id == r.id)
            .values(
                status=RUNNING,
                claim=claim,
                attempts=inv.c.attempts + 1,
                next_attempt_at=now + r.timeout * 1000 + margin_ms,
                start_time=now,
            )
        )
        jobs.append(
            Job(r.id, r.request_id, r.func_id, r.project_id, claim, r.attempts + 1, bytes(r.event or b""))
        )
    return jobs


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished attempt: the runtime's result, or ``busy`` (not run: the pool refused, try soon)."""

    job: Job
    result: InvocationResult | None
    busy: bool = False


def _finished_values(result: InvocationResult, now: int) -> dict[str, Any]:
    ok = result.status == "success"
    return {
        "status": SUCCESS if ok else FAIL,
        "claim": None,
        "result": result.result[:MAX_STORED_RESULT],
        "log": result.log[-MAX_STORED_LOG:],
        "error_code": ERROR_CODES.get(result.status, 1),
        "error_message": None if ok else result.error_message[:2000],
        "duration_ms": round(result.duration_ms),
        "end_time": now,
    }


def complete(
    conn: Connection, outcomes: Sequence[Outcome], *, now: int, retries: int, backoff_ms: int
) -> None:
    """Record attempts under their claim: success, a retry later, or a dead letter (``FAIL``)."""
    for o in outcomes:
        fence = (inv.c.id == o.job.id) & (inv.c.claim == o.job.claim) & (inv.c.status == RUNNING)
        if o.busy or o.result is None:
            # not run at all: it goes back without spending an attempt
            conn.execute(
                update(inv)
                .where(fence)
                .values(status=WAIT, claim=None, attempts=inv.c.attempts - 1, next_attempt_at=now + 200)
            )
            continue
        values = _finished_values(o.result, now)
        if values["status"] == FAIL and o.job.attempt <= retries:
            values |= {
                "status": WAIT,
                "next_attempt_at": now + backoff_ms * 2 ** (o.job.attempt - 1),
                "end_time": None,
            }
        elif values["status"] == SUCCESS:
            values["event"] = None  # delivered: the event need not be kept
        conn.execute(update(inv).where(fence).values(**values))


def record_sync(
    conn: Connection,
    *,
    project_id: str,
    func_id: str,
    result: InvocationResult,
    started: int,
    now: int,
) -> None:
    """A synchronous invocation, written once it has finished (its log and the statistics need it)."""
    conn.execute(
        insert(inv).values(
            request_id=result.request_id,
            project_id=project_id,
            func_id=func_id,
            source="sync",
            attempts=1,
            next_attempt_at=now,
            created_at=started,
            start_time=started,
            **_finished_values(result, now),
        )
    )


def record_rejected(conn: Connection, *, project_id: str, func_id: str, request_id: str, now: int) -> None:
    """A synchronous call refused because the function was saturated: counted as ``reject_count``."""
    conn.execute(
        insert(inv).values(
            request_id=request_id,
            project_id=project_id,
            func_id=func_id,
            source="sync",
            status=FAIL,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            start_time=now,
            end_time=now,
            error_code=REJECTED,
            error_message="too many invocations of this function at once",
            duration_ms=0,
        )
    )


def next_due(conn: Connection) -> int | None:
    value = conn.execute(select(func.min(inv.c.next_attempt_at)).where(inv.c.status.in_(QUEUED))).scalar()
    return int(value) if value is not None else None


def prune(conn: Connection, *, before: int, limit: int) -> int:
    """Delete up to ``limit`` finished rows (not dead letters) that ended before ``before``."""
    ids = list(
        conn.execute(
            select(inv.c.id)
            .where(inv.c.status.in_((SUCCESS, DISCARD)) | ((inv.c.status == FAIL) & (inv.c.source == "sync")))
            .where(inv.c.end_time < before)
            .order_by(inv.c.id)
            .limit(limit)
        ).scalars()
    )
    if ids:
        conn.execute(delete(inv).where(inv.c.id.in_(ids)))
    return len(ids)


def keep_ms(days: int) -> int:
    return days * DAY_MS


# --- reading ------------------------------------------------------------------------------------------


def list_invocations(
    conn: Connection,
    *,
    project_id: str,
    func_id: str,
    sources: tuple[str, ...] = ("async", "trigger"),
    request_id: str | None = None,
    status: str | None = None,
    begin: int | None = None,
    end: int | None = None,
    marker: int = 0,
    limit: int = 100,
) -> tuple[list[Any], int, int]:
    """Rows newest first, as (rows, next_marker, count); ``marker`` is an offset, as in FunctionGraph."""
    where = [inv.c.project_id == project_id, inv.c.func_id == func_id, inv.c.source.in_(sources)]
    if request_id:
        where.append(inv.c.request_id == request_id)
    if status:
        where.append(inv.c.status == status)
    if begin is not None:
        where.append(inv.c.created_at >= begin)
    if end is not None:
        where.append(inv.c.created_at <= end)
    total = int(conn.execute(select(func.count()).select_from(inv).where(*where)).scalar_one())
    rows = conn.execute(
        select(
            inv.c.request_id,
            inv.c.source,
            inv.c.status,
            inv.c.error_code,
            inv.c.error_message,
            inv.c.attempts,
            inv.c.trigger_id,
            inv.c.trace_id,
            inv.c.duration_ms,
            inv.c.created_at,
            inv.c.start_time,
            inv.c.end_time,
        )
        .where(*where)
        .order_by(inv.c.created_at.desc(), inv.c.id.desc())
        .offset(marker)
        .limit(limit)
    ).all()
    return list(rows), marker + len(rows), total


def get_invocation(conn: Connection, *, project_id: str, func_id: str, request_id: str) -> Any:
    row = conn.execute(
        select(inv).where(
            inv.c.project_id == project_id, inv.c.func_id == func_id, inv.c.request_id == request_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no invocation {request_id[:64]} of this function")
    return row


def cancel(conn: Connection, *, project_id: str, func_id: str, request_id: str) -> None:
    """CancelAsyncInvocation: a queued invocation that has not started is discarded."""
    row = get_invocation(conn, project_id=project_id, func_id=func_id, request_id=request_id)
    if row.source == "sync":
        raise BadRequest("a synchronous invocation cannot be cancelled")
    if row.status != WAIT or row.attempts:
        raise BadRequest(f"invocation {request_id} is {row.status} and has started; only waiting ones can be")
    conn.execute(
        update(inv).where(inv.c.id == row.id, inv.c.status == WAIT).values(status=DISCARD, event=None)
    )


def redrive(
    conn: Connection, *, project_id: str, func_id: str, request_ids: list[str] | None, now: int
) -> int:
    """Put dead letters (``FAIL`` async/trigger rows) back in the queue with fresh attempts."""
    where = [
        inv.c.project_id == project_id,
        inv.c.func_id == func_id,
        inv.c.status == FAIL,
        inv.c.source != "sync",
        inv.c.event.is_not(None),
    ]
    if request_ids is not None:
        where.append(inv.c.request_id.in_(request_ids))
    changed = conn.execute(
        update(inv)
        .where(*where)
        .values(status=WAIT, attempts=0, next_attempt_at=now, claim=None, end_time=None, error_code=None)
    ).rowcount
    return int(changed or 0)


def dead_letter_count(conn: Connection, *, project_id: str, func_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(inv)
        .where(
            inv.c.project_id == project_id,
            inv.c.func_id == func_id,
            inv.c.status == FAIL,
            inv.c.source != "sync",
        )
    )
    return int(conn.execute(stmt).scalar_one())


@dataclass(slots=True)
class Bucket:
    """One step of the statistics: finished invocations by end time (rejections apart)."""

    start: int
    count: int = 0
    fail_count: int = 0
    reject_count: int = 0
    function_errors: int = 0
    system_errors: int = 0
    total_duration: int = 0
    max_duration: int = 0
    min_duration: int | None = None

    def add(self, status: str, code: int | None, duration: int) -> None:
        if code == REJECTED:
            self.reject_count += 1
            return
        self.count += 1
        self.total_duration += duration
        self.max_duration = max(self.max_duration, duration)
        self.min_duration = duration if self.min_duration is None else min(self.min_duration, duration)
        if status == FAIL:
            self.fail_count += 1
            if code == ERROR_CODES["error"]:
                self.function_errors += 1
            else:
                self.system_errors += 1


def statistics(
    conn: Connection, *, project_id: str, func_id: str, since: int, until: int, step_ms: int
) -> list[Bucket]:
    """Finished invocations of the window, grouped in ``step_ms`` buckets by end time (every bucket)."""
    rows = conn.execute(
        select(inv.c.end_time, inv.c.status, inv.c.error_code, inv.c.duration_ms).where(
            inv.c.project_id == project_id,
            inv.c.func_id == func_id,
            inv.c.status.in_((SUCCESS, FAIL)),
            inv.c.end_time >= since,
            inv.c.end_time < until,
        )
    ).all()
    buckets = [Bucket(start) for start in range(since, until, step_ms)] or [Bucket(since)]
    for end_time, status, code, duration in rows:
        buckets[min(len(buckets) - 1, (end_time - since) // step_ms)].add(status, code, int(duration or 0))
    return buckets

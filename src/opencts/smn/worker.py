"""The outbox worker: sends what ``smn_deliveries`` says is due, and survives restarts.

Life of a row: ``pending`` (due at ``next_attempt_at``) → claimed: ``delivering`` with a fresh ``claim``
id and ``next_attempt_at`` = the end of its lease → ``delivered``, or back to ``pending`` with an
exponential backoff (base, 2×base, 4×base … capped, ±20 % jitter), or ``dead`` once the row's
``expires_at`` (the message's time_to_live) has passed, or at once when the failure is permanent. A row
still ``delivering`` after its lease (the process died mid-send) is due again: that is how a restart
resumes. Claims go through the SQLite writer lane (one writer, so one claimant) or, on PostgreSQL,
``FOR UPDATE SKIP LOCKED``, so several instances share one outbox without sending a row twice.

Guarantee: at least once per (message, subscription), and never again once ``delivered`` is recorded.
The unique ``(message_id, subscription_urn)`` key means a message is queued once per subscriber. The one
window for a duplicate is a crash (or lease expiry) after the peer accepted a message but before
``delivered`` was written; the resend carries the same ``message_id`` (``X-Smn-Message-Id``, the email
``Message-ID``) so a receiver can drop it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, delete, exists, func, select, update

from opencts.clock import DAY_MS, now_ms
from opencts.metrics.instruments import SMN_ATTEMPTS
from opencts.smn.statuses import CONFIRMED, DEAD, DELIVERED, DELIVERING, PENDING, UNCONFIRMED
from opencts.store import Database
from opencts.store.tables import smn_deliveries, smn_messages, smn_subscriptions, smn_topics
from opencts.work_queue import PRUNE_BATCH, QueueWorker

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """A send did not go through. ``permanent`` failures (a refused endpoint) go dead at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Job:
    """One claimed row with everything a channel needs to render and send it."""

    id: int
    claim: str
    attempt: int
    message_id: str
    subscription_urn: str
    protocol: str
    endpoint: str
    kind: str  # "notification" | "confirmation"
    topic_urn: str
    topic_name: str
    display_name: str
    subject: str | None
    message: str | None
    message_structure: str | None
    created_at: int
    extension: dict[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, job: Job) -> None:
        """Deliver ``job`` or raise :class:`DeliveryFailed` (any other exception counts as a retry)."""
        ...


@dataclass(frozen=True)
class Outcome:
    id: int
    claim: str
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 1.0
    max_seconds: float = 60.0
    jitter: float = 0.2

    def delay_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th failed attempt."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return int(min(delay, self.max_seconds) * 1000)


def _due(now: int) -> Any:
    return (smn_deliveries.c.status.in_((PENDING, DELIVERING))) & (smn_deliveries.c.next_attempt_at <= now)


def claim_due(conn: Connection, *, now: int, limit: int, lease_ms: int) -> list[Job]:
    """Take up to ``limit`` due rows; rows that can no longer be sent go dead here instead."""
    if limit <= 0:
        return []
    ids = list(
        conn.execute(
            select(smn_deliveries.c.id)
            .where(_due(now))
            .order_by(smn_deliveries.c.next_attempt_at, smn_deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return []
    d, m, s, t = smn_deliveries, smn_messages, smn_subscriptions, smn_topics
    rows = conn.execute(
        select(
            d.c.id,
            d.c.attempts,
            d.c.expires_at,
            d.c.message_id,
            d.c.subscription_urn,
            d.c.protocol,
            d.c.endpoint,
            m.c.kind,
            m.c.topic_urn,
            m.c.subject,
            m.c.message,
            m.c.message_structure,
            m.c.created_at,
            s.c.status.label("sub_status"),
            s.c.extension,
            t.c.name.label("topic_name"),
            t.c.display_name,
        )
        .join(m, m.c.message_id == d.c.message_id)
        .join(s, s.c.subscription_urn == d.c.subscription_urn)
        .join(t, t.c.topic_urn == m.c.topic_urn)
        .where(d.c.id.in_(ids))
        .order_by(d.c.next_attempt_at, d.c.id)
    ).all()
    jobs = []
    for r in rows:
        wanted = UNCONFIRMED if r.kind == "confirmation" else CONFIRMED
        if now >= r.expires_at:
            _finish(conn, r.id, None, DEAD, now, "time_to_live ended before the message could be delivered")
            continue
        if r.sub_status != wanted:
            why = "confirmed already" if r.sub_status == CONFIRMED else "no longer active (unsubscribed)"
            _finish(conn, r.id, None, DEAD, now, f"not sent: the subscription is {why}")
            continue
        claim = uuid.uuid4().hex
        conn.execute(
            update(d)
            .where(d.c.id == r.id)
            .values(status=DELIVERING, claim=claim, attempts=d.c.attempts + 1, next_attempt_at=now + lease_ms)
        )
        jobs.append(
            Job(
                id=r.id,
                claim=claim,
                attempt=r.attempts + 1,
                message_id=r.message_id,
                subscription_urn=r.subscription_urn,
                protocol=r.protocol,
                endpoint=r.endpoint,
                kind=r.kind,
                topic_urn=r.topic_urn,
                topic_name=r.topic_name,
                display_name=r.display_name,
                subject=r.subject,
                message=r.message,
                message_structure=r.message_structure,
                created_at=r.created_at,
                extension=orjson.loads(r.extension) if r.extension else {},
            )
        )
    return jobs


def _finish(
    conn: Connection, row_id: int, claim: str | None, status: str, now: int, error: str | None
) -> bool:
    stmt = update(smn_deliveries).where(smn_deliveries.c.id == row_id)
    if claim is not None:
        # fencing: only the attempt that holds the lease may record its result
        stmt = stmt.where(smn_deliveries.c.claim == claim, smn_deliveries.c.status == DELIVERING)
    values: dict[str, Any] = {"status": status, "claim": None, "last_error": error}
    if status == DELIVERED:
        values["delivered_at"] = now
    return conn.execute(stmt.values(**values)).rowcount > 0


def complete(conn: Connection, outcomes: Sequence[Outcome], *, now: int, backoff: Backoff) -> None:
    """Record finished attempts: delivered, retried later, or dead."""
    for o in outcomes:
        if o.error is None:
            _finish(conn, o.id, o.claim, DELIVERED, now, None)
            continue
        row = conn.execute(
            select(smn_deliveries.c.attempts, smn_deliveries.c.expires_at).where(
                smn_deliveries.c.id == o.id, smn_deliveries.c.claim == o.claim
            )
        ).first()
        if row is None:
            continue  # the lease was lost to another attempt; that one records the result
        next_at = now + backoff.delay_ms(row.attempts)
        if o.permanent or next_at >= row.expires_at:
            reason = "refused" if o.permanent else f"gave up after {row.attempts} attempts"
            _finish(conn, o.id, o.claim, DEAD, now, f"{reason}: {o.error}"[:2000])
        else:
            conn.execute(
                update(smn_deliveries)
                .where(smn_deliveries.c.id == o.id, smn_deliveries.c.claim == o.claim)
                .values(status=PENDING, claim=None, next_attempt_at=next_at, last_error=o.error[:2000])
            )


def next_due(conn: Connection) -> int | None:
    value = conn.execute(
        select(func.min(smn_deliveries.c.next_attempt_at)).where(
            smn_deliveries.c.status.in_((PENDING, DELIVERING))
        )
    ).scalar()
    return int(value) if value is not None else None


def prune(conn: Connection, *, before: int, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` messages published before ``before`` whose deliveries have all finished
    (delivered or dead), with those deliveries; returns how many messages went.

    Without this the outbox grew with every alarm for ever. A message still pending or in flight for any
    subscriber stays, however old: a manual retry of a dead letter extends its life only until then.
    """
    unfinished = exists().where(
        smn_deliveries.c.message_id == smn_messages.c.message_id,
        smn_deliveries.c.status.in_((PENDING, DELIVERING)),
    )
    old = (
        select(smn_messages.c.message_id)
        .where(smn_messages.c.created_at < before, ~unfinished)
        .order_by(smn_messages.c.created_at)
        .limit(limit)
    )
    ids = list(conn.execute(old).scalars())
    if ids:
        conn.execute(delete(smn_deliveries).where(smn_deliveries.c.message_id.in_(ids)))
        conn.execute(delete(smn_messages).where(smn_messages.c.message_id.in_(ids)))
    return len(ids)


class DeliveryWorker(QueueWorker[Job, Outcome]):
    """The outbox's worker (:class:`~opencts.work_queue.QueueWorker`): sends claimed rows; one per process.

    ``wake()`` right after a publish makes the first attempt start in milliseconds rather than at the
    next poll. Results of finished sends are written in the same transaction as the next claim, so a busy
    outbox costs one write per round, not one per message.
    """

    name = "smn-delivery"

    def __init__(
        self,
        db: Database,
        sender: Sender,
        *,
        concurrency: int = 16,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        send_timeout: float = 10.0,
        backoff: Backoff | None = None,
        keep_days: int = 7,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(db, concurrency=concurrency, poll_seconds=poll_seconds, clock=clock)
        self.sender = sender
        self.lease_ms = int(lease_seconds * 1000)
        self.send_timeout = send_timeout
        self.backoff = backoff or Backoff()
        #: finished messages older than this are pruned, about once an hour (see :func:`prune`)
        self.keep_ms = keep_days * DAY_MS

    def record(self, conn: Connection, results: list[Outcome], *, now: int) -> None:
        complete(conn, results, now=now, backoff=self.backoff)

    def claim(self, conn: Connection, *, now: int, limit: int) -> list[Job]:
        return claim_due(conn, now=now, limit=limit, lease_ms=self.lease_ms)

    def next_due(self, conn: Connection) -> int | None:
        return next_due(conn)

    def prune(self, conn: Connection, *, now: int) -> int:
        return prune(conn, before=now - self.keep_ms)

    async def attempt(self, job: Job) -> Outcome:
        error: str | None = None
        permanent = False
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.sender.send(job)
        except DeliveryFailed as exc:
            error, permanent = exc.reason, exc.permanent
        except TimeoutError:
            error = f"no answer within {self.send_timeout:g}s"
        except asyncio.CancelledError:
            raise  # shutting down: the lease brings the row back
        except Exception as exc:
            log.warning("delivery %s to %s failed unexpectedly: %r", job.id, job.protocol, exc)
            error = f"{type(exc).__name__}: {exc}"
        outcome = "delivered" if error is None else "refused" if permanent else "failed"
        SMN_ATTEMPTS.labels(job.protocol, outcome).inc()
        return Outcome(job.id, job.claim, error, permanent)

"""Verifications of a tracker's archive run by the server, and the record of each one's result.

``opencts verify`` checks an archive offline, which is what an auditor does; people who run OpenCTS also
want to know, without a shell, that the bucket still holds what the digests say, and to be told when it
does not. A verification here is a row: asked for by a user ("Verify now", ``POST …/archive/
verifications``) or queued on a schedule (``OPENCTS_ARCHIVE_VERIFY_INTERVAL``: one per validating tracker
and period, its id derived from both so several nodes queue it once), claimed under a lease like the other
durable queues (``work_queue.QueueWorker``), run by ``archive.verification_worker`` with the offline
verifier's own checks, and kept with its counts and its first findings.

A verification covers one tracker of one project: a bucket's ``CloudTraces/`` tree may also hold other
projects' trackers (of the same name, even), whose files are neither this project's to see nor its
failures, so only keys naming the project and the tracker are read. It runs up to the end of the hour of
the tracker's newest written digest: every hour up to there must have its digest (deleting the newest
digests is a gap), and files written since are not due for a digest yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, exists, func, insert, select, update

from opencts.clock import DAY_MS, HOUR_MS, MINUTE_MS
from opencts.errors import BadRequest, NotFound
from opencts.store.tables import archive_verifications as av
from opencts.store.tables import digests, trackers
from opencts.store.upsert import insert_ignore

QUEUED, RUNNING, VERIFIED, FAILED, ERROR = "queued", "running", "verified", "failed", "error"
PENDING = (QUEUED, RUNNING)
#: how long a claimed verification is its node's; past it another node takes the row again (a
#: verification only reads, so running one twice wastes work but changes nothing)
LEASE_MS = 30 * MINUTE_MS
#: claims of one verification before it is given up as an error (each ended with its node)
MAX_ATTEMPTS = 3
#: findings kept with a verification (failures first); the counts say how many there were in all
KEEP_FINDINGS = 200
#: finished verifications older than this are pruned, but never a tracker's newest one
KEEP_MS = 90 * DAY_MS
#: who asked, for the scheduled ones
SCHEDULE = "schedule"


@dataclass(frozen=True, slots=True)
class Verification:
    """One verification as the API and the console show it."""

    id: str
    tracker_name: str
    bucket_name: str
    proofs: bool
    requested_by: str
    status: str
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    digests: int | None = None
    files: int | None = None
    traces: int | None = None
    leaves: int | None = None
    failure_count: int | None = None
    note_count: int | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status not in PENDING

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("failure", True)]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tracker_name": self.tracker_name,
            "bucket_name": self.bucket_name,
            "proofs": self.proofs,
            "requested_by": self.requested_by,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "digests": self.digests,
            "files": self.files,
            "traces": self.traces,
            "leaves": self.leaves,
            "failure_count": self.failure_count,
            "note_count": self.note_count,
            "findings": self.findings,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed verification, with what the worker needs to run it."""

    id: str
    claim: str
    project_id: str
    tracker_name: str
    bucket_name: str
    proofs: bool
    #: the end of the hour of the tracker's newest written digest when the job was claimed
    end_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _view(row: Any) -> Verification:
    return Verification(
        id=row.id,
        tracker_name=row.tracker_name,
        bucket_name=row.bucket_name,
        proofs=bool(row.proofs),
        requested_by=row.requested_by,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        digests=row.digests,
        files=row.files,
        traces=row.traces,
        leaves=row.leaves,
        failure_count=row.failure_count,
        note_count=row.note_count,
        findings=orjson.loads(row.findings) if row.findings else [],
        error=row.error,
    )


# -- trackers that can be verified ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tracker:
    id: str
    project_id: str
    name: str
    bucket: str | None
    validate: bool


def _trackers(conn: Connection, project_id: str | None = None) -> list[_Tracker]:
    query = select(trackers.c.id, trackers.c.project_id, trackers.c.name, trackers.c.config)
    if project_id is not None:
        query = query.where(trackers.c.project_id == project_id)
    found = []
    for row in conn.execute(query):
        config = orjson.loads(row.config)
        bucket = (config.get("obs_info") or {}).get("bucket_name") or None
        found.append(
            _Tracker(row.id, row.project_id, row.name, bucket, bool(config.get("is_support_validate")))
        )
    return found


def _newest_digest_end(conn: Connection, tracker_id: str) -> int | None:
    """The end of the hour of the tracker's newest written digest (None: no digest written yet)."""
    hour = conn.execute(
        select(func.max(digests.c.hour_ms)).where(
            digests.c.tracker_id == tracker_id, digests.c.status == "written"
        )
    ).scalar()
    return None if hour is None else int(hour) + HOUR_MS


# -- asking ---------------------------------------------------------------------------------------------


def request(
    conn: Connection, *, project_id: str, tracker_name: str, proofs: bool, requested_by: str, now: int
) -> tuple[Verification, bool]:
    """Queue a verification of the project's tracker; (it, True), or the one already waiting or running for
    that tracker and (it, False), so asking twice does not queue the work twice."""
    tracker = next((t for t in _trackers(conn, project_id) if t.name == tracker_name), None)
    if tracker is None:
        raise NotFound(f"tracker {tracker_name} does not exist")
    if tracker.bucket is None:
        raise BadRequest(
            f"tracker {tracker_name} transfers to no bucket: configure its transfer (obs_info) first"
        )
    if _newest_digest_end(conn, tracker.id) is None:
        raise BadRequest(
            f"tracker {tracker_name} has no digest file yet, so there is nothing to verify against: turn on"
            " is_support_validate; the first digest is written when the hour it starts in is over"
        )
    waiting = conn.execute(
        select(av)
        .where(av.c.tracker_id == tracker.id, av.c.status.in_(PENDING))
        .order_by(av.c.created_at)
        .limit(1)
    ).first()
    if waiting is not None:
        return _view(waiting), False
    values = _new(
        tracker, verification_id=uuid.uuid4().hex, proofs=proofs, requested_by=requested_by, now=now
    )
    conn.execute(insert(av).values(**values))
    return get(conn, project_id, values["id"]), True


def _new(
    tracker: _Tracker, *, verification_id: str, proofs: bool, requested_by: str, now: int
) -> dict[str, Any]:
    return {
        "id": verification_id,
        "project_id": tracker.project_id,
        "tracker_id": tracker.id,
        "tracker_name": tracker.name,
        "bucket_name": tracker.bucket,
        "proofs": int(proofs),
        "requested_by": requested_by[:128],
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def schedule(conn: Connection, *, now: int, interval_ms: int) -> int:
    """Queue the period's verification of every validating tracker that has a digest; how many were new.

    The id is the tracker's and the period's, so every node of a cluster computes the same one and the
    insert happens once.
    """
    period = now // interval_ms
    queued = 0
    for tracker in _trackers(conn):
        if tracker.bucket is None or not tracker.validate or _newest_digest_end(conn, tracker.id) is None:
            continue
        values = _new(
            tracker,
            verification_id=f"{SCHEDULE}-{tracker.id}-{period}",
            proofs=False,
            requested_by=SCHEDULE,
            now=now,
        )
        queued += insert_ignore(conn, av, values, key=["id"])
    return queued


# -- reading --------------------------------------------------------------------------------------------


def get(conn: Connection, project_id: str, verification_id: str) -> Verification:
    row = conn.execute(select(av).where(av.c.id == verification_id, av.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"verification {verification_id} does not exist")
    return _view(row)


def listing(
    conn: Connection, project_id: str, *, tracker_name: str | None = None, limit: int = 20
) -> list[Verification]:
    """The project's verifications, newest first (of one tracker when named)."""
    query = select(av).where(av.c.project_id == project_id)
    if tracker_name is not None:
        query = query.where(av.c.tracker_name == tracker_name)
    rows = conn.execute(query.order_by(av.c.created_at.desc(), av.c.id.desc()).limit(limit))
    return [_view(r) for r in rows]


def latest(conn: Connection, project_id: str) -> dict[str, Verification]:
    """Each tracker's newest verification, by tracker name (what the Archive page's table shows)."""
    newest: dict[str, Verification] = {}
    for view in listing(conn, project_id, limit=1000):
        newest.setdefault(view.tracker_name, view)
    return newest


# -- the queue ------------------------------------------------------------------------------------------


def claim_due(conn: Connection, *, now: int, limit: int) -> list[Job]:
    """Lease up to ``limit`` due verifications (queued, or running under a lease that ran out)."""
    if limit <= 0:
        return []
    rows = conn.execute(
        select(
            av.c.id,
            av.c.project_id,
            av.c.tracker_id,
            av.c.tracker_name,
            av.c.bucket_name,
            av.c.proofs,
            av.c.attempts,
        )
        .where(av.c.status.in_(PENDING), av.c.next_attempt_at <= now)
        .order_by(av.c.next_attempt_at, av.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    jobs = []
    for row in rows:
        end = _newest_digest_end(conn, row.tracker_id)
        if row.attempts >= MAX_ATTEMPTS or end is None:
            why = (
                f"given up after {row.attempts} attempts: the node running it stopped each time"
                if end is not None
                else "the tracker has no written digest any more"
            )
            conn.execute(
                update(av)
                .where(av.c.id == row.id)
                .values(status=ERROR, claim=None, finished_at=now, error=why)
            )
            continue
        claim = uuid.uuid4().hex
        conn.execute(
            update(av)
            .where(av.c.id == row.id)
            .values(
                status=RUNNING,
                claim=claim,
                attempts=av.c.attempts + 1,
                started_at=now,
                next_attempt_at=now + LEASE_MS,
            )
        )
        jobs.append(
            Job(row.id, claim, row.project_id, row.tracker_name, row.bucket_name, bool(row.proofs), end)
        )
    return jobs


def complete(conn: Connection, outcomes: list[Outcome], *, now: int) -> None:
    """Record finished verifications, each only under the claim it ran with (a lease that ran out and was
    taken by another node leaves that node's result)."""
    for outcome in outcomes:
        conn.execute(
            update(av)
            .where(av.c.id == outcome.job.id, av.c.claim == outcome.job.claim)
            .values(
                status=outcome.status,
                claim=None,
                finished_at=now,
                findings=orjson.dumps(outcome.findings[:KEEP_FINDINGS]).decode()
                if outcome.findings
                else None,
                error=outcome.error,
                **outcome.counts,
            )
        )


def next_due(conn: Connection) -> int | None:
    value = conn.execute(select(func.min(av.c.next_attempt_at)).where(av.c.status.in_(PENDING))).scalar()
    return None if value is None else int(value)


def prune(conn: Connection, *, before: int, limit: int) -> int:
    """Delete up to ``limit`` finished verifications older than ``before`` that a newer one of the same
    tracker follows (a tracker's last result stays, however old)."""
    newer = av.alias("newer")
    ids = list(
        conn.execute(
            select(av.c.id)
            .where(
                av.c.status.not_in(PENDING),
                av.c.finished_at < before,
                exists().where(
                    and_(newer.c.tracker_id == av.c.tracker_id, newer.c.created_at > av.c.created_at)
                ),
            )
            .limit(limit)
        ).scalars()
    )
    if ids:
        conn.execute(delete(av).where(av.c.id.in_(ids)))
    return len(ids)

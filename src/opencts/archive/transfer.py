"""The transfer: trace files written to each tracker's bucket, every ``transfer_interval`` seconds.

Two steps, each safe to repeat and to run on several nodes at once:

1. **Plan** (:mod:`opencts.archive.planner`): one transaction decides which traces go into which file,
   names each file, and moves the ``transfer`` cursor by compare-and-set. A trace is planned once.
2. **Write** (:class:`TransferWorker`, a :class:`~opencts.work_queue.QueueWorker`): a planned file is a
   leased queue row. Any node claims it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), reads the bodies of
   exactly its log range for its tracker and service, encodes them (:mod:`opencts.archive.encoding`),
   PUTs the object and records its SHA-256 and size, only under the claim it ran with.

Why each trace lands in exactly one file: the plan is the only place a trace is assigned, and it happens
once (the CAS). Writing may repeat (a crash after the PUT, a lease that ran out), but the object key is
fixed in the plan and the write is fenced: the store creates an object only where none is
(:meth:`~opencts.archive.storage.ObjectStore.create`), so a repeat finds the first writer's object and
records its hash and size instead of replacing it. That matters for encrypted files, whose bytes differ on
every try (a fresh data key): a late writer can never swap the bytes under a hash already recorded.
A failing store (``noBucket``, ``bucketPolicyError``, a disabled key) leaves the file planned and due
again later; the tracker shows the failure; nothing is lost and the catch-up writes the same files.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from opencts.archive import encoding, envelope, planner, transfer_state
from opencts.archive.files import PLANNED, WRITTEN
from opencts.archive.layout import ROOT, Compress
from opencts.archive.storage import ObjectStore, StorageError
from opencts.clock import HOUR_MS, now_ms
from opencts.config import Settings
from opencts.kms.errors import KeyDisabled, KeyNotFound
from opencts.kms.service import KeyService
from opencts.store import Database, trace_log
from opencts.store.tables import trace_files, trackers
from opencts.work_queue import QueueWorker

log = logging.getLogger(__name__)

#: seals a file's content for (project_id, kms_id); raises :class:`SealError` when the key refuses
Sealer = Callable[[str, str, bytes], bytes]


class SealError(Exception):
    """The key cannot encrypt new files: ``detail`` is what the tracker shows (``kmsKeyDisabled``)."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


def sealer(keys: KeyService) -> Sealer:
    """Envelope encryption (``archive.envelope``) under a fresh data key of the tracker's KMS key."""

    def seal(project_id: str, kms_id: str, content: bytes) -> bytes:
        try:
            data_key = keys.data_key(project_id, kms_id)
        except KeyDisabled as exc:
            raise SealError("kmsKeyDisabled", str(exc)) from None
        except KeyNotFound as exc:
            raise SealError("kmsKeyNotFound", str(exc)) from None
        return envelope.seal(content, data_key)

    return seal


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    claim: str
    tracker_id: str
    project_id: str
    kind: str
    tracker_name: str
    service: str | None
    bucket: str
    object_key: str
    compress: Compress
    kms_id: str | None
    first_seq: int
    last_seq: int
    trace_count: int
    #: the tracker asks for its bucket to be created (``obs_info.is_obs_created``)
    create_bucket: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    id: int
    claim: str
    tracker_id: str
    sha256: str | None = None
    size: int = 0
    detail: str | None = None
    message: str = ""


def read_bodies(conn: Connection, jobs: list[Job]) -> dict[int, list[bytes]]:
    """The bodies of exactly each file's traces, in seq order, from one scan of the files' joint range.

    The files of one plan (one tracker, one stamp) interleave in the log, one per service folder: reading
    the range once and sorting rows into files costs one scan instead of one per file.
    """
    job = jobs[0]
    rows = trace_log.range_bodies(
        conn,
        first=min(j.first_seq for j in jobs),
        last=max(j.last_seq for j in jobs),
        project_id=job.project_id,
        kind=job.kind,
        tracker_name=job.tracker_name if job.kind == "data" else None,
    )
    by_service: dict[str | None, list[Job]] = {}
    for j in jobs:
        by_service.setdefault(j.service, []).append(j)
    out: dict[int, list[bytes]] = {j.id: [] for j in jobs}
    for seq, service, body in rows:
        for j in by_service.get(service, ()) or by_service.get(None, ()):
            if j.first_seq <= seq <= j.last_seq:
                out[j.id].append(body)
                break
    return out


def _job(r: Any, claim: str) -> Job:
    return Job(
        id=r.id,
        claim=claim,
        tracker_id=r.tracker_id,
        project_id=r.project_id,
        kind=r.kind,
        tracker_name=r.tracker_name,
        service=r.service,
        bucket=r.bucket,
        object_key=r.object_key,
        compress="json" if r.compress == "json" else "gzip",
        kms_id=r.kms_id,
        first_seq=r.first_seq,
        last_seq=r.last_seq,
        trace_count=r.trace_count,
        create_bucket=_create_wanted(r.config),
    )


def _create_wanted(config: str | None) -> bool:
    if config is None:
        return False
    return bool((orjson.loads(config).get("obs_info") or {}).get("is_obs_created"))


#: due rows looked at per claim: enough to fill the free slots with whole plans
_CLAIM_WINDOW = 512


class TransferWorker(QueueWorker[list[Job], list[Outcome]]):
    """Writes planned files: claim a plan's files, read them in one scan, encode and PUT each, record."""

    name = "transfer"

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        region: str,
        lease_ms: int,
        seal: Sealer | None = None,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(db, concurrency=concurrency, poll_seconds=poll_seconds, clock=clock)
        self.store = store
        self.region = region
        self.lease_ms = lease_ms
        self.seal = seal

    def claim(self, conn: Connection, *, now: int, limit: int) -> list[list[Job]]:
        """Lease the due files of up to ``limit`` plans (a plan: one tracker's files of one stamp)."""
        f = trace_files.c
        due = conn.execute(
            select(f.id, f.tracker_id, f.stamp_ms)
            .where(f.status == PLANNED, f.next_attempt_at <= now)
            .order_by(f.next_attempt_at, f.id)
            .limit(_CLAIM_WINDOW)
            .with_for_update(skip_locked=True)
        ).all()
        plans: dict[tuple[str, int], list[int]] = {}
        for file_id, tracker_id, stamp in due:
            if (tracker_id, stamp) in plans or len(plans) < limit:
                plans.setdefault((tracker_id, stamp), []).append(file_id)
        ids = [file_id for members in plans.values() for file_id in members]
        if not ids:
            return []
        claim = uuid.uuid4().hex
        conn.execute(
            update(trace_files)
            .where(f.id.in_(ids))
            .values(claim=claim, attempts=f.attempts + 1, next_attempt_at=now + self.lease_ms)
        )
        rows = conn.execute(
            select(trace_files, trackers.c.config)
            .outerjoin(trackers, trackers.c.id == f.tracker_id)
            .where(f.id.in_(ids))
            .order_by(f.id)
        )
        jobs: dict[tuple[str, int], list[Job]] = {}
        for r in rows:
            jobs.setdefault((r.tracker_id, r.stamp_ms), []).append(_job(r, claim))
        return list(jobs.values())

    def next_due(self, conn: Connection) -> int | None:
        f = trace_files.c
        value = conn.execute(select(func.min(f.next_attempt_at)).where(f.status == PLANNED)).scalar()
        return int(value) if value is not None else None

    def record(self, conn: Connection, results: list[list[Outcome]], *, now: int) -> None:
        f = trace_files.c
        for r in (outcome for outcomes in results for outcome in outcomes):
            mine = (f.id == r.id, f.claim == r.claim, f.status == PLANNED)
            if r.sha256 is not None:
                done = conn.execute(
                    update(trace_files)
                    .where(*mine)
                    .values(status=WRITTEN, sha256=r.sha256, size=r.size, written_at=now, claim=None)
                    .returning(f.id)
                ).first()
                if done is not None and transfer_state.succeeded(conn, r.tracker_id, now):
                    self._due_now(conn, r.tracker_id, now)
                continue
            attempts = conn.execute(select(f.attempts).where(*mine)).scalar()
            if attempts is None:
                continue  # the claim was lost: another attempt owns the row now
            # 2**attempts seconds before the next try, at most a lease (ten intervals): a store back up
            # is written to within ten intervals
            backoff = min(self.lease_ms, 1000 * 2 ** min(int(attempts), 16))
            conn.execute(update(trace_files).where(*mine).values(claim=None, next_attempt_at=now + backoff))
            transfer_state.failed(conn, r.tracker_id, r.detail or "unavailable", r.message, now)

    def _due_now(self, conn: Connection, tracker_id: str, now: int) -> None:
        """The tracker's store is back (a file of it was just written after failures): its other files
        backed off are due now, so the catch-up starts at once instead of up to a lease later."""
        f = trace_files.c
        conn.execute(
            update(trace_files)
            .where(
                f.tracker_id == tracker_id, f.status == PLANNED, f.claim.is_(None), f.next_attempt_at > now
            )
            .values(next_attempt_at=now)
        )  # claimed in this same transaction (``QueueWorker.step`` records, then claims)

    async def attempt(self, job: list[Job]) -> list[Outcome]:
        try:
            bodies = await self.db.read(lambda conn: read_bodies(conn, job))
        except Exception as exc:
            log.warning("reading the traces of %d files failed: %r", len(job), exc)
            return [Outcome(j.id, j.claim, j.tracker_id, detail="unavailable", message=str(exc)) for j in job]
        return list(await asyncio.gather(*(asyncio.to_thread(self._write, j, bodies[j.id]) for j in job)))

    def _write(self, job: Job, bodies: list[bytes]) -> Outcome:
        """Encode and PUT one file (on a worker thread); its outcome, failures included."""
        if len(bodies) != job.trace_count:
            log.warning(
                "file %s: %d traces planned, %d in the log", job.object_key, job.trace_count, len(bodies)
            )
        try:
            blob = self._put(job, self._encode(job, bodies))
        except StorageError as exc:
            return Outcome(job.id, job.claim, job.tracker_id, detail=exc.detail, message=str(exc))
        except Exception as exc:
            detail = getattr(exc, "detail", None)
            if not isinstance(detail, str):
                log.warning("writing %s failed: %r", job.object_key, exc)
                detail = "unavailable"
            return Outcome(job.id, job.claim, job.tracker_id, detail=detail, message=str(exc))
        return Outcome(
            job.id, job.claim, job.tracker_id, sha256=hashlib.sha256(blob).hexdigest(), size=len(blob)
        )

    def _encode(self, job: Job, bodies: list[bytes]) -> bytes:
        data = encoding.encode(bodies, job.compress)
        if job.kms_id is not None:
            if self.seal is None:
                raise StorageError("unavailable", "trace file encryption needs the key service")
            data = self.seal(job.project_id, job.kms_id, data)
        return data

    def _put(self, job: Job, blob: bytes) -> bytes:
        """Create the file's object; the bytes the store holds under its key (an earlier writer's when one
        got there first, which are what the digest must name)."""
        try:
            created = self.store.create(job.bucket, job.object_key, blob)
        except StorageError as exc:
            if exc.detail != "noBucket" or not job.create_bucket:
                raise
            self.store.create_bucket(job.bucket, self.region)
            created = self.store.create(job.bucket, job.object_key, blob)
        if created:
            return blob
        log.info("file %s was already written (an earlier attempt): keeping it", job.object_key)
        return self.store.get(job.bucket, job.object_key)


def lease_ms(settings: Settings) -> int:
    """How long a claimed file stays with its writer: ten intervals, between 10 s and 5 min.

    A writer that dies holds its files this long; a writer that outlives its lease only makes another node
    write the same bytes under the same name again.
    """
    return int(min(300.0, max(10.0, 10 * settings.transfer_interval)) * 1000)


class Transfer:
    """The transfer on this node: the planner every interval, the writer, and bucket housekeeping."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        settings: Settings,
        *,
        seal: Sealer | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.clock = clock
        self.worker = TransferWorker(
            db, store, region=settings.region, lease_ms=lease_ms(settings), seal=seal, clock=clock
        )
        self._rules: set[tuple[str, int]] = set()
        self._expire_at = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def plan(self) -> int:
        """Plan every file the log allows now; returns how many. Losing a race to another node is fine."""
        total = 0
        while True:
            plan = partial(planner.plan, now=self.clock(), region=self.settings.region)
            try:
                result = await self.db.write(plan)
            except (planner.PlanConflict, IntegrityError):
                return total  # another node planned this range first (the CAS, or the same object key)
            total += result.files
            if result.files:
                self.worker.wake()
            if not result.more:
                return total

    async def housekeeping(self) -> None:
        """Data trackers' lifecycle rules (once per process and rule), and the store's expiry sweep (the local
        store applies its rules itself) once an hour."""
        targets = await self.db.read(planner.targets)
        rules = {(t.bucket, t.lifecycle_days) for t in targets if t.lifecycle_days}
        for bucket, days in sorted(rules - self._rules):
            try:
                await asyncio.to_thread(self.store.set_expiry, bucket, f"{ROOT}/", days)
            except (StorageError, NotImplementedError) as exc:
                log.info("lifecycle rule for bucket %s not set yet: %s", bucket, exc)
                continue
            self._rules.add((bucket, days))
        now = self.clock()
        if now >= self._expire_at:  # rules count in days: an hourly sweep is on time (and walks less)
            self._expire_at = now + HOUR_MS
            await asyncio.to_thread(self.store.expire, now)

    async def drain(self) -> None:
        """Plan and write everything due now (tests, the CLI, benchmarks); files are written while the
        planner goes on with the rest of a backlog."""
        planning = asyncio.create_task(self.plan())
        while not planning.done():
            await self.worker.step()
            await asyncio.wait({planning}, timeout=0.01)
        await planning
        await self.worker.drain()

    async def _plan_forever(self) -> None:
        while True:
            try:
                await self.plan()
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("transfer planning failed; retrying in %.1fs", self.settings.transfer_interval)
            await asyncio.sleep(self.settings.transfer_interval)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._plan_forever(), name="transfer-plan"),
            asyncio.create_task(self.worker.run_forever(), name="transfer-write"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.worker.close()

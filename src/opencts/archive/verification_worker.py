"""The server's verification runs: the queue of ``archive.verifications`` worked off with the offline
verifier (``archive.verify``), and each result told to the project's own trail.

A run reads the tracker's bucket through the node's object store, trusts the installation's published
signing keys, and opens encrypted files through the node's key service, exactly as ``opencts verify``
does on the same bucket. It hashes on threads, never in forked processes: a server's process holds
threads and connections that a fork would copy half-way. Each finished run leaves a ``verifyArchive``
trace (``SystemAction`` of CTS on the tracker: ``normal`` when it verified, ``incident`` when it found
tampering, ``warning`` when it could not run), so key event notifications and triggers can alarm on a
failed verification like on any other operation.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from opencts.archive import signing_keys
from opencts.archive import verifications as rows
from opencts.archive.envelope import EnvelopeHeader
from opencts.archive.layout import ROOT
from opencts.archive.storage import ObjectStore, StorageError
from opencts.archive.verify import Options, Result, Unwrap, verify_source
from opencts.archive.verify_source import Source, SourceError, keys_from_json
from opencts.clock import MINUTE_MS, SECOND_MS, now_ms
from opencts.store import Database
from opencts.traces.submitter import SELF
from opencts.traces.writer import TraceWriter
from opencts.work_queue import PRUNE_BATCH, QueueWorker

log = logging.getLogger(__name__)

#: how often a node looks for trackers whose scheduled verification is due
SCHEDULE_EVERY_MS = MINUTE_MS
#: failures a verifyArchive trace names (the verification's record keeps more)
TRACE_FAILURES = 10


class VerificationWorker(QueueWorker[rows.Job, rows.Outcome]):
    """Runs claimed verifications one at a time per node (each reads a whole archive)."""

    name = "archive-verifications"

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        unwrap: Unwrap | None,
        writer: TraceWriter | None = None,
        interval_s: float = 0.0,
        poll_seconds: float = 2.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(db, concurrency=1, poll_seconds=poll_seconds, clock=clock)
        self.store = store
        self.unwrap = unwrap
        self.writer = writer
        self.interval_ms = int(interval_s * SECOND_MS)
        self._schedule_at = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.close()

    def record(self, conn: Connection, results: list[rows.Outcome], *, now: int) -> None:
        rows.complete(conn, results, now=now)

    def claim(self, conn: Connection, *, now: int, limit: int) -> list[rows.Job]:
        if self.interval_ms > 0 and now >= self._schedule_at:
            rows.schedule(conn, now=now, interval_ms=self.interval_ms)
            self._schedule_at = now + SCHEDULE_EVERY_MS
        return rows.claim_due(conn, now=now, limit=limit)

    def next_due(self, conn: Connection) -> int | None:
        due = rows.next_due(conn)
        if self.interval_ms > 0:
            due = self._schedule_at if due is None else min(due, self._schedule_at)
        return due

    def prune(self, conn: Connection, *, now: int) -> int:
        return rows.prune(conn, before=now - rows.KEEP_MS, limit=PRUNE_BATCH)

    async def attempt(self, job: rows.Job) -> rows.Outcome | None:
        try:
            outcome = await asyncio.to_thread(self._verify, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a verifier bug must not leave the row running until its lease ends
            log.exception("verification %s of tracker %s could not run", job.id, job.tracker_name)
            outcome = rows.Outcome(job, rows.ERROR, error=f"the verification stopped: {type(exc).__name__}")
        await self._tell(outcome)
        return outcome

    def _verify(self, job: rows.Job) -> rows.Outcome:
        keys = keys_from_json(self.db.read_sync(signing_keys.published_keys))
        source = Source(self.store, job.bucket_name, f"{ROOT}/", f"bucket {job.bucket_name}")
        unwrap = self.unwrap
        options = Options(
            proofs=job.proofs,
            end_ms=job.end_ms,
            processes=0,
            key_service=(lambda: unwrap) if unwrap is not None else None,
            project_id=job.project_id,
            tracker=job.tracker_name,
        )
        try:
            result = verify_source(source, keys, options)
        except (StorageError, SourceError, OSError) as exc:
            return rows.Outcome(job, rows.ERROR, error=f"bucket {job.bucket_name} cannot be read: {exc}")
        return _outcome(job, result)

    async def _tell(self, outcome: rows.Outcome) -> None:
        """The run's ``verifyArchive`` trace in the project's trail; a trail that refuses it is logged."""
        if self.writer is None:
            return
        try:
            results = await self.writer.write(
                outcome.job.project_id, [_trace(outcome)], submitter=SELF, shed=False
            )
        except Exception:
            log.exception("verification %s: its trace could not be written", outcome.job.id)
            return
        if results and results[0].status == "rejected":
            log.warning("verification %s: its trace was rejected: %s", outcome.job.id, results[0].reason)


def _outcome(job: rows.Job, result: Result) -> rows.Outcome:
    failures = result.failures
    counts = {
        "digests": result.digests,
        "files": result.files,
        "traces": result.traces,
        "leaves": result.leaves,
        "failure_count": len(failures),
        "note_count": len(result.findings) - len(failures),
    }
    findings = [{k: v for k, v in asdict(f).items() if v not in (None, "")} for f in result.findings]
    return rows.Outcome(job, rows.VERIFIED if result.ok else rows.FAILED, counts, findings)


def unwrapper(keys: Any) -> Unwrap:
    """The node's key service as the verifier opens envelopes with it."""

    def unwrap(project_id: str, header: EnvelopeHeader) -> bytes:
        data_key: bytes = keys.unwrap(project_id, header)
        return data_key

    return unwrap


def _trace(outcome: rows.Outcome) -> dict[str, Any]:
    job = outcome.job
    failures = [f for f in outcome.findings if f.get("failure", True)]
    if outcome.status == rows.VERIFIED:
        rating, message = "normal", f"archive of tracker {job.tracker_name} verified"
    elif outcome.status == rows.FAILED:
        first = failures[0]
        rating = "incident"
        message = (
            f"archive of tracker {job.tracker_name} failed verification: {len(failures)} failure(s),"
            f" first: {first.get('problem')} {first.get('key') or first.get('hour') or ''}".rstrip()
        )
    else:
        rating, message = "warning", f"archive of tracker {job.tracker_name} not verified: {outcome.error}"
    response = {
        "verification_id": job.id,
        "status": outcome.status,
        **outcome.counts,
        "failures": failures[:TRACE_FAILURES],
    }
    return {
        "trace_id": str(uuid.uuid4()),
        "trace_name": "verifyArchive",
        "trace_type": "SystemAction",
        "trace_rating": rating,
        "service_type": "CTS",
        "resource_type": "tracker",
        "resource_name": job.tracker_name,
        "time": now_ms(),
        "code": {rows.VERIFIED: "200", rows.FAILED: "409"}.get(outcome.status, "503"),
        "request": {"verification_id": job.id, "bucket_name": job.bucket_name, "proofs": job.proofs},
        "response": response,
        "message": message,
        "user": {"name": "OpenCTS"},
    }

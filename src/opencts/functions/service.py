"""``FunctionService``: what the app holds for FunctionGraph — the runtime pool and the invocation worker.

The worker is the queue's consumer (``invocations``): it claims due rows, runs them in the pool, and
records results in the same write as its next claim, so a busy queue costs one write per round, not one
per invocation. ``wake()`` after a commit that queued something makes the first attempt start at once
instead of at the next poll; the trigger path (trace → notifier → queue → handler) depends on that.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Connection

from opencts.clock import HOUR_MS, now_ms
from opencts.config import Settings
from opencts.functions import invocations, repository
from opencts.functions.repository import FunctionRecord
from opencts.functions.runtime import Credentials, FunctionPool, FunctionSpec, InvocationResult, TooBusy
from opencts.iam.secrets import SecretBox
from opencts.store import Database

log = logging.getLogger(__name__)

#: (function, seconds the credentials must last) -> the agency's short-lived credentials, or None
CredentialIssuer = Callable[[FunctionRecord, int], Awaitable[Credentials | None]]

#: a lease outlives the function's timeout by this much: the runtime kills a handler within a second
LEASE_MARGIN_MS = 30_000
RETRY_BACKOFF_MS = 1_000


def sealed_context(func_id: str) -> str:
    """The associated data ``encrypted_user_data`` is sealed under: it opens for this function only."""
    return f"functions:{func_id}:encrypted_user_data"


class FunctionService:
    """One per process: opens the pool, runs the queue worker, invokes on behalf of the API."""

    def __init__(
        self, db: Database, settings: Settings, box: SecretBox, *, code_dir: Path | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.box = box
        self._own_code_dir = code_dir is None
        # outside the 0700 data dir: the workers may run as an unprivileged user that must read the code
        self.code_dir = code_dir or Path(tempfile.mkdtemp(prefix="opencts-functions-"))
        self.pool = FunctionPool(
            code_dir=self.code_dir,
            load_code=self._load_code,
            workers=settings.functions_workers,
            max_memory_mb=settings.functions_max_memory_mb,
            concurrency=settings.functions_concurrency,
            queue_limit=settings.functions_queue_limit,
            idle_seconds=settings.functions_idle_seconds,
        )
        #: set by the app once credentials can be issued (``functions.credentials``)
        self.credentials: CredentialIssuer | None = None
        self.worker = InvocationWorker(self, concurrency=settings.functions_workers * 2)
        self._task: asyncio.Task[None] | None = None

    async def _load_code(self, spec: FunctionSpec) -> bytes:
        return await self.db.read(lambda conn: repository.code_of(conn, spec.func_id, spec.code_digest))

    def environment(self, record: FunctionRecord) -> dict[str, str]:
        env = record.environment()
        if record.encrypted_user_data:
            opened = self.box.open(record.encrypted_user_data, context=sealed_context(record.func_id))
            env.update(repository.parse_user_data(opened.decode()))
        return env

    async def invoke(self, record: FunctionRecord, event: bytes, *, request_id: str) -> InvocationResult:
        """Run once in the pool; raises ``TooBusy`` when the function's workers and queue are full."""
        issued = await self.credentials(record, record.timeout) if self.credentials is not None else None
        return await self.pool.invoke(
            record.spec(self.environment(record)), event, request_id=request_id, credentials=issued
        )

    def forget(self, func_id: str) -> None:
        """The function's code or config changed, or it is gone: its warm workers must not serve again."""
        self.pool.forget(func_id)

    def wake(self) -> None:
        self.worker.wake()

    def start(self) -> None:
        self._task = asyncio.create_task(self.worker.run_forever(), name="function-invocations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.worker.close()
        await self.pool.close()
        if self._own_code_dir:
            shutil.rmtree(self.code_dir, ignore_errors=True)


class InvocationWorker:
    """Claims due invocations, runs up to ``concurrency`` at once, records results (module docstring)."""

    def __init__(
        self,
        service: FunctionService,
        *,
        concurrency: int,
        poll_seconds: float = 1.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.service = service
        self.db = service.db
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.retries = service.settings.functions_retries
        self.keep_ms = invocations.keep_ms(service.settings.functions_keep_days)
        self.clock = clock
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._results: list[invocations.Outcome] = []
        self._next_due: int | None = None
        self._prune_at = 0

    def wake(self) -> None:
        self._wake.set()

    async def step(self) -> int:
        """Record finished runs, claim due rows for the free slots, start them; returns how many."""
        results, self._results = self._results, []
        free = self.concurrency - len(self._inflight)
        now = self.clock()
        pruning = now >= self._prune_at

        def exchange(
            conn: Connection,
        ) -> tuple[list[tuple[invocations.Job, FunctionRecord | None]], int | None, int]:
            invocations.complete(conn, results, now=now, retries=self.retries, backoff_ms=RETRY_BACKOFF_MS)
            jobs = invocations.claim_due(conn, now=now, limit=free, margin_ms=LEASE_MARGIN_MS)
            records: dict[str, FunctionRecord | None] = {}
            for job in jobs:
                if job.func_id not in records:
                    records[job.func_id] = repository.get_by_id(conn, job.func_id)
            pruned = invocations.prune(conn, before=now - self.keep_ms) if pruning else 0
            return [(j, records[j.func_id]) for j in jobs], invocations.next_due(conn), pruned

        try:
            claimed, self._next_due, pruned = await self.db.write(exchange)
        except BaseException:
            self._results[:0] = results  # not recorded: keep them for the next round
            raise
        if pruning:  # a full batch means there is more: the next round goes on with it
            self._prune_at = now if pruned == invocations.PRUNE_BATCH else now + HOUR_MS
        for job, record in claimed:
            task = asyncio.create_task(self._attempt(job, record), name=f"invocation-{job.request_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claimed)

    async def _attempt(self, job: invocations.Job, record: FunctionRecord | None) -> None:
        outcome: invocations.Outcome
        if record is None:  # deleted meanwhile: its rows went with it, nothing to record
            return
        try:
            result = await self.service.invoke(record, job.event, request_id=job.request_id)
            outcome = invocations.Outcome(job, result)
        except TooBusy:
            outcome = invocations.Outcome(job, None, busy=True)
        except asyncio.CancelledError:
            raise  # shutting down: the lease brings the row back
        except Exception as exc:
            log.exception("invocation %s of %s could not run", job.request_id, record.func_urn)
            outcome = invocations.Outcome(
                job,
                InvocationResult(
                    request_id=job.request_id,
                    status="crashed",
                    result="",
                    log="",
                    duration_ms=0.0,
                    error_message=f"the runtime failed: {type(exc).__name__}",
                ),
            )
        self._results.append(outcome)
        self._wake.set()

    def _more_due(self) -> bool:
        return self._next_due is not None and self._next_due <= self.clock()

    async def drain(self, timeout: float = 60.0) -> None:
        """Run everything due now (not retries scheduled later) and record it; for tests and the CLI."""
        async with asyncio.timeout(timeout):
            while True:
                claimed = await self.step()
                if self._inflight:
                    await asyncio.wait(set(self._inflight))
                    continue
                if not claimed and not self._results and not self._more_due():
                    return

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a database hiccup must not end invocations; the rows wait in the queue
                log.exception("function invocation round failed; retrying in %.1fs", self.poll_seconds)
                await asyncio.sleep(self.poll_seconds)
                continue
            free = len(self._inflight) < self.concurrency
            if self._results or (free and self._more_due()):
                if not claimed and not self._results:
                    await asyncio.sleep(0.05)  # due rows held by another node: do not spin
                continue
            wait = self.poll_seconds
            if self._next_due is not None and free:
                wait = min(wait, max(0.0, (self._next_due - self.clock()) / 1000))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def close(self, grace: float = 5.0) -> None:
        """Let runs in flight finish (up to ``grace`` seconds) and record them; the lease covers the rest."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
            for task in self._inflight:
                task.cancel()
        if self._results:
            results, self._results = self._results, []
            now = self.clock()
            await self.db.write(
                lambda conn: invocations.complete(
                    conn, results, now=now, retries=self.retries, backoff_ms=RETRY_BACKOFF_MS
                )
            )

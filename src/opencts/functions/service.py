"""``FunctionService``: what the app holds for FunctionGraph — the runtime pool and the invocation worker.

The worker is the invocation queue's (``invocations``, on ``work_queue.QueueWorker``): it claims due
rows and runs them in the pool. ``wake()`` after a commit that queued something makes the first attempt
start at once instead of at the next poll; the trigger path (trace → notifier → queue → handler) depends
on that.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Connection

from opencts.config import Settings
from opencts.functions import invocations, repository
from opencts.functions.repository import FunctionRecord
from opencts.functions.runtime import Credentials, FunctionPool, FunctionSpec, InvocationResult, TooBusy
from opencts.iam.secrets import SecretBox
from opencts.store import Database
from opencts.work_queue import PRUNE_BATCH, QueueWorker

log = logging.getLogger(__name__)

#: (function, seconds the credentials must last) -> the agency's short-lived credentials, or None
CredentialIssuer = Callable[[FunctionRecord, int], Awaitable[Credentials | None]]

#: a lease outlives the function's timeout by this much: the runtime kills a handler within a second
LEASE_MARGIN_MS = 5_000
RETRY_BACKOFF_MS = 1_000


def sealed_context(func_id: str) -> str:
    """The associated data ``encrypted_user_data`` is sealed under: it opens for this function only."""
    return f"functions:{func_id}:encrypted_user_data"


CONFIG_DIR = Path("/etc/opencts")
"""Where the deployment guide keeps the environment file, with the secrets in settings (docs/deploy.md)."""


def private_paths(settings: Settings) -> tuple[Path, ...]:
    """The server's files that no function may read: the data dir, the key files, a SQLite database, and
    the configuration directory (/etc, which handlers read for certificates, holds the settings' secrets).

    The workers' Landlock rules leave them out even when they lie inside a tree a handler reads.
    """
    paths = [settings.data_dir, settings.credentials_path, CONFIG_DIR]
    paths += [path for path in (settings.master_key_file, settings.kms_master_key_file) if path is not None]
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        paths.append(Path(url.removeprefix("sqlite:///").split("?", 1)[0]))
    return tuple(path.absolute() for path in paths)


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
            hidden=private_paths(settings),
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


class InvocationWorker(QueueWorker[tuple[invocations.Job, FunctionRecord | None], invocations.Outcome]):
    """The invocation queue's worker (``work_queue.QueueWorker``): runs claimed rows in the pool."""

    name = "function-invocations"

    def __init__(self, service: FunctionService, *, concurrency: int, poll_seconds: float = 1.0) -> None:
        super().__init__(service.db, concurrency=concurrency, poll_seconds=poll_seconds)
        self.service = service
        self.retries = service.settings.functions_retries
        self.keep_ms = invocations.keep_ms(service.settings.functions_keep_days)

    def record(self, conn: Connection, results: list[invocations.Outcome], *, now: int) -> None:
        invocations.complete(conn, results, now=now, retries=self.retries, backoff_ms=RETRY_BACKOFF_MS)

    def claim(
        self, conn: Connection, *, now: int, limit: int
    ) -> list[tuple[invocations.Job, FunctionRecord | None]]:
        jobs = invocations.claim_due(conn, now=now, limit=limit, margin_ms=LEASE_MARGIN_MS)
        records: dict[str, FunctionRecord | None] = {}
        for job in jobs:
            if job.func_id not in records:
                records[job.func_id] = repository.get_by_id(conn, job.func_id)
        return [(job, records[job.func_id]) for job in jobs]

    def next_due(self, conn: Connection) -> int | None:
        return invocations.next_due(conn)

    def prune(self, conn: Connection, *, now: int) -> int:
        return invocations.prune(conn, before=now - self.keep_ms, limit=PRUNE_BATCH)

    async def attempt(
        self, claimed: tuple[invocations.Job, FunctionRecord | None]
    ) -> invocations.Outcome | None:
        job, record = claimed
        if record is None:  # deleted meanwhile: its rows went with it, nothing to record
            return None
        try:
            return invocations.Outcome(
                job, await self.service.invoke(record, job.event, request_id=job.request_id)
            )
        except TooBusy:
            return invocations.Outcome(job, None, busy=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("invocation %s of %s could not run", job.request_id, record.func_urn)
            failed = InvocationResult(
                request_id=job.request_id,
                status="crashed",
                result="",
                log="",
                duration_ms=0.0,
                error_message=f"the runtime failed: {type(exc).__name__}",
            )
            return invocations.Outcome(job, failed)

"""The isolated runtime: a pool of warm worker processes that run FunctionGraph Python handlers.

Handlers never run in the server process. Each function gets up to ``concurrency`` warm workers (keyed by
its code digest and configuration), one invocation at a time each; more invocations queue up to
``queue_limit`` and are refused past it. ``workers`` caps the processes of all functions together; when
it is reached, the longest-idle worker of another function makes room. A worker that timed out, crashed
or ran out of memory is killed with everything it started and replaced on the next invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opencts.functions.process import (
    INTERPRETER_ALLOWANCE_MB,
    WorkerGone,
    WorkerProcess,
    claim_uids,
    kill_if_owned,
    processes_by_uid,
    release_uids,
)
from opencts.functions.unpack import UnsafeArchive, unpack
from opencts.metrics.instruments import FUNCTION_INVOCATIONS, FUNCTION_SECONDS

Status = Literal["success", "error", "timeout", "crashed", "oom"]

_DIGEST = re.compile(r"[0-9a-f]{128}")
_LOG_MARKER_WAIT_S = 5.0
_SECRET_MASK = "******"


@dataclass(frozen=True)
class Credentials:
    """Short-lived credentials of the function's agency, handed to the handler through its context.

    ``storage_*`` is the object store's key pair when the agency may hand it out
    (:mod:`opencts.functions.agency_storage`): then ``getAccessKey()``/``getSecretKey()`` return it.
    Secrets stay out of ``repr``.
    """

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str = field(repr=False)
    auth_token: str = field(repr=False)
    expires_at_ms: int
    storage_access_key: str = ""
    storage_secret_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know of a function to run it."""

    func_id: str
    func_urn: str
    project_id: str
    package: str
    name: str
    version: str
    runtime: str
    handler: str
    timeout_s: int
    memory_mb: int
    code_digest: str
    user_data: dict[str, str]
    alias: str = ""


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation; ``result`` is JSON text (the return value, or an error object)."""

    request_id: str
    status: Status
    result: str
    log: str
    duration_ms: float
    error_message: str


class TooBusy(Exception):
    """Every worker the function may have is busy and its queue is full."""


class _CodeUnavailable(Exception):
    """The function's code cannot be unpacked: a digest that does not match, or an unsafe zip."""


@dataclass(eq=False)
class _Function:
    func_id: str
    key: tuple[object, ...]
    workers: set[_Worker] = field(default_factory=set)
    idle: list[_Worker] = field(default_factory=list)
    starting: int = 0
    waiting: int = 0
    retired: bool = False

    @property
    def size(self) -> int:
        return len(self.workers) + self.starting


@dataclass(eq=False)
class _Worker:
    process: WorkerProcess
    function: _Function
    slot: int
    startup_log: bytes = b""
    idle_since: float = 0.0


def _config_key(spec: FunctionSpec) -> tuple[object, ...]:
    return (
        spec.code_digest.lower(),
        spec.handler,
        spec.runtime,
        spec.timeout_s,
        spec.memory_mb,
        spec.name,
        spec.package,
        spec.project_id,
        spec.version,
        spec.alias,
        tuple(sorted(spec.user_data.items())),
    )


def _error_json(message: str, error_type: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})


class FunctionPool:
    """Warm worker processes per function, bounded per function and in all."""

    def __init__(
        self,
        *,
        code_dir: Path,
        load_code: Callable[[FunctionSpec], Awaitable[bytes]],
        workers: int,
        max_memory_mb: int,
        concurrency: int,
        queue_limit: int,
        idle_seconds: float,
    ) -> None:
        self._code_dir = code_dir
        self._load_code = load_code
        self._max_memory_mb = max_memory_mb
        self._concurrency = concurrency
        self._queue_limit = queue_limit
        self._idle_seconds = idle_seconds
        self._as_root = os.geteuid() == 0
        self._workers = workers
        self._uids: list[int] = []
        self._free_slots = list(range(workers - 1, -1, -1))
        self._functions: dict[str, _Function] = {}
        self._sleepers: list[asyncio.Future[None]] = []
        self._unpack_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- public ----------------------------------------------------------------------------------------

    async def invoke(
        self, spec: FunctionSpec, event: bytes, *, request_id: str, credentials: Credentials | None
    ) -> InvocationResult:
        """Run the handler once on ``event`` (JSON bytes).

        Raises TooBusy when the function's queue is full, and whatever ``load_code`` raises when the code
        is not unpacked yet and cannot be loaded; every failure of the function itself is a result.
        """
        if self._closed:
            raise RuntimeError("the function pool is closed")
        self._start_reaper()
        acquired = await self._acquire(spec, request_id)
        if isinstance(acquired, InvocationResult):
            return acquired
        worker, started = acquired
        keep = False
        try:
            result, keep = await self._run(worker, spec, event, request_id, credentials, started)
        finally:
            self._release(worker, keep)
        FUNCTION_INVOCATIONS.labels(result.status).inc()
        FUNCTION_SECONDS.observe(result.duration_ms / 1000)
        return result

    def forget(self, func_id: str) -> None:
        """Retire the function's warm workers (its code or configuration changed, or it is gone)."""
        function = self._functions.pop(func_id, None)
        if function is None:
            return
        function.retired = True
        for worker in function.idle:
            function.workers.discard(worker)
            self._dispose(worker)
        function.idle.clear()
        self._wake()

    async def close(self) -> None:
        """Kill every worker; invocations still waiting fail."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        workers = [worker for function in self._functions.values() for worker in function.workers]
        for function in self._functions.values():
            function.retired = True
            function.idle.clear()
        self._functions.clear()
        self._wake()
        await asyncio.gather(*(worker.process.kill() for worker in workers), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        release_uids(self._uids)

    def stats(self) -> dict[str, int]:
        functions = list(self._functions.values())
        idle = sum(len(function.idle) for function in functions)
        live = sum(len(function.workers) for function in functions)
        return {
            "functions": len(functions),
            "workers": live,
            "idle": idle,
            "busy": live - idle,
            "starting": sum(function.starting for function in functions),
            "queued": sum(function.waiting for function in functions),
            "free_slots": len(self._free_slots),
        }

    # -- scheduling ------------------------------------------------------------------------------------

    def _wake(self) -> None:
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def _sleep(self) -> None:
        sleeper = asyncio.get_running_loop().create_future()
        self._sleepers.append(sleeper)
        await sleeper

    def _function_for(self, spec: FunctionSpec) -> _Function:
        key = _config_key(spec)
        function = self._functions.get(spec.func_id)
        if function is not None and function.key == key:
            return function
        if function is not None:
            self.forget(spec.func_id)
        function = _Function(spec.func_id, key)
        self._functions[spec.func_id] = function
        return function

    def _take_slot(self, function: _Function) -> tuple[int, _Worker | None] | None:
        """A free worker slot, or the slot of the longest-idle worker of another function (to kill)."""
        if self._free_slots:
            return self._free_slots.pop(), None
        victims = [
            worker for other in self._functions.values() if other is not function for worker in other.idle
        ]
        if not victims:
            return None
        victim = min(victims, key=lambda worker: worker.idle_since)
        victim.function.idle.remove(victim)
        victim.function.workers.discard(victim)
        return victim.slot, victim

    def _idle_worker(self, function: _Function) -> _Worker | None:
        """A warm worker of the function that is still alive; dead ones found on the way are disposed."""
        while function.idle:
            worker = function.idle.pop()
            if worker.process.process.returncode is None:
                return worker
            function.workers.discard(worker)
            self._dispose(worker)
        return None

    def _queue_on(self, function: _Function, queued_on: _Function | None, spec: FunctionSpec) -> _Function:
        """Count the invocation as waiting on ``function`` (once), or refuse it when the queue is full."""
        if queued_on is function:
            return function
        if queued_on is not None:
            queued_on.waiting -= 1
        if function.waiting >= self._queue_limit:
            raise TooBusy(
                f"function {spec.name} has {self._concurrency} invocations running and "
                f"{function.waiting} waiting, its limit"
            )
        function.waiting += 1
        return function

    async def _idle_or_slot(
        self, spec: FunctionSpec
    ) -> _Worker | tuple[_Function, tuple[int, _Worker | None]]:
        """Wait for a warm worker of the function, or for a free slot (and the idle worker it evicts)."""
        queued_on: _Function | None = None
        try:
            while True:
                if self._closed:
                    raise RuntimeError("the function pool is closed")
                function = self._function_for(spec)
                worker = self._idle_worker(function)
                if worker is not None:
                    return worker
                if function.size < self._concurrency and (taken := self._take_slot(function)) is not None:
                    return function, taken
                try:
                    queued_on = self._queue_on(function, queued_on, spec)
                except TooBusy:
                    queued_on = None  # _queue_on released the previous count
                    raise
                await self._sleep()
        finally:
            if queued_on is not None:
                queued_on.waiting -= 1

    async def _acquire(self, spec: FunctionSpec, request_id: str) -> tuple[_Worker, float] | InvocationResult:
        """A worker for the invocation, and when its time started (a queued invocation's starts here)."""
        found = await self._idle_or_slot(spec)
        if isinstance(found, _Worker):
            return found, time.monotonic()
        function, taken = found
        slot, victim = taken
        started = time.monotonic()
        function.starting += 1
        try:
            started_worker = await self._start_worker(function, spec, slot, victim, request_id, started)
            if isinstance(started_worker, InvocationResult):
                return started_worker
            return started_worker, started
        finally:
            function.starting -= 1
            self._wake()

    async def _start_worker(
        self,
        function: _Function,
        spec: FunctionSpec,
        slot: int,
        victim: _Worker | None,
        request_id: str,
        started: float,
    ) -> _Worker | InvocationResult:
        try:
            if victim is not None:
                await victim.process.kill()
            code_path = await self._code_path(spec)
            process = await WorkerProcess.start(
                code_path=code_path,
                environment=self._environment(spec),
                spec=self._worker_spec(spec),
                address_space_mb=min(spec.memory_mb, self._max_memory_mb) + INTERPRETER_ALLOWANCE_MB,
                uid=self._uids[slot] if self._as_root else None,
            )
        except _CodeUnavailable as error:
            self._free_slots.append(slot)
            return self._failure(request_id, "error", str(error), "InvalidCode", b"", started)
        except OSError as error:
            self._free_slots.append(slot)
            message = f"the worker could not start: {error}"
            return self._failure(request_id, "crashed", message, "WorkerCrashed", b"", started)
        except BaseException:
            self._free_slots.append(slot)
            raise
        try:
            ready = await asyncio.wait_for(
                process.receive(), max(0.0, spec.timeout_s - (time.monotonic() - started))
            )
            startup_log = await process.segment(_LOG_MARKER_WAIT_S)
        except TimeoutError:
            await process.kill()
            self._free_slots.append(slot)
            message = f"the function timed out after {spec.timeout_s} s while loading its code"
            return self._failure(
                request_id, "timeout", message, "TimeoutError", process.capture.take(), started
            )
        except WorkerGone:
            status, message = await self._exit_status(process, spec)
            await process.kill()
            self._free_slots.append(slot)
            error_type = "MemoryError" if status == "oom" else "WorkerCrashed"
            return self._failure(request_id, status, message, error_type, process.capture.take(), started)
        except BaseException:
            await process.kill()
            self._free_slots.append(slot)
            raise
        if not ready.get("ready"):
            await process.kill()
            self._free_slots.append(slot)
            failure = ready.get("error") or {}
            return InvocationResult(
                request_id=request_id,
                status="oom" if failure.get("errorType") == "MemoryError" else "error",
                result=json.dumps(failure),
                log=self._text(startup_log, None),
                duration_ms=(time.monotonic() - started) * 1000,
                error_message=str(failure.get("errorMessage", "the handler could not be loaded")),
            )
        worker = _Worker(process, function, slot, startup_log=startup_log)
        function.workers.add(worker)
        return worker

    def _release(self, worker: _Worker, keep: bool) -> None:
        function = worker.function
        if keep and worker.process.log_in_sync and not function.retired and not self._closed:
            worker.idle_since = time.monotonic()
            function.idle.append(worker)
        else:
            function.workers.discard(worker)
            self._dispose(worker)
        self._wake()

    def _dispose(self, worker: _Worker) -> None:
        async def dispose() -> None:
            try:
                await worker.process.kill()
            finally:
                if not self._closed:
                    self._free_slots.append(worker.slot)
                self._wake()

        task = asyncio.get_running_loop().create_task(dispose())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_reaper(self) -> None:
        if self._reaper is None:
            if self._as_root:
                # Claimed on first use and given back when the pool closes or is collected.
                self._uids = claim_uids(self._workers)
                weakref.finalize(self, release_uids, self._uids)
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Retire workers idle for longer than ``idle_seconds``; first, kill what a previous run left."""
        interval = max(0.05, min(self._idle_seconds / 4, 5.0))
        if self._as_root:
            await self._sweep()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for function in list(self._functions.values()):
                expired = [w for w in function.idle if now - w.idle_since >= self._idle_seconds]
                for worker in expired:
                    function.idle.remove(worker)
                    function.workers.discard(worker)
                    self._dispose(worker)
                if not function.workers and not function.starting and not function.waiting:
                    if self._functions.get(function.func_id) is function:
                        del self._functions[function.func_id]
            if self._as_root:
                await self._sweep()

    async def _sweep(self) -> None:
        """Kill what escaped a worker's session (a double fork) while its worker is idle or gone.

        A busy worker's processes are its invocation's own; each slot's uid tells whose a process is.
        """
        found = await asyncio.to_thread(processes_by_uid, set(self._uids))
        workers = {
            self._uids[worker.slot]: worker
            for function in self._functions.values()
            for worker in function.idle
        }
        free = {self._uids[slot] for slot in self._free_slots}
        for uid, pids in found.items():
            worker = workers.get(uid)
            if worker is None and uid not in free:
                continue
            spare = worker.process.pid if worker is not None else None
            for pid in pids:
                if pid != spare:
                    kill_if_owned(pid, uid)

    # -- one invocation --------------------------------------------------------------------------------

    async def _run(
        self,
        worker: _Worker,
        spec: FunctionSpec,
        event: bytes,
        request_id: str,
        credentials: Credentials | None,
        started: float,
    ) -> tuple[InvocationResult, bool]:
        process = worker.process
        prefix, worker.startup_log = worker.startup_log, b""
        remaining = spec.timeout_s - (time.monotonic() - started)
        message: dict[str, Any] = {
            "request_id": request_id,
            "event": event.decode("utf-8", "replace"),
            "remaining_ms": int(remaining * 1000),
            "credentials": None,
        }
        if credentials is not None:
            message["credentials"] = {
                "access_key": credentials.access_key,
                "secret_key": credentials.secret_key,
                "security_token": credentials.security_token,
                "auth_token": credentials.auth_token,
            }
            if credentials.storage_access_key:
                message["credentials"]["storage_access_key"] = credentials.storage_access_key
                message["credentials"]["storage_secret_key"] = credentials.storage_secret_key
        try:
            await process.send(message)
            reply = await asyncio.wait_for(process.receive(), max(0.0, remaining))
        except TimeoutError:
            await process.kill()
            log = prefix + process.capture.take()
            text = f"the function timed out after {spec.timeout_s} s"
            return self._failure(
                request_id, "timeout", text, "TimeoutError", log, started, credentials
            ), False
        except WorkerGone:
            status, text = await self._exit_status(process, spec)
            await process.kill()
            log = prefix + process.capture.take()
            error_type = "MemoryError" if status == "oom" else "WorkerCrashed"
            return self._failure(request_id, status, text, error_type, log, started, credentials), False
        except BaseException:
            await process.kill()
            raise
        log = prefix + await process.segment(_LOG_MARKER_WAIT_S)
        if reply.get("children"):
            await asyncio.to_thread(process.strays)
        outcome = reply.get("status")
        if outcome == "success":
            result = InvocationResult(
                request_id=request_id,
                status="success",
                result=str(reply.get("result", "null")),
                log=self._text(log, credentials),
                duration_ms=(time.monotonic() - started) * 1000,
                error_message="",
            )
            return result, process.log_in_sync
        if outcome == "oom":
            text = f"the function exceeded its memory limit of {min(spec.memory_mb, self._max_memory_mb)} MB"
            return self._failure(request_id, "oom", text, "MemoryError", log, started, credentials), False
        result = InvocationResult(
            request_id=request_id,
            status="error",
            result=str(reply.get("result", "{}")),
            log=self._text(log, credentials),
            duration_ms=(time.monotonic() - started) * 1000,
            error_message=str(reply.get("error", "")) or "the handler raised an exception",
        )
        return result, process.log_in_sync

    async def _exit_status(self, process: WorkerProcess, spec: FunctionSpec) -> tuple[Status, str]:
        code = await process.wait_exit(1.0)
        limit = min(spec.memory_mb, self._max_memory_mb)
        if code == -signal.SIGKILL and not process.killed_by_pool:
            return "oom", f"the worker was killed, most likely for memory (limit {limit} MB)"
        return "crashed", process.exit_description()

    def _failure(
        self,
        request_id: str,
        status: Status,
        message: str,
        error_type: str,
        log: bytes,
        started: float,
        credentials: Credentials | None = None,
    ) -> InvocationResult:
        return InvocationResult(
            request_id=request_id,
            status=status,
            result=_error_json(message, error_type),
            log=self._text(log, credentials),
            duration_ms=(time.monotonic() - started) * 1000,
            error_message=message,
        )

    @staticmethod
    def _text(log: bytes, credentials: Credentials | None) -> str:
        """The log as text, with the invocation's secrets masked wherever the handler printed them."""
        text = log.decode("utf-8", "replace")
        if credentials is not None:
            secrets = (
                credentials.secret_key,
                credentials.security_token,
                credentials.auth_token,
                credentials.storage_secret_key,
            )
            for secret in secrets:
                if len(secret) >= 8:
                    text = text.replace(secret, _SECRET_MASK)
        return text

    # -- code and environment --------------------------------------------------------------------------

    async def _code_path(self, spec: FunctionSpec) -> Path:
        digest = spec.code_digest.lower()
        if not _DIGEST.fullmatch(digest):
            raise _CodeUnavailable(f"the code digest {spec.code_digest!r} is not a hex SHA-512")
        path = self._code_dir / digest
        if path.is_dir():
            return path
        lock = self._unpack_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if not path.is_dir():
                data = await self._load_code(spec)
                if hashlib.sha512(data).hexdigest() != digest:
                    raise _CodeUnavailable("the function's code does not match its digest")
                try:
                    await asyncio.to_thread(unpack, data, path)
                except UnsafeArchive as error:
                    raise _CodeUnavailable(str(error)) from error
        self._unpack_locks.pop(digest, None)
        return path

    @staticmethod
    def _environment(spec: FunctionSpec) -> dict[str, str]:
        """The handler's whole environment: a minimal base, the runtime's variables, then ``user_data``."""
        environment = {
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "MALLOC_ARENA_MAX": "2",
            "RUNTIME_FUNC_NAME": spec.name,
            "RUNTIME_FUNC_VERSION": spec.version,
            "RUNTIME_PACKAGE": spec.package,
            "RUNTIME_PROJECT_ID": spec.project_id,
            "RUNTIME_HANDLER": spec.handler,
            "RUNTIME_TIMEOUT": str(spec.timeout_s),
            "RUNTIME_MEMORY": str(spec.memory_mb),
            "RUNTIME_CPU": str(os.cpu_count() or 1),
            "RUNTIME_NAME": spec.runtime,
        }
        for name, value in spec.user_data.items():
            if name and "=" not in name and "\0" not in name and "\0" not in value:
                environment[name] = value
        return environment

    @staticmethod
    def _worker_spec(spec: FunctionSpec) -> dict[str, Any]:
        return {
            "handler": spec.handler,
            "name": spec.name,
            "version": spec.version,
            "package": spec.package,
            "project_id": spec.project_id,
            "alias": spec.alias,
            "timeout_s": spec.timeout_s,
            "memory_mb": spec.memory_mb,
            "cpu_number": os.cpu_count() or 1,
            "user_data": dict(spec.user_data),
        }

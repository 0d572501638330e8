"""One worker process: starting it confined, talking to it, capturing its log, killing it and its children.

A worker runs as its own session. When the service runs as root, each worker slot has its own
unprivileged uid, so RLIMIT_NPROC bounds what one function can fork and every process a function left
behind (even one that started a new session) can be found by its uid and killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import orjson

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
LOG_LIMIT_BYTES = 1024 * 1024
INTERPRETER_ALLOWANCE_MB = 256
MAX_PROCESSES = 128
MAX_FILE_BYTES = 1024 * 1024 * 1024
TMP_BYTES = 512 * 1024 * 1024
"""A worker run as its own uid gets a private /tmp of this size (FunctionGraph's 512 MB)."""
UID_BASE = 0x40000000
UIDS_PER_PROCESS = 512
"""Each server process has its own block of worker uids (from its pid), far above any account on the
machine, so two servers on one host, or two pools in one process, never count or kill each other's."""

_claimed_uids: set[int] = set()


def claim_uids(count: int) -> list[int]:
    """Reserve ``count`` worker uids of this process's block for one pool."""
    base = UID_BASE + (os.getpid() % 4_194_304) * UIDS_PER_PROCESS
    free = [uid for uid in range(base, base + UIDS_PER_PROCESS) if uid not in _claimed_uids][:count]
    if len(free) < count:
        raise ValueError(f"more than {UIDS_PER_PROCESS} function worker slots in one process")
    _claimed_uids.update(free)
    return free


def release_uids(uids: list[int]) -> None:
    _claimed_uids.difference_update(uids)


_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024


class WorkerGone(Exception):
    """The worker closed its socket: it exited or was killed."""


class LogCapture:
    """The worker's stdout and stderr, cut into one segment per step at the worker's end marker.

    The pipe is always drained, so a handler that floods output never blocks; each segment keeps only
    its last ``limit`` bytes and says how much it dropped.
    """

    def __init__(self, marker: bytes, limit: int = LOG_LIMIT_BYTES) -> None:
        self._marker = marker
        self._limit = limit
        self._buffer = bytearray()
        self._dropped = 0
        self._pending = b""
        self.segments: asyncio.Queue[bytes] = asyncio.Queue()

    def feed(self, data: bytes) -> None:
        data, self._pending = self._pending + data, b""
        while (index := data.find(self._marker)) >= 0:
            self._append(data[:index])
            self.segments.put_nowait(self.take())
            data = data[index + len(self._marker) :]
        keep = len(self._marker) - 1
        self._append(data[:-keep])
        self._pending = data[-keep:]

    def _append(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 2 * self._limit:
            excess = len(self._buffer) - self._limit
            del self._buffer[:excess]
            self._dropped += excess

    def take(self) -> bytes:
        """What was captured since the last segment (the partial log of a killed worker)."""
        data = bytes(self._buffer) + self._pending
        self._buffer.clear()
        self._pending = b""
        dropped = self._dropped + max(0, len(data) - self._limit)
        self._dropped = 0
        if dropped:
            data = f"[opencts: {dropped} bytes of log dropped]\n".encode() + data[-self._limit :]
        return data


def _uid_of(pid: int) -> int | None:
    """The real uid of a live process; None for a zombie (nothing left to kill) or a process gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read()
        state = text.index(b"\nState:") + 7
        if text[state : state + 8].split()[0] == b"Z":
            return None
        start = text.index(b"\nUid:") + 5
        return int(text[start : text.index(b"\n", start)].split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else int(fields[3])
    except (OSError, ValueError, IndexError):
        return None


def _owned_processes(uid: int | None, session: int) -> list[int]:
    """Live processes of a worker slot: every one of its uid, or without a uid of its own, of its session."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            if (_uid_of(pid) == uid) if uid is not None else (_session_of(pid) == session):
                found.append(pid)
    return found


def kill_if_owned(pid: int, uid: int) -> None:
    """Kill ``pid`` if it still belongs to ``uid`` (a pid seen earlier may have been reused since)."""
    if _uid_of(pid) == uid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def processes_by_uid(uids: set[int]) -> dict[int, list[int]]:
    """Every live process whose uid is one of ``uids``, by uid (one pass over /proc)."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        uid = _uid_of(int(entry.name))
        if uid in uids:
            found.setdefault(uid, []).append(int(entry.name))
    return found


def kill_processes(uid: int | None, session: int, *, spare: int | None = None) -> int:
    """Kill every process of the slot but ``spare``, again until none is left (a fork bomb races the kill)."""
    killed = 0
    for _ in range(50):
        victims = [pid for pid in _owned_processes(uid, session) if pid != spare]
        if not victims:
            break
        for pid in victims:
            if uid is not None:
                kill_if_owned(pid, uid)
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed += len(victims)
    return killed


class WorkerProcess:
    """A started worker: its process, its socket, and the task that drains its log."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        capture: LogCapture,
        uid: int | None,
        lifeline: int,
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.uid = uid
        self.capture = capture
        self._reader = reader
        self._writer = writer
        self.killed_by_pool = False
        self.log_in_sync = True
        self._lifeline: int | None = lifeline
        self._drain_task = asyncio.create_task(self._drain())

    @classmethod
    async def start(
        cls,
        *,
        code_path: Path,
        environment: dict[str, str],
        spec: dict[str, Any],
        address_space_mb: int,
        uid: int | None,
    ) -> WorkerProcess:
        """Start the interpreter on the worker script, confined; it imports the handler next."""
        parent_end, child_end = socket.socketpair()
        lifeline_read, lifeline_write = os.pipe()
        code_fd = os.open(code_path, os.O_RDONLY | os.O_DIRECTORY)
        marker = f"\x00\x1eopencts-end-{secrets.token_hex(16)}\x1e\x00".encode("ascii")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-u",
                "-B",
                str(WORKER_SCRIPT),
                str(child_end.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=environment,
                pass_fds=(child_end.fileno(), code_fd, lifeline_read),
                start_new_session=True,
                cwd="/",
            )
        except BaseException:
            parent_end.close()
            os.close(lifeline_write)
            raise
        finally:
            child_end.close()
            os.close(code_fd)
            os.close(lifeline_read)
        reader, writer = await asyncio.open_connection(sock=parent_end)
        worker = cls(process, reader, writer, LogCapture(marker), uid, lifeline_write)
        init = dict(spec)
        init.update(
            marker=marker.decode("ascii"),
            code_fd=code_fd,
            lifeline_fd=lifeline_read,
            uid=uid,
            gid=uid,
            max_processes=MAX_PROCESSES,
            max_file_bytes=MAX_FILE_BYTES,
            tmp_bytes=TMP_BYTES if uid is not None else 0,
            address_space_bytes=address_space_mb * 1024 * 1024,
        )
        await worker.send(init)
        return worker

    async def _drain(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while chunk := await stdout.read(256 * 1024):
            self.capture.feed(chunk)

    async def send(self, message: dict[str, Any]) -> None:
        data = orjson.dumps(message)
        self._writer.write(_HEADER.pack(len(data)) + data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise WorkerGone from error

    async def receive(self) -> dict[str, Any]:
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > _MAX_FRAME:
                raise WorkerGone
            message: dict[str, Any] = orjson.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, orjson.JSONDecodeError) as error:
            raise WorkerGone from error
        return message

    async def segment(self, timeout: float) -> bytes:
        """The log of the step that just ended, once the worker's end marker is through the pipe."""
        try:
            return await asyncio.wait_for(self.capture.segments.get(), timeout)
        except TimeoutError:
            # The marker may still come and would end the next invocation's log: this worker must go.
            self.log_in_sync = False
            return self.capture.take()

    def strays(self) -> int:
        """Kill what the worker's handler left running; returns how many processes that was."""
        return kill_processes(self.uid, self.pid, spare=self.pid)

    async def kill(self) -> None:
        """Kill the worker and everything it started, and wait for it."""
        self.killed_by_pool = True
        if self.process.returncode is None:
            # Until the worker is reaped its pid, and so its session id, cannot name another process.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            await asyncio.to_thread(kill_processes, self.uid, self.pid)
        elif self.uid is not None:
            await asyncio.to_thread(kill_processes, self.uid, self.pid)
        await self.process.wait()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        self._writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain_task, 1.0)
        self._drain_task.cancel()

    async def wait_exit(self, timeout: float) -> int | None:
        """The worker's return code once it exits by itself (negative: the signal), None if it lingers."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None

    def exit_description(self) -> str:
        code = self.process.returncode
        if code is None:
            return "the worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the worker was killed by {name}"
        return f"the worker exited with code {code}"

"""The worker process that runs one function's handler, one invocation at a time.

The pool starts this file by path with the service's interpreter, so it imports only the standard
library before the handler's own module: importing the server package would cost every cold start.
It talks to the pool over the socket whose descriptor is in argv (length-prefixed JSON frames) and never
over stdout or stderr, which are the handler's log. Credentials arrive with each invocation and live
only in the context object of that invocation.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import struct
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is a costly import for a process that must start fast
    from typing import Any

_HEADER = struct.Struct(">I")
_log_fd = 1
"""A duplicate of the log pipe: the end marker and logger lines pass whatever a handler does to fd 1."""


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    # A lone surrogate (valid in a str, never in UTF-8) becomes "?" rather than an unreadable frame.
    data = json.dumps(message, ensure_ascii=False).encode("utf-8", "replace")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError
        chunks += chunk
    return bytes(chunks)


def _receive(sock: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    message: dict[str, Any] = json.loads(_receive_exactly(sock, size))
    return message


class Logger:
    """The logger of ``context.getLogger()``: one line per call, with time and request id, into the log."""

    def __init__(self, request_id: str) -> None:
        self._request_id = request_id

    def _write(self, level: str, message: object) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        line = f"{stamp} {self._request_id} {level} {message}\n"
        sys.stdout.flush()
        os.write(_log_fd, line.encode("utf-8", "replace"))

    def info(self, message: object) -> None:
        self._write("INFO", message)

    def warn(self, message: object) -> None:
        self._write("WARN", message)

    def warning(self, message: object) -> None:
        self._write("WARN", message)

    def error(self, message: object) -> None:
        self._write("ERROR", message)

    def debug(self, message: object) -> None:
        self._write("DEBUG", message)


class Context:
    """The FunctionGraph ``context`` of one invocation, with the method names handlers already call."""

    def __init__(self, spec: dict[str, Any], invocation: dict[str, Any]) -> None:
        self._spec = spec
        self._request_id: str = invocation["request_id"]
        self._deadline: float = time.monotonic() + int(invocation["remaining_ms"]) / 1000
        credentials = invocation.get("credentials") or {}
        self._access_key: str = credentials.get("access_key", "")
        self._secret_key: str = credentials.get("secret_key", "")
        self._security_token: str = credentials.get("security_token", "")
        self._auth_token: str = credentials.get("auth_token", "")
        # the object store's pair when the agency hands one out (functions/agency_storage.py), else the
        # temporary OpenCTS AK/SK, as before
        self._storage_access_key: str = credentials.get("storage_access_key") or self._access_key
        self._storage_secret_key: str = credentials.get("storage_secret_key") or self._secret_key
        self._logger = Logger(self._request_id)

    def getRequestID(self) -> str:
        return self._request_id

    def getRemainingTimeInMilliSeconds(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def getUserData(self, key: str, default: str | None = None) -> str | None:
        value: str | None = self._spec["user_data"].get(key, default)
        return value

    def getFunctionName(self) -> str:
        return str(self._spec["name"])

    def getRunningTimeInSeconds(self) -> int:
        return int(self._spec["timeout_s"])

    def getVersion(self) -> str:
        return str(self._spec["version"])

    def getMemorySize(self) -> int:
        return int(self._spec["memory_mb"])

    def getCPUNumber(self) -> int:
        return int(self._spec["cpu_number"])

    def getPackage(self) -> str:
        return str(self._spec["package"])

    def getProjectID(self) -> str:
        return str(self._spec["project_id"])

    def getAlias(self) -> str:
        return str(self._spec["alias"])

    def getToken(self) -> str:
        return self._auth_token

    def getAccessKey(self) -> str:
        return self._storage_access_key

    def getSecretKey(self) -> str:
        return self._storage_secret_key

    def getSecurityAccessKey(self) -> str:
        return self._access_key

    def getSecuritySecretKey(self) -> str:
        return self._secret_key

    def getSecurityToken(self) -> str:
        return self._security_token

    def getLogger(self) -> Logger:
        return self._logger

    def __repr__(self) -> str:
        return f"<Context request_id={self._request_id!r} function={self._spec['name']!r}>"


def _error_object(error: BaseException) -> dict[str, Any]:
    import traceback

    stack = [line.rstrip("\n") for line in traceback.format_tb(error.__traceback__)]
    return {"errorMessage": str(error), "errorType": type(error).__name__, "stackTrace": stack}


def _encoded(value: object) -> str:
    """The return value as JSON text; what JSON cannot hold becomes its str()."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _load_handler(spec: dict[str, Any]) -> Any:
    module_name, _, function_name = str(spec["handler"]).rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def _children_left() -> bool:
    """Whether a process this worker started still runs (its orphans are the pool's to find)."""
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as children:
                if children.read().strip():
                    return True
    except OSError:
        return False
    return False


def _reap_children() -> None:
    """Collect the children the pool killed: as zombies they would still count against RLIMIT_NPROC."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _flush_log(marker: bytes) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        os.write(_log_fd, marker)
    except OSError:
        pass


def _reopened(path: str, reopened: dict[str, str]) -> str:
    for original, replacement in reopened.items():
        if path.startswith(original):
            return replacement + path[len(original) :]
    return path


def _confine(spec: dict[str, Any]) -> None:
    """Apply the limits, then give up root before any of the function's code runs.

    Import directories are reopened through descriptors first: the interpreter may live under a directory
    (such as root's home) that the unprivileged uid cannot traverse, and a path through ``/proc/self/fd``
    reaches the directory without that traversal.
    """
    import resource

    limit = int(spec["address_space_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    file_size = int(spec["max_file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    uid = spec.get("uid")
    if uid is None:
        return
    reopened: dict[str, str] = {}
    for entry in sys.path:
        if os.path.isdir(entry):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            reopened[entry.rstrip("/") + "/"] = f"/proc/self/fd/{fd}/"
    sys.path[:] = [path.rstrip("/") for path in reopened.values()]
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__path__", None)
        if isinstance(package_path, list):
            package_path[:] = [_reopened(path, reopened) for path in package_path]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    _private_tmp(int(spec.get("tmp_bytes", 0)))
    processes = int(spec["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    os.setgroups([])
    os.setgid(int(spec["gid"]))
    os.setuid(int(uid))


def _private_tmp(size: int) -> bool:
    """Give this worker a /tmp of its own: an empty tmpfs of ``size`` bytes in a mount namespace of its own.

    Handlers write fixed paths under /tmp (the seeds' LTS function downloads its object to /tmp/NAME and
    appends to it). On the shared /tmp a file one worker's uid left would be unwritable by the next
    worker's uid (every server start and every idle sweep brings new ones), and readable by every other
    function. Runs as root before the uid drop, after the import directories are held by descriptors
    (so an interpreter or code under /tmp still imports). Where the kernel refuses a namespace, /tmp
    stays shared, as without root.
    """
    if size <= 0:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private, ms_nosuid, ms_nodev = 0x20000, 0x4000, 0x40000, 0x2, 0x4
    if libc.unshare(clone_newns) != 0:
        return False
    # nothing mounted here may leak back into the host's namespace
    if libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0:
        return False
    options = f"size={size},mode=1777".encode()
    return bool(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", ms_nosuid | ms_nodev, options) == 0)


def _watch_lifeline(fd: int, own_uid: bool) -> None:
    """End this worker and all it started once the pool is gone (the pipe's only writer is the pool).

    Without this, a handler that never returns would outlive a server that was killed.
    """
    import signal
    import threading

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        if own_uid:
            try:
                os.kill(-1, signal.SIGKILL)  # as this slot's uid: every process of the slot but this one
            except OSError:
                pass
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="opencts-lifeline", daemon=True).start()


def main() -> None:
    global _log_fd
    _log_fd = os.dup(1)
    sock = socket.socket(fileno=int(sys.argv[1]))
    spec = _receive(sock)
    marker = str(spec["marker"]).encode("ascii")
    code_fd = int(spec["code_fd"])
    _confine(spec)
    _watch_lifeline(int(spec["lifeline_fd"]), spec.get("uid") is not None)
    os.fchdir(code_fd)
    sys.path.insert(0, f"/proc/self/fd/{code_fd}")
    try:
        handler = _load_handler(spec)
    except BaseException as error:
        _flush_log(marker)
        _send(sock, {"ready": False, "error": _error_object(error)})
        return
    _flush_log(marker)
    _send(sock, {"ready": True})
    while True:
        try:
            invocation = _receive(sock)
        except EOFError:
            return
        _reap_children()
        reply: dict[str, Any]
        try:
            context = Context(spec, invocation)
            value = handler(json.loads(invocation["event"]), context)
            del context
            reply = {"status": "success", "result": _encoded(value)}
        except MemoryError as error:
            reply = {
                "status": "oom",
                "result": json.dumps(_error_object(error), ensure_ascii=False),
                "error": "MemoryError",
            }
        except BaseException as error:
            failure = _error_object(error)
            reply = {
                "status": "error",
                "result": json.dumps(failure, ensure_ascii=False),
                "error": failure["errorMessage"],
            }
        reply["children"] = _children_left()
        _flush_log(marker)
        _send(sock, reply)


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmarks: a server subprocess, realistic traces, a fast direct-to-SQLite builder.

Nothing here is imported by OpenCTS itself. Every benchmark starts its own server on 127.0.0.1 in a scratch
data directory under ``bench-data/`` (git-ignored), on the same disk as the repository.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from opencts.iam.signature import HmacAuth
from opencts.store.trace_log import trace_key

REPO = Path(__file__).resolve().parent.parent
BENCH_DATA = REPO / "bench-data"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)  # logs get full tables

#: The ``traces`` columns a row tuple carries, in order (``seq`` is the rowid and left to SQLite).
ROW_COLUMNS: tuple[str, ...] = (
    "project_id",
    "trace_id",
    "kind",
    "time",
    "record_time",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_id",
    "resource_name",
    "user_name",
    "access_key_id",
    "tracker_name",
    "enterprise_project_id",
    "body",
    "source_ip",
    "code",
    "request_id",
    "trace_key",
)
INSERT_SQL = f"INSERT INTO traces ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})"

Row = tuple[Any, ...]


# -- small helpers --------------------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(ok: bool) -> str:
    return "[bold green]MET[/]" if ok else "[bold red]MISSED[/]"


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GiB"


def db_size(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("opencts.db*") if p.is_file())


def load_note() -> str:
    """The 1-minute load average against the core count: other work on the machine skews every figure."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scratch_dir(prefix: str, root: Path = BENCH_DATA) -> Path:
    """A fresh directory under ``root`` (default ``bench-data/``, on the repository's disk); the caller
    removes it."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def remove_dir(path: Path) -> None:
    if path.resolve().is_relative_to(BENCH_DATA.resolve()):
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Credentials:
    """What the server's first start wrote to ``credentials.json``."""

    project_id: str
    domain_id: str
    domain_name: str
    access_key: str
    secret_key: str

    @classmethod
    def load(cls, data_dir: Path) -> Credentials:
        data = json.loads((data_dir / "credentials.json").read_text())
        return cls(
            project_id=data["project_id"],
            domain_id=data["domain_id"],
            domain_name=data["domain_name"],
            access_key=data["access_key"],
            secret_key=data["secret_key"],
        )

    def auth(self) -> HmacAuth:
        return HmacAuth(self.access_key, self.secret_key, project_id=self.project_id)


def bootstrap_data_dir(data_dir: Path, database_url: str | None = None) -> Credentials:
    """Migrate and bootstrap a data dir exactly as the server's first start does, without serving."""
    from opencts.api.app import open_database
    from opencts.config import Settings

    open_database(Settings(data_dir=data_dir, database_url=database_url)).close()
    return Credentials.load(data_dir)


# -- the server under test ------------------------------------------------------------------------------


class Server:
    """``opencts serve`` as a subprocess on a free 127.0.0.1 port; a context manager that always stops it."""

    def __init__(
        self, data_dir: Path, *, env: dict[str, str] | None = None, log_level: str = "warning"
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self._env = env or {}
        self._log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None
        #: the PostgreSQL URL the server runs on, None for the SQLite file in its data dir
        self.database_url = self._env.get("OPENCTS_DATABASE_URL")

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    def start(self, timeout: float = 120.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
        env.update(self._env)
        cmd = [
            sys.executable,
            "-c",
            "from opencts.cli.main import main; main()",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--log-level",
            self._log_level,
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self._proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def credentials(self) -> Credentials:
        return Credentials.load(self.data_dir)

    def client(self, creds: Credentials, *, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=creds.auth(), timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def consumer_positions(db_path: Path, database_url: str | None = None) -> str:
    """``name=position`` of every log consumer, against the head of the log, read from the database."""
    if database_url is not None:
        import psycopg

        with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
            head = pg.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]  # type: ignore[index]
            cursors = pg.execute("SELECT name, position FROM consumer_cursors ORDER BY name").fetchall()
        return ", ".join(f"{name} {pos:,}" for name, pos in cursors) + f" (log head {head:,})"
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        head = conn.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]
        cursors = conn.execute("SELECT name, position FROM consumer_cursors ORDER BY name").fetchall()
    finally:
        conn.close()
    return ", ".join(f"{name} {pos:,}" for name, pos in cursors) + f" (log head {head:,})"


def wait_until_idle(
    server: Server, *, timeout: float, window: float = 2.0, idle_share: float = 0.10
) -> float:
    """Wait until the server's background consumers have worked through a log that was built behind their
    back (the benchmarks fill SQLite directly): in production they keep up with ingest, so measuring while
    they catch up would measure the catch-up. Idle = under ``idle_share`` of a core for two windows in a row.
    Returns the seconds waited."""
    started = last_report = time.perf_counter()
    before = cpu_seconds(server.pid)
    quiet = 0
    while time.perf_counter() - started < timeout:
        time.sleep(window)
        used = cpu_seconds(server.pid)
        quiet = quiet + 1 if (used - before) / window < idle_share else 0
        before = used
        if quiet >= 2:
            return time.perf_counter() - started
        if time.perf_counter() - last_report >= 30:
            last_report = time.perf_counter()
            positions = consumer_positions(server.data_dir / "opencts.db", server.database_url)
            console.print(f"  server busy catching up for {last_report - started:,.0f}s: {positions}")
    positions_now = consumer_positions(server.data_dir / "opencts.db", server.database_url)
    raise RuntimeError(f"server still busy after {timeout:,.0f}s: {positions_now}")


def ensure_data_trackers(client: httpx.Client, project_id: str, names: Sequence[str]) -> None:
    """Create the data trackers the generated OBS data events name (CTS refuses data traces without one)."""
    for i, name in enumerate(names):
        body = {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": f"bench-data-{i}"},
        }
        response = client.post(f"/v3/{project_id}/tracker", json=body)
        if response.status_code not in (201, 409):  # 409: it exists already (a reused database)
            raise RuntimeError(
                f"creating data tracker {name} answered {response.status_code}: {response.text[:300]}"
            )


def count_traces(db_path: Path) -> int:
    """Rows in the trace log, read-only (fine while the server runs: WAL)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
    finally:
        conn.close()


def read_rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) and its live children have used so far.

    The children are the ingest worker processes, whose parsing is the server's work too.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in (pid, *_children(pid)):
        try:
            with open(f"/proc/{one}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except FileNotFoundError:  # a child that has just exited
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of the line)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_children(kid)]
    return found


@dataclass
class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a thread, between ``start()`` and ``stop()``."""

    pid: int
    interval: float = 0.05
    peak_kib: int = 0
    samples: int = 0
    #: (seconds since start, RSS KiB)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> RssSampler:
        self._stop.clear()
        self._t0 = time.perf_counter()
        self.peak_kib, self.samples = read_rss_kib(self.pid)[0], 1
        self.timeline = [(0.0, self.peak_kib)]
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss, _ = read_rss_kib(self.pid)
            except OSError:
                return
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self.timeline.append((time.perf_counter() - self._t0, rss))

    def at_fractions(self, fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0)) -> list[int]:
        """RSS (KiB) at these fractions of the sampled span, to tell a plateau from steady growth."""
        if not self.timeline:
            return []
        end = self.timeline[-1][0]
        out = []
        for f in fractions:
            out.append(next((rss for t, rss in self.timeline if t >= f * end), self.timeline[-1][1]))
        return out

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak_kib


class PySpy:
    """``py-spy record`` on a process while a block runs (``pip install py-spy`` in the venv), then a summary.

    Samples every thread (the GIL-holding ones and SQLite's, which release it) as raw collapsed stacks, so the
    summary can say where the server's time goes: per function, self and inclusive share of the samples.
    """

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        exe = Path(sys.executable).parent / "py-spy"
        found = str(exe) if exe.exists() else shutil.which("py-spy")
        if found is None:
            raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
        self.cmd = [
            found,
            "record",
            "-p",
            str(pid),
            "-o",
            str(out),
            "-f",
            "raw",
            "-r",
            str(rate),
            "--threads",
        ]
        self.out = out
        self.rate = rate
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = self._stopped = 0.0

    def __enter__(self) -> PySpy:
        self._proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # let it attach
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._stopped = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def summary(self, top: int = 12) -> str:
        """Per thread: how busy it was, and the functions with the most samples on top of its stack."""
        if not self.out.exists():
            return "(py-spy wrote nothing)"
        seconds = max(self._stopped - self._started, 1e-9)
        by_thread: dict[str, dict[str, int]] = {}
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, num = line.rpartition(" ")
            if not stack or not num.isdigit():
                continue
            head, *frames = stack.split(";")
            if not frames:
                continue
            leaf = _frame_name(frames[-1])
            if leaf in _IDLE_LEAVES:
                continue
            thread = head.partition(": ")[2].rstrip("_0123456789") or head
            counts = by_thread.setdefault(thread, {})
            counts[leaf] = counts.get(leaf, 0) + int(num)
        lines = [
            f"py-spy, {self.rate} samples/s over {seconds:.1f}s ({self.out}); busy share of each thread:"
        ]
        for thread, counts in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values())):
            total = sum(counts.values())
            lines.append(f"  {thread}: busy {100 * total / (self.rate * seconds):.0f}% of the wall time")
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
                if n / total >= 0.02:
                    lines.append(f"    {100 * n / total:5.1f}%  {name}")
        return "\n".join(lines)


#: Leaves that mean a thread waits for work (thread pools, the writer lane's queue), not that it works.
_IDLE_LEAVES = frozenset(
    {"Condition.wait (threading.py)", "_worker (thread.py)", "Event.wait (threading.py)"}
)


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``."""
    name, sep, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rsplit('/', 1)[-1]})" if sep else name


# -- realistic traces -----------------------------------------------------------------------------------

_FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor",
)  # fmt: skip
_ROBOTS = ("ops-robot", "ci-deployer")

# service -> (weight, [(trace_name, resource_type, read_only, api_version, weight)])
_SERVICES: dict[str, tuple[float, tuple[tuple[str, str, bool, str, float], ...]]] = {
    "ECS": (30, (("createServer", "ecs", False, "v1", 3), ("deleteServer", "ecs", False, "v1", 2),
                 ("startServer", "ecs", False, "v2.1", 6), ("stopServer", "ecs", False, "v2.1", 6),
                 ("rebootServer", "ecs", False, "v2.1", 4), ("resizeServer", "ecs", False, "v1.1", 1))),
    "VPC": (15, (("createVpc", "vpc", False, "v1", 1), ("deleteVpc", "vpc", False, "v1", 1),
                 ("createSubnet", "subnet", False, "v1", 2),
                 ("createSecurityGroupRule", "securityGroupRule", False, "v3", 4),
                 ("deleteSecurityGroupRule", "securityGroupRule", False, "v3", 2))),
    "OBS": (15, (("createBucket", "bucket", False, "v1", 2), ("deleteBucket", "bucket", False, "v1", 1),
                 ("setBucketPolicy", "bucket", False, "v1", 3), ("setBucketAcl", "bucket", False, "v1", 2),
                 ("setBucketLifecycle", "bucket", False, "v1", 1))),
    "RDS": (10, (("createInstance", "instance", False, "v3", 1),
                 ("deleteInstance", "instance", False, "v3", 1),
                 ("resetPassword", "instance", False, "v3", 2),
                 ("restartInstance", "instance", False, "v3", 3),
                 ("createManualBackup", "backup", False, "v3", 2))),
    "IAM": (12, (("login", "user", False, "v3", 8), ("logout", "user", False, "v3", 5),
                 ("createUser", "user", False, "v3", 1), ("updateUser", "user", False, "v3", 1),
                 ("createCredential", "credential", False, "v3", 1))),
    "CTS": (4, (("createTracker", "tracker", False, "v3", 1), ("updateTracker", "tracker", False, "v3", 2),
                ("deleteTracker", "tracker", False, "v3", 0.5), ("listTraces", "trace", True, "v3", 6))),
    "ELB": (8, (("createLoadBalancer", "loadbalancer", False, "v3", 1),
                ("deleteLoadBalancer", "loadbalancer", False, "v3", 1),
                ("createListener", "listener", False, "v3", 2), ("updateMember", "member", False, "v3", 4),
                ("createPool", "pool", False, "v3", 1))),
    "EVS": (6, (("createVolume", "volume", False, "v2", 2), ("deleteVolume", "volume", False, "v2", 1),
                ("attachVolume", "volume", False, "v2", 3), ("detachVolume", "volume", False, "v2", 2),
                ("extendVolume", "volume", False, "v2", 1), ("createSnapshot", "snapshot", False, "v2", 2))),
}  # fmt: skip
_DATA_OPS = (("PUT.OBJECT", "ObsAPI", 5), ("GET.OBJECT", "ObsSDK", 8), ("DELETE.OBJECT", "ObsAPI", 1),
             ("HEAD.OBJECT", "ObsSDK", 2))  # fmt: skip
_RESOURCE_PREFIX = {
    "ECS": ("web", "api", "batch", "db-proxy", "bastion"),
    "VPC": ("vpc-core", "vpc-dmz", "sg-web", "subnet-app"),
    "OBS": ("logs", "backups", "assets", "reports"), "RDS": ("rds-orders", "rds-users", "rds-billing"),
    "IAM": ("user", "agency"), "CTS": ("system", "audit"), "ELB": ("elb-public", "elb-internal"),
    "EVS": ("vol-data", "vol-log", "vol-sys"),
}  # fmt: skip
_ENVS = ("prod", "staging", "dev", "test")
_FAILURE = {
    "warning": ((400, "Invalid request parameter."),
                (403, "You do not have permission to perform this operation."),
                (404, "The resource does not exist."),
                (409, "The resource is in a state that forbids this.")),
    "incident": ((500, "Internal server error. Try again later."), (503, "Service temporarily unavailable.")),
}  # fmt: skip
_CHANGES = ("create", "delete", "set", "update", "reset", "resize", "extend")
_DATA_TRACKERS = ("obs-audit", "obs-finance", "obs-ml-data")
_REGION = "cn-north-4"


def _ak(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))


@dataclass(frozen=True)
class Resource:
    service: str
    type: str
    id: str
    name: str


@dataclass(frozen=True)
class User:
    name: str
    id: str
    access_key_id: str | None
    ips: tuple[str, ...]
    #: cumulative weights over services, this user's affinity
    service_weights: tuple[float, ...]


class Universe:
    """The value domains of one account, drawn from a seed.

    ~20 users (a few with access keys), 8 services, ~45 trace names, ~2,000 resources, ratings 90/8/2 %,
    4 enterprise projects, 3 data trackers (10 % of traces are OBS data events) plus ``system``.
    """

    def __init__(self, *, domain_id: str, domain_name: str, seed: int = 7, resources: int = 2000) -> None:
        rng = random.Random(seed)
        self.domain = {"id": domain_id, "name": domain_name}
        self.services = tuple(_SERVICES)
        self.enterprise_projects = ("0", *(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3)))
        self.data_trackers = _DATA_TRACKERS
        users = []
        names = (*_FIRST_NAMES, *_ROBOTS)
        for index, name in enumerate(names):
            has_ak = name in _ROBOTS or index % 3 == 0  # 8 of 20 users call APIs with an access key
            weights = [(_SERVICES[s][0] * rng.uniform(0.2, 3.0)) for s in self.services]
            cumulative = []
            total = 0.0
            for w in weights:
                total += w
                cumulative.append(total)
            ips = tuple(f"{rng.choice((203, 198, 192))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                        f"{rng.randint(1, 254)}" for _ in range(rng.randint(1, 3)))  # fmt: skip
            users.append(User(name, f"{rng.getrandbits(128):032x}", _ak(rng) if has_ak else None, ips,
                              tuple(cumulative)))  # fmt: skip
        self.users = tuple(users)
        self.user_weights = tuple(0.3 if u.name in _ROBOTS else 1.0 for u in users)
        # Resources: each service gets a share of ~2,000, per resource type it has.
        by_service: dict[str, list[Resource]] = {}
        total_weight = sum(w for w, _ in _SERVICES.values())
        for service, (weight, ops) in _SERVICES.items():
            types = sorted({op[1] for op in ops})
            count = max(len(types), round(resources * weight / total_weight))
            pool: list[Resource] = []
            for i in range(count):
                rtype = types[i % len(types)]
                prefix = rng.choice(_RESOURCE_PREFIX[service])
                name = f"{prefix}-{rng.choice(_ENVS)}-{i:04d}"
                pool.append(Resource(service, rtype, str(uuid.UUID(int=rng.getrandbits(128))), name))
            by_service[service] = pool
        self.resources_by_service = by_service
        self.ops_by_service = {s: ops for s, (_, ops) in _SERVICES.items()}
        self.buckets = tuple(r for r in by_service["OBS"] if r.type == "bucket")

    @property
    def resources(self) -> list[Resource]:
        return [r for pool in self.resources_by_service.values() for r in pool]

    @property
    def trace_names(self) -> list[str]:
        return [op[0] for ops in self.ops_by_service.values() for op in ops]

    @property
    def resource_types(self) -> list[str]:
        return sorted({op[1] for ops in self.ops_by_service.values() for op in ops})

    @property
    def access_keys(self) -> list[str]:
        return [u.access_key_id for u in self.users if u.access_key_id]


class TraceFactory:
    """Realistic traces: ``input_trace`` is what a producer POSTs; ``stored_row`` is what the server stores.

    ``stored_row`` builds the body the way :func:`opencts.traces.model.normalise` does (checked against it in
    :func:`self_check`), but fast enough for ten million rows.
    """

    def __init__(
        self, universe: Universe, project_id: str, *, seed: int = 11, data_share: float = 0.10
    ) -> None:
        self.u = universe
        self.project_id = project_id
        self.rng = random.Random(seed)
        self.data_share = data_share
        self._ops = {
            s: (list(ops), [sum(op[4] for op in ops[: i + 1]) for i in range(len(ops))])
            for s, ops in universe.ops_by_service.items()
        }
        self._data_cum = [sum(op[2] for op in _DATA_OPS[: i + 1]) for i in range(len(_DATA_OPS))]
        self._user_cum = [sum(universe.user_weights[: i + 1]) for i in range(len(universe.users))]

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _rating(self) -> str:
        r = self.rng.random()
        return "normal" if r < 0.90 else "warning" if r < 0.98 else "incident"

    def input_trace(self, time_ms: int) -> dict[str, Any]:
        """One trace in the producer's form (request/response as objects, code as a number)."""
        rng = self.rng
        user = rng.choices(self.u.users, cum_weights=self._user_cum)[0]
        rating = self._rating()
        user_info: dict[str, Any] = {"name": user.name, "domain": self.u.domain}
        trace: dict[str, Any]
        if rng.random() < self.data_share:
            name, trace_type, _ = rng.choices(_DATA_OPS, cum_weights=self._data_cum)[0]
            bucket = rng.choice(self.u.buckets)
            key = f"{rng.choice(('raw', 'daily', 'img', 'exports'))}/{rng.getrandbits(40):010x}.dat"
            if user.access_key_id:
                user_info["access_key_id"] = user.access_key_id
            trace = {
                "trace_id": self._uuid(),
                "trace_name": name,
                "trace_rating": rating,
                "trace_type": trace_type,
                "time": time_ms,
                "user": user_info,
                "code": 200 if rating == "normal" else 403,
                "service_type": "OBS",
                "resource_type": "object",
                "resource_id": f"{bucket.name}/{key}",
                "resource_name": key,
                "source_ip": rng.choice(user.ips),
                "request_id": self._uuid(),
                "enterprise_project_id": "0",
                "read_only": name in ("GET.OBJECT", "HEAD.OBJECT"),
                "tracker_name": rng.choice(self.u.data_trackers),
            }
            return trace
        service = rng.choices(self.u.services, cum_weights=user.service_weights)[0]
        ops, cum = self._ops[service]
        name, rtype, read_only, api_version, _ = rng.choices(ops, cum_weights=cum)[0]
        pool = self.u.resources_by_service[service]
        resource = pool[int(len(pool) * rng.random() ** 1.6)]  # some resources are much busier than others
        trace_type = "ApiCall" if user.access_key_id and rng.random() < 0.7 else "ConsoleAction"
        if name in ("login", "logout"):
            trace_type = "ConsoleAction"
        if trace_type == "ApiCall":
            user_info["access_key_id"] = user.access_key_id
        if rating == "normal":
            code, message = (201 if name.startswith("create") else 200), None
        else:
            code, message = rng.choice(_FAILURE[rating])
        trace = {
            "trace_id": self._uuid(),
            "trace_name": name,
            "trace_rating": rating,
            "trace_type": trace_type,
            "time": time_ms,
            "user": user_info,
            "code": code,
            "api_version": api_version,
            "service_type": service,
            "resource_type": rtype if name not in ("login", "logout") else "user",
            "resource_id": resource.id,
            "resource_name": resource.name,
            "source_ip": rng.choice(user.ips),
            "enterprise_project_id": rng.choices(self.u.enterprise_projects, cum_weights=(7, 8, 9, 10))[0],
            "read_only": read_only,
        }
        if trace_type == "ApiCall":
            trace["request_id"] = self._uuid()
        # Only changes carry the audited request body; failures and creations carry a response.
        if name.startswith(_CHANGES):
            trace["request"] = {"name": resource.name}
        if rating != "normal":
            trace["response"] = {"error_code": f"{service}.{code}"}
        elif name.startswith("create"):
            trace["response"] = {"id": resource.id}
        if message is not None:
            trace["message"] = message
        return trace

    def stored_row(self, time_ms: int, record_time: int) -> Row:
        """A row tuple in :data:`ROW_COLUMNS` order, body in the server's normalised form."""
        body = self.input_trace(time_ms)
        return self.to_row(body, record_time)

    def to_row(self, body: dict[str, Any], record_time: int) -> Row:
        """Normalise an input trace in place, like the server, and return its row tuple."""
        dumps = orjson.dumps
        if "request" in body:
            body["request"] = dumps(body["request"]).decode()
        if "response" in body:
            body["response"] = dumps(body["response"]).decode()
        body["code"] = str(body["code"])
        kind = "data" if body["trace_type"] in ("ObsAPI", "ObsSDK") else "system"
        tracker = body.pop("tracker_name", None) or "system"
        body["event_type"] = kind
        body["project_id"] = self.project_id
        body["tracker_name"] = tracker
        body["record_time"] = record_time
        user = body["user"]
        return (
            self.project_id,
            body["trace_id"],
            kind,
            body["time"],
            record_time,
            body["trace_name"],
            body["trace_rating"],
            body["trace_type"],
            body["service_type"],
            body.get("resource_type"),
            body.get("resource_id"),
            body.get("resource_name"),
            user["name"],
            user.get("access_key_id"),
            tracker,
            body.get("enterprise_project_id"),
            dumps(body),
            body.get("source_ip"),
            body["code"],
            body.get("request_id"),
            trace_key(self.project_id, body["trace_id"]),
        )


def self_check(factory: TraceFactory, samples: int = 200) -> None:
    """Prove ``stored_row`` gives what the server's own ingest code would store for the same input."""
    from opencts.traces.ingest import prepare

    now = now_ms()
    inputs = [factory.input_trace(now - factory.rng.randrange(HOUR_MS)) for _ in range(samples)]
    expected = prepare(orjson.loads(orjson.dumps(inputs)), project_id=factory.project_id, now=now,
                       retention_ms=7 * DAY_MS)  # fmt: skip
    if len(expected.rows) != samples:
        bad = [r for r in expected.results if r.status != "accepted"]
        raise AssertionError(f"the server would not accept generated traces: {bad[:3]}")
    for item, want in zip(inputs, expected.rows, strict=True):
        got = factory.to_row(dict(item), now)
        want_tuple = (
            *(getattr(want, c) for c in ROW_COLUMNS[:-1]),
            trace_key(want.project_id, want.trace_id),
        )
        b = ROW_COLUMNS.index("body")
        same_columns = got[:b] + got[b + 1 :] == want_tuple[:b] + want_tuple[b + 1 :]
        if not same_columns or orjson.loads(got[b]) != orjson.loads(want_tuple[b]):
            raise AssertionError(f"generated row differs from the server's:\n{got}\n{want_tuple}")


def encode_batch(traces: Sequence[dict[str, Any]]) -> bytes:
    return orjson.dumps({"traces": list(traces)})


# -- building a big trace log directly in SQLite ---------------------------------------------------------


@dataclass
class BuildStats:
    rows: int
    insert_s: float
    index_s: float
    analyze_s: float
    total_s: float
    data_start: int
    data_end: int


def traces_index_ddl(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX ...) of the secondary indexes on ``traces``, as the migration created them."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'traces' AND sql IS NOT NULL"
        " ORDER BY name"
    ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to regenerate a dataset, chunk by chunk, in any process (it pickles)."""

    project_id: str
    domain_id: str
    domain_name: str
    count: int
    start_ms: int
    end_ms: int
    seed: int = 7
    #: arrival order: "time" (in time order), "random" (times drawn independently of arrival over the
    #: whole span), "backfill" (in time order, but one row in ten is an old trace from anywhere before it)
    order: str = "time"

    def universe(self) -> Universe:
        return Universe(domain_id=self.domain_id, domain_name=self.domain_name, seed=self.seed)

    def time_of(self, index: int) -> int:
        """Row ``index``'s time in [start, end), following :attr:`order` (a pure function of the index,
        so chunks generated in any process agree)."""
        span = self.end_ms - self.start_ms
        in_order = self.start_ms + (span * index) // self.count
        if self.order == "time":
            return in_order
        mixed = _splitmix64(self.seed * 1_000_000_007 + index)
        if self.order == "random":
            return self.start_ms + mixed % span
        if self.order == "backfill":
            if mixed % 10 == 0:  # an old trace arriving late: anywhere between the start and now
                return self.start_ms + (mixed >> 8) % max(1, in_order - self.start_ms)
            return in_order
        raise ValueError(f"unknown arrival order {self.order!r}")


ORDERS = ("time", "random", "backfill")


def _splitmix64(x: int) -> int:
    """A well-mixed 64-bit value of ``x`` (SplitMix64's finaliser): random-looking, yet reproducible."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def generate_chunk(spec: DatasetSpec, first: int, size: int) -> list[Row]:
    """Rows ``first .. first+size-1`` of the dataset; record_time is time plus a small ingest delay."""
    was_enabled = gc.isenabled()
    gc.disable()  # tens of thousands of live tuples make the cyclic GC the biggest cost otherwise
    try:
        factory = TraceFactory(spec.universe(), spec.project_id, seed=spec.seed * 1_000_003 + first)
        rng = factory.rng
        stored = factory.stored_row
        rows = []
        for i in range(first, first + size):
            t = spec.time_of(i)
            rows.append(stored(t, t + 50 + int(rng.expovariate(1 / 400))))
        return rows
    finally:
        if was_enabled:
            gc.enable()


def _chunks(spec: DatasetSpec, chunk: int, workers: int) -> Iterator[list[Row]]:
    """The dataset in chunks, generated ``workers`` processes ahead of the consumer (inline with 0)."""
    starts = range(0, spec.count, chunk)
    if workers <= 0:
        for first in starts:
            yield generate_chunk(spec, first, min(chunk, spec.count - first))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[Row]]] = deque()
        queue = iter(starts)
        for first in queue:
            pending.append(pool.submit(generate_chunk, spec, first, min(chunk, spec.count - first)))
            if len(pending) > workers:
                break
        while pending:
            rows = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(generate_chunk, spec, nxt, min(chunk, spec.count - nxt)))
            yield rows


def build_trace_log(
    db_path: Path,
    spec: DatasetSpec,
    *,
    chunk: int = 50_000,
    workers: int = 1,
    analyze: bool = True,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> BuildStats:
    """Fill the ``traces`` table of an already migrated (bootstrapped) database, fast.

    Drops the secondary indexes, appends in time order in big transactions with ``synchronous=OFF`` while
    ``workers`` processes generate the next chunks, recreates the indexes with the migration's own DDL
    (read back from ``sqlite_master``), then ANALYZE. ``on_progress(phase, done, total)`` reports progress.
    """
    progress = on_progress or (lambda _phase, _done, _total: None)
    began = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-2000000")  # 2 GB: the unique trace_key index stays hot
        conn.execute("PRAGMA temp_store=MEMORY")
        indexes = traces_index_ddl(conn)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        done = 0
        progress("insert", 0, spec.count)
        for rows in _chunks(spec, chunk, workers):
            conn.execute("BEGIN")
            conn.executemany(INSERT_SQL, rows)
            conn.execute("COMMIT")
            done += len(rows)
            progress("insert", done, spec.count)
        inserted = time.perf_counter()
        progress("index", 0, len(indexes))
        for i, (_, sql) in enumerate(indexes, 1):
            conn.execute(sql)
            progress("index", i, len(indexes))
        indexed = time.perf_counter()
        if analyze:
            progress("analyze", 0, 1)
            conn.execute("ANALYZE")
            progress("analyze", 1, 1)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        analyzed = time.perf_counter()
    finally:
        conn.close()
    return BuildStats(
        rows=spec.count,
        insert_s=inserted - began,
        index_s=indexed - inserted,
        analyze_s=analyzed - indexed,
        total_s=analyzed - began,
        data_start=spec.start_ms,
        data_end=spec.end_ms,
    )


def build_with_progress(
    db_path: Path, spec: DatasetSpec, *, workers: int = 1, analyze: bool = True
) -> BuildStats:
    """:func:`build_trace_log` with a Rich progress bar per phase (plain lines when not on a terminal)."""
    labels = {"insert": "inserting rows", "index": "creating indexes", "analyze": "ANALYZE"}
    if not console.is_terminal:
        began = time.perf_counter()
        last: dict[str, int] = {}

        def log_progress(phase: str, done: int, total: int) -> None:
            step = max(1, total // 20)
            if done == total or done - last.get(phase, -step) >= step:
                last[phase] = done
                elapsed = time.perf_counter() - began
                console.print(f"  {labels[phase]}: {done:,}/{total:,} after {elapsed:,.0f}s")

        return build_trace_log(db_path, spec, workers=workers, analyze=analyze, on_progress=log_progress)
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(labels[phase], total=total)
            bar.update(tasks[phase], completed=done)

        return build_trace_log(db_path, spec, workers=workers, analyze=analyze, on_progress=on_progress)


def build_dataset(
    data_dir: Path,
    count: int,
    *,
    start_ms: int,
    end_ms: int,
    seed: int = 7,
    workers: int = 1,
    order: str = "time",
    database_url: str | None = None,
) -> tuple[Credentials, DatasetSpec, BuildStats]:
    """Bootstrap ``data_dir`` like a first server start, then fill it with ``count`` traces of its project.

    With ``database_url`` (PostgreSQL) the log goes there and ``data_dir`` keeps only the credentials.
    """
    creds = bootstrap_data_dir(data_dir, database_url)
    spec = DatasetSpec(
        project_id=creds.project_id,
        domain_id=creds.domain_id,
        domain_name=creds.domain_name,
        count=count,
        start_ms=start_ms,
        end_ms=end_ms,
        seed=seed,
        order=order,
    )
    self_check(TraceFactory(spec.universe(), creds.project_id, seed=seed))
    if database_url is not None:
        stats = build_postgres_log(database_url, spec, workers=workers)
    else:
        stats = build_with_progress(data_dir / "opencts.db", spec, workers=workers)
    return creds, spec, stats


def build_postgres_log(
    database_url: str, spec: DatasetSpec, *, workers: int = 1, chunk: int = 50_000
) -> BuildStats:
    """Fill the ``traces`` table of a migrated PostgreSQL database: drop its secondary indexes, COPY the
    rows, recreate the indexes with the migrations' own DDL (read back from ``pg_indexes``), ANALYZE."""
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    began = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'traces'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p') ORDER BY indexname"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        columns = ", ".join(ROW_COLUMNS)
        done = 0
        for rows in _chunks(spec, chunk, workers):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY traces ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            done += len(rows)
            if done % 1_000_000 < chunk:
                console.print(f"  COPY: {done:,}/{spec.count:,} after {time.perf_counter() - began:,.0f}s")
        inserted = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name, ddl in indexes:
            conn.execute(ddl)
            console.print(f"  index {name} after {time.perf_counter() - began:,.0f}s")
        indexed = time.perf_counter()
        conn.execute("VACUUM ANALYZE traces")
        analyzed = time.perf_counter()
    return BuildStats(
        rows=spec.count,
        insert_s=inserted - began,
        index_s=indexed - inserted,
        analyze_s=analyzed - indexed,
        total_s=analyzed - began,
        data_start=spec.start_ms,
        data_end=spec.end_ms,
    )


def retention_days_for(data_start_ms: int, margin_ms: int = 2 * HOUR_MS) -> int:
    """Retention (days, at least the default 7) that keeps data starting at ``data_start_ms`` listed for
    ``margin_ms`` more: a build longer than the 10-minute head start, or a reused database, would otherwise
    lose its oldest traces to the retention window while being measured."""
    return max(7, math.ceil((now_ms() + margin_ms - data_start_ms) / DAY_MS))

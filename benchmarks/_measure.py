"""Measuring a running server: latency percentiles, its memory and CPU (psutil), its consumers' progress,
and where its time goes (py-spy); plus the console every benchmark prints its figures on."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from rich.console import Console

from opencts.testing.server import ServerProcess

console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)  # logs get full tables


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


def rss_kib(pid: int) -> int:
    """The resident set size of a process, in KiB."""
    return int(psutil.Process(pid).memory_info().rss // 1024)


def peak_rss_kib(pid: int) -> int:
    """The most memory a process has held since it started (VmHWM, in KiB).

    psutil reports no high-water mark on Linux, so this one figure comes from ``/proc``.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return rss_kib(pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) and its live children have used so far.

    The children are the ingest worker processes, whose parsing is the server's work too.
    """
    process = psutil.Process(pid)
    total = 0.0
    for one in (process, *process.children(recursive=True)):
        try:
            times = one.cpu_times()
        except psutil.NoSuchProcess:  # a child that has just exited
            continue
        total += times.user + times.system
    return total


def count_traces(db_path: Path) -> int:
    """Rows in the trace log, read-only (fine while the server runs: WAL)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
    finally:
        conn.close()


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
    server: ServerProcess, *, timeout: float, window: float = 2.0, idle_share: float = 0.10
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
        self.peak_kib, self.samples = rss_kib(self.pid), 1
        self.timeline = [(0.0, self.peak_kib)]
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = rss_kib(self.pid)
            except psutil.NoSuchProcess:
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

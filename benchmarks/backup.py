"""``opencts backup``: its rate against a plain copy of the same file, and what it costs ingest meanwhile.

1. A data dir is bootstrapped and filled with N realistic traces (default 1,000,000) through the store.
2. Offline, the database file is copied by ``shutil.copyfile`` and synced (the floor: what the disk can
   do), then backed up by ``take`` (the command's code path without the progress bars): the online backup
   API from one read transaction, the file's SHA-256, the other files, the manifest. Both are the best of
   ``--rounds`` runs on a warm page cache; rates are MB of database per second.
3. ``opencts serve`` starts on the data dir. Ingest runs for ``--seconds`` from ``--concurrency`` client
   threads with pre-encoded batches of 1,000, first alone, then while ``opencts backup`` runs back to back
   in its own process, as an operator would run it. Rates are accepted traces per second; the last backup
   taken under load is checked as a restore checks it (manifest, sizes, SHA-256, ``quick_check``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _dataset import build_dataset
from _measure import console, wait_until_idle
from _server import bench_server, scratch_space
from _traces import TraceFactory, Universe, encode_batch
from rich.table import Table

from opencts.backup.manifest import Manifest
from opencts.backup.restore import check
from opencts.backup.snapshot import take
from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.testing.server import ServerProcess

CLI = [sys.executable, "-c", "from opencts.cli.main import main; main()"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=1_000_000, help="traces in the log (default 1,000,000)")
    p.add_argument("--rounds", type=int, default=3, help="copies and backups timed offline (best of)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of ingest, alone and with backups")
    p.add_argument("--concurrency", type=int, default=4, help="client threads posting at once")
    p.add_argument("--keep", action="store_true", help="keep the scratch data dir under bench-data/")
    return p.parse_args()


def best_of(rounds: int, scratch: Path, fn: Callable[[Path], object]) -> float:
    best = float("inf")
    for i in range(rounds):
        target = scratch / f"out-{i}"
        started = time.perf_counter()
        fn(target)
        best = min(best, time.perf_counter() - started)
        shutil.rmtree(target, ignore_errors=True)
    return best


def offline(settings: Settings, scratch: Path, rounds: int) -> tuple[float, float, float]:
    """Seconds for a plain copy of the database file and for a whole backup; the database's size in MB."""
    db = settings.data_dir / "opencts.db"
    size_mb = db.stat().st_size / 1e6

    def plain(target: Path) -> None:
        target.mkdir()
        shutil.copyfile(db, target / "opencts.db")
        with (target / "opencts.db").open("rb+") as copied:  # a copy not on disk yet is no backup
            os.fsync(copied.fileno())

    copy_s = best_of(rounds, scratch, plain)
    backup_s = best_of(rounds, scratch, lambda target: take(settings, target))
    return copy_s, backup_s, size_mb


class Load:
    """Client threads posting pre-encoded batches until ``stop``; accepted traces counted."""

    def __init__(self, server: ServerProcess, creds: BootstrapCredentials, concurrency: int) -> None:
        factory = TraceFactory(Universe(domain_id=creds.domain_id, domain_name=creds.domain_name),
                               creds.project_id, seed=int(time.time()), data_share=0.0)  # fmt: skip
        self.server, self.path = server, f"/v3/{creds.project_id}/traces"
        self.factory, self.concurrency = factory, concurrency
        self.accepted = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def bodies(self, count: int) -> list[bytes]:
        now = now_ms()
        return [
            encode_batch([self.factory.input_trace(now - 60_000 + j) for j in range(1000)])
            for _ in range(count)
        ]

    def _post(self, bodies: list[bytes]) -> None:
        with self.server.client(timeout=60) as client:
            for body in bodies:
                if self.stop.is_set():
                    return
                r = client.post(self.path, content=body, headers={"Content-Type": "application/json"})
                if r.status_code == 429:
                    time.sleep(0.1)
                    continue
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code}: {r.text[:200]}")
                    return
                with self.lock:
                    self.accepted += int(r.json()["accepted"])

    def run(self, seconds: float, batches_per_thread: int) -> float:
        """Traces per second accepted over ``seconds``."""
        per_thread = [self.bodies(batches_per_thread) for _ in range(self.concurrency)]
        self.stop.clear()
        self.accepted = 0
        threads = [threading.Thread(target=self._post, args=(b,)) for b in per_thread]
        started = time.perf_counter()
        for t in threads:
            t.start()
        self.stop.wait(seconds)
        self.stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if self.errors:
            raise RuntimeError(f"ingest failed: {self.errors[:3]}")
        return self.accepted / elapsed


def backups_beside(
    data_dir: Path, scratch: Path, stop: threading.Event, out: list[tuple[float, float]]
) -> None:
    """``opencts backup`` in its own process, back to back until ``stop``: (seconds, MB) of each. Every
    backup but the last is removed at once (disk); the last is checked whole after the run."""
    i = 0
    while not stop.is_set():
        target = scratch / f"online-{i}"
        started = time.perf_counter()
        subprocess.run(
            [*CLI, "backup", str(target), "--data-dir", str(data_dir)], check=True, capture_output=True
        )
        out.append((time.perf_counter() - started, Manifest.read(target).total_bytes / 1e6))
        if i:
            shutil.rmtree(scratch / f"online-{i - 1}")
        i += 1


def main() -> None:
    args = parse_args()
    with scratch_space("backup-", keep=args.keep) as scratch:
        data_dir = scratch / "data"
        now = now_ms()
        creds, _, _ = build_dataset(data_dir, args.traces, start_ms=now - 6 * DAY_MS, end_ms=now - HOUR_MS)
        settings = Settings(data_dir=data_dir)
        copy_s, backup_s, size_mb = offline(settings, scratch, args.rounds)

        server = bench_server(data_dir)
        try:
            wait_until_idle(server, timeout=600)
            load = Load(server, creds, args.concurrency)
            batches = int(args.seconds * 40)  # more than 4 threads can send in that time
            alone = load.run(args.seconds, batches)
            stop = threading.Event()
            taken: list[tuple[float, float]] = []
            beside = threading.Thread(target=backups_beside, args=(data_dir, scratch, stop, taken))
            beside.start()
            try:
                during = load.run(args.seconds, batches)
            finally:
                stop.set()
                beside.join()
        finally:
            server.stop()
        if taken:  # the last backup taken under load, checked as a restore would (SHA-256s, quick_check)
            check(scratch / f"online-{len(taken) - 1}", Settings(data_dir=scratch / "nowhere"))

    table = Table(title=f"backup of a log of {args.traces:,} traces ({size_mb:,.0f} MB)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "plain copy of opencts.db (copyfile + fsync)", f"{size_mb / copy_s:,.0f} MB/s ({copy_s:.2f} s)"
    )
    table.add_row("opencts backup, offline (snapshot, SHA-256, manifest)",
                  f"{size_mb / backup_s:,.0f} MB/s ({backup_s:.2f} s)")  # fmt: skip
    table.add_row("backup / copy", f"{copy_s / backup_s:.2f}")
    if taken:
        secs = sum(s for s, _ in taken)
        mb = sum(m for _, m in taken)
        table.add_row(f"opencts backup under ingest ({len(taken)} backups)", f"{mb / secs:,.0f} MB/s")
    table.add_row(
        f"ingest alone ({args.concurrency} clients, {args.seconds:.0f} s)", f"{alone:,.0f} traces/s"
    )
    table.add_row("ingest while backups run back to back", f"{during:,.0f} traces/s")
    table.add_row("ingest during / alone", f"{during / alone:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()

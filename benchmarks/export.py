"""Streaming export: ``GET /v3/{project_id}/traces/export?format=csv|ndjson`` over 7 days, in flat memory.

Builds a database of N traces (default 500,000) over the last 7 days (the server's own migrations and
bootstrap create schema and project, ``trace_log.append`` the rows), starts ``opencts serve`` on it, then
streams each format once with a signed request, counting rows as they arrive. A thread samples the server's
RSS (psutil) every 20 ms, to show the export does not buffer the result.

Each format is exported unfiltered, and filtered on the busiest service and on the busiest user (the term
index answers those on SQLite). Floor: >= 50,000 rows/s for each; memory should stay flat (peak close to
the RSS before).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from _dataset import build_dataset, retention_days_for
from _measure import (
    PySpy,
    RssSampler,
    console,
    cpu_seconds,
    db_size,
    human_bytes,
    load_note,
    peak_rss_kib,
    rss_kib,
    verdict,
    wait_until_idle,
)
from _server import bench_server, ensure_data_trackers, scratch_space
from rich.table import Table

from opencts.clock import DAY_MS, now_ms
from opencts.testing.server import ServerProcess

FLOOR_ROWS_PER_S = 50_000


@dataclass
class ExportRun:
    case: str
    fmt: str
    rows: int
    bytes: int
    seconds: float
    first_byte_s: float
    rss_before_kib: int
    rss_peak_kib: int
    rss_after_kib: int
    server_cpu_s: float
    #: RSS (KiB) at 25/50/75/100 % of the export's duration
    rss_quartiles: list[int]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=500_000, help="traces in the database (default 500,000)")
    p.add_argument("--days", type=float, default=7.0, help="days the traces span, ending now (default 7)")
    p.add_argument("--rounds", type=int, default=1, help="exports per format (default 1)")
    p.add_argument("--workers", type=int, default=1, help="row-generating processes during the build")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--catch-up-timeout", type=float, default=1800.0,
                   help="seconds to wait for the server's consumers to catch up with the log")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the scratch data dir under bench-data/")
    p.add_argument(
        "--py-spy", type=Path, metavar="FILE", help="profile the server with py-spy into FILE (raw)"
    )
    return p.parse_args()


#: ListTraces parameter -> column, for the filtered cases
FILTERED = {"service_type": "service_type", "user": "user_name"}


def expected_rows(
    db_path: Path, project_id: str, time_from: int, time_to: int, column: str | None = None, value: str = ""
) -> int:
    """Management traces in the range (and with ``column = value``): what the export must return."""
    where = "project_id = ? AND kind = 'system' AND time > ? AND time < ?"
    args: tuple[object, ...] = (project_id, time_from, time_to)
    if column is not None:
        where, args = f"{where} AND {column} = ?", (*args, value)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM traces WHERE {where}", args).fetchone()[0])
    finally:
        conn.close()


def busiest(db_path: Path, project_id: str, column: str) -> str:
    """The value of ``column`` most management traces carry: the largest filtered export."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            f"SELECT {column} FROM traces WHERE project_id = ? AND kind = 'system' AND {column} IS NOT NULL"
            f" GROUP BY {column} ORDER BY count(*) DESC LIMIT 1",
            (project_id,),
        ).fetchone()
        return str(row[0])
    finally:
        conn.close()


def export_once(server: ServerProcess, path: str, params: dict[str, str], fmt: str, case: str) -> ExportRun:
    """Stream one export, counting lines as they arrive, while sampling the server's RSS."""
    rss_before = rss_kib(server.pid)
    sampler = RssSampler(server.pid, interval=0.02).start()
    cpu0 = cpu_seconds(server.pid)
    newlines = size = 0
    first_byte = 0.0
    with server.client(timeout=600.0) as client:
        started = time.perf_counter()
        with client.stream("GET", path, params={**params, "format": fmt}) as response:
            if response.status_code != 200:
                response.read()
                raise RuntimeError(f"export answered {response.status_code}: {response.text[:300]}")
            for chunk in response.iter_raw(1 << 16):
                if not size:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                newlines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
    peak = sampler.stop()
    cpu = cpu_seconds(server.pid) - cpu0
    rows = newlines - 1 if fmt == "csv" else newlines  # the CSV header line is not a trace
    after = rss_kib(server.pid)
    return ExportRun(
        case, fmt, rows, size, elapsed, first_byte, rss_before, peak, after, cpu, sampler.at_fractions()
    )


def main() -> None:
    args = parse_args()
    with scratch_space("export-", keep=args.keep) as data_dir:
        export_all(args, data_dir)


def export_all(args: argparse.Namespace, scratch: Path) -> None:
    server: ServerProcess | None = None
    try:
        end = now_ms()
        start = end - int(args.days * DAY_MS) + 10 * 60_000
        console.print(
            f"[bold]export benchmark[/]: building {args.traces:,} traces over {args.days:g} days in {scratch}"
        )
        creds, spec, stats = build_dataset(
            scratch, args.traces, start_ms=start, end_ms=end, seed=args.seed, workers=args.workers
        )
        console.print(f"built in {stats.total_s:,.0f}s; database {human_bytes(db_size(scratch))}")
        time_from, time_to = start - 1, end + 1
        db_path = scratch / "opencts.db"
        cases: list[tuple[str, dict[str, str], int]] = [
            ("all", {}, expected_rows(db_path, creds.project_id, time_from, time_to))
        ]
        for param, column in FILTERED.items():
            value = busiest(db_path, creds.project_id, column)
            count = expected_rows(db_path, creds.project_id, time_from, time_to, column, value)
            cases.append((f"{param}={value}", {param: value}, count))

        retention = retention_days_for(start)
        server = bench_server(scratch, {"OPENCTS_RETENTION_DAYS": str(retention)} if retention != 7 else {})
        path = f"/v3/{creds.project_id}/traces/export"
        params = {"from": str(time_from), "to": str(time_to)}
        with server.client() as client:  # one small request first: the server's lazy start-up costs
            client.get(f"/v3/{creds.project_id}/traces", params={"limit": "1"}).raise_for_status()
            ensure_data_trackers(client, creds.project_id, spec.universe().data_trackers)
        catch_up = wait_until_idle(server, timeout=args.catch_up_timeout)
        console.print(f"server idle (consumers caught up with the log) after {catch_up:,.0f}s")
        load_before = load_note()
        spy = PySpy(server.pid, args.py_spy.resolve()) if args.py_spy else None
        with spy or contextlib.nullcontext():
            runs = [
                export_once(server, path, {**params, **extra}, fmt, case)
                for case, extra, _ in cases
                for _ in range(args.rounds)
                for fmt in ("csv", "ndjson")
            ]
        expected = {case: count for case, _, count in cases}
        hwm = peak_rss_kib(server.pid)

        table = Table(title=f"export of management traces over 7 days ({args.traces:,} in the log)")
        table.add_column("case", no_wrap=True)
        for col in ("format", "rows", "seconds", "rows/s", "MiB/s", "1st byte", "RSS before",
                    "RSS peak", "RSS after", "server CPU"):  # fmt: skip
            table.add_column(col, justify="right")
        table.add_column(f"≥ {FLOOR_ROWS_PER_S:,} rows/s")
        all_ok = True
        for run in runs:
            ok = run.rate >= FLOOR_ROWS_PER_S and run.rows == expected[run.case]
            all_ok &= ok
            table.add_row(
                run.case,
                run.fmt,
                f"{run.rows:,}",
                f"{run.seconds:.2f}",
                f"{run.rate:,.0f}",
                f"{run.bytes / 2**20 / run.seconds:,.1f}",
                f"{run.first_byte_s * 1000:,.0f} ms",
                human_bytes(run.rss_before_kib * 1024),
                human_bytes(run.rss_peak_kib * 1024),
                human_bytes(run.rss_after_kib * 1024),
                f"{run.server_cpu_s:.1f}s",
                verdict(ok),
            )
        console.print(table)
        for run in runs:
            if run.rows != expected[run.case]:
                console.print(
                    f"[red]{run.case} {run.fmt} export returned {run.rows:,} rows, "
                    f"expected {expected[run.case]:,}[/]"
                )
        for run in runs:
            quartiles = " → ".join(human_bytes(k * 1024) for k in run.rss_quartiles)
            console.print(f"{run.case} {run.fmt} RSS at 25/50/75/100 % of the export: {quartiles}")
        growth = max(r.rss_peak_kib - r.rss_before_kib for r in runs)
        console.print(
            f"largest RSS growth during an export: {human_bytes(growth * 1024)} "
            f"(server VmHWM since start {human_bytes(hwm * 1024)}); floor {verdict(all_ok)}"
        )
        console.print(f"machine: {load_before} before the exports, {load_note()} after")
        if spy is not None:
            console.print(spy.summary())
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

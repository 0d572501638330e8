"""An archive SQL query over a million archived traces: time to first result and total, next to the floor.

1. A year of realistic management traces (``_traces.TraceFactory``, N = 1,000,000 by default) is written
   as trace files in the exact archive format (``archive.encoding``: the stored bodies in a JSON array,
   gzip level 6, mtime 0; a file per service folder every ``365 d / --rounds``) into a local folder store.
2. The query: every login from one address over the year, through ``archive.query`` as the API runs it
   (pick the files by stamp, read them through the store, load DuckDB's ``traces`` table, sandbox, run).
   Time to first result = until the first row is in hand; total = until the last one.
3. The floor, in the same run: reading the same objects through the store and gunzipping them, nothing
   else (one thread, as Python would, and two threads, the machine's cores).
4. The hand-off, measured: the gzip bytes as stored (DuckDB gunzips with its threads) against content
   gunzipped in Python first (``inflate``, the default).
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from _measure import console, human_bytes
from _server import scratch_space
from _traces import TraceFactory, Universe
from rich.table import Table

from opencts.archive import encoding, layout, query
from opencts.archive.storage import LocalStore
from opencts.clock import DAY_MS

PROJECT = "0" * 31 + "1"
REGION = "local-1"
BUCKET = "archive"
END_MS = 1_790_000_000_000  # a fixed year, so a kept archive is the same one
YEAR_MS = 365 * DAY_MS


def build(store: LocalStore, count: int, rounds: int) -> tuple[int, int, str]:
    """Write ``count`` traces over a year; (files, bytes of JSON content, a login address to look for)."""
    factory = TraceFactory(Universe(domain_id="d" * 32, domain_name="bench"), PROJECT, data_share=0.0)
    store.create_bucket(BUCKET)
    period = YEAR_MS // rounds
    per_round = count // rounds
    files = content = 0
    address = ""
    for r in range(rounds):
        stamp = END_MS - YEAR_MS + (r + 1) * period
        by_service: dict[str, list[bytes]] = defaultdict(list)
        for i in range(per_round):
            at = stamp - period + (i * period) // per_round
            row = factory.stored_row(at, at)
            by_service[row.service_type].append(row.body)
            if not address and row.trace_name == "login" and row.source_ip:
                address = row.source_ip
        for service, bodies in sorted(by_service.items()):
            for start, stop in _cuts(bodies):
                part = bodies[start:stop]
                key = layout.trace_file_key(
                    region=REGION, project_id=PROJECT, tracker="system", service=service, prefix=None,
                    at_ms=stamp, random16=layout.file_random("bench", service, r, start),
                )  # fmt: skip
                store.put(BUCKET, key, encoding.encode(part, "gzip"))
                files += 1
                content += encoding.content_size(len(b) for b in part)
    return files, content, address


def _cuts(bodies: list[bytes]) -> list[tuple[int, int]]:
    starts = encoding.split_points([len(b) for b in bodies])
    return list(zip(starts, [*starts[1:], len(bodies)], strict=True))


def floor(store: LocalStore, files: list[query.ArchiveFile], threads: int) -> float:
    began = time.perf_counter()

    def one(file: query.ArchiveFile) -> int:
        return len(gzip.decompress(store.get(file.bucket, file.key.key)))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        sum(pool.map(one, files))
    return time.perf_counter() - began


def run_query(store: LocalStore, sql: str, *, inflate: bool) -> tuple[float, float, float, int, int]:
    """(seconds to pick, to the first row, to the last row, rows, files)."""
    began = time.perf_counter()
    sources = [query.Source(BUCKET, PROJECT, "system")]
    start, end = END_MS - YEAR_MS, END_MS + 1
    with query.ArchiveQuery() as q:
        q.check(sql)
        picked = query.pick_files(
            store, sources, region=REGION, start_ms=start, end_ms=end, late_ms=8 * DAY_MS
        )
        chosen = time.perf_counter()
        q.load(store, picked, start_ms=start, end_ms=end, unwrap=None, inflate=inflate)
        q.sandbox()
        result = q.run(sql)
        first = next(result.rows, None)
        to_first = time.perf_counter()
        rows = (first is not None) + sum(1 for _ in result.rows)
        total = time.perf_counter()
    return chosen - began, to_first - began, total - began, rows, len(picked)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=365 * 4, help="file rounds over the year (default 6 h)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    with scratch_space("archive-query", keep=args.keep) as scratch:
        store = LocalStore(scratch)
        began = time.perf_counter()
        files, content, address = build(store, args.traces, args.rounds)
        built = time.perf_counter() - began
        gzipped = human_bytes(sum(i.size for i in store.list(BUCKET)))
        console.print(
            f"archive: {args.traces:,} traces in {files:,} files, {human_bytes(content)} of JSON,"
            f" {gzipped} gzip; built in {built:.0f} s"
        )
        sql = (
            "SELECT trace_id, time, user_name, trace_rating FROM traces"
            f" WHERE trace_name = 'login' AND source_ip = '{address}' ORDER BY time"
        )
        picked = query.pick_files(
            store,
            [query.Source(BUCKET)],
            region=REGION,
            start_ms=END_MS - YEAR_MS,
            end_ms=END_MS + 1,
            late_ms=0,
        )
        table = Table("what", "files", "seconds", "first row (s)", "rows", "traces/s")
        for threads in (1, 2):
            seconds = floor(store, picked, threads)
            table.add_row(f"floor: read + gunzip ({threads} thread{'s' * (threads > 1)})", f"{len(picked):,}",
                          f"{seconds:.2f}", "", "", f"{args.traces / seconds:,.0f}")  # fmt: skip
        for inflate in (False, True):
            pick, first, total, rows, used = run_query(store, sql, inflate=inflate)
            label = "query, content gunzipped in Python" if inflate else "query, gzip handed to DuckDB"
            table.add_row(label, f"{used:,}", f"{total:.2f} (pick {pick:.2f})", f"{first:.2f}", f"{rows:,}",
                          f"{args.traces / total:,.0f}")  # fmt: skip
        console.print(f"query: every login from {address} over a year")
        console.print(table)


if __name__ == "__main__":
    main()

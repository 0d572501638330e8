"""Verification throughput: ``opencts verify`` over a million archived traces, with and without proofs.

1. An archive is written straight in the archive's formats (``opencts.testing.archive``: trace files of
   realistic stored bodies, gzip level 6, hourly signed digests chained, leaves objects, C2SP checkpoints)
   into a local bucket folder: N traces, ``--per-file`` per file, ``--files-per-hour`` files an hour.
2. The verifier runs over the folder (``verify_source``, the CLI's code path without the progress bar)
   with ``--workers`` threads: once checking signatures, the chain and every file's SHA-256 (the bytes are
   read and hashed, not opened), once with ``--proofs`` (every file gunzipped, split into its traces with
   ``raw_decode``, every trace hashed to its leaf and looked up among the leaves, every checkpoint rebuilt
   from the leaves objects and its note verified). Each is the best of ``--rounds`` runs.
3. ``--proofs`` runs twice: serial (the traces parsed and hashed on the reading threads, as before the
   process pool) and with ``--processes`` processes (default the CPU count): the same result, compared.

Rates are traces per second of wall time. The archive must verify (a failure is a bug, not a number).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _measure import console
from _server import scratch_space
from _traces import TraceFactory, Universe
from rich.table import Table

from opencts.archive.verify import Options, Result, verify_source
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.clock import HOUR_MS
from opencts.config import Settings
from opencts.testing.archive import PROJECT, ArchiveBuilder

H0 = 1_796_450_400_000  # 2026-12-05T06:00:00Z


def build(root: Path, traces: int, per_file: int, files_per_hour: int) -> ArchiveBuilder:
    factory = TraceFactory(Universe(domain_id="d" * 32, domain_name="bench"), PROJECT)
    builder = ArchiveBuilder(root, body=lambda n, at: factory.stored_row(at, at).body)
    hours = max(1, -(-traces // (per_file * files_per_hour)))
    left = traces
    for h in range(hours):
        files = min(files_per_hour, -(-left // per_file))
        builder.hour(H0 + h * HOUR_MS, files=files, traces=per_file)
        left -= files * per_file
    return builder


def run(
    builder: ArchiveBuilder, proofs: bool, workers: int, rounds: int, processes: int = 0
) -> tuple[float, Result]:
    keys = keys_from_json(json.loads(builder.keys_file().read_text()))
    best, result = float("inf"), Result()
    for _ in range(rounds):
        with open_source(str(builder.bucket), Settings(data_dir=builder.root)) as source:
            start = time.perf_counter()
            result = verify_source(source, keys, Options(proofs=proofs, workers=workers, processes=processes))
            best = min(best, time.perf_counter() - start)
        if not result.ok:
            raise SystemExit(f"the archive does not verify: {result.failures[:5]}")
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=1000)
    parser.add_argument("--files-per-hour", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with scratch_space("archive-verify-", keep=args.keep) as root:
        start = time.perf_counter()
        builder = build(root, args.traces, args.per_file, args.files_per_hour)
        size = sum(p.stat().st_size for p in builder.bucket.rglob("*") if p.is_file())
        console.print(
            f"archive of {builder.seq:,} traces ({size / 2**20:,.1f} MiB)"
            f" written in {time.perf_counter() - start:.1f} s"
        )
        table = Table(title=f"opencts verify, {args.workers} workers (best of {args.rounds})")
        for column in ("Mode", "Digests", "Files", "Traces", "Seconds", "Traces/s"):
            table.add_column(column, justify="right" if column != "Mode" else "left")
        modes = (
            ("signatures, chain, hashes", False, 0),
            ("with --proofs, serial", True, 0),
            (f"with --proofs, {args.processes} processes", True, args.processes),
        )
        results = []
        for name, proofs, processes in modes:
            seconds, result = run(builder, proofs, args.workers, args.rounds, processes)
            results.append(result)
            traces = result.traces
            table.add_row(
                name,
                f"{result.digests:,}",
                f"{result.files:,}",
                f"{traces:,}",
                f"{seconds:.2f}",
                f"{traces / seconds:,.0f}",
            )
        console.print(table)
        if results[1].to_json() != results[2].to_json():
            raise SystemExit("the process pool's result differs from the serial one")


if __name__ == "__main__":
    main()

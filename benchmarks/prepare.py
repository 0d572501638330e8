"""CPU per trace of ingest outside the database: parsing, ``prepare()`` and the answer, in process.

The HTTP benchmark (``ingest.py``) is bounded by SQLite; this one isolates what the server spends on each
trace before and after the write, on the same realistic traces (``TraceFactory``), in batches of 1,000:

- ``parse_batch``: the JSON body to a list of dicts;
- ``prepare``: validation, normalisation, the stored JSON and the rows, for a clean batch (the fast path)
  and for batches that take the reference path in part: traces without ``trace_id``, producers that send
  every optional field as null, and 10% invalid traces;
- the answer: ``summary`` and its JSON.

Figures are CPU time (``process_time``), best of ``--repeat`` runs, so other work on the machine skews
them less than wall time would. Floor: ``prepare`` <= 20 µs per trace on the clean batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from _measure import console, load_note, verdict
from _traces import TraceFactory, Universe, encode_batch
from rich.table import Table

from opencts.clock import DAY_MS, now_ms
from opencts.traces.ingest import parse_batch, prepare, summary

FLOOR_PREPARE_US = 20.0
PROJECT = "p" * 32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1000, help="traces per batch (default 1,000)")
    p.add_argument("--repeat", type=int, default=30, help="runs per figure; the best is reported")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def per_trace_us(fn: Callable[[], object], traces: int, repeat: int) -> tuple[float, float]:
    """(best, median) CPU µs per trace of ``fn()`` over ``repeat`` runs."""
    fn()  # warm caches and lazily built validators
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        runs.append((time.process_time() - started) / traces * 1e6)
    return min(runs), statistics.median(runs)


def with_nulls(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace as producers that write every optional field send it: absent fields as null."""
    out = dict(trace)
    for name in ("event_type", "api_version", "message", "resource_account_id", "location_info", "endpoint"):
        out.setdefault(name, None)
    out["user"] = {**trace["user"], "user_name": None, "principal_urn": None}
    return out


def main() -> None:
    args = parse_args()
    universe = Universe(domain_id="d" * 32, domain_name="acme", seed=args.seed)
    factory = TraceFactory(universe, PROJECT, seed=args.seed + 1)
    now = now_ms()
    clean = [factory.input_trace(now - 1000 * i) for i in range(args.batch)]
    no_ids = [{k: v for k, v in t.items() if k != "trace_id"} for t in clean]
    nulls = [with_nulls(t) for t in clean]
    invalid = [dict(t, trace_rating="severe") if i % 10 == 0 else t for i, t in enumerate(clean)]
    bodies = {name: encode_batch(batch) for name, batch in [("clean", clean), ("no trace_id", no_ids),
              ("nulls", nulls), ("10% invalid", invalid)]}  # fmt: skip
    retention = 7 * DAY_MS

    table = Table(title=f"ingest CPU outside the database, batches of {args.batch:,} (best / median)")
    table.add_column("step")
    table.add_column("µs per trace", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("", justify="left")

    def row(name: str, fn: Callable[[], object], floor: float | None = None) -> None:
        best, median = per_trace_us(fn, args.batch, args.repeat)
        table.add_row(
            name,
            f"{best:,.1f} / {median:,.1f}",
            f"≤ {floor:g}" if floor is not None else "",
            verdict(best <= floor) if floor is not None else "",
        )

    raw = bodies["clean"]
    row("parse_batch (orjson)", lambda: parse_batch(raw))
    for name, body in bodies.items():
        items = parse_batch(body)
        batch = prepare(items, project_id=PROJECT, now=now, retention_ms=retention)
        accepted = len(batch.rows)
        floor = FLOOR_PREPARE_US if name == "clean" else None
        row(
            f"prepare: {name} ({accepted:,} accepted)",
            lambda items=items: prepare(items, project_id=PROJECT, now=now, retention_ms=retention),  # type: ignore[misc]
            floor,
        )
    results = prepare(parse_batch(raw), project_id=PROJECT, now=now, retention_ms=retention).results
    row("summary + JSON answer", lambda: orjson.dumps(summary(results)))
    console.print(table)
    console.print(f"machine: {load_note()}")


if __name__ == "__main__":
    main()

"""The term index with many tenants: one busy project beside thousands of small ones.

The dashboard's tops and hourly counts read one project's values of a column, and ListTraces' filters one
project's bitmaps, under the lock ingest feeds the index by. Their cost must follow the project asked
about, not the number of tenants in the log. This feeds a :class:`TermIndex` (in process, no database)
with ``--big`` traces of one project and ``--per-tenant`` traces of each of ``--tenants`` others over
the last day, then times, for a small tenant and for the big one: the dashboard's tops (users; trace names
split by service), its hourly counts by rating, and a ListTraces filter ranked to a page of 20.

    python benchmarks/term_index_tenants.py [--tenants 2000] [--per-tenant 250] [--big 500000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from _measure import console, percentile
from rich.table import Table

from opencts.clock import HOUR_MS
from opencts.store.term_index import BUCKET_MS, INDEXED_COLUMNS, TermIndex

NOW = 1_800_000_000_000
DISTINCT = 40  # values per column and project: users, services, operations...


def rows_of(project: str, count: int, first_seq: int, rng: random.Random) -> list[tuple[Any, ...]]:
    return [
        (
            first_seq + i,
            project,
            "system",
            NOW - rng.randrange(24 * HOUR_MS),
            tuple(f"{column}-{rng.randrange(DISTINCT)}" for column in INDEXED_COLUMNS),
        )
        for i in range(count)
    ]


def timed(call: Callable[[], object], runs: int = 30) -> tuple[float, float]:
    """p50 and p95 of ``call``, in ms."""
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        took.append((time.perf_counter() - began) * 1000)
    return percentile(took, 50), percentile(took, 95)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--per-tenant", type=int, default=250)
    parser.add_argument("--big", type=int, default=500_000)
    args = parser.parse_args()

    rng = random.Random(7)
    rows = rows_of("big", args.big, 1, rng)
    for t in range(args.tenants):
        rows += rows_of(f"tenant-{t:05d}", args.per_tenant, len(rows) + 1, rng)
    index = TermIndex()
    began = time.perf_counter()
    for at in range(0, len(rows), 1000):  # the writer's batches
        index.feed(rows[at : at + 1000])
    fed = time.perf_counter() - began

    hours: dict[str, Any] = {
        "first_bucket": (NOW - 24 * HOUR_MS) // BUCKET_MS,
        "last_bucket": NOW // BUCKET_MS,
    }
    page: dict[str, Any] = {
        "time_from": NOW - 24 * HOUR_MS,
        "time_below": NOW + 1,
        "after": None,
        "count": 20,
    }
    table = Table(
        title=f"term index: 1 project of {args.big:,} traces beside {args.tenants:,} of {args.per_tenant:,}"
        f" ({len(rows):,} traces, {index.terms:,} terms; fed at {len(rows) / fed:,.0f} traces/s)"
    )
    for column in ("call", "small tenant p50 / p95", "big tenant p50 / p95"):
        table.add_column(column, justify="right" if column != "call" else "left")
    calls: dict[str, Callable[[str], object]] = {
        "dashboard tops (users; operations by service)": lambda p: (
            index.top_values(p, "system", "user_name", limit=10, **hours),
            index.top_values(p, "system", "trace_name", limit=10, split_by="service_type", **hours),
        ),
        "dashboard hourly counts by rating": lambda p: index.bucket_counts(
            p, "system", "trace_rating", **hours
        ),
        "ListTraces filter (user + service), a page of 20": lambda p: index.rank(
            p, "system", {"user_name": "user_name-3", "service_type": "service_type-5"}, **page
        ),
    }
    for name, call in calls.items():
        small = timed(lambda call=call: call("tenant-00007"))  # type: ignore[misc]
        big = timed(lambda call=call: call("big"))  # type: ignore[misc]
        table.add_row(name, f"{small[0]:.2f} / {small[1]:.2f} ms", f"{big[0]:.2f} / {big[1]:.2f} ms")
    console.print(table)


if __name__ == "__main__":
    main()

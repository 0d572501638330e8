"""ListTraces latency over a big trace log: p50/p95/p99 per kind of query, against p95 <= 50 ms.

1. Builds a database of N traces (default 10,000,000) spread over 7 days ending now, in SQLite
   (``--backend sqlite``) or PostgreSQL (``--backend postgres``, a database of its own on ``--pg-url``'s
   server): the server's own migrations and first-start bootstrap create the schema and the project, the
   secondary indexes are dropped, rows are appended through ``trace_log.append`` in big transactions
   (SQLite with ``synchronous=OFF``), the indexes are recreated with the migrations' DDL, then ANALYZE.
   ``--order`` says in which order the traces arrive: ``time`` (in time order), ``random`` (times
   independent of arrival, over the whole week), ``backfill`` (in time order, with one trace in ten an old
   one arriving late). ``--reuse`` keeps the dataset in ``--data-root``/query-BACKEND-ORDER-N/ and uses
   it again.
2. Starts ``opencts serve`` on it and times signed ``GET /v3/{project_id}/traces`` (``--limit``, default
   200) from one client, one request at a time, with randomised parameters: 1-hour windows, the default
   last hour, the whole week, each filter alone over the week, two and three filters combined, filters
   that never match together, and a deep page (``next`` markers followed, the last request timed), over
   time alone and with a filter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from _dataset import ORDERS, BuildStats, DatasetSpec, build_dataset, retention_days_for
from _measure import (
    console,
    db_size,
    human_bytes,
    load_note,
    peak_rss_kib,
    percentile,
    rss_kib,
    verdict,
    wait_until_idle,
)
from _server import BENCH_DATA, bench_server, ensure_data_trackers, scratch_dir
from _traces import Universe
from rich.table import Table
from sqlalchemy import create_engine, text

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.store import Database
from opencts.store.term_index import TermIndex
from opencts.testing.server import ServerProcess

FLOOR_P95_MS = 50.0
META = "bench-meta.json"

Params = dict[str, str]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=10_000_000, help="traces in the database (default 10M)")
    p.add_argument("--days", type=float, default=7.0, help="days the traces span, ending now (default 7)")
    p.add_argument("--samples", type=int, default=200, help="timed requests per case (default 200)")
    p.add_argument("--deep-samples", type=int, default=60, help="deep-paging samples (default 60)")
    p.add_argument("--deep-page", type=int, default=10, help="the page number timed when deep paging (10)")
    p.add_argument("--limit", type=int, default=200, help="page size (default 200, the largest CTS allows)")
    p.add_argument(
        "--order", choices=ORDERS, default="time", help="arrival order of the traces (default time)"
    )
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative URL; the dataset gets a PostgreSQL database of its own",
    )
    p.add_argument(
        "--data-root", type=Path, default=BENCH_DATA, help="where datasets live (default bench-data/)"
    )
    p.add_argument("--warm-cache", action="store_true",
                   help="read the trace table once before timing, so the OS page cache holds it")  # fmt: skip
    p.add_argument("--skip-store", action="store_true",
                   help="do not replay the requests in-process (the store p95 column)")  # fmt: skip
    p.add_argument("--build-only", action="store_true", help="with --reuse: build the dataset and stop")
    p.add_argument("--drop", action="store_true", help="delete the dataset when done, even with --reuse")
    p.add_argument("--workers", type=int, default=1, help="row-generating processes during the build")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--catch-up-timeout", type=float, default=3600.0,
                   help="seconds to wait for the server's consumers to catch up with the log")  # fmt: skip
    p.add_argument("--rebuild-index", action="store_true",
                   help="also time rebuilding the term index from the log alone (no snapshot)")  # fmt: skip
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the dataset in DATA_ROOT/query-BACKEND-ORDER-N/ and reuse it when it is there",
    )
    return p.parse_args()


def dataset_url(args: argparse.Namespace, data_dir: Path) -> str | None:
    """The PostgreSQL database of this dataset (named after its directory), None on SQLite."""
    if args.backend != "postgres":
        return None
    base = args.pg_url.rsplit("/", 1)[0]
    return f"{base}/{data_dir.name.replace('-', '_').lower()}"


def drop_pg_database(args: argparse.Namespace, url: str | None, *, create: bool = False) -> None:
    if url is None:
        return
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')


def load_or_build(
    data_dir: Path, args: argparse.Namespace, reuse: bool
) -> tuple[BootstrapCredentials, dict[str, int]]:
    """The dataset's credentials and {count, data_start, data_end, build timings}; builds when needed."""
    meta_path = data_dir / META
    url = dataset_url(args, data_dir)
    if reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["count"] == args.traces and meta.get("order", "time") == args.order:
            age_h = (now_ms() - meta["data_end"]) / HOUR_MS
            console.print(
                f"reusing {data_dir} ({meta['count']:,} traces, built {age_h:.1f} h ago "
                f"in {meta['total_s']:,.0f}s)"
            )
            return read_credentials(data_dir / "credentials.json"), meta
    if data_dir.exists():
        shutil.rmtree(data_dir)
    drop_pg_database(args, url, create=True)
    # Times start 10 minutes inside the 7-day retention window and end at the start of the build.
    end = now_ms()
    start = end - int(args.days * DAY_MS) + 10 * 60_000
    console.print(
        f"building {args.traces:,} traces over {args.days:g} days, arriving in {args.order} order, "
        f"on {args.backend} in {data_dir} ..."
    )
    creds, _spec, stats = build_dataset(
        data_dir,
        args.traces,
        start_ms=start,
        end_ms=end,
        seed=args.seed,
        workers=args.workers,
        order=args.order,
        database_url=url,
    )
    meta = {
        "count": args.traces,
        "order": args.order,
        "backend": args.backend,
        **{k: v for k, v in asdict(stats).items() if k != "rows"},
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    report_build(stats)
    return creds, meta


def pg_size(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def report_build(stats: BuildStats) -> None:
    console.print(
        f"built {stats.rows:,} traces in {stats.total_s:,.0f}s: insert {stats.insert_s:,.0f}s "
        f"({stats.rows / stats.insert_s:,.0f} rows/s), indexes {stats.index_s:,.0f}s, "
        f"ANALYZE {stats.analyze_s:,.0f}s"
    )


def sample_values(url: str, rng: random.Random, count: int) -> dict[str, list[str]]:
    """Real trace ids (management traces) picked at random positions of the log."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            top = int(conn.execute(text("SELECT max(seq) FROM traces")).scalar_one() or 0)
            ids: list[str] = []
            for _ in range(count * 20):
                seq = rng.randint(1, top)
                row = conn.execute(
                    text("SELECT trace_id, kind FROM traces WHERE seq = :s"), {"s": seq}
                ).first()
                if row is not None and row[1] == "system":
                    ids.append(str(row[0]))
                    if len(ids) >= count:
                        break
    finally:
        engine.dispose()
    return {"trace_id": ids}


def list_once(client: httpx.Client, path: str, params: Params) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {response.text[:300]}")
    doc: dict[str, Any] = orjson.loads(response.content)
    return elapsed, doc


@dataclass
class CaseResult:
    label: str
    ms: list[float] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    rows: int = 0
    worst: tuple[float, Params] = (0.0, {})

    def add(self, elapsed: float, params: Params, doc: dict[str, Any]) -> None:
        ms = elapsed * 1000
        self.ms.append(ms)
        self.params.append(params)
        self.rows += int(doc["meta_data"]["count"])
        if ms > self.worst[0]:
            self.worst = (ms, params)


def warm_page_cache(url: str | None, data_dir: Path) -> None:
    """Read the trace table once: a server that has been running holds its pages in the OS page cache,
    and the pages of a page of traces that arrived out of order lie anywhere in the file."""
    started = time.perf_counter()
    if url is None:
        with (data_dir / "opencts.db").open("rb") as db:
            while db.read(1 << 24):
                pass
    else:
        with psycopg.connect(url) as conn:
            conn.execute("SELECT sum(length(body)) FROM traces")
    console.print(f"page cache warmed: the trace table read once in {time.perf_counter() - started:,.0f}s")


def snapshot_term_index(url: str, data_dir: Path) -> None:
    """Leave an up-to-date term index snapshot in the dataset, as a server that has run on it would (a
    server's first start reads the whole log, which is not what is measured here)."""
    db = Database(url, data_dir=data_dir)
    try:
        index, snapshot = db.term_index, db.term_snapshot
        assert index is not None and snapshot is not None
        started = time.perf_counter()
        loaded = db.read_sync(lambda conn: index.load(snapshot, conn))
        before = index.upto
        db.read_sync(index.refresh)
        if index.upto != before or not loaded:
            db.read_sync(lambda conn: index.save(snapshot, conn))
            console.print(
                f"term index snapshot: {index.upto - before:,} rows read from the log and saved in "
                f"{time.perf_counter() - started:,.0f}s"
            )
    finally:
        db.close()


def wait_for_term_index(client: httpx.Client, path: str, probe: Params, *, timeout: float) -> float:
    """Wait until the server's term index answers: a combination of filters that matches nothing, which
    SQL alone answers only by walking one filter's rows, comes back quickly three times in a row."""
    started = time.perf_counter()
    fast = 0
    while fast < 3:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the server's term index did not catch up in {timeout:,.0f}s")
        elapsed, _ = list_once(client, path, probe)
        fast = fast + 1 if elapsed < 0.2 else 0
        if not fast:
            time.sleep(2)
    return time.perf_counter() - started


def warm_term_index(db: Database, *, rebuild: bool) -> None:
    """Bring this process's term index up to date as the server does on start, and say what it cost:
    reading the server's snapshot, and (for comparison) rebuilding it from the log alone."""
    index, snapshot = db.term_index, db.term_snapshot
    if index is None or snapshot is None:
        return
    rss0 = rss_kib(os.getpid())
    started = time.perf_counter()
    loaded = db.read_sync(lambda conn: index.load(snapshot, conn))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    db.read_sync(index.refresh)
    refresh_s = time.perf_counter() - started
    rss1 = rss_kib(os.getpid())
    note = f"snapshot read in {load_s:.2f}s, then" if loaded else "no usable snapshot;"
    console.print(
        f"term index: {note} caught up in {refresh_s:.2f}s: {index.terms:,} terms up to seq {index.upto:,}, "
        f"{(rss1 - rss0) / 1024:,.0f} MiB"
    )
    if not rebuild:
        return
    cold = TermIndex()
    started = time.perf_counter()
    db.read_sync(cold.refresh)
    cold_s = time.perf_counter() - started
    console.print(
        f"term index rebuilt from the log alone (no snapshot): {cold.upto:,} rows in {cold_s:.1f}s "
        f"({cold.upto / cold_s:,.0f} rows/s)"
    )


def store_latencies(
    url: str, data_dir: Path, project_id: str, results: list[CaseResult], *, rebuild: bool
) -> list[list[float]]:
    """Replay every timed request through the server's query code in this process (read-only)."""
    from opencts.traces.listing import list_traces
    from opencts.traces.query import parse_query

    db = Database(url, data_dir=data_dir)
    retention_ms = retention_days_for(0) * DAY_MS  # wide enough: the server clamped nothing either
    out: list[list[float]] = []
    try:
        warm_term_index(db, rebuild=rebuild)
        with db.read_engine.connect() as conn:
            for result in results:
                times = []
                for params in result.params:
                    query = parse_query(params, now=now_ms(), retention_ms=retention_ms)
                    started = time.perf_counter()
                    list_traces(conn, project_id=project_id, query=query, index=db.term_index)
                    times.append((time.perf_counter() - started) * 1000)
                    conn.rollback()  # end the read transaction, as each request does
                out.append(times)
    finally:
        db.close()
    return out


Case = tuple[str, Callable[[random.Random], Params]]


def query_cases(
    universe: Universe, week: Params, trace_ids: list[str], data_start: int, data_end: int
) -> list[Case]:
    """The randomised ListTraces parameters of each timed case, drawn from the dataset's value domains."""

    def window(r: random.Random) -> Params:
        t = r.randint(data_start, data_end - HOUR_MS)
        return {"from": str(t), "to": str(t + HOUR_MS)}

    def tracker(r: random.Random) -> Params:
        name = r.choice(("system", *universe.data_trackers))
        return {**week, "trace_type": "system" if name == "system" else "data", "tracker_name": name}

    def one(param: str, values: list[str]) -> Callable[[random.Random], Params]:
        return lambda r: {**week, param: r.choice(values)}

    def mismatch(r: random.Random) -> Params:
        service, other = r.sample(list(universe.services), 2)
        return {**week, "service_type": service, "user": r.choice(universe.users).name,
                "trace_name": r.choice(foreign_operations(universe, service, other))}  # fmt: skip

    resources = universe.resources
    ratings = ("normal", "warning", "incident")
    return [
        ("time: random 1-hour window", window),
        ("time: default (last hour)", lambda r: {}),
        ("time: the whole week", lambda r: dict(week)),
        ("tracker_name", tracker),
        ("service_type", one("service_type", list(universe.services))),
        ("user", one("user", [u.name for u in universe.users])),
        ("resource_id", one("resource_id", [x.id for x in resources])),
        ("resource_name", one("resource_name", [x.name for x in resources])),
        ("resource_type", one("resource_type", universe.resource_types)),
        ("trace_id", one("trace_id", trace_ids)),
        ("trace_name", one("trace_name", universe.trace_names)),
        ("trace_rating", one("trace_rating", list(ratings))),
        ("access_key_id", one("access_key_id", universe.access_keys)),
        ("enterprise_project_id", one("enterprise_project_id", list(universe.enterprise_projects))),
        ("user + trace_rating", lambda r: {
            **week, "user": r.choice(universe.users).name, "trace_rating": r.choice(ratings),
        }),
        ("resource_type + enterprise_project_id", lambda r: {
            **week,
            "resource_type": r.choice(universe.resource_types),
            "enterprise_project_id": r.choice(list(universe.enterprise_projects)),
        }),
        ("service_type + user + trace_rating", lambda r: {
            **week,
            "service_type": r.choice(universe.services),
            "user": r.choice(universe.users).name,
            "trace_rating": r.choice(ratings),
        }),
        # Filters that each match millions of traces but never together: what a B-tree per column
        # answers by walking every row of the one index it picks.
        ("no match: service + user + another service's operation", mismatch),
    ]  # fmt: skip


def foreign_operations(universe: Universe, service: str, other: str) -> list[str]:
    """Operations of ``other`` that ``service`` does not have: with ``service`` they match nothing."""
    names = {op[0] for op in universe.ops_by_service[service]}
    return [op[0] for op in universe.ops_by_service[other] if op[0] not in names]


def time_cases(
    client: httpx.Client, path: str, cases: list[Case], args: argparse.Namespace, rng: random.Random
) -> list[CaseResult]:
    limit = str(args.limit)
    for _, make in cases:  # one untimed request each: first-use costs are not what we measure
        list_once(client, path, {"limit": limit, **make(rng)})
    results: list[CaseResult] = []
    for label, make in cases:
        result = CaseResult(label)
        for _ in range(args.samples):
            params = {"limit": limit, **make(rng)}
            elapsed, doc = list_once(client, path, params)
            result.add(elapsed, params, doc)
        results.append(result)
        console.print(f"  {label}: p95 {percentile(result.ms, 95):,.1f} ms")
    return results


def time_deep_pages(
    client: httpx.Client,
    path: str,
    args: argparse.Namespace,
    rng: random.Random,
    week: Params,
    busy_users: list[str],
) -> list[CaseResult]:
    """Follow ``next`` deep_page-1 times over the whole week, then time the next request; over time alone
    and filtered by one of the busiest users (so a deep listing has its pages)."""
    data_start, data_end = int(week["from"]) + 1, int(week["to"]) - 1
    results: list[CaseResult] = []
    for label, extra in (("time", {}), ("user", None)):
        result = CaseResult(f"page {args.deep_page} (next markers), {label}")
        for _ in range(args.deep_samples):
            to = rng.randint(data_start + DAY_MS, data_end)
            params = {"limit": str(args.limit), "from": week["from"], "to": str(to)}
            params.update(extra if extra is not None else {"user": rng.choice(busy_users)})
            for _page in range(args.deep_page - 1):
                _, doc = list_once(client, path, params)
                marker = doc["meta_data"]["marker"]
                if marker is None:
                    break  # a short listing: time its last page
                params = {**params, "next": str(marker)}
            elapsed, doc = list_once(client, path, params)
            result.add(elapsed, params, doc)
        results.append(result)
        console.print(f"  {result.label}: p95 {percentile(result.ms, 95):,.1f} ms")
    return results


def serve_dataset(
    args: argparse.Namespace,
    data_dir: Path,
    url: str | None,
    creds: BootstrapCredentials,
    universe: Universe,
    week: Params,
) -> ServerProcess:
    """The server on the dataset, its consumers and term index caught up with the log."""
    retention = retention_days_for(int(week["from"]) + 1)
    env = {"OPENCTS_RETENTION_DAYS": str(retention)} if retention != 7 else {}
    if retention != 7:
        console.print(
            "[yellow]note[/]: the oldest traces are older than 7 days by the time they are queried; "
            f"the server runs with retention {retention} days so all stay listed"
        )
    if url is not None:
        env["OPENCTS_DATABASE_URL"] = url
    snapshot_term_index(url or sqlite_url(data_dir), data_dir)
    if args.warm_cache:
        warm_page_cache(url, data_dir)
    server = bench_server(data_dir, env)
    with server.client() as client:  # as a real account would have them
        ensure_data_trackers(client, creds.project_id, universe.data_trackers)
    catch_up = wait_until_idle(server, timeout=args.catch_up_timeout)
    console.print(f"server idle (consumers caught up with the log) after {catch_up:,.0f}s")
    service, other = sorted(universe.services)[:2]
    probe = {**week, "service_type": service, "user": universe.users[0].name,
             "trace_name": foreign_operations(universe, service, other)[0]}  # fmt: skip
    with server.client(timeout=args.catch_up_timeout) as client:
        path = f"/v3/{creds.project_id}/traces"
        waited = wait_for_term_index(client, path, probe, timeout=args.catch_up_timeout)
    console.print(f"server's term index caught up with the log after {waited:,.0f}s more")
    return server


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'opencts.db').resolve()}"


def dataset_spec(
    args: argparse.Namespace, creds: BootstrapCredentials, data_start: int, data_end: int
) -> DatasetSpec:
    """The spec the build drew from, so every filter value asked for exists."""
    return DatasetSpec(
        creds.project_id,
        creds.domain_id,
        creds.domain_name,
        args.traces,
        data_start,
        data_end,
        seed=args.seed,
        order=args.order,
    )


def report(
    args: argparse.Namespace,
    meta: dict[str, int],
    size: int,
    results: list[CaseResult],
    store: list[list[float]],
) -> None:
    title = (
        f"ListTraces on {args.backend} over {args.traces:,} traces ({human_bytes(size)}) arriving in "
        f"{args.order} order, limit {args.limit}"
    )
    table = Table(title=f"{title}, {args.samples} samples per case, one request at a time")
    for col in ("case", "p50 ms", "p95 ms", "p99 ms", "max ms", "avg rows", "store p95 ms"):
        table.add_column(col, justify="left" if col == "case" else "right")
    table.add_column(f"p95 ≤ {FLOOR_P95_MS:g} ms")
    all_ok = True
    for result, store_ms in zip(results, store, strict=True):
        ok = percentile(result.ms, 95) <= FLOOR_P95_MS
        all_ok &= ok
        cells = [f"{percentile(result.ms, p):,.1f}" for p in (50, 95, 99)]
        table.add_row(
            result.label,
            *cells,
            f"{max(result.ms):,.1f}",
            f"{result.rows / len(result.ms):,.1f}",
            f"{percentile(store_ms, 95):,.1f}",
            verdict(ok),
        )
    console.print(table)
    console.print(
        f"database: {human_bytes(size)} for {args.traces:,} traces ({size / args.traces:,.0f} B/trace); "
        f"build {meta['total_s']:,.0f}s (insert {meta['insert_s']:,.0f}s, "
        f"indexes {meta['index_s']:,.0f}s, ANALYZE {meta['analyze_s']:,.0f}s)"
    )
    console.print("store p95: the same parameters through opencts.traces.listing.list_traces in-process")
    for result in results:
        if percentile(result.ms, 95) > FLOOR_P95_MS:
            ms, params = result.worst
            console.print(f"slowest '{result.label}' request: {ms:,.0f} ms with {params}")
    console.print(f"p95 ≤ {FLOOR_P95_MS:g} ms in every case: {verdict(all_ok)}")


def measure(
    args: argparse.Namespace,
    data_dir: Path,
    url: str | None,
    creds: BootstrapCredentials,
    meta: dict[str, int],
) -> None:
    rng = random.Random(args.seed)
    data_start, data_end = meta["data_start"], meta["data_end"]
    size = db_size(data_dir) if url is None else pg_size(url)
    universe = dataset_spec(args, creds, data_start, data_end).universe()
    samples = sample_values(url or sqlite_url(data_dir), rng, max(args.samples, 50))
    week = {"from": str(data_start - 1), "to": str(data_end + 1)}
    cases = query_cases(universe, week, samples["trace_id"], data_start, data_end)
    # the users with the most traces, so a deep listing of one has its pages
    weighted = sorted(zip(universe.user_weights, universe.users, strict=True), key=lambda wu: wu[0])
    busy_users = [user.name for _, user in weighted[-5:]]
    server = serve_dataset(args, data_dir, url, creds, universe, week)
    try:
        path = f"/v3/{creds.project_id}/traces"
        load_before = load_note()
        with server.client(timeout=60.0) as client:
            results = time_cases(client, path, cases, args, rng)
            results += time_deep_pages(client, path, args, rng, week, busy_users)
        load_after = load_note()
        server_rss, server_hwm = rss_kib(server.pid), peak_rss_kib(server.pid)
    finally:
        server.stop()
    # The same requests once more, in this process, through the server's own query code and nothing
    # else (no HTTP, no auth): what the store costs, as opposed to the whole request.
    store = (
        [[0.0] for _ in results]
        if args.skip_store
        else store_latencies(
            url or sqlite_url(data_dir), data_dir, creds.project_id, results, rebuild=args.rebuild_index
        )
    )
    report(args, meta, size, results, store)
    console.print(f"server memory: RSS {server_rss / 1024:,.0f} MiB (peak {server_hwm / 1024:,.0f} MiB)")
    console.print(f"machine: {load_before} when measuring started, {load_after} at the end")


def main() -> None:
    args = parse_args()
    if args.reuse:
        data_dir = args.data_root / f"query-{args.backend}-{args.order}-{args.traces}"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    else:
        data_dir = scratch_dir("query-", args.data_root)
    url = dataset_url(args, data_dir)
    try:
        creds, meta = load_or_build(data_dir, args, args.reuse)
        if not args.build_only:
            measure(args, data_dir, url, creds, meta)
    finally:
        if not args.reuse or args.drop:
            drop_pg_database(args, url)
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

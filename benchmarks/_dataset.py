"""Big trace logs built fast for the query and export benchmarks: a ``DatasetSpec`` any process can
regenerate chunk by chunk, appended through :func:`opencts.store.trace_log.append` with the secondary
indexes dropped meanwhile and recreated from the migrations' own DDL."""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import console
from _server import bootstrap_data_dir
from _traces import TraceFactory, Universe, self_check
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Connection, Engine, create_engine, event

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.store import trace_log
from opencts.store.trace_log import TraceRow


@dataclass
class BuildStats:
    rows: int
    insert_s: float
    index_s: float
    analyze_s: float
    total_s: float
    data_start: int
    data_end: int


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


def generate_chunk(spec: DatasetSpec, first: int, size: int) -> list[TraceRow]:
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


def _chunks(spec: DatasetSpec, chunk: int, workers: int) -> Iterator[list[TraceRow]]:
    """The dataset in chunks, generated ``workers`` processes ahead of the consumer (inline with 0)."""
    starts = range(0, spec.count, chunk)
    if workers <= 0:
        for first in starts:
            yield generate_chunk(spec, first, min(chunk, spec.count - first))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[TraceRow]]] = deque()
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


def secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX ...) of the secondary indexes on ``traces``, as the migrations created them.

    Unique indexes stay: the append's ON CONFLICT needs the trace key's.
    """
    if conn.dialect.name == "sqlite":
        query = (
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'traces'"
            " AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%' ORDER BY name"
        )
    else:
        query = (
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'traces' AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))"
            " AND indexdef NOT LIKE 'CREATE UNIQUE%' ORDER BY indexname"
        )
    return [(str(name), str(ddl)) for name, ddl in conn.exec_driver_sql(query)]


def _bulk_engine(database_url: str) -> Engine:
    """An engine for filling a database nobody else uses yet: durability off on SQLite."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-2000000", "temp_store=MEMORY"):
                dbapi_conn.execute(f"PRAGMA {pragma}")  # a 2 GB cache keeps the trace_key index hot

    return engine


def build_trace_log(
    database_url: str,
    spec: DatasetSpec,
    *,
    chunk: int = 50_000,
    workers: int = 1,
    analyze: bool = True,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> BuildStats:
    """Fill the ``traces`` table of an already migrated (bootstrapped) database, fast.

    Drops the secondary indexes, appends through :func:`trace_log.append` (the server's own write) in big
    transactions while ``workers`` processes generate the next chunks, recreates the indexes with the
    migrations' own DDL (read back from the catalogue), then ANALYZE. ``on_progress(phase, done, total)``
    reports progress.
    """
    progress = on_progress or (lambda _phase, _done, _total: None)
    began = time.perf_counter()
    engine = _bulk_engine(database_url)
    try:
        with engine.connect() as conn:
            with conn.begin():
                indexes = secondary_indexes(conn)
                for name, _ in indexes:
                    conn.exec_driver_sql(f'DROP INDEX "{name}"')
            done = 0
            progress("insert", 0, spec.count)
            for rows in _chunks(spec, chunk, workers):
                with conn.begin():
                    trace_log.append(conn, rows)
                done += len(rows)
                progress("insert", done, spec.count)
            inserted = time.perf_counter()
            progress("index", 0, len(indexes))
            for i, (_, ddl) in enumerate(indexes, 1):
                with conn.begin():
                    conn.exec_driver_sql(ddl)
                progress("index", i, len(indexes))
            indexed = time.perf_counter()
            if analyze:
                progress("analyze", 0, 1)
                _analyze(conn)
                progress("analyze", 1, 1)
            analyzed = time.perf_counter()
    finally:
        engine.dispose()
    return BuildStats(
        rows=spec.count,
        insert_s=inserted - began,
        index_s=indexed - inserted,
        analyze_s=analyzed - indexed,
        total_s=analyzed - began,
        data_start=spec.start_ms,
        data_end=spec.end_ms,
    )


def _analyze(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        with conn.begin():
            conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE traces")


def build_with_progress(
    database_url: str, spec: DatasetSpec, *, workers: int = 1, analyze: bool = True
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

        return build_trace_log(database_url, spec, workers=workers, analyze=analyze, on_progress=log_progress)
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

        return build_trace_log(database_url, spec, workers=workers, analyze=analyze, on_progress=on_progress)


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
) -> tuple[BootstrapCredentials, DatasetSpec, BuildStats]:
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
    url = database_url or f"sqlite:///{data_dir / 'opencts.db'}"
    return creds, spec, build_with_progress(url, spec, workers=workers)


def retention_days_for(data_start_ms: int, margin_ms: int = 2 * HOUR_MS) -> int:
    """Retention (days, at least the default 7) that keeps data starting at ``data_start_ms`` listed for
    ``margin_ms`` more: a build longer than the 10-minute head start, or a reused database, would otherwise
    lose its oldest traces to the retention window while being measured."""
    return max(7, math.ceil((now_ms() + margin_ms - data_start_ms) / DAY_MS))

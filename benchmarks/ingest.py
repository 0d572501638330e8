"""Sustained, durable ingest through ``POST /v3/{project_id}/traces``, against the floor of the machine.

1. Starts ``opencts serve`` on a scratch data dir and pre-encodes N realistic traces (unique trace ids,
   times within the last hour) into batch bodies of 1,000.
2. Posts them from a few client threads (one keep-alive connection each), every request signed with the
   bootstrap AK/SK. The server answers only after the batch committed with ``synchronous=FULL``.
   Meanwhile a probe measures "ack to visible": POST one trace, and as soon as the POST returns, GET
   ``?trace_id=`` until it is listed.
3. The floor: the very same rows appended by the store alone (``trace_log.append`` on a ``Database``'s
   writer lane, no HTTP, no parsing) to a fresh database with the server's schema and indexes (created by
   its migrations) and settings (WAL, ``synchronous=FULL``), in transactions of one batch each.

``--preload N`` first fills the server's log with N traces spread over the six days before (as a week of
a busy account would), waits until the server's consumers and term index have read them, and runs the
floor on a copy of that same database: sustained ingest into a log that is already large, where every
random trace id lands on a cold page of the uniqueness index.

Floors: >= 20,000 events/s over HTTP, >= 0.4 of the store's own rate, ack-to-visible p95 <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import orjson
from _dataset import build_dataset
from _measure import (
    PySpy,
    console,
    count_traces,
    cpu_seconds,
    load_note,
    percentile,
    verdict,
    wait_until_idle,
)
from _server import ensure_data_trackers, scratch_space
from _traces import TraceFactory, Universe, encode_batch, self_check
from rich.table import Table

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.store import Database, migrate, trace_log
from opencts.store.trace_log import TraceRow
from opencts.testing.server import ServerProcess

FLOOR_EVENTS_PER_S = 20_000
FLOOR_RATIO = 0.4
FLOOR_VISIBLE_P95_S = 1.0
MAX_RETRIES = 50


@dataclass
class IngestResult:
    accepted: int = 0
    batches: int = 0
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ProbeResult:
    latencies: list[float] = field(default_factory=list)
    under_load: list[bool] = field(default_factory=list)
    missing: int = 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=200_000, help="traces to ingest (default 200,000)")
    p.add_argument("--batch", type=int, default=1000, help="traces per POST (default 1,000, the API maximum)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads posting at once (default 4)")
    p.add_argument("--probes", type=int, default=50, help="ack-to-visible samples (default 50)")
    p.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probes under load")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--preload", type=int, default=0, metavar="N",
                   help="traces already in the log before the run (default none)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the scratch data dir under bench-data/")
    p.add_argument(
        "--py-spy", type=Path, metavar="FILE", help="profile the server with py-spy into FILE (raw)"
    )
    return p.parse_args()


def traces_path(project_id: str) -> str:
    return f"/v3/{project_id}/traces"


def post_batch(client: httpx.Client, path: str, body: bytes, result: IngestResult) -> int:
    """POST one pre-encoded batch, retrying on 429; returns how many traces were accepted."""
    for _ in range(MAX_RETRIES):
        started = time.perf_counter()
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        if response.status_code == 429:
            with result.lock:
                result.retries += 1
            time.sleep(float(response.headers.get("Retry-After", "0.2")))
            continue
        if response.status_code != 200:
            raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")
        doc = orjson.loads(response.content)
        accepted = int(doc["accepted"])
        with result.lock:
            result.latencies.append(elapsed)
            if doc["rejected"] or doc["duplicates"]:
                refused = next(r for r in doc["results"] if r["status"] != "accepted")
                result.errors.append(f"{doc['rejected']} rejected, {doc['duplicates']} duplicates: {refused}")
        return accepted
    raise RuntimeError(f"POST still refused (429) after {MAX_RETRIES} tries")


def ingest_worker(
    server: ServerProcess, creds: BootstrapCredentials, bodies: queue.Queue[bytes], result: IngestResult
) -> None:
    path = traces_path(creds.project_id)
    try:
        with server.client() as client:
            while True:
                try:
                    body = bodies.get_nowait()
                except queue.Empty:
                    return
                accepted = post_batch(client, path, body, result)
                with result.lock:
                    result.accepted += accepted
                    result.batches += 1
    except Exception as exc:  # reported after the run; the other workers carry on
        with result.lock:
            result.errors.append(repr(exc))


def probe_worker(
    server: ServerProcess,
    creds: BootstrapCredentials,
    factory: TraceFactory,
    samples: int,
    interval: float,
    load_done: threading.Event,
    out: ProbeResult,
) -> None:
    """POST one trace; the moment the POST returns, GET ?trace_id= until it is listed (at most 5 s)."""
    path = traces_path(creds.project_id)
    with server.client() as client:
        for _ in range(samples):
            trace = factory.input_trace(now_ms())
            trace_id = trace["trace_id"]
            kind = "data" if trace["trace_type"] in ("ObsAPI", "ObsSDK") else "system"
            body = encode_batch([trace])
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            acked = time.perf_counter()
            loaded = not load_done.is_set()
            if response.status_code != 200:
                raise RuntimeError(f"probe POST answered {response.status_code}: {response.text[:300]}")
            seen = False
            while time.perf_counter() - acked < 5.0:
                got = client.get(path, params={"trace_id": trace_id, "trace_type": kind})
                if got.status_code == 200 and orjson.loads(got.content)["meta_data"]["count"] >= 1:
                    seen = True
                    break
                time.sleep(0.005)
            if seen:
                out.latencies.append(time.perf_counter() - acked)
                out.under_load.append(loaded)
            else:
                out.missing += 1
            if not load_done.is_set():
                load_done.wait(interval)


def store_floor(db_dir: Path, rows: list[TraceRow], batch: int, *, start_from: Path | None = None) -> float:
    """Seconds to append ``rows`` batch by batch through the store alone (``trace_log.append`` on the
    writer lane, WAL, synchronous=FULL), no HTTP: to a fresh database, or to a copy of ``start_from``."""
    db_dir.mkdir(parents=True, exist_ok=True)
    db_path = db_dir / "opencts.db"
    if start_from is not None:
        shutil.copyfile(start_from, db_path)
    db = Database(f"sqlite:///{db_path}")
    try:
        migrate.upgrade(db)  # exactly the server's tables and indexes
        before = count_traces(db_path)
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            db.write_sync(partial(trace_log.append, rows=rows[start : start + batch]))
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    count = count_traces(db_path)
    if count != before + len(rows):
        raise RuntimeError(f"floor database holds {count} rows, expected {before + len(rows)}")
    return elapsed


def preload(server: ServerProcess, scratch: Path, args: argparse.Namespace) -> Path | None:
    """Fill the server's log before it starts, if asked; a copy of that log for the floor to start from."""
    if not args.preload:
        return None
    now = now_ms()
    build_dataset(
        server.data_dir, args.preload, start_ms=now - 6 * DAY_MS, end_ms=now - 2 * HOUR_MS, seed=args.seed
    )
    preloaded = scratch / "preloaded.db"  # the floor starts from the same log
    shutil.copyfile(server.data_dir / "opencts.db", preloaded)
    return preloaded


def encode_bodies(
    factory: TraceFactory, args: argparse.Namespace
) -> tuple[queue.Queue[bytes], list[TraceRow]]:
    """Every batch pre-encoded (the client spends its time sending, not generating), and the rows the
    server will store for them, for the floor."""
    prep_started = time.perf_counter()
    now = now_ms()
    rng = factory.rng
    # Producers send roughly in time order: times climb through the last hour, with a little jitter.
    first, step = now - 55 * 60_000, 55 * 60_000 / args.traces
    traces = [factory.input_trace(first + int(i * step) + rng.randrange(2000)) for i in range(args.traces)]
    bodies: queue.Queue[bytes] = queue.Queue()
    payload = 0
    for start in range(0, len(traces), args.batch):
        body = encode_batch(traces[start : start + args.batch])
        payload += len(body)
        bodies.put(body)
    rows = [factory.to_row(dict(t), now) for t in traces]
    prep_s = time.perf_counter() - prep_started
    console.print(
        f"pre-encoded {bodies.qsize():,} bodies ({payload / 2**20:,.0f} MiB, "
        f"{payload / args.traces:,.0f} B/trace) in {prep_s:.1f}s"
    )
    return bodies, rows


@dataclass
class HttpRun:
    result: IngestResult
    probes: ProbeResult
    elapsed: float
    server_cpu: float
    client_cpu: float
    load_before: str


def ingest_over_http(
    server: ServerProcess,
    creds: BootstrapCredentials,
    universe: Universe,
    bodies: queue.Queue[bytes],
    args: argparse.Namespace,
) -> HttpRun:
    """Post every body from ``--concurrency`` threads, with the ack-to-visible probe running alongside."""
    result = IngestResult()
    probes = ProbeResult()
    load_done = threading.Event()
    probe_factory = TraceFactory(universe, creds.project_id, seed=args.seed + 2, data_share=0.0)
    prober = threading.Thread(
        target=probe_worker,
        args=(server, creds, probe_factory, args.probes, args.probe_interval, load_done, probes),
        name="probe",
    )
    workers = [
        threading.Thread(target=ingest_worker, args=(server, creds, bodies, result), name=f"ingest-{i}")
        for i in range(args.concurrency)
    ]
    server_cpu0, client_cpu0 = cpu_seconds(server.pid), time.process_time()
    load_before = load_note()
    started = time.perf_counter()
    for w in workers:
        w.start()
    prober.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    load_done.set()
    server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu0, time.process_time() - client_cpu0
    prober.join()
    if result.errors:
        raise RuntimeError(f"ingest failed: {result.errors[:3]}")
    return HttpRun(result, probes, elapsed, server_cpu, client_cpu, load_before)


def report(run: HttpRun, args: argparse.Namespace, rows: int, floor_s: float) -> None:
    result, probes, elapsed = run.result, run.probes, run.elapsed
    http_rate = result.accepted / elapsed
    floor_rate = rows / floor_s
    ratio = http_rate / floor_rate
    into = f"into a log of {args.preload:,} traces, " if args.preload else ""
    table = Table(title=f"ingest ({into}durable: synchronous=FULL, one commit per batch)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("", justify="left")
    table.add_row(
        "HTTP ingest",
        f"{http_rate:,.0f} events/s",
        f"≥ {FLOOR_EVENTS_PER_S:,}",
        verdict(http_rate >= FLOOR_EVENTS_PER_S),
    )
    table.add_row("store append, no HTTP", f"{floor_rate:,.0f} events/s", "", "")
    table.add_row("ratio HTTP / store", f"{ratio:.2f}", f"≥ {FLOOR_RATIO}", verdict(ratio >= FLOOR_RATIO))
    lat = result.latencies
    table.add_row(
        "POST latency p50 / p95",
        f"{percentile(lat, 50) * 1000:,.0f} / {percentile(lat, 95) * 1000:,.0f} ms",
        "",
        "",
    )
    vis = probes.latencies
    vis_p95 = percentile(vis, 95) if vis else float("inf")
    vis_ok = vis_p95 <= FLOOR_VISIBLE_P95_S and not probes.missing
    table.add_row(
        "ack → visible p50 / p95",
        f"{percentile(vis, 50) * 1000:,.1f} / {vis_p95 * 1000:,.1f} ms",
        f"p95 ≤ {FLOOR_VISIBLE_P95_S:g} s",
        verdict(vis_ok),
    )
    loaded = [v for v, busy in zip(vis, probes.under_load, strict=True) if busy]
    if loaded:
        loaded_p95 = percentile(loaded, 95) * 1000
        table.add_row("  of which under load", f"{len(loaded)} samples, p95 {loaded_p95:,.1f} ms", "", "")
    console.print(table)
    console.print(
        f"{result.accepted:,} traces in {elapsed:.2f}s over {result.batches:,} POSTs "
        f"({result.retries} retried after 429); floor run {floor_s:.2f}s. "
        f"Visibility: {len(vis)} samples, {probes.missing} never listed within 5 s.\n"
        f"CPU during ingest: server {run.server_cpu:.1f}s ({100 * run.server_cpu / elapsed:.0f}% of a core, "
        f"{1e6 * run.server_cpu / result.accepted:.0f} µs/trace), client {run.client_cpu:.1f}s."
    )
    console.print(f"machine: {run.load_before} when the HTTP run started, {load_note()} at the end")


def main() -> None:
    args = parse_args()
    if not 1 <= args.batch <= 1000:
        raise SystemExit("--batch must be between 1 and 1000")
    with scratch_space("ingest-", keep=args.keep) as data_dir:
        ingest_and_report(args, data_dir)


def ingest_and_report(args: argparse.Namespace, scratch: Path) -> None:
    server = ServerProcess(scratch / "server", log_path=scratch / "server.log")
    try:
        console.print(
            f"[bold]ingest benchmark[/]: {args.traces:,} traces, batches of {args.batch:,}, "
            f"{args.concurrency} client threads; scratch dir {scratch}"
        )
        preloaded = preload(server, scratch, args)
        server.start(120)
        if args.preload:
            console.print(f"preloaded {args.preload:,} traces; waiting for the server to read them ...")
            console.print(f"server idle after {wait_until_idle(server, timeout=3600):,.0f}s")
        creds = server.creds
        universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name, seed=args.seed)
        factory = TraceFactory(universe, creds.project_id, seed=args.seed + 1)
        self_check(factory)
        with server.client() as client:
            ensure_data_trackers(client, creds.project_id, universe.data_trackers)
        db_path = server.data_dir / "opencts.db"
        rows_before = count_traces(db_path)  # the trackers' creation is audited in the log too
        bodies, rows = encode_bodies(factory, args)
        spy = PySpy(server.pid, args.py_spy.resolve()) if args.py_spy else None
        with spy or contextlib.nullcontext():
            run = ingest_over_http(server, creds, universe, bodies, args)
        server.stop()
        stored = count_traces(db_path) - rows_before
        expected = args.traces + len(run.probes.latencies) + run.probes.missing
        if run.result.accepted != args.traces or stored != expected:
            raise RuntimeError(
                f"accepted {run.result.accepted:,}, stored {stored:,}; expected {args.traces:,}"
            )
        floor_s = store_floor(scratch / "floor", rows, args.batch, start_from=preloaded)
        report(run, args, len(rows), floor_s)
        if spy is not None:
            console.print(spy.summary())
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""What the metrics cost ingest: the same load against ``opencts serve`` with metrics on and off.

Each round starts a fresh server twice, once with ``OPENCTS_METRICS_ENABLED=0`` (no /metrics, every
instrument a no-op) and once with metrics on and a scraper reading ``/metrics`` with the scrape token every
``--scrape-interval`` seconds (as Prometheus would, only more often), and posts the same pre-encoded
batches from a few client threads (``benchmarks/ingest.py``'s workers). The order of the two alternates
from round to round, so a machine that slows down over the run does not favour either. The figure is the
median of the rounds' throughputs; the issue's floor is that they stay within 3 % of each other.

On a shared machine wall-clock throughput moves with whatever else runs, so the server's own CPU time per
trace (its process and its parsing workers, user + system) is printed beside it: that is the cost the
metrics add, whatever the neighbours do.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import httpx
from _measure import console, cpu_seconds, load_note, verdict
from _server import scratch_space
from _traces import TraceFactory, Universe
from ingest import IngestResult, encode_bodies, ingest_worker
from rich.table import Table

from opencts.testing.server import ServerProcess

TOKEN = "metrics-overhead-benchmark"
FLOOR_APART = 0.03


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=100_000, help="traces per run (default 100,000)")
    p.add_argument("--batch", type=int, default=1000, help="traces per request (default 1,000)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="on/off pairs (default 3)")
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return p.parse_args()


def scraper(url: str, interval: float, stop: threading.Event, counts: list[int]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        while not stop.wait(interval):
            resp = client.get(f"{url}/metrics")
            resp.raise_for_status()
            counts.append(len(resp.content))


def one_run(scratch: Path, name: str, metrics: bool, args: argparse.Namespace) -> tuple[float, float, int]:
    """Traces per second of one server's run, its CPU microseconds per trace, and the scrapes answered."""
    env = {"OPENCTS_METRICS_ENABLED": "1" if metrics else "0", "OPENCTS_METRICS_TOKEN": TOKEN}
    server = ServerProcess(scratch / name, env, log_path=scratch / f"{name}.log").start(120)
    try:
        creds = server.creds
        universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name, seed=args.seed)
        factory = TraceFactory(universe, creds.project_id, seed=args.seed + 1, data_share=0.0)
        bodies, _ = encode_bodies(factory, argparse.Namespace(traces=args.traces, batch=args.batch))
        result = IngestResult()
        workers = [
            threading.Thread(target=ingest_worker, args=(server, creds, bodies, result))
            for _ in range(args.concurrency)
        ]
        stop, scrapes = threading.Event(), list[int]()
        scraping = threading.Thread(target=scraper, args=(server.url, args.scrape_interval, stop, scrapes))
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        if metrics:
            scraping.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_before
        stop.set()
        if metrics:
            scraping.join()
        if result.errors or result.accepted != args.traces:
            raise RuntimeError(f"accepted {result.accepted:,} of {args.traces:,}: {result.errors[:3]}")
        return args.traces / elapsed, cpu / args.traces * 1e6, len(scrapes)
    finally:
        server.stop()


def main() -> None:
    args = parse_args()
    rates: dict[bool, list[float]] = {False: [], True: []}
    costs: dict[bool, list[float]] = {False: [], True: []}
    with scratch_space("metrics-", keep=args.keep) as scratch:
        console.print(
            f"[bold]metrics overhead[/]: {args.rounds} rounds of {args.traces:,} traces, batches of "
            f"{args.batch:,}, {args.concurrency} client threads; {load_note()}"
        )
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for metrics in order:
                label = "on" if metrics else "off"
                rate, cost, scrapes = one_run(scratch, f"r{round_}-{label}", metrics, args)
                rates[metrics].append(rate)
                costs[metrics].append(cost)
                note = f", {scrapes} scrapes" if metrics else ""
                console.print(
                    f"round {round_ + 1} metrics {label}: {rate:,.0f} traces/s, {cost:.1f} µs CPU/trace{note}"
                )
    table = Table(title="ingest, median of rounds")
    for column in ("metrics", "traces/s", "runs", "server µs CPU/trace"):
        table.add_column(column)
    for metrics, label in ((False, "off"), (True, "on (scraped)")):
        runs = ", ".join(f"{r:,.0f}" for r in rates[metrics])
        per_trace = f"{statistics.median(costs[metrics]):.1f}"
        table.add_row(label, f"{statistics.median(rates[metrics]):,.0f}", runs, per_trace)
    console.print(table)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    ok = abs(on - off) / off <= FLOOR_APART
    console.print(f"throughput on vs off: {(on - off) / off:+.1%} {verdict(ok)} (3 %); {load_note()}")
    cpu_off, cpu_on = statistics.median(costs[False]), statistics.median(costs[True])
    console.print(f"server CPU per trace on vs off: {(cpu_on - cpu_off) / cpu_off:+.1%}")


if __name__ == "__main__":
    main()

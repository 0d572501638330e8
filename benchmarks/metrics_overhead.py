"""What the metrics cost ingest: the same load against ``opencts serve`` with metrics on and off.

Two servers run side by side for the whole benchmark, one with ``OPENCTS_METRICS_ENABLED=0`` (no
/metrics, every instrument a no-op) and one with metrics on and a scraper reading ``/metrics`` with the
scrape token every ``--scrape-interval`` seconds while it is loaded (as Prometheus would, only more
often). Runs interleave, off, on, off, on, ..., off, each posting pre-encoded batches from a few client
threads (``benchmarks/ingest.py``'s workers) to one server; after each run the loaded server is left to
finish its consumers' work before the next run starts, so no run pays for another's background work.

On a machine shared with other work, wall-clock throughput moves by tens of percent from one minute to
the next, far more than the metrics could cost. So the figures are *paired*: each "on" run is compared
with the two "off" runs either side of it (their geometric mean), a few seconds apart, which cancels a
load that drifts as well as any advantage of running first or second; the verdict is the median of those
differences, not the difference of two medians. The server's own CPU time per trace (its process and its
parsing workers, user + system) is printed beside throughput: it moves far less with the neighbours'
load. (Swapping the order from pair to pair instead runs each server twice in a row at every pair's
boundary; in one such run here, a server's run right after its own was up to 20 % slower, on either
server: an order effect far larger than anything the metrics cost.)

Last, what one ingest request's instruments cost, timed in this process: the very calls an ingest
request makes (the access log's HTTP figures, the batch's verdicts, the group commit's figures) with
metrics on and off; and what one scrape of the loaded server costs it in CPU.
"""

from __future__ import annotations

import argparse
import math
import queue
import statistics
import threading
import time
import timeit
from dataclasses import dataclass, field

import httpx
from _measure import console, cpu_seconds, load_note, verdict, wait_until_idle
from _server import scratch_space
from _traces import TraceFactory, Universe, encode_batch
from ingest import IngestResult, ingest_worker
from rich.table import Table

from opencts.clock import now_ms
from opencts.testing.server import ServerProcess

TOKEN = "metrics-overhead-benchmark"
FLOOR_APART = 0.03


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=100_000, help="traces per run (default 100,000)")
    p.add_argument("--batch", type=int, default=1000, help="traces per request (default 1,000)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--pairs", type=int, default=6, help='"on" runs, each between two "off" runs (default 6)')
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return p.parse_args()


@dataclass
class Side:
    """One of the two servers and its runs' figures."""

    label: str
    server: ServerProcess
    metrics: bool
    rates: list[float] = field(default_factory=list)
    #: server CPU microseconds per trace, one per run
    costs: list[float] = field(default_factory=list)
    scrapes: int = 0


def scraper(url: str, interval: float, stop: threading.Event, counts: list[int]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        while not stop.wait(interval):
            resp = client.get(f"{url}/metrics")
            resp.raise_for_status()
            counts.append(len(resp.content))


def encode(side: Side, seed: int, args: argparse.Namespace) -> queue.Queue[bytes]:
    """A run's batches, pre-encoded (unique trace ids per seed, times within the last hour)."""
    creds = side.server.creds
    universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name, seed=seed)
    factory = TraceFactory(universe, creds.project_id, seed=seed + 1, data_share=0.0)
    now = now_ms()
    first, step = now - 55 * 60_000, 55 * 60_000 / args.traces
    traces = [
        factory.input_trace(first + int(i * step) + factory.rng.randrange(2000)) for i in range(args.traces)
    ]
    bodies: queue.Queue[bytes] = queue.Queue()
    for start in range(0, len(traces), args.batch):
        bodies.put(encode_batch(traces[start : start + args.batch]))
    return bodies


def one_run(side: Side, bodies: queue.Queue[bytes], args: argparse.Namespace) -> tuple[float, float, int]:
    """Post ``bodies`` to one server: traces per second, its CPU microseconds per trace, scrapes answered.

    The server is left to go quiet afterwards (its consumers catch up), outside the figures.
    """
    server, creds = side.server, side.server.creds
    expected = args.traces
    result = IngestResult()
    workers = [
        threading.Thread(target=ingest_worker, args=(server, creds, bodies, result))
        for _ in range(args.concurrency)
    ]
    stop, scrapes = threading.Event(), list[int]()
    scraping = threading.Thread(target=scraper, args=(server.url, args.scrape_interval, stop, scrapes))
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    if side.metrics:
        scraping.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.pid) - cpu_before
    stop.set()
    if side.metrics:
        scraping.join()
    if result.errors or result.accepted != expected:
        raise RuntimeError(f"accepted {result.accepted:,} of {expected:,}: {result.errors[:3]}")
    wait_until_idle(server, timeout=300, window=1.0)
    return expected / elapsed, cpu / expected * 1e6, len(scrapes)


def paired(on: Side, off: Side, pair: int) -> tuple[float, float]:
    """The on/off differences of one pair: its "on" run against the "off" runs before and after it."""
    rate = on.rates[pair] / math.sqrt(off.rates[pair] * off.rates[pair + 1]) - 1
    cpu = on.costs[pair] / math.sqrt(off.costs[pair] * off.costs[pair + 1]) - 1
    return rate, cpu


def scrape_cost(server: ServerProcess, count: int = 20) -> tuple[float, int]:
    """CPU milliseconds one scrape costs the (idle) server, and the page's size in bytes."""
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        client.get(f"{server.url}/metrics").raise_for_status()
        before = cpu_seconds(server.pid)
        for _ in range(count):
            page = client.get(f"{server.url}/metrics")
            page.raise_for_status()
        return (cpu_seconds(server.pid) - before) / count * 1000, len(page.content)


def instrument_cost() -> dict[bool, float]:
    """Microseconds of instrument calls one ingest request makes, metrics on and off (best of 5)."""
    from opencts.api.access_log import AccessLogMiddleware
    from opencts.metrics import instruments
    from opencts.traces.ingest import TraceResult
    from opencts.traces.writer import _count

    class Route:
        name, path = "putTraces", "/v3/{project_id}/traces"

    scope = {"type": "http", "method": "POST", "route": Route(), "state": {}}
    results = [TraceResult(i, f"t{i}", "accepted") for i in range(1000)]

    def request() -> None:
        # GroupCommit.append / _flush (per group, here once per request: the most it can be)
        instruments.WRITE_QUEUE.set(1)
        instruments.WRITE_QUEUE.set(0)
        instruments.COMMIT_ROWS.observe(1000)
        instruments.COMMIT_SECONDS.observe(0.004)
        _count(results, 1000)  # TraceWriter._write
        AccessLogMiddleware._done(scope, 200, "", 0.05)  # the access log's HTTP figures, no line

    cost: dict[bool, float] = {}
    number = 20_000
    for enabled in (True, False, True, False):
        instruments.set_enabled(enabled)
        best = min(timeit.repeat(request, number=number, repeat=5)) / number * 1e6
        cost[enabled] = min(best, cost.get(enabled, best))
    instruments.set_enabled(True)
    return cost


def main() -> None:
    args = parse_args()
    with scratch_space("metrics-", keep=args.keep) as scratch:
        console.print(
            f"[bold]metrics overhead[/]: {args.pairs} on runs between {args.pairs + 1} off runs of "
            f"{args.traces:,} traces, batches of {args.batch:,}, {args.concurrency} client threads, "
            f"scraped every {args.scrape_interval:g}s when on; {load_note()}"
        )
        sides: dict[bool, Side] = {}
        try:
            for metrics in (False, True):
                label = "on" if metrics else "off"
                env = {"OPENCTS_METRICS_ENABLED": "1" if metrics else "0", "OPENCTS_METRICS_TOKEN": TOKEN}
                server = ServerProcess(scratch / label, env, log_path=scratch / f"{label}.log").start(120)
                sides[metrics] = Side(label, server, metrics)
            # a first run each, not counted: connections, caches and the parsing workers warmed up
            warm = argparse.Namespace(**{**vars(args), "traces": min(args.traces, 20_000)})
            for side in sides.values():
                one_run(side, encode(side, args.seed + 1000, warm), warm)
            off, on = sides[False], sides[True]

            def run(side: Side, index: int) -> None:
                rate, cost, scrapes = one_run(side, encode(side, args.seed + 10 * index, args), args)
                side.rates.append(rate)
                side.costs.append(cost)
                side.scrapes += scrapes

            run(off, 0)
            for pair in range(args.pairs):
                run(on, pair)
                run(off, pair + 1)
                rate_delta, cpu_delta = paired(on, off, pair)
                rates = f"{off.rates[-2]:,.0f}, on {on.rates[-1]:,.0f}, off {off.rates[-1]:,.0f}"
                costs = f"{off.costs[-2]:.1f}, on {on.costs[-1]:.1f}, off {off.costs[-1]:.1f}"
                console.print(
                    f"pair {pair + 1}: off {rates} traces/s ({rate_delta:+.1%}); CPU off {costs} µs/trace "
                    f"({cpu_delta:+.1%}); {load_note()}"
                )
            scrape_ms, page = scrape_cost(sides[True].server)
        finally:
            for side in sides.values():
                side.server.stop()
    off, on = sides[False], sides[True]
    table = Table(title=f"ingest, {args.pairs} pairs")
    for column in ("metrics", "median traces/s", "runs", "median server µs CPU/trace", "runs µs"):
        table.add_column(column)
    for side in (off, on):
        table.add_row(
            side.label if not side.metrics else f"on ({side.scrapes} scrapes)",
            f"{statistics.median(side.rates):,.0f}",
            ", ".join(f"{r:,.0f}" for r in side.rates),
            f"{statistics.median(side.costs):.1f}",
            ", ".join(f"{c:.1f}" for c in side.costs),
        )
    console.print(table)
    deltas = [paired(on, off, pair) for pair in range(args.pairs)]
    rate_delta = statistics.median(rate for rate, _ in deltas)
    cpu_delta = statistics.median(cpu for _, cpu in deltas)
    console.print(
        f"throughput on vs off, median of the pairs: {rate_delta:+.1%} {verdict(rate_delta >= -FLOOR_APART)} "
        f"(no worse than -3 %)"
    )
    console.print(
        f"server CPU per trace on vs off, median of the pairs: {cpu_delta:+.1%} "
        f"{verdict(cpu_delta <= FLOOR_APART)} (no more than +3 %)"
    )
    calls = instrument_cost()
    extra = calls[True] - calls[False]
    console.print(
        f"instruments of one ingest request: {calls[True]:.1f} µs on, {calls[False]:.1f} µs off: metrics add "
        f"{extra:.1f} µs a request = {extra / args.batch * 1000:.1f} ns a trace at batches of {args.batch:,} "
        f"({extra / args.batch / statistics.median(off.costs):.3%} of the server's CPU per trace)"
    )
    console.print(
        f"one scrape ({page / 1024:,.1f} KiB page): {scrape_ms:.1f} ms of server CPU, i.e. "
        f"{scrape_ms / 1000 / args.scrape_interval:.2%} of a core scraped every {args.scrape_interval:g}s "
        f"({scrape_ms / 1000 / 15:.3%} at Prometheus' usual 15 s); {load_note()}"
    )


if __name__ == "__main__":
    main()

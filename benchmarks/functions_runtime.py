"""The functions runtime on its own: cold start, warm invoke latency, invocations/s, and worker memory.

Drives ``FunctionPool`` in this process (the server's side of the runtime) with real worker processes:
cold starts of a trivial handler and of one importing ``requests``; warm p50/p95 of one function called
back to back; invocations/s on one function and spread over 50 functions with a few callers at once; and
the resident memory of the pool with 50 warm functions (every worker's RSS, from psutil or /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import time
import zipfile
from pathlib import Path

from _measure import console, human_bytes, percentile
from _server import remove_dir, scratch_dir
from rich.table import Table

from opencts.functions.runtime import FunctionPool, FunctionSpec

TRIVIAL = "import os\ndef handler(event, context):\n    return {'pid': os.getpid(), 'n': event.get('n')}\n"
WITH_REQUESTS = "import os, requests\ndef handler(event, context):\n    return {'pid': os.getpid()}\n"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


class Codes:
    def __init__(self) -> None:
        self.zips: dict[str, bytes] = {}

    def add(self, source: str) -> str:
        data = _zip(source)
        digest = hashlib.sha512(data).hexdigest()
        self.zips[digest] = data
        return digest

    async def load(self, spec: FunctionSpec) -> bytes:
        return self.zips[spec.code_digest]


def _spec(func_id: str, digest: str) -> FunctionSpec:
    return FunctionSpec(
        func_id=func_id,
        func_urn=f"urn:fss:bench:p:function:default:{func_id}:latest",
        project_id="p",
        package="default",
        name=func_id,
        version="latest",
        runtime="Python3.12",
        handler="index.handler",
        timeout_s=30,
        memory_mb=256,
        code_digest=digest,
        user_data={},
    )


def _rss_bytes(pid: int) -> int:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return 0


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared interpreter pages counted once over all workers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def _timed(pool: FunctionPool, spec: FunctionSpec, n: int) -> tuple[float, int]:
    started = time.perf_counter()
    result = await pool.invoke(spec, b'{"n": %d}' % n, request_id=f"r{n}", credentials=None)
    if result.status != "success":
        raise RuntimeError(f"{spec.name}: {result.status} {result.result}")
    return (time.perf_counter() - started) * 1000, int(
        result.result.split('"pid": ')[1].split(",")[0].rstrip("}")
    )


async def _throughput(pool: FunctionPool, specs: list[FunctionSpec], total: int, callers: int) -> float:
    counter = iter(range(total))

    async def caller() -> None:
        for n in counter:
            await _timed(pool, specs[n % len(specs)], n)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return total / (time.perf_counter() - started)


async def run(args: argparse.Namespace, root: Path) -> None:
    codes = Codes()
    trivial, heavy = codes.add(TRIVIAL), codes.add(WITH_REQUESTS)
    pool = FunctionPool(
        code_dir=root / "code",
        load_code=codes.load,
        workers=64,
        max_memory_mb=2048,
        concurrency=4,
        queue_limit=1000,
        idle_seconds=600,
    )
    table = Table(title="functions runtime")
    table.add_column("measure")
    table.add_column("value", justify="right")
    try:
        first = [(await _timed(pool, _spec("unpack", trivial), 0))[0]]
        cold = [(await _timed(pool, _spec(f"cold-{i}", trivial), i))[0] for i in range(args.cold)]
        cold_requests = [(await _timed(pool, _spec(f"req-{i}", heavy), i))[0] for i in range(args.cold // 2)]
        for spec_id in [f"cold-{i}" for i in range(args.cold)] + [f"req-{i}" for i in range(args.cold // 2)]:
            pool.forget(spec_id)
        pool.forget("unpack")
        one = _spec("one", trivial)
        await _timed(pool, one, 0)
        warm = [(await _timed(pool, one, n))[0] for n in range(args.warm)]
        one_rate = await _throughput(pool, [one], args.total, args.callers)
        many = [_spec(f"many-{i}", trivial) for i in range(50)]
        pids = [(await _timed(pool, spec, 0))[1] for spec in many]
        many_rate = await _throughput(pool, many, args.total, args.callers)
        stats = pool.stats()
        worker_rss = sum(_rss_bytes(pid) for pid in set(pids))
        worker_pss = sum(_pss_bytes(pid) for pid in set(pids))
        table.add_row("first cold start (unpack + spawn + import)", f"{first[0]:.1f} ms")
        table.add_row(
            f"cold start, trivial handler p50 / p95 (n={len(cold)})",
            f"{percentile(cold, 50):.1f} / {percentile(cold, 95):.1f} ms",
        )
        table.add_row(
            f"cold start, handler importing requests p50 (n={len(cold_requests)})",
            f"{percentile(cold_requests, 50):.1f} ms",
        )
        table.add_row(
            f"warm invoke p50 / p95 (n={len(warm)})",
            f"{percentile(warm, 50):.2f} / {percentile(warm, 95):.2f} ms",
        )
        table.add_row(f"invocations/s, one function, {args.callers} callers", f"{one_rate:.0f}")
        table.add_row(f"invocations/s, 50 functions, {args.callers} callers", f"{many_rate:.0f}")
        table.add_row("warm workers after the 50-function run", str(stats["workers"]))
        table.add_row(
            "RSS of the 50 first workers (sum / each)",
            f"{human_bytes(worker_rss)} / {human_bytes(worker_rss / len(set(pids)))}",
        )
        table.add_row("PSS of the 50 first workers (sum)", human_bytes(worker_pss))
        table.add_row("RSS of this (server-side) process", human_bytes(_rss_bytes(os.getpid())))
    finally:
        await pool.close()
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=20, help="cold starts to measure")
    parser.add_argument("--warm", type=int, default=2000, help="back-to-back warm invocations")
    parser.add_argument("--total", type=int, default=4000, help="invocations of each throughput run")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers of the throughput runs")
    args = parser.parse_args()
    root = scratch_dir("functions-runtime-")
    try:
        asyncio.run(run(args, root))
    finally:
        remove_dir(root)


if __name__ == "__main__":
    main()

"""CTS triggers end to end, through a real server: ingest acknowledged → handler started; cold and warm
invocations; invocations/s on one function and across 50; the server's memory with 50 warm functions.

The handler stamps the wall clock when it starts (``time.time_ns``), so trigger latency is measured from
the moment the ingest client got its answer to the moment the function's code ran, on one machine's clock.
Traces are sent one at a time, 25 ms apart, so each latency is the path's and not a queue's. The floors:
a bare ``python -I -c pass`` for a cold start, and the pool alone (``functions_runtime.py``) for warm.

Run: ``python benchmarks/functions.py [--traces 300]``.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
from _measure import console, human_bytes, load_note, percentile, verdict
from _server import bench_server, scratch_space
from rich.table import Table

from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

PROBE = b"""
import time

def handler(event, context):
    started = time.time_ns()
    cts = event.get("cts") or {}
    return {"started_ns": started, "trace_id": cts.get("trace_id"), "n": event.get("n")}
"""
OPERATION = "BENCH:probe:touch"


def create_function(client: httpx.Client, project: str, name: str, *, memory: int = 128) -> str:
    resp = client.post(
        f"/v2/{project}/fgs/functions",
        json={
            "func_name": name,
            "runtime": "Python3.12",
            "timeout": 30,
            "handler": "index.handler",
            "memory_size": memory,
            "code_type": "inline",
            "func_code": {"file": base64.b64encode(PROBE).decode()},
        },
    )
    resp.raise_for_status()
    return str(resp.json()["func_urn"])


def trace(n: int) -> dict[str, Any]:
    return {
        "trace_id": str(uuid.uuid4()),
        "trace_name": "touch",
        "trace_type": "ApiCall",
        "trace_rating": "normal",
        "service_type": "BENCH",
        "resource_type": "probe",
        "resource_name": f"probe-{n}",
        "time": int(time.time() * 1000),
        "source_ip": "203.0.113.7",
        "user": {"name": "bench", "id": "u1", "domain": {"name": "d", "id": "d1"}},
    }


def invocations(client: httpx.Client, project: str, urn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    marker = 0
    while True:
        resp = client.get(
            f"/v2/{project}/fgs/functions/{urn}/async-invocations", params={"limit": 500, "marker": marker}
        )
        resp.raise_for_status()
        body = resp.json()
        found.extend(body["invocations"])
        if not body["next_marker"]:
            return found
        marker = body["next_marker"]


def trigger_latency(server: ServerProcess, client: httpx.Client, count: int) -> list[float]:
    project = server.creds.project_id
    urn = create_function(client, project, "probe")
    resp = client.post(
        f"/v2/{project}/fgs/triggers/{urn}",
        json={
            "trigger_type_code": "CTS",
            "trigger_status": "ACTIVE",
            "event_data": {"name": "bench_probe", "operations": [OPERATION]},
        },
    )
    if resp.status_code != 201:
        raise RuntimeError(f"creating the trigger answered {resp.status_code}: {resp.text}")
    acked: dict[str, int] = {}
    for n in range(count + 5):
        body = trace(n)
        resp = client.post(f"/v3/{project}/traces", json={"traces": [body]})
        resp.raise_for_status()
        if n >= 5:  # the first ones warm the worker
            acked[body["trace_id"]] = time.time_ns()
        time.sleep(0.025)
    wait_for(
        lambda: sum(i["status"] == "SUCCESS" for i in invocations(client, project, urn)) >= count + 5,
        120,
        "every trigger invocation",
        interval=0.2,
    )
    latencies = []
    for item in invocations(client, project, urn):
        if item["trace_id"] not in acked:
            continue
        one = client.get(f"/v2/{project}/fgs/functions/{urn}/invocations/{item['request_id']}")
        one.raise_for_status()
        started = httpx.Response(200, content=one.json()["result"]).json()["started_ns"]
        latencies.append((started - acked[item["trace_id"]]) / 1e6)
    return latencies


def sync_invoke(client: httpx.Client, project: str, urn: str, n: int) -> float:
    started = time.perf_counter()
    resp = client.post(f"/v2/{project}/fgs/functions/{urn}/invocations", json={"n": n})
    resp.raise_for_status()
    assert resp.json()["status"] == 200, resp.text
    return (time.perf_counter() - started) * 1000


def cold_and_warm(server: ServerProcess, client: httpx.Client, count: int) -> tuple[list[float], list[float]]:
    project = server.creds.project_id
    cold, warm = [], []
    for i in range(count):
        urn = create_function(client, project, f"cold-{i}")
        cold.append(sync_invoke(client, project, urn, 0))
        warm.append(sync_invoke(client, project, urn, 1))
    return cold, warm


def throughput(server: ServerProcess, urns: list[str], total: int, callers: int) -> float:
    project = server.creds.project_id

    local = threading.local()

    def call(n: int) -> float:
        if not hasattr(local, "client"):  # one connection per caller, as a real client keeps
            local.client = server.client()
        return sync_invoke(local.client, project, urns[n % len(urns)], n)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(call, range(total)))
    return total / (time.perf_counter() - started)


def trigger_throughput(server: ServerProcess, client: httpx.Client, batch: int) -> float:
    """A batch of ingested traces that all match one trigger: invocations/s until every one succeeded."""
    project = server.creds.project_id
    urn = next(
        f["func_urn"]
        for f in client.get(f"/v2/{project}/fgs/functions", params={"func_name": "probe"}).json()["functions"]
        if f["func_name"] == "probe"
    )
    before = sum(i["status"] == "SUCCESS" for i in invocations(client, project, urn))
    started = time.perf_counter()
    for first in range(0, batch, 500):
        resp = client.post(
            f"/v3/{project}/traces", json={"traces": [trace(n) for n in range(first, first + 500)]}
        )
        resp.raise_for_status()
    wait_for(
        lambda: sum(i["status"] == "SUCCESS" for i in invocations(client, project, urn)) >= before + batch,
        300,
        "the batch's invocations",
        interval=0.25,
    )
    return batch / (time.perf_counter() - started)


def tree_rss(pid: int) -> tuple[int, int]:
    """RSS of the server process alone, and of it with every worker process under it."""
    root = psutil.Process(pid)
    own = root.memory_info().rss
    children = sum(c.memory_info().rss for c in root.children(recursive=True))
    return own, own + children


def interpreter_floor(runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=300, help="traces for the trigger latency")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data dir")
    args = parser.parse_args()
    env = {"OPENCTS_FUNCTIONS_WORKERS": "64", "OPENCTS_FUNCTIONS_CONCURRENCY": "4"}
    with scratch_space("functions-", keep=args.keep) as scratch:
        server = bench_server(scratch / "data", env)
        try:
            with server.client(nonce=True) as client:
                console.print(f"trigger latency over {args.traces} traces, 25 ms apart …")
                latencies = trigger_latency(server, client, args.traces)
                console.print("cold and warm starts of 20 new functions …")
                cold, warm = cold_and_warm(server, client, 20)
                project = server.creds.project_id
                fifty = [create_function(client, project, f"many-{i}") for i in range(50)]
                console.print("throughput …")
                one_rate = throughput(server, fifty[:1], 1000, 8)
                many_rate = throughput(server, fifty, 2000, 8)
                own, total = tree_rss(server.pid)
                trigger_rate = trigger_throughput(server, client, 2000)
        finally:
            server.stop()
    floor = interpreter_floor()
    table = Table(title=f"Functions end to end ({load_note()})")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("target / floor")
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    table.add_row(
        "trigger: ingest ack → handler start, p50", f"{p50:.1f} ms", f"≤ 50 ms {verdict(p50 <= 50)}"
    )
    table.add_row(
        "trigger: ingest ack → handler start, p95", f"{p95:.1f} ms", f"≤ 200 ms {verdict(p95 <= 200)}"
    )
    table.add_row("trigger: max", f"{max(latencies):.1f} ms", "")
    table.add_row(
        "sync invoke, cold (new function), p50",
        f"{percentile(cold, 50):.1f} ms",
        f"python start {floor:.1f} ms",
    )
    table.add_row("sync invoke, warm, p50", f"{percentile(warm, 50):.1f} ms", "HTTP + audit + record")
    table.add_row("sync invocations/s, one function, 8 callers", f"{one_rate:,.0f}", "")
    table.add_row("sync invocations/s, 50 functions, 8 callers", f"{many_rate:,.0f}", "")
    table.add_row("trigger invocations/s, one function (2,000 traces)", f"{trigger_rate:,.0f}", "")
    table.add_row("server RSS, 50 warm functions", human_bytes(own), "")
    table.add_row("server + workers RSS", human_bytes(total), "")
    console.print(table)


if __name__ == "__main__":
    main()

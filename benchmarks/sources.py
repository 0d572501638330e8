"""Kubernetes audit events per second over the webhook, against the plain ingest API with the same traces.

1. Starts ``opencts serve`` on a scratch data dir and creates a ``kubernetes`` source token.
2. Builds N audit events as a busy cluster's API server sends them (mostly ``Metadata`` level; one in
   five at ``Request`` level with a small ``requestObject``; stages ``ResponseComplete`` and
   ``RequestReceived``), in ``EventList`` bodies of 100 (close to the API server's default of 400) and
   of 1,000 events.
3. Posts them from a few client threads over keep-alive connections to
   ``POST /v3/{project_id}/sources/kubernetes`` with the bearer token, and, for the comparison, posts the
   very same traces (``opencts.sources.kubernetes.to_traces`` of another set of events of the same
   shape, so no run meets the previous one's ids) to ``POST /v3/{project_id}/traces``, signed with the
   bootstrap AK/SK, in batches of the same sizes. Every answer comes after the batch is durable.

The webhook maps and checks every event before the batch is handed to the ingest path, and its bearer
token costs a hash where the ingest API's signature costs an HMAC: the table shows what the mapping adds.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from _measure import console, load_note, percentile
from _server import scratch_space
from rich.table import Table

from opencts.clock import now_ms
from opencts.sources.kubernetes import to_traces
from opencts.testing.server import ServerProcess

RESOURCES = ("pods", "deployments", "configmaps", "secrets", "services", "leases")
VERBS = ("get", "list", "update", "patch", "create", "delete", "watch")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000, help="events per run (default 20,000)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads posting at once (default 4)")
    p.add_argument("--keep", action="store_true", help="keep the scratch data dir under bench-data/")
    return p.parse_args()


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_events(count: int) -> list[dict[str, Any]]:
    """``count`` audit events of the last few minutes, as a cluster's API server reports them."""
    start = now_ms() - 5 * 60_000
    events = []
    for i in range(count):
        resource, verb = RESOURCES[i % len(RESOURCES)], VERBS[i % len(VERBS)]
        received = stamp(start + i % 240_000)
        event: dict[str, Any] = {
            "level": "Metadata",
            "auditID": str(uuid.uuid4()),
            "stage": "RequestReceived" if i % 10 == 9 else "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/team-{i % 40}/{resource}/app-{i % 500}",
            "verb": verb,
            "user": {
                "username": f"system:serviceaccount:team-{i % 40}:deployer",
                "groups": ["system:authenticated"],
            },
            "sourceIPs": [f"10.0.{i % 250}.{i % 200 + 1}"],
            "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
            "objectRef": {
                "resource": resource,
                "namespace": f"team-{i % 40}",
                "name": f"app-{i % 500}",
                "apiVersion": "v1",
            },
            "requestReceivedTimestamp": received,
            "stageTimestamp": received,
            "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"},
        }
        if event["stage"] == "ResponseComplete":
            event["responseStatus"] = {"metadata": {}, "code": 200 if i % 17 else 403}
        if i % 5 == 0:
            event["level"] = "Request"
            event["requestObject"] = {
                "kind": "ConfigMap",
                "metadata": {"name": f"app-{i % 500}"},
                "data": {"k": "v" * 64},
            }
        events.append(event)
    return events


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_one(client: httpx.Client, path: str, body: bytes, result: Run) -> None:
    """POST one body, again after a 429's Retry-After, and note how long the answer took."""
    while True:
        started = time.perf_counter()
        resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
        if resp.status_code != 429:
            break
        time.sleep(float(resp.headers.get("Retry-After", "0.2")))
    with result.lock:
        result.latencies.append(time.perf_counter() - started)
        if resp.status_code == 200:
            result.accepted += int(orjson.loads(resp.content)["accepted"])
        else:
            result.errors.append(f"{resp.status_code}: {resp.text[:200]}")


def post_all(
    path: str, bodies: list[bytes], concurrency: int, client_for: Callable[[], httpx.Client]
) -> tuple[float, Run]:
    """Seconds for every body to be answered, and what the answers said."""
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    result = Run()

    def worker() -> None:
        with client_for() as client:
            while True:
                try:
                    body = work.get_nowait()
                except queue.Empty:
                    return
                post_one(client, path, body, result)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if result.errors:
        raise RuntimeError(f"{len(result.errors)} POSTs failed, first: {result.errors[0]}")
    return time.perf_counter() - started, result


def main() -> None:
    args = parse_args()
    with scratch_space("sources-", keep=args.keep) as scratch:
        server = ServerProcess(scratch / "server", log_path=scratch / "server.log").start(120)
        try:
            run(server, args)
        finally:
            server.stop()


def run(server: ServerProcess, args: argparse.Namespace) -> None:
    project = server.creds.project_id
    with server.client() as admin:
        made = admin.post(
            f"/v3/projects/{project}/source-tokens", json={"name": "bench", "source": "kubernetes"}
        )
        made.raise_for_status()
    token = made.json()["source_token"]["token"]

    def webhook_client() -> httpx.Client:
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    table = Table(
        title=f"Kubernetes audit events, {args.events:,} per run, {args.concurrency} client threads"
    )
    for column in ("path", "batch", "events/s", "p50 POST", "p95 POST"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for batch in (100, 1000):
        events = make_events(args.events)
        bodies = [
            orjson.dumps(
                {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events[i : i + batch]}
            )
            for i in range(0, len(events), batch)
        ]
        seconds, done = post_all(
            f"/v3/{project}/sources/kubernetes", bodies, args.concurrency, webhook_client
        )
        accepted, lat = done.accepted, done.latencies
        assert accepted == args.events, f"webhook accepted {accepted:,} of {args.events:,}"
        table.add_row(
            "webhook (EventList, bearer)", f"{batch:,}", f"{accepted / seconds:,.0f}",
            f"{percentile(lat, 50) * 1000:,.0f} ms", f"{percentile(lat, 95) * 1000:,.0f} ms",
        )  # fmt: skip
        traces = to_traces(make_events(args.events))
        bodies = [orjson.dumps({"traces": traces[i : i + batch]}) for i in range(0, len(traces), batch)]
        seconds, done = post_all(
            f"/v3/{project}/traces", bodies, args.concurrency, lambda: server.client(timeout=120)
        )
        accepted, lat = done.accepted, done.latencies
        assert accepted == args.events, f"ingest accepted {accepted:,} of {args.events:,}"
        table.add_row(
            "ingest API (same traces, AK/SK)", f"{batch:,}", f"{accepted / seconds:,.0f}",
            f"{percentile(lat, 50) * 1000:,.0f} ms", f"{percentile(lat, 95) * 1000:,.0f} ms",
        )  # fmt: skip
    console.print(table)
    console.print(load_note())


if __name__ == "__main__":
    main()

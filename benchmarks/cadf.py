"""CADF messages/s from RabbitMQ to durable traces, against the plain ingest API on the same server.

1. Bootstraps a scratch data dir, builds N CADF events with pycadf (keystonemiddleware's
   ``audit.http.response`` shape) and publishes them to ``<topic>.info`` on the local RabbitMQ in
   oslo.messaging's 2.0 envelope, the body its ``messagingv2`` driver writes (the tests publish through
   oslo.messaging's Notifier itself; here it would take minutes for 100,000).
2. Starts ``opencts serve`` with ``OPENCTS_CADF_AMQP_URL`` and times the drain: from the server answering
   ``/health`` until N traces of the CADF submitter are in the log (each written durably, then acked).
   ``--kill`` kills the server (SIGKILL) a third of the way through, restarts it, and checks that every
   message became exactly one trace and that the queue is empty: the issue's "Show".
3. The floor: the same traces, mapped the same way, posted through ``POST /v3/{project_id}/traces`` in
   batches of 1,000 from one client (one keep-alive connection), to the same server.

``python benchmarks/cadf.py [--count 100000] [--kill] [--keep]``; needs RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
from _measure import console, load_note
from _server import bench_server, bootstrap_data_dir, scratch_space
from pycadf import cadftaxonomy as taxonomy
from pycadf import cadftype, eventfactory, host, reason, resource

from opencts.sources.cadf import Notification, map_notification
from opencts.sources.cadf_consumer import CADF_SUBMITTER
from opencts.testing.server import signer

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def cadf_event(project_id: str, i: int) -> dict[str, Any]:
    initiator = resource.Resource(
        typeURI=taxonomy.ACCOUNT_USER,
        id=str(uuid.uuid4()),
        name=f"user{i % 50}",
        host=host.Host(address=f"10.0.{i % 250}.{i % 200 + 1}", agent="python-novaclient"),
    )
    initiator.project_id = project_id
    initiator.request_id = f"req-{uuid.uuid4()}"
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        outcome=taxonomy.OUTCOME_SUCCESS,
        action="delete",
        initiator=initiator,
        target=resource.Resource(typeURI="service/compute/servers/server", id=str(uuid.uuid4()), name="nova"),
        observer=resource.Resource(id="target"),
    )
    event.requestPath = f"/v2.1/servers/{uuid.uuid4()}"
    event.reason = reason.Reason(reasonType="HTTP", reasonCode="204")
    payload: dict[str, Any] = event.as_dict()
    return payload


def envelope(payload: dict[str, Any]) -> bytes:
    """What oslo.messaging's messagingv2 driver publishes (``oslo_messaging/_drivers/common.py``)."""
    message = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": "nova-api.bench",
        "event_type": "audit.http.response",
        "priority": "INFO",
        "payload": payload,
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
    }
    return orjson.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


async def publish(queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        await channel.declare_queue(queue, durable=False, auto_delete=False)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json", delivery_mode=2), routing_key=queue
            )
    while await depth(queue) < len(bodies):  # unconfirmed publishing: wait until the broker has them all
        await asyncio.sleep(0.1)


async def depth(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def delete(*queues: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)


def cadf_traces(db_path: Path) -> tuple[int, int]:
    """(rows, distinct trace ids) written by the CADF consumer."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT trace_id) FROM traces WHERE submitter = ?",
            (CADF_SUBMITTER.label,),
        ).fetchone()
        return int(row[0]), int(row[1])
    finally:
        conn.close()


def wait_count(db_path: Path, target: int, timeout: float) -> float:
    start = time.monotonic()
    while cadf_traces(db_path)[0] < target:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out: {cadf_traces(db_path)[0]} of {target} traces after {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic()


def drain(data: Path, env: dict[str, str], count: int, kill: bool) -> float:
    """Seconds from /health to ``count`` CADF traces (with a kill -9 and a restart in between if asked)."""
    db_path = data / "opencts.db"
    server = bench_server(data, env)
    started = time.monotonic()
    try:
        if kill:
            wait_count(db_path, count // 3, 600)
            server.kill()
            at_kill = cadf_traces(db_path)[0]
            left = asyncio.run(depth(env["OPENCTS_CADF_TOPIC"] + ".info"))
            console.print(f"killed -9 at {at_kill:,} traces; {left:,} messages still in the queue")
            server.stop()
            server = bench_server(data, env)
        done = wait_count(db_path, count, 900)
    finally:
        server.stop()
    return done - started


def ingest_floor(data: Path, project: str, payloads: list[dict[str, Any]]) -> float:
    """Traces/s of the same traces posted through the ingest API, batches of 1,000, one connection."""
    traces = []
    for payload in payloads:
        mapped = map_notification(Notification("audit.http.response", payload))
        assert mapped is not None
        trace = dict(mapped.trace)
        trace["trace_id"] = str(uuid.uuid4())
        traces.append(trace)
    bodies = [orjson.dumps({"traces": traces[i : i + 1000]}) for i in range(0, len(traces), 1000)]
    server = bench_server(data, {})
    try:
        creds = server.creds
        with httpx.Client(base_url=server.url, auth=signer(creds), timeout=120) as client:
            start = time.monotonic()
            for body in bodies:
                resp = client.post(
                    f"/v3/{project}/traces", content=body, headers={"Content-Type": "application/json"}
                )
                resp.raise_for_status()
            elapsed = time.monotonic() - start
    finally:
        server.stop()
    return len(traces) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--kill", action="store_true", help="kill -9 the server a third of the way through")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data dir")
    parser.add_argument("--batch", type=int, default=None, help="OPENCTS_CADF_BATCH (default: the setting's)")
    args = parser.parse_args()
    n = args.count
    console.print(load_note())
    with scratch_space("cadf", keep=args.keep) as root:
        data = root / "data"
        creds = bootstrap_data_dir(data)
        topic = f"opencts-bench-{uuid.uuid4().hex[:8]}"
        queue = f"{topic}.info"
        t0 = time.monotonic()
        payloads = [cadf_event(creds.project_id, i) for i in range(n)]
        asyncio.run(publish(queue, [envelope(p) for p in payloads]))
        console.print(f"built and published {n:,} CADF messages in {time.monotonic() - t0:.1f} s")
        env = {"OPENCTS_CADF_AMQP_URL": AMQP_URL, "OPENCTS_CADF_TOPIC": topic}
        if args.batch:
            env["OPENCTS_CADF_BATCH"] = str(args.batch)
        try:
            seconds = drain(data, env, n, args.kill)
            rows, distinct = cadf_traces(data / "opencts.db")
            left = asyncio.run(depth(queue))
        finally:
            asyncio.run(delete(queue, f"{queue}.dead"))
        console.print(
            f"CADF: {n:,} messages -> {rows:,} traces ({distinct:,} distinct) in {seconds:.1f} s"
            f" = [bold]{n / seconds:,.0f} messages/s[/bold]; queue left {left}"
        )
        ok = rows == distinct == n and left == 0
        console.print("every message exactly one trace" if ok else "[red]MISMATCH[/red]")
        floor = ingest_floor(data, creds.project_id, payloads[: min(n, 50_000)])
        console.print(f"ingest API floor (same traces, batches of 1,000): [bold]{floor:,.0f} traces/s[/bold]")
        console.print(f"CADF / ingest API: {n / seconds / floor:.2f}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()

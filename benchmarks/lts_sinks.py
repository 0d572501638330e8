"""LTS sinks: forwarding throughput per sink type, and ingest with two sinks on next to off.

1. Forwarding: N traces appended to the log with LTS on and copied into the ``system-trace`` stream; then
   one sink of each type, its cursor at the stream's start, is drained by ``SinkForwarder`` (batches of
   1,000) to a real receiver on 127.0.0.1, each in a process of its own: the HTTP NDJSON receiver, the
   OTLP/HTTP receiver (which parses the protobuf) and rsyslog over TLS (when installed). Records/s. The
   physical bound next to each: the same bytes written to a TCP socket that only reads them (what the
   wire alone allows), and for NDJSON gzip of the body alone (what a compressing sink would pay at least).
2. Ingest through ``POST /v3/{project_id}/traces`` (batches of 1,000, two client threads) with LTS on, on
   a server with no sink, then on a fresh one with an NDJSON and an OTLP sink forwarding meanwhile.
   Floor: two sinks keep half the ingest rate.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from _measure import console, load_note, verdict
from _server import bench_server, bootstrap_data_dir, scratch_space
from _traces import TraceFactory, Universe, encode_batch
from archive_transfer import post_all
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.table import Table
from sqlalchemy import func, select, update

from opencts.client.signing import HmacAuth
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.iam.secrets import SecretBox
from opencts.lts import streams
from opencts.lts.sinks import ndjson, otlp, repository, syslog
from opencts.lts.sinks.batch import Batch, Record, Sink
from opencts.lts.sinks.forwarder import SinkForwarder, read_batch
from opencts.lts.sinks.model import CreateSinkBody
from opencts.lts.writer import LtsConsumer
from opencts.smn.signing import Signer
from opencts.store import Database, trace_log
from opencts.store.tables import lts_records, lts_sinks
from opencts.testing.sink_peers import Rsyslog, SinkReceiver, make_pki, rsyslogd
from opencts.trackers import repository as trackers
from opencts.trackers.model import UpdateTrackerRequestBody

INGEST_FLOOR = 0.5
BATCH = 1000
BOX = SecretBox(os.urandom(32))


def fill(root: Path, count: int) -> tuple[Database, str]:
    data_dir = root / "forward"
    creds = bootstrap_data_dir(data_dir)
    db = Database(Settings(data_dir=data_dir).resolved_database_url)
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
    )
    db.write_sync(lambda c: trackers.update_tracker(c, project_id=creds.project_id, body=body))
    factory = TraceFactory(
        Universe(domain_id=creds.domain_id, domain_name=creds.domain_name), creds.project_id
    )
    now = now_ms()
    for start in range(0, count, 5000):
        rows = [factory.stored_row(now - 60_000 + i, now) for i in range(start, min(count, start + 5000))]
        db.write_sync(lambda c, rows=rows: trace_log.append(c, rows))  # type: ignore[misc]
    asyncio.run(ConsumerRunner(db, LtsConsumer(db)).drain())
    return db, creds.project_id


def add(db: Database, project: str, name: str, **body: object) -> str:
    group, stream = streams.group_id(project), streams.stream_id(project, streams.SYSTEM_STREAM)
    made = CreateSinkBody.model_validate({"sink_name": name, "batch_size": BATCH, **body})
    shown = db.write_sync(
        lambda c: repository.create(
            c, project_id=project, group_id=group, stream_id=stream, body=made, box=BOX, now=1
        )
    )
    db.write_sync(
        lambda c: c.execute(update(lts_sinks).where(lts_sinks.c.id == shown["sink_id"]).values(position=0))
    )
    return str(shown["sink_id"])


def _serve(kind: str, port: int) -> None:
    SinkReceiver(kind, port=port, keep=False).start()
    while True:
        time.sleep(3600)


@contextmanager
def receiver_process(kind: str) -> Iterator[str]:
    """A receiver in a process of its own (not sharing the forwarder's interpreter); yields its URL."""
    receiver = SinkReceiver(kind)
    proc = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(kind, receiver.port), daemon=True
    )
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", receiver.port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield receiver.url
    finally:
        proc.kill()
        proc.join()


def forward_rate(db: Database, signer: Signer, count: int) -> float:
    forwarder = SinkForwarder(
        db, BOX, signer, cert_url="http://bench/cert.pem", allow_private=True, timeout=60
    )

    async def run() -> float:
        started = time.perf_counter()
        sent = await forwarder.drain(rounds=10_000)
        elapsed = time.perf_counter() - started
        await forwarder.aclose()
        assert sent == count, (sent, count)
        return count / elapsed

    return asyncio.run(run())


def only(db: Database, sink_id: str) -> None:
    """Leave ``sink_id`` the only sink due (the others wait far in the future)."""
    db.write_sync(lambda c: c.execute(update(lts_sinks).values(next_attempt_at=2**62)))
    db.write_sync(
        lambda c: c.execute(update(lts_sinks).where(lts_sinks.c.id == sink_id).values(next_attempt_at=0))
    )


def wire_bound(payloads: list[bytes]) -> float:
    """Seconds to write ``payloads`` to a local TCP socket whose peer only reads: the wire's own cost."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def sink() -> None:
        conn, _ = server.accept()
        while conn.recv(1 << 20):
            pass
        conn.close()

    reader = threading.Thread(target=sink, daemon=True)
    reader.start()
    client = socket.create_connection(("127.0.0.1", port))
    started = time.perf_counter()
    for p in payloads:
        client.sendall(p)
    client.close()
    reader.join()
    server.close()
    return time.perf_counter() - started


def payloads(db: Database, project: str, count: int) -> dict[str, list[bytes]]:
    """The bytes each sink type sends for the whole stream (built once, outside any timing)."""
    stream = streams.stream_id(project, streams.SYSTEM_STREAM)
    sink = Sink("bench", project, "g", stream, "bench", "ndjson", "http://x/", {}, {}, {})
    rows = db.read_sync(
        lambda c: read_batch(
            c, type("S", (), {"stream_id": stream, "position": 0})(), limit=count, before=None
        )
    )
    import orjson

    recs = [
        Record(int(r.id), r.trace_id, int(r.time), int(r.record_time), r.content, orjson.loads(r.content))
        for r in rows
    ]
    out: dict[str, list[bytes]] = {"ndjson": [], "otlp": [], "syslog": []}
    for i in range(0, len(recs), BATCH):
        batch = Batch(sink, recs[i].id, recs[min(i + BATCH, len(recs)) - 1].id, recs[i : i + BATCH])
        out["ndjson"].append(ndjson.body(batch))
        out["otlp"].append(otlp.request(batch).SerializeToString())
        out["syslog"].append(
            b"".join(
                syslog.frame(
                    syslog.message(r, stream_id=stream, hostname="h", app_name="opencts", facility=13)
                )
                for r in batch.records
            )
        )
    return out


def ingest_rate(root: Path, count: int, *, sinks: bool) -> float:
    data_dir = root / ("ingest-sinks" if sinks else "ingest-plain")
    server = bench_server(data_dir, {"OPENCTS_LTS_SINK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    with ExitStack() as stack:
        urls = {k: stack.enter_context(receiver_process(k)) for k in ("ndjson", "otlp")} if sinks else {}
        try:
            creds = server.creds
            auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
            with httpx.Client(base_url=server.url, auth=auth) as client:
                body = {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
                client.put(f"/v3/{creds.project_id}/tracker", json=body).raise_for_status()
                group, stream = (
                    streams.group_id(creds.project_id),
                    streams.stream_id(creds.project_id, streams.SYSTEM_STREAM),
                )
                for kind, url in urls.items():
                    sink = {"sink_name": kind, "sink_type": kind, "endpoint": url, "batch_size": BATCH}
                    path = f"/v3/{creds.project_id}/lts/groups/{group}/streams/{stream}/sinks"
                    client.post(path, json=sink).raise_for_status()
            factory = TraceFactory(
                Universe(domain_id=creds.domain_id, domain_name=creds.domain_name),
                creds.project_id,
                data_share=0.0,
            )
            now = now_ms()
            batches = [
                encode_batch([factory.input_trace(now - 60_000 + i) for i in range(BATCH)])
                for _ in range(count // BATCH)
            ]
            started = time.perf_counter()
            post_all(server.url, auth, creds.project_id, batches)
            return len(batches) * BATCH / (time.perf_counter() - started)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward", type=int, default=20_000, help="records each sink forwards")
    parser.add_argument("--ingest", type=int, default=50_000, help="traces posted in each ingest run")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    signer = Signer.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    rates: dict[str, float] = {}
    with scratch_space("lts-sinks-", keep=args.keep) as root:
        db, project = fill(root, args.forward)
        count = int(
            db.read_sync(lambda c: c.execute(select(func.count()).select_from(lts_records)).scalar_one())
        )
        wire = payloads(db, project, count)
        with receiver_process("ndjson") as nd, receiver_process("otlp") as ot:
            ids = {"ndjson": add(db, project, "nd", sink_type="ndjson", endpoint=nd)}
            ids["otlp"] = add(db, project, "ot", sink_type="otlp", endpoint=ot)
            pki = make_pki() if rsyslogd() else None
            rs = Rsyslog(root / "rsyslog", pki).start() if pki else None
            try:
                if rs is not None and pki is not None:
                    ids["syslog"] = add(
                        db,
                        project,
                        "rs",
                        sink_type="syslog",
                        endpoint=f"127.0.0.1:{rs.port}",
                        ca_cert=pki.ca_cert,
                        client_cert=pki.client_cert,
                        client_private_key=pki.client_key,
                    )
                for kind, sink_id in ids.items():
                    only(db, sink_id)
                    rates[kind] = forward_rate(db, signer, count)
            finally:
                if rs is not None:
                    rs.stop()
        db.close()
        off = ingest_rate(root, args.ingest, sinks=False)
        on = ingest_rate(root, args.ingest, sinks=True)
    table = Table(
        title=f"LTS sinks: {count:,} records forwarded, {args.ingest:,} traces ingested ({load_note()})"
    )
    for column in ("measure", "value", "physical bound / floor", "verdict"):
        table.add_column(column)
    for kind, rate in rates.items():
        seconds = wire_bound(wire[kind])
        size = sum(len(p) for p in wire[kind])
        table.add_row(
            f"forward, {kind}",
            f"{rate:,.0f} records/s",
            f"raw TCP write of its {size / 1e6:.1f} MB: {count / seconds:,.0f} records/s",
            "",
        )
    started = time.perf_counter()
    for p in wire["ndjson"]:
        gzip.compress(p, 6)
    table.add_row(
        "gzip -6 of the NDJSON bodies alone",
        f"{count / (time.perf_counter() - started):,.0f} records/s",
        "",
        "",
    )
    table.add_row("ingest, LTS on, no sink", f"{off:,.0f} traces/s", "", "")
    table.add_row("ingest, LTS on, ndjson + otlp sinks", f"{on:,.0f} traces/s", "", "")
    table.add_row("sinks / none", f"{on / off:.2f}", f">= {INGEST_FLOOR}", verdict(on / off >= INGEST_FLOOR))
    console.print(table)


if __name__ == "__main__":
    main()

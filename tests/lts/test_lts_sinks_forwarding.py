"""LTS sinks forwarding to real receivers, on SQLite and PostgreSQL: order, outages, filters, two nodes.

Streams are fed as the server feeds them (trackers through their repository, traces appended to the log,
the ``lts`` consumer drained); sinks are made through the repository as the API makes them, and forwarded
by :class:`SinkForwarder` to an HTTP server on a socket.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from lts_sinks_helpers import SIGNER, add_sink, feed, forwarder, listing, setup_project
from opencts.clock import now_ms
from opencts.lts.sinks import gauges
from opencts.lts.sinks.forwarder import SinkForwarder, claim, node_id
from opencts.lts.sinks.model import CreateSinkBody
from opencts.lts.sinks.ndjson import verify_batch
from opencts.store import Database
from opencts.store.tables import lts_sinks
from opencts.testing.sink_peers import SinkReceiver
from opencts.traces import self_audit


@pytest.fixture
def db(database: Database) -> Database:
    return setup_project(database)


@pytest.fixture
def receiver() -> Any:
    with SinkReceiver("ndjson") as r:
        yield r


async def test_records_are_forwarded_in_order_as_signed_ndjson_batches(db: Database, receiver: Any) -> None:
    await feed(db, 3)  # before the sink: not forwarded (a new sink starts at the stream's end)
    add_sink(db, receiver.url, batch_size=7, secret_headers={"Authorization": "Bearer s3cret-token"})
    ids = await feed(db, 20, start=100)
    sent = await forwarder(db).drain()
    assert sent == 20
    assert receiver.trace_ids(dedupe=False) == ids
    arrivals = receiver.arrivals()
    assert [len(a.items) for a in arrivals] == [7, 7, 6]
    for a in arrivals:
        assert a.headers["Authorization"] == "Bearer s3cret-token"
        assert verify_batch(a.headers, a.body, SIGNER.cert_pem)
        assert not verify_batch(a.headers, a.body + b"{}\n", SIGNER.cert_pem)
    [shown] = listing(db)
    assert shown["state"] == "ok" and shown["delivered"] == 20 and shown["lag_records"] == 0
    assert shown["header_names"] == ["Authorization"] and "s3cret" not in orjson.dumps(shown).decode()
    stored = db.read_sync(lambda c: c.execute(select(lts_sinks.c.secrets)).scalar_one())
    assert stored.startswith("sealed:v1:") and "s3cret" not in stored


async def test_an_outage_shows_as_error_and_lag_then_everything_arrives_once_in_order(
    db: Database, receiver: Any
) -> None:
    add_sink(db, receiver.url, batch_size=5)
    f = forwarder(db)
    first = await feed(db, 4)
    await f.drain()
    receiver.stop()  # connections refused
    later = await feed(db, 12, start=10)
    await f.step()
    [shown] = listing(db)
    assert shown["state"] == "error" and shown["lag_records"] == 12
    assert "POST" in shown["last_error"] and shown["failures_in_a_row"] == 1
    metrics = {f.name: f.samples[0].value for f in gauges.collect(db)}
    assert metrics["opencts_lts_sink_failures"] == 1 and metrics["opencts_lts_sink_lag_records"] == 12
    receiver.start()
    receiver.down = True  # up again, but answering 503 for a while
    await asyncio.sleep(0.3)
    await f.step()
    assert listing(db)[0]["failures_in_a_row"] == 2 and receiver.refused == 1
    receiver.down = False
    for _ in range(50):
        await asyncio.sleep(0.1)
        await f.drain()
        if listing(db)[0]["lag_records"] == 0:
            break
    assert receiver.trace_ids(dedupe=False) == first + later
    [shown] = listing(db)
    assert shown["state"] == "ok" and shown["delivered"] == 16 and shown["failures_in_a_row"] == 0


async def test_the_filter_is_the_key_event_notification_model(db: Database, receiver: Any) -> None:
    add_sink(
        db,
        receiver.url,
        records_filter={
            "operation_type": "customized",
            "operations": [{"service_type": "ECS", "resource_type": "user", "trace_names": ["deleteServer"]}],
            "filter": {"condition": "AND", "is_support_filter": True, "rule": ["code != 500"]},
        },
    )
    await feed(db, 3, trace_name="login")
    wanted = await feed(db, 2, start=10, trace_name="deleteServer", service_type="ECS")
    await feed(db, 2, start=20, trace_name="createServer", service_type="ECS")
    await forwarder(db).drain()
    assert receiver.trace_ids() == wanted
    [shown] = listing(db)
    assert shown["lag_records"] == 0 and shown["delivered"] == 2


def test_a_bad_sink_body_names_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"endpoint": "ftp://x/"}, "http(s) URL"),
        ({"sink_type": "syslog", "endpoint": "siem.example.com"}, "host:port"),
        ({"secret_headers": {"Content-Type": "text/plain"}}, "set by OpenCTS"),
        ({"client_cert": "x"}, "go together"),
        ({"records_filter": {"operation_type": "customized"}}, "at least one"),
        (
            {
                "records_filter": {
                    "filter": {"condition": "AND", "is_support_filter": True, "rule": ["x = 1"]}
                }
            },
            "x",
        ),
    ]
    for extra, words in cases:
        body: dict[str, Any] = {
            "sink_name": "s",
            "sink_type": "ndjson",
            "endpoint": "http://siem.example.com/in",
        }
        body.update(extra)
        with pytest.raises(ValueError) as info:
            CreateSinkBody.model_validate(body)
        assert words in str(info.value), (extra, str(info.value))


async def test_two_forwarders_on_one_database_deliver_each_record_once(db: Database, receiver: Any) -> None:
    add_sink(db, receiver.url, batch_size=10)
    a, b = forwarder(db, "host-a:1"), forwarder(db, "host-b:2")
    ids: list[str] = []

    async def run(f: SinkForwarder, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await f.step()
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(f, stop)) for f in (a, b)]
    for i in range(10):
        ids += await feed(db, 15, start=i * 100)
        await asyncio.sleep(0.02)
    for _ in range(100):
        if listing(db)[0]["lag_records"] == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    assert receiver.trace_ids(dedupe=False) == ids
    await a.aclose()
    await b.aclose()


def test_a_lease_is_taken_when_it_ends_or_its_holder_on_this_host_is_gone(db: Database) -> None:
    sink_id = add_sink(db, "http://127.0.0.1:9/in")["sink_id"]
    me = node_id()
    host = me.rpartition(":")[0]
    dead = f"{host}:{gone_pid()}"

    def lease(owner: str, until: int) -> None:
        db.write_sync(
            lambda c: c.execute(
                update(lts_sinks)
                .where(lts_sinks.c.id == sink_id)
                .values(lease_owner=owner, lease_until=until)
            )
        )

    def taken() -> bool:
        return bool(db.write_sync(lambda c: claim(c, me, now=now_ms())))

    far = now_ms() + 3_600_000
    lease("other-host:1", far)
    assert not taken()  # another node's live lease is waited out
    lease("other-host:1", now_ms() - 1)
    assert taken()  # ...until it ends
    lease(dead, far)
    assert taken()  # a restarted process of this host takes its predecessor's lease at once
    owner = db.read_sync(lambda c: c.execute(select(lts_sinks.c.lease_owner)).scalar_one())
    assert owner == me


def gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_self_audit_keeps_a_sinks_secrets_out_of_the_trail() -> None:
    """The create call is itself a trace (and goes to the stream and its sinks): its body is redacted."""
    pki_key = "-----BEGIN PRIVATE KEY-----\nMIIBnot-a-real-key\n-----END PRIVATE KEY-----\n"
    body = {
        "sink_name": "s",
        "sink_type": "otlp",
        "endpoint": "https://otel.example.com/v1/logs",
        "secret_headers": {"X-Api-Key": "k-9z9z9z"},
        "client_cert": "CERT",
        "client_private_key": pki_key,
    }
    stored = self_audit.body_text(orjson.dumps(body)) or ""
    assert "k-9z9z9z" not in stored and "not-a-real-key" not in stored
    assert "otel.example.com" in stored

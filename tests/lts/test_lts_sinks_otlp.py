"""The OTLP/HTTP logs sink against a receiver that parses ``ExportLogsServiceRequest`` with
``opentelemetry-proto``: the trace as the body, its fields as semantic-convention attributes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from lts_sinks_helpers import PROJECT, add_sink, feed, forwarder, listing, setup_project
from opencts.store import Database
from opencts.testing.sink_peers import SinkReceiver


@pytest.fixture
def db(database: Database) -> Database:
    return setup_project(database)


@pytest.fixture
def collector() -> Any:
    with SinkReceiver("otlp") as r:
        yield r


async def test_records_arrive_as_otlp_log_records_with_semconv_attributes(
    db: Database, collector: SinkReceiver
) -> None:
    add_sink(db, collector.url, sink_type="otlp", secret_headers={"X-Api-Key": "k-123"})
    ids = await feed(
        db, 5, trace_rating="incident", trace_name="deleteServer", service_type="ECS", user="bob"
    )
    assert await forwarder(db).drain() == 5
    items = collector.items()
    assert collector.trace_ids() == ids
    first = items[0]
    assert orjson.loads(first["body"])["trace_id"] == ids[0]
    assert first["severity_text"] == "ERROR" and first["severity_number"] == 17
    assert first["time_unix_nano"] == 1_700_000_000_000 * 1_000_000
    attrs = first["attributes"]
    assert attrs["user.name"] == "bob"
    assert attrs["http.response.status_code"] == 200
    assert attrs["event.name"] == "cts.ECS.deleteServer"
    assert attrs["cts.trace_name"] == "deleteServer" and attrs["cts.service_type"] == "ECS"
    assert first["resource"]["service.name"] == "opencts" and first["resource"]["cloud.account.id"] == PROJECT
    assert first["scope"] == "opencts.lts.sinks"
    [arrival] = collector.arrivals()
    assert arrival.headers["Content-Type"] == "application/x-protobuf"
    assert arrival.headers["X-Api-Key"] == "k-123"
    assert listing(db)[0]["delivered"] == 5


async def test_a_collector_refusing_the_batch_keeps_it_for_later(
    db: Database, collector: SinkReceiver
) -> None:
    add_sink(db, collector.url, sink_type="otlp")
    ids = await feed(db, 3)
    collector.down = True
    f = forwarder(db)
    await f.drain()
    [shown] = listing(db)
    assert shown["state"] == "error" and "HTTP 503" in shown["last_error"] and shown["lag_records"] == 3
    collector.down = False
    await asyncio.sleep(0.3)
    await f.drain()
    assert collector.trace_ids(dedupe=False) == ids

"""oslo.messaging's Notifier -> the local RabbitMQ -> the CADF consumer -> ListTraces, end to end."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from pycadf import cadftaxonomy as taxonomy

from cadf_helpers import (
    AMQP_URL,
    audit_response,
    delete_queues,
    keystone_event,
    publish,
    publish_raw,
    queue_depth,
    unique_topic,
)
from cts_helpers import Api
from opencts.api.deps import Services
from opencts.sources.cadf_consumer import CadfConsumer, ProjectMap
from opencts.testing.waiting import until


@dataclass
class Running:
    api: Api
    consumer: CadfConsumer
    topic: str

    async def publish(
        self, notes: list[tuple[str, dict[str, Any]]], publisher: str = "nova-api.host1"
    ) -> None:
        await asyncio.to_thread(publish, self.topic, notes, publisher)

    async def traces(self, **params: Any) -> list[dict[str, Any]]:
        resp = await self.api.list(limit=200, **params)
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["traces"]
        return found


@pytest.fixture
async def cadf(api: Api) -> AsyncIterator[Callable[..., Any]]:
    """Starts a consumer on a fresh topic against the in-process app; stops it and deletes its queues."""
    started: list[tuple[asyncio.Task[None], CadfConsumer]] = []

    async def start(fallback: str | None = "same", batch: int = 100) -> Running:
        services: Services = api.app.state.services
        topic = unique_topic()
        consumer = CadfConsumer(
            url=AMQP_URL,
            topic=topic,
            exchanges=["openstack"],
            writer=services.writer,
            project_map=ProjectMap(services.db, api.project if fallback == "same" else fallback),
            batch=batch,
        )
        task = asyncio.create_task(consumer.run_forever())
        started.append((task, consumer))
        await asyncio.wait_for(consumer.consuming.wait(), 20)
        return Running(api, consumer, topic)

    yield start
    for task, consumer in started:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await delete_queues(consumer.queue_name, consumer.dead_name)


async def test_notifier_to_list_traces(cadf: Callable[..., Any]) -> None:
    run: Running = await cadf()
    server = audit_response(project_id="f" * 32, user_name="alice", address="192.0.2.10")
    login = keystone_event("authenticate", taxonomy.OUTCOME_FAILURE, taxonomy.ACCOUNT_USER, user_id="bob-id")
    user = keystone_event(
        "created.user", taxonomy.OUTCOME_SUCCESS, taxonomy.SECURITY_ACCOUNT_USER, target_id="c" * 32
    )
    await run.publish([("audit.http.request", server), ("audit.http.response", server)])
    await run.publish([("identity.authenticate", login), ("identity.user.created", user)], "identity.host1")
    await until(lambda: run.consumer.stats.traces == 3, 20, "three traces")
    listed = {t["trace_id"]: t for t in await run.traces()}
    assert set(listed) == {server["id"], login["id"], user["id"]}
    created = listed[server["id"]]
    assert (created["service_type"], created["trace_name"], created["user"]["name"]) == (
        "ECS",
        "createServer",
        "alice",
    )
    assert created["source_ip"] == "192.0.2.10" and created["submitter"]["name"] == "OpenStack CADF"
    failed = listed[login["id"]]
    assert (failed["trace_name"], failed["code"], failed["trace_rating"]) == ("login", "401", "warning")
    assert listed[user["id"]]["trace_name"] == "createUser"
    assert run.consumer.stats.skipped == 1  # the pending audit.http.request
    # redelivery (or a service sending twice) of the same event adds nothing
    await run.publish([("audit.http.response", server)])
    await until(lambda: run.consumer.stats.duplicates == 1, 20, "the duplicate")
    assert len(await run.traces()) == 3
    assert await queue_depth(run.consumer.queue_name) == 0


async def test_poison_messages_are_dead_lettered_and_never_block_the_queue(cadf: Callable[..., Any]) -> None:
    run: Running = await cadf()
    good = audit_response(
        method_action="delete", path="/v2.1/servers/s-1", type_uri="service/compute/servers/server"
    )
    basic = {"resource_info": "abc"}  # Keystone's non-CADF ("basic") format
    await publish_raw(
        run.consumer.queue_name, [b"\x00garbage", b'{"oslo.version": "2.0", "oslo.message": "{"}']
    )
    await run.publish([("identity.user.created", basic), ("compute.instance.create.end", {"x": 1})])
    await run.publish([("audit.http.response", good)])
    await until(lambda: run.consumer.stats.traces == 1, 20, "the good trace")
    await until(lambda: run.consumer.stats.dead == 3, 20, "three dead letters")
    assert run.consumer.stats.skipped == 1  # Nova's own notification on the shared topic
    assert await queue_depth(run.consumer.queue_name) == 0
    dead = await _drain(run.consumer.dead_name)
    reasons = sorted(str(m.headers["x-opencts-reason"]) for m in dead)
    assert len(reasons) == 3
    assert any("not JSON" in r for r in reasons)
    assert any("not a CADF event" in r for r in reasons)
    assert any(m.body == b"\x00garbage" for m in dead)  # the original body, for a replay once fixed
    [trace] = await run.traces()
    assert trace["trace_name"] == "deleteServer" and trace["resource_id"] == "s-1"


async def test_projects_map_by_id_else_to_the_fallback_else_dead_letter(cadf: Callable[..., Any]) -> None:
    run: Running = await cadf(fallback=None)
    own = audit_response(project_id=run.api.project)
    stranger = audit_response(project_id="e" * 32)
    await run.publish([("audit.http.response", own), ("audit.http.response", stranger)])
    await until(lambda: run.consumer.stats.traces == 1 and run.consumer.stats.dead == 1, 20, "one of each")
    assert [t["trace_id"] for t in await run.traces()] == [own["id"]]
    assert "is no OpenCTS project" in run.consumer.stats.reasons[0]


async def test_a_trace_ingest_rejects_is_dead_lettered(cadf: Callable[..., Any]) -> None:
    run: Running = await cadf()
    old = audit_response()
    month_ago = datetime.now(UTC) - timedelta(days=30)  # older than the retention window (7 days)
    old["eventTime"] = month_ago.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    await run.publish([("audit.http.response", old)])
    await until(lambda: run.consumer.stats.dead == 1, 20, "the dead letter")
    assert "retention" in run.consumer.stats.reasons[0]


async def _drain(queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        out = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            out.append(message)
        return out


def _close_connection(connection_name: str) -> bool:
    """Close the broker side of the connection that named itself ``connection_name``."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    names = [line.split("\t")[0] for line in listing.splitlines() if connection_name in line]
    for name in names:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", name, "test"], timeout=30, check=True)
    return bool(names)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to close a connection")
async def test_a_closed_connection_is_reopened_and_nothing_is_lost(cadf: Callable[..., Any]) -> None:
    run: Running = await cadf()
    first, second = audit_response(), audit_response()
    await run.publish([("audit.http.response", first)])
    await until(lambda: run.consumer.stats.traces == 1, 20, "the first trace")
    closed = await asyncio.to_thread(_close_connection, f"opencts-cadf {run.consumer.queue_name}")
    assert closed
    await run.publish([("audit.http.response", second)])
    await until(lambda: run.consumer.stats.traces == 2, 30, "the second trace, after a reconnect")
    assert run.consumer.stats.connects == 2
    assert {t["trace_id"] for t in await run.traces()} == {first["id"], second["id"]}

"""The notifier hands traces to CTS triggers: one queued invocation per (trigger, trace), whatever repeats.

Traces go through the real ingest preparation and log, the trigger through :mod:`opencts.functions.triggers`
(so through the notifications repository), and what counts as "handed over" is a row in
``function_invocations``. The two-process test runs two notifiers, each its own OS process with its own
engine, over one PostgreSQL database and one shared cursor: the alarm claim lets only one of them queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, delete, func, insert, select

from opencts.clock import now_ms
from opencts.consumers import ConsumerRunner
from opencts.functions import repository, triggers
from opencts.functions.event import cts_event
from opencts.iam.bootstrap import bootstrap
from opencts.iam.secrets import SecretBox
from opencts.notifications.cache import MatcherCache
from opencts.notifications.notifier import NotifierConsumer
from opencts.store import Database, trace_log
from opencts.store.tables import function_invocations, functions, notification_alarms
from opencts.traces.ingest import prepare

DAY_MS = 86_400_000
BOX = SecretBox(bytes(range(32)))
MakeTrace = Callable[..., dict[str, Any]]


@dataclass
class Waker:
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1


@dataclass
class World:
    db: Database
    project: str
    urn: str
    trigger_id: str = ""
    waker: Waker = field(default_factory=Waker)

    def ingest(self, traces: list[dict[str, Any]]) -> None:
        batch = prepare(orjson.loads(orjson.dumps(traces)), project_id=self.project, now=now_ms(),
                        retention_ms=7 * DAY_MS)  # fmt: skip
        assert len(batch.rows) == len(traces), batch.results
        self.db.write_sync(lambda conn: trace_log.append(conn, batch.rows))

    def invocations(self) -> list[dict[str, Any]]:
        return self.db.read_sync(
            lambda conn: [
                dict(r._mapping)
                for r in conn.execute(select(function_invocations).order_by(function_invocations.c.id))
            ]
        )

    def outcomes(self) -> list[str]:
        return self.db.read_sync(
            lambda conn: sorted(r.outcome for r in conn.execute(select(notification_alarms.c.outcome)))
        )

    def notifier(self) -> NotifierConsumer:
        return NotifierConsumer(self.db, functions=self.waker, cache=MatcherCache(ttl=0))

    def set_status(self, status: str) -> None:
        def run(conn: Connection) -> None:
            function = repository.get_by_urn(conn, self.project, self.urn)
            body = triggers.UpdateTriggerBody.model_validate({"trigger_status": status})
            triggers.update_trigger(
                conn,
                function=function,
                trigger_type_code="CTS",
                trigger_id=self.trigger_id,
                body=body,
                now=now_ms(),
            )

        self.db.write_sync(run)


def add_function(conn: Connection, project_id: str, name: str) -> str:
    urn = f"urn:fss:local-1:{project_id}:function:default:{name}"
    code = b"PK\x05\x06" + bytes(18)
    now = now_ms()
    conn.execute(
        insert(functions).values(
            func_id=str(uuid.uuid4()), project_id=project_id, package="default", name=name, func_urn=urn,
            runtime="Python3.10", handler="index.handler", timeout=30, memory_size=128, code_type="zip",
            code=code, code_digest=hashlib.sha512(code).hexdigest(), code_size=len(code), user_data="{}",
            description="", config="{}", created_at=now, last_modified=now,
        )
    )  # fmt: skip
    return urn


def add_trigger(conn: Connection, project_id: str, urn: str, operations: list[str]) -> str:
    function = repository.get_by_urn(conn, project_id, urn)
    body = triggers.CreateTriggerBody.model_validate(
        {"trigger_type_code": "CTS", "event_data": {"name": "logins", "operations": operations}}
    )
    return str(triggers.create(conn, function=function, body=body, now=now_ms())["trigger_id"])


@pytest.fixture
def world(database: Database) -> World:
    def setup(conn: Connection) -> World:
        creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
        assert creds is not None
        urn = add_function(conn, creds.project_id, "audit")
        w = World(database, creds.project_id, urn)
        w.trigger_id = add_trigger(conn, creds.project_id, urn, ["IAM:user:login", "IAM:user:logout"])
        return w

    return database.write_sync(setup)


def login(make_trace: MakeTrace, user: str, action: str = "login", ip: str = "203.0.113.9") -> dict[str, Any]:
    return make_trace(service_type="IAM", resource_type="user", trace_name=action, trace_type="ConsoleAction",
                      resource_name=user, user={"name": user}, source_ip=ip)  # fmt: skip


async def test_each_matching_trace_is_queued_once_with_its_cts_event(
    world: World, make_trace: MakeTrace
) -> None:
    traces = [login(make_trace, "alice"), login(make_trace, "bob", "logout", "2001:db8::1"), make_trace()]
    world.ingest(traces)
    consumer = world.notifier()
    runner = ConsumerRunner(world.db, consumer)
    await runner.drain()
    rows = world.invocations()
    assert [r["trace_id"] for r in rows] == [traces[0]["trace_id"], traces[1]["trace_id"]]
    assert {r["source"] for r in rows} == {"trigger"} and {r["status"] for r in rows} == {"WAIT"}
    assert {r["trigger_id"] for r in rows} == {world.trigger_id}
    stored = world.db.read_sync(
        lambda conn: [orjson.loads(b) for _, b in trace_log.bodies(conn, 0, 10**9, [world.project])]
    )
    assert orjson.loads(rows[1]["event"]) == cts_event(stored[1])
    assert orjson.loads(rows[1]["event"])["cts"]["source_ip"] == "2001:db8::1"
    assert world.outcomes() == ["invoked", "invoked"]
    assert consumer.counts.invoked == 2 and world.waker.wakes == 1

    batch = world.db.read_sync(lambda conn: trace_log.read_after(conn, 0, 1000))
    await consumer.process(batch)  # the same batch again: a crash before the cursor moved
    assert len(world.invocations()) == 2 and consumer.counts.duplicates == 2
    assert world.waker.wakes == 1


async def test_a_disabled_trigger_hands_over_nothing(world: World, make_trace: MakeTrace) -> None:
    world.set_status("DISABLED")
    world.ingest([login(make_trace, "alice")])
    await ConsumerRunner(world.db, world.notifier()).drain()
    assert world.invocations() == [] and world.outcomes() == []
    world.set_status("ACTIVE")
    world.ingest([login(make_trace, "bob")])
    await ConsumerRunner(world.db, world.notifier()).drain()
    assert [r["trace_id"] is not None for r in world.invocations()] == [True]


async def test_a_vanished_function_is_recorded_not_retried(world: World, make_trace: MakeTrace) -> None:
    # the trigger's notification outlives its function only if rows go another way (by hand)
    world.db.write_sync(lambda conn: conn.execute(delete(functions)))
    world.ingest([login(make_trace, "alice")])
    consumer = world.notifier()
    runner = ConsumerRunner(world.db, consumer)
    await runner.drain()
    assert world.outcomes() == ["no_function"] and consumer.counts.no_function == 1
    assert world.invocations() == [] and world.waker.wakes == 0
    assert runner.position is not None and runner.position > 0


def _node(url: str, start: Any, done: Any) -> None:
    """One node's notifier: its own engine, waiting for the other before it reads the log; reports
    (invoked, duplicates)."""

    async def run() -> None:
        db = Database(url)
        try:
            start.wait(30)
            consumer = NotifierConsumer(db, cache=MatcherCache(ttl=0))
            await ConsumerRunner(db, consumer).drain()
            done.put((consumer.counts.invoked, consumer.counts.duplicates))
        finally:
            db.close()

    asyncio.run(run())


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_two_nodes_hand_each_trace_to_the_trigger_once(
    world: World, make_trace: MakeTrace, postgres_url: str
) -> None:
    traces = [login(make_trace, f"user{i}") for i in range(200)]
    world.ingest(traces)
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    nodes = [ctx.Process(target=_node, args=(postgres_url, start, done)) for _ in range(2)]
    for node in nodes:
        node.start()
    start.set()
    counts = [done.get(timeout=120) for _ in nodes]
    assert sum(invoked for invoked, _ in counts) == 200, counts
    for node in nodes:
        node.join(30)
        assert node.exitcode == 0
    rows = world.invocations()
    assert sorted(r["trace_id"] for r in rows) == sorted(t["trace_id"] for t in traces)
    count = world.db.read_sync(
        lambda conn: int(conn.execute(select(func.count()).select_from(notification_alarms)).scalar_one())
    )
    assert count == 200

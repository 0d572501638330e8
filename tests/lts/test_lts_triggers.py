"""LTS triggers in the database, on SQLite and PostgreSQL: a stream's new records, in batches, become
queued invocations of the function with FunctionGraph's LTS event; each batch is queued once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, insert, select

from cts_helpers import trace_row
from opencts.clock import now_ms
from opencts.consumers import ConsumerRunner
from opencts.errors import BadRequest, NotFound
from opencts.functions import lts_triggers, repository, triggers
from opencts.functions.repository import FunctionRecord
from opencts.lts import streams
from opencts.lts.writer import LtsConsumer
from opencts.store import Database, trace_log
from opencts.store.tables import domains, function_invocations, functions, projects
from opencts.trackers import repository as trackers
from opencts.trackers.model import UpdateTrackerRequestBody

DOMAIN, PROJECT = "d" * 32, "p" * 32
GROUP = streams.group_id(PROJECT)
STREAM = streams.stream_id(PROJECT, streams.SYSTEM_STREAM)
URN = f"urn:fss:local-1:{PROJECT}:function:default:alarms"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(database: Database) -> Database:
    def setup(conn: Connection) -> None:
        conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
        conn.execute(insert(projects).values(id=PROJECT, domain_id=DOMAIN, name="r1", created_at=1))
        trackers.create_system_tracker(conn, project_id=PROJECT, domain_id=DOMAIN)
        body = UpdateTrackerRequestBody.model_validate(
            {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
        )
        trackers.update_tracker(conn, project_id=PROJECT, body=body)
        code = b"PK\x05\x06" + bytes(18)
        conn.execute(
            insert(functions).values(
                func_id=str(uuid.uuid4()),
                project_id=PROJECT,
                package="default",
                name="alarms",
                func_urn=URN,
                runtime="Python3.10",
                handler="index.handler",
                timeout=30,
                memory_size=128,
                code_type="zip",
                code=code,
                code_digest=hashlib.sha512(code).hexdigest(),
                code_size=len(code),
                user_data="{}",
                description="",
                config="{}",
                created_at=1,
                last_modified=1,
            )
        )

    database.write_sync(setup)
    return database


def function(conn: Connection) -> FunctionRecord:
    return repository.get_by_urn(conn, PROJECT, URN)


def create(db: Database, **event_data: Any) -> dict[str, Any]:
    data = {"log_group_id": GROUP, "log_topic_id": STREAM, **event_data}
    body = triggers.CreateTriggerBody.model_validate({"trigger_type_code": "LTS", "event_data": data})
    return db.write_sync(lambda c: triggers.create(c, function=function(c), body=body, now=now_ms()))


async def record(db: Database, n: int, start: int = 0) -> list[str]:
    """``n`` traces appended and copied into the stream by the lts consumer; their ids."""
    ids = [f"t-{start + i:04d}" for i in range(n)]
    rows = [
        trace_row(
            t,
            project_id=PROJECT,
            time=1_700_000_000_000 + start + i,
            body=orjson.dumps({"trace_id": t, "source_ip": "10.0.0.9", "trace_rating": "warning"}),
        )
        for i, t in enumerate(ids)
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))
    await ConsumerRunner(db, LtsConsumer(db)).drain()
    return ids


def events(db: Database) -> list[dict[str, Any]]:
    stmt = select(function_invocations).order_by(function_invocations.c.id)
    rows = db.read_sync(lambda c: c.execute(stmt).all())
    assert all(r.source == "trigger" and r.status == "WAIT" for r in rows)
    return [orjson.loads(base64.b64decode(orjson.loads(r.event)["lts"]["data"])) for r in rows]


async def test_new_records_reach_the_function_in_batches_each_once(db: Database) -> None:
    await record(db, 2)  # before the trigger: not handed over
    made = create(db, batch_size=3, polling_interval=5)
    assert made["trigger_type_code"] == "LTS" and made["trigger_status"] == "ACTIVE"
    assert made["event_data"] == {
        "log_group_id": GROUP,
        "log_topic_id": STREAM,
        "batch_size": 3,
        "polling_interval": 5,
    }
    ids = await record(db, 7, start=10)
    clock, wakes = Clock(), []
    feeder = lts_triggers.LtsTriggerFeeder(db, wake=lambda: wakes.append(1), clock=clock)
    assert await feeder.step() == 3
    assert await feeder.step() == 3  # a full batch: the next at once
    assert await feeder.step() == 1
    assert await feeder.step() == 0  # a short batch: nothing before the interval
    clock.now += 5
    assert await feeder.step() == 0 and len(wakes) == 3
    found = events(db)
    assert [len(e["logs"]) for e in found] == [3, 3, 1]
    messages = [orjson.loads(log["message"])["trace_id"] for e in found for log in e["logs"]]
    assert messages == ids
    first = found[0]
    assert (first["owner"], first["log_group_id"], first["log_topic_id"]) == (DOMAIN, GROUP, STREAM)
    log = first["logs"][0]
    assert (log["ip"], log["path"], log["host_name"], log["time"]) == (
        "10.0.0.9",
        "system-trace",
        "opencts",
        1_700_000_000_010,
    )
    assert log["log_uid"] == str(log["line_no"]) and isinstance(log["line_no"], int)
    # the seeds' function picks WARN/ERROR lines out of json.dumps(log): the trace's rating says warning
    assert "warning" in orjson.dumps(log).decode()


async def test_a_batch_is_queued_once_whoever_hands_it_over(db: Database) -> None:
    create(db, batch_size=100)
    await record(db, 4)
    [trigger] = db.read_sync(lts_triggers.active)
    assert db.write_sync(lambda c: lts_triggers.hand_over(c, trigger, now=now_ms())) == 4
    assert db.write_sync(lambda c: lts_triggers.hand_over(c, trigger, now=now_ms())) == 0  # nothing new
    assert len(events(db)) == 1


async def test_disabled_triggers_wait_and_deleted_ones_are_gone(db: Database) -> None:
    made = create(db)
    tid = made["trigger_id"]

    def update(**body: Any) -> dict[str, Any]:
        req = triggers.UpdateTriggerBody.model_validate(body)
        return db.write_sync(
            lambda c: triggers.update_trigger(
                c, function=function(c), trigger_type_code="LTS", trigger_id=tid, body=req, now=now_ms()
            )
        )

    assert update(trigger_status="DISABLED", event_data=[{"batch_size": 7}])["event_data"]["batch_size"] == 7
    await record(db, 2)
    assert await lts_triggers.LtsTriggerFeeder(db, wake=lambda: None).step() == 0
    update(trigger_status="ACTIVE")
    assert await lts_triggers.LtsTriggerFeeder(db, wake=lambda: None).step() == 2  # kept its place
    with pytest.raises(BadRequest, match="cannot change"):
        update(event_data={"log_topic_id": "elsewhere"})
    listed = db.read_sync(lambda c: triggers.list_triggers(c, function=function(c)))
    assert [t["trigger_id"] for t in listed] == [tid]
    db.write_sync(
        lambda c: triggers.delete_trigger(c, function=function(c), trigger_type_code="LTS", trigger_id=tid)
    )
    assert db.read_sync(lts_triggers.active) == []
    with pytest.raises(NotFound):
        db.read_sync(
            lambda c: triggers.show(c, function=function(c), trigger_type_code="LTS", trigger_id=tid)
        )


@pytest.mark.parametrize(
    ("event_data", "error", "complaint"),
    [
        ({"log_topic_id": "no-such-stream"}, NotFound, "log stream no-such-stream does not exist"),
        ({"batch_size": 0}, BadRequest, "batch_size"),
        ({"polling_interval": "1"}, BadRequest, "polling_interval"),
        ({"filter": "x"}, BadRequest, "filter"),
    ],
)
async def test_a_trigger_needs_a_stream_of_the_project_and_sane_settings(
    db: Database, event_data: dict[str, Any], error: type[Exception], complaint: str
) -> None:
    with pytest.raises(error, match=complaint):
        create(db, **event_data)


async def test_two_nodes_feeding_the_same_trigger_queue_each_batch_once(db: Database) -> None:
    create(db, batch_size=5)
    ids = await record(db, 23)
    other = Database(db.url)  # a second node: its own engines on the same database
    try:
        feeders = [lts_triggers.LtsTriggerFeeder(d, wake=lambda: None) for d in (db, other, db, other)]
        for _ in range(8):
            await asyncio.gather(*(f.step() for f in feeders))
    finally:
        other.close()
    handed = [orjson.loads(log["message"])["trace_id"] for e in events(db) for log in e["logs"]]
    assert sorted(handed) == ids and len(handed) == len(set(handed))


async def test_the_functions_own_calls_are_passed_over(db: Database) -> None:
    """A trace of a call the function made through its agency never reaches that function; one of
    another function's calls does. A batch of only its own calls moves the cursor and queues nothing."""
    create(db, batch_size=10)
    func_id = db.read_sync(lambda c: function(c).func_id)

    def body(trace_id: str, user_id: str) -> bytes:
        user = {"id": user_id, "name": "serverless_trust", "type": "AssumedAgency"}
        return orjson.dumps({"trace_id": trace_id, "user": user, "message": "ERROR disk full"})

    async def append(*users: str, start: int) -> None:
        rows = [
            trace_row(
                f"own-{start + i}",
                project_id=PROJECT,
                time=1_700_000_000_000 + start + i,
                body=body(f"own-{start + i}", user),
            )
            for i, user in enumerate(users)
        ]
        db.write_sync(lambda c: trace_log.append(c, rows))
        await ConsumerRunner(db, LtsConsumer(db)).drain()

    feeder = lts_triggers.LtsTriggerFeeder(db, wake=lambda: None, clock=Clock())
    await append(func_id, "another-function", func_id, start=0)
    assert await feeder.step() == 3
    [event] = events(db)
    assert [orjson.loads(log["message"])["trace_id"] for log in event["logs"]] == ["own-1"]
    await append(func_id, func_id, start=10)
    feeder = lts_triggers.LtsTriggerFeeder(db, wake=lambda: None, clock=Clock())
    assert await feeder.step() == 2  # handed over (the cursor moved) ...
    assert len(events(db)) == 1  # ... but nothing queued
    assert await feeder.step() == 0

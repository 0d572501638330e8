"""The notifier on SQLite and PostgreSQL: one alarm per (notification, trace), whatever is replayed.

Traces go through the real ingest preparation and the real log; alarms through the real ``publish`` into
the SMN outbox. What counts as "an alarm sent" is a row in ``smn_messages`` (and its outbox rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, func, select, update

from cts_helpers import TraceFactory
from opencts.clock import DAY_MS, now_ms
from opencts.consumers import ConsumerRunner, get_cursor
from opencts.iam.bootstrap import bootstrap
from opencts.iam.secrets import SecretBox
from opencts.notifications import repository
from opencts.notifications.cache import MatcherCache
from opencts.notifications.model import CreateNotificationRequestBody
from opencts.notifications.notifier import NotifierConsumer
from opencts.smn import statuses, subscriptions, topics
from opencts.smn.model import CreateTopic, NewSubscription
from opencts.smn.signing import Signer
from opencts.store import Database, trace_log
from opencts.store.tables import (
    notification_alarms,
    notifications,
    smn_deliveries,
    smn_messages,
    smn_subscriptions,
    smn_topics,
)
from opencts.traces.ingest import prepare

BOX = SecretBox(bytes(range(32)))


@pytest.fixture(scope="module")
def signer() -> Signer:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return Signer.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class World:
    db: Database
    project: str
    topic: str

    def notify(self, name: str, **fields: Any) -> str:
        doc: dict[str, Any] = {
            "notification_name": name,
            "operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "topic_id": self.topic,
            **fields,
        }
        body = CreateNotificationRequestBody.model_validate({k: v for k, v in doc.items() if v is not None})
        made = self.db.write_sync(lambda conn: repository.create(conn, project_id=self.project, body=body))
        return str(made["notification_id"])

    def ingest(self, traces: list[dict[str, Any]]) -> None:
        batch = prepare(orjson.loads(orjson.dumps(traces)), project_id=self.project, now=now_ms(),
                        retention_ms=7 * DAY_MS)  # fmt: skip
        assert len(batch.rows) == len(traces), batch.results
        self.db.write_sync(lambda conn: trace_log.append(conn, batch.rows))

    def count(self, table: Any) -> int:
        return self.db.read_sync(
            lambda conn: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        )

    def alarms(self) -> list[dict[str, Any]]:
        return self.db.read_sync(
            lambda conn: [dict(r._mapping) for r in conn.execute(select(notification_alarms))]
        )

    def messages(self) -> list[dict[str, Any]]:
        return self.db.read_sync(lambda conn: [dict(r._mapping) for r in conn.execute(select(smn_messages))])


@pytest.fixture
def world(database: Database, signer: Signer) -> World:
    def setup(conn: Connection) -> World:
        creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
        assert creds is not None
        project = creds.project_id
        topic = topics.create(conn, project_id=project, region="local-1", body=CreateTopic(name="alarms"),
                              now=now_ms())  # fmt: skip
        subs = subscriptions.add(
            conn, project_id=project, topic_urn=topic, signer=signer, box=BOX, now=now_ms(),
            items=[NewSubscription(protocol="email", endpoint="ops@example.com"),
                   NewSubscription(protocol="http", endpoint="http://127.0.0.1:9/hook")],
        )  # fmt: skip
        conn.execute(
            update(smn_subscriptions)
            .where(smn_subscriptions.c.subscription_urn.in_(subs))
            .values(status=statuses.CONFIRMED)
        )
        conn.execute(smn_deliveries.delete())  # the confirmations are not what these tests are about
        conn.execute(smn_messages.delete())
        return World(database, project, topic)

    return database.write_sync(setup)


def logins(make_trace: TraceFactory, *users: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        make_trace(service_type="IAM", resource_type="user", trace_name="login", trace_type="ConsoleAction",
                   resource_name=u, user={"name": u, "domain": {"name": "acme"}}, **extra)
        for u in users
    ]  # fmt: skip


def notifier(world: World, **kw: Any) -> NotifierConsumer:
    return NotifierConsumer(world.db, cache=MatcherCache(ttl=0), **kw)


async def test_a_batch_seen_twice_publishes_once(world: World, make_trace: TraceFactory) -> None:
    world.notify("logins")
    world.ingest([*logins(make_trace, "alice", "bob", "carol"), make_trace(), make_trace(trace_name="x")])
    consumer = notifier(world)
    runner = ConsumerRunner(world.db, consumer)
    assert await runner.drain() >= 5
    assert world.count(smn_messages) == 3 and world.count(smn_deliveries) == 6
    assert consumer.counts.published == 3 and consumer.counts.deliveries == 6

    rows = world.db.read_sync(lambda conn: trace_log.read_after(conn, 0, 1000))
    await consumer.process(rows)  # the same batch again
    assert world.count(smn_messages) == 3 and world.count(smn_deliveries) == 6
    assert consumer.counts.duplicates == 3
    alarms = world.alarms()
    assert len(alarms) == 3 and {a["outcome"] for a in alarms} == {"published"}
    assert {a["message_id"] for a in alarms} == {m["message_id"] for m in world.messages()}


async def test_a_crash_before_the_cursor_commit_does_not_duplicate(
    world: World, make_trace: TraceFactory
) -> None:
    world.notify("logins")
    world.ingest(logins(make_trace, "alice", "bob"))
    rows = world.db.read_sync(lambda conn: trace_log.read_after(conn, 0, 1000))
    # the first process published, then died before the runner wrote its cursor
    await notifier(world).process(rows)
    assert world.db.read_sync(lambda conn: get_cursor(conn, "notifier")) == 0
    assert world.count(smn_messages) == 2
    # the restarted process starts from the old cursor and sees the same batch
    runner = ConsumerRunner(world.db, notifier(world))
    await runner.drain()
    assert world.db.read_sync(lambda conn: get_cursor(conn, "notifier")) == rows[-1].seq
    assert world.count(smn_messages) == 2 and world.count(smn_deliveries) == 4


async def test_two_notifiers_racing_on_one_batch_publish_once(world: World, make_trace: TraceFactory) -> None:
    """Two processes on one database (PostgreSQL runs the writes on several threads at once)."""
    world.notify("logins")
    world.notify("everything", operation_type="complete", operations=None)
    world.ingest(logins(make_trace, *[f"user{i}" for i in range(20)]))
    rows = world.db.read_sync(lambda conn: trace_log.read_after(conn, 0, 1000))
    first, second = notifier(world), notifier(world)
    await asyncio.gather(first.process(rows), second.process(rows), first.process(rows))
    assert world.count(smn_messages) == 40, "20 traces x 2 notifications, each exactly once"
    assert first.counts.published + second.counts.published == 40


async def test_each_notification_alarms_on_its_own(world: World, make_trace: TraceFactory) -> None:
    a = world.notify("only_alice", notify_user_list=[{"user_group": "admins", "user_list": ["alice"]}])
    b = world.notify(
        "failures", filter={"condition": "AND", "is_support_filter": True, "rule": ["code != 200"]}
    )
    world.ingest([*logins(make_trace, "alice", "bob"), *logins(make_trace, "bob", code=401)])
    await ConsumerRunner(world.db, notifier(world)).drain()
    by_notification: dict[str, int] = {}
    for alarm in world.alarms():
        by_notification[alarm["notification_id"]] = by_notification.get(alarm["notification_id"], 0) + 1
    assert by_notification == {a: 1, b: 1}


async def test_alarm_message_content(world: World, make_trace: TraceFactory) -> None:
    world.notify("logins")
    [trace] = logins(make_trace, "alice", source_ip="203.0.113.9", trace_rating="warning")
    world.ingest([trace])
    await ConsumerRunner(world.db, notifier(world)).drain()
    [message] = world.messages()
    assert message["subject"] == "[CTS][warning] login on IAM user alice by alice"
    structure = orjson.loads(message["message_structure"])
    assert set(structure) == {"default", "email", "sms", "http", "https"}
    for needle in ("login", "IAM", "alice", "203.0.113.9", "warning", trace["trace_id"], "Z"):
        assert needle in structure["email"]
    doc = orjson.loads(structure["http"])
    assert doc["notification_name"] == "logins"
    assert doc["trace"]["trace_id"] == trace["trace_id"] and doc["trace"]["source_ip"] == "203.0.113.9"
    assert doc["trace"]["code"] == "200" and doc["trace"]["project_id"] == world.project


async def test_deleted_topic_and_function_targets(world: World, make_trace: TraceFactory) -> None:
    world.notify("logins")
    fun = f"urn:fss:local-1:{world.project}:function:default:audit:latest"
    world.notify("to_function", topic_id=fun)
    # DeleteTopic refuses while a notification uses the topic; rows removed another way (by hand, or by an
    # OpenCTS without that check) still leave the notification pointing at nothing
    world.db.write_sync(
        lambda conn: conn.execute(smn_topics.delete().where(smn_topics.c.topic_urn == world.topic))
    )
    world.ingest(logins(make_trace, "alice"))
    consumer = notifier(world)
    runner = ConsumerRunner(world.db, consumer)
    await runner.drain()
    outcomes = sorted(a["outcome"] for a in world.alarms())
    assert outcomes == ["no_function", "no_topic"]
    assert world.count(smn_messages) == 0
    assert consumer.counts.no_topic == 1 and consumer.counts.no_function == 1
    assert runner.position is not None and runner.position > 0, "the consumer moved on: no retry forever"


async def test_disabled_and_changed_notifications(world: World, make_trace: TraceFactory) -> None:
    nid = world.notify("later", status="disabled")
    cache = MatcherCache(ttl=3600)
    consumer = NotifierConsumer(world.db, cache=cache)
    runner = ConsumerRunner(world.db, consumer)
    world.ingest(logins(make_trace, "alice"))
    await runner.drain()
    assert world.count(smn_messages) == 0, "a disabled notification raises nothing"

    def enable(conn: Connection) -> None:
        conn.execute(notifications.update().where(notifications.c.notification_id == nid)
                     .values(status="enabled"))  # fmt: skip

    world.db.write_sync(enable)
    world.ingest(logins(make_trace, "bob"))
    await runner.drain()
    assert world.count(smn_messages) == 0, "the compiled matcher is cached ..."
    cache.invalidate(world.project)
    world.ingest(logins(make_trace, "carol"))
    await runner.drain()
    assert world.count(smn_messages) == 1, "... until the routes invalidate it"


async def test_ttl_expiry_picks_up_changes_from_other_processes(world: World) -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    cache = MatcherCache(ttl=2.0, clock=clock)
    assert (await cache.get(world.db, world.project)).empty
    world.notify("logins")
    assert (await cache.get(world.db, world.project)).empty
    now[0] = 2.5
    assert not (await cache.get(world.db, world.project)).empty


async def test_old_alarm_records_are_pruned(world: World, make_trace: TraceFactory) -> None:
    world.notify("logins")
    world.ingest(logins(make_trace, "alice"))
    await ConsumerRunner(world.db, notifier(world)).drain()
    assert len(world.alarms()) == 1
    later = NotifierConsumer(world.db, keep_alarms_ms=1000, clock=lambda: now_ms() + 10_000)
    world.ingest([make_trace()])
    await ConsumerRunner(world.db, later).drain()
    assert world.alarms() == []


async def test_concurrent_lookups_share_one_compile_and_changes_warm_up(world: World) -> None:
    world.notify("logins")
    cache = MatcherCache(ttl=60, warm_delay=0.01)
    first, second = await asyncio.gather(
        cache.get(world.db, world.project), cache.get(world.db, world.project)
    )
    assert first is second and not first.empty

    cache.invalidate(world.project)
    cache.warm(world.db, world.project)
    assert not cache._tasks, "no warm-up before a notifier runs: nobody would use it"
    cache.autowarm = True
    cache.warm(world.db, world.project)
    cache.warm(world.db, world.project)
    assert len(cache._tasks) == 1, "a burst of changes schedules one compile"
    await asyncio.gather(*cache._tasks)
    warmed = cache._compiled._entries[world.project].value.matcher
    assert warmed is not first and await cache.get(world.db, world.project) is warmed

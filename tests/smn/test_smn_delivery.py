"""The outbox on SQLite and PostgreSQL: claim, lease, backoff, dead letters, and never sending twice.

The worker runs on a clock the test moves, so backoff and leases are checked without sleeping. The sender is
a small in-test channel that records what it was asked to send and fails when told to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from opencts.clock import DAY_MS, HOUR_MS
from opencts.iam.bootstrap import bootstrap
from opencts.iam.secrets import SecretBox
from opencts.smn import deliveries, statuses, subscriptions, topics
from opencts.smn.model import CreateTopic, NewSubscription, PublishMessage
from opencts.smn.publish import publish
from opencts.smn.signing import Signer
from opencts.smn.worker import (
    Backoff,
    DeliveryFailed,
    DeliveryWorker,
    Job,
    Outcome,
    claim_due,
    complete,
    prune,
)
from opencts.store import Database
from opencts.store.tables import smn_deliveries, smn_messages, smn_subscriptions

T0 = 1_800_000_000_000
NO_JITTER = Backoff(base_seconds=1, max_seconds=60, jitter=0)
BOX = SecretBox(bytes(range(32)))


@pytest.fixture(scope="module")
def signer() -> Signer:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return Signer.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Recorder:
    """A channel that keeps what it sent; ``fail`` makes the next attempts fail (``permanent`` if asked)."""

    sent: list[Job] = field(default_factory=list)
    fail: int = 0
    permanent: bool = False
    attempts: int = 0

    async def send(self, job: Job) -> None:
        self.attempts += 1
        if self.fail:
            self.fail -= 1
            raise DeliveryFailed("receiver answered HTTP 503", permanent=self.permanent)
        self.sent.append(job)


@dataclass
class World:
    db: Database
    project: str
    topic: str
    subs: list[str]

    def publish(self, now: int = T0, ttl: str = "3600") -> str:
        body = PublishMessage(message="hello", time_to_live=ttl)
        return self.db.write_sync(
            lambda conn: publish(conn, project_id=self.project, topic_urn=self.topic, body=body, now=now)
        )[0]

    def rows(self) -> list[dict[str, Any]]:
        return self.db.read_sync(
            lambda conn: [dict(r._mapping) for r in conn.execute(select(smn_deliveries).order_by("id"))]
        )


def make_world(db: Database, signer: Signer, confirmed: int = 2, unconfirmed: int = 1) -> World:
    def setup(conn: Connection) -> World:
        creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
        assert creds is not None
        project = creds.project_id
        topic = topics.create(
            conn, project_id=project, region="local-1", body=CreateTopic(name="alarms"), now=T0
        )
        items = [
            NewSubscription(protocol="email", endpoint=f"u{i}@example.com")
            for i in range(confirmed + unconfirmed)
        ]
        subs = subscriptions.add(
            conn, project_id=project, topic_urn=topic, items=items, signer=signer, box=BOX, now=T0
        )
        conn.execute(
            update(smn_subscriptions)
            .where(smn_subscriptions.c.subscription_urn.in_(subs[:confirmed]))
            .values(status=statuses.CONFIRMED)
        )
        conn.execute(smn_deliveries.delete())  # the confirmations are not what these tests are about
        return World(db, project, topic, subs)

    return db.write_sync(setup)


def worker(db: Database, sender: Recorder, clock: Clock, concurrency: int = 16) -> DeliveryWorker:
    return DeliveryWorker(
        db, sender, backoff=NO_JITTER, clock=clock, lease_seconds=30, concurrency=concurrency
    )


async def test_publish_queues_one_row_per_confirmed_subscriber(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=2, unconfirmed=1)
    message_id = world.publish()
    rows = world.rows()
    assert {r["subscription_urn"] for r in rows} == set(world.subs[:2])
    assert all(r["status"] == "pending" and r["message_id"] == message_id for r in rows)
    with pytest.raises(IntegrityError):
        database.write_sync(
            lambda conn: conn.execute(
                smn_deliveries.insert().values({k: v for k, v in rows[0].items() if k != "id"})
            )
        )


async def test_worker_sends_each_row_once(database: Database, signer: Signer) -> None:
    world = make_world(database, signer)
    ids = [world.publish() for _ in range(5)]
    sender, clock = Recorder(), Clock()
    w = worker(database, sender, clock)
    await w.drain()
    assert sorted((j.message_id, j.subscription_urn) for j in sender.sent) == sorted(
        (m, s) for m in ids for s in world.subs[:2]
    )
    assert {r["status"] for r in world.rows()} == {"delivered"}
    clock.now += 10 * DAY_MS
    await w.drain()
    assert len(sender.sent) == 10  # delivered is final: nothing is ever sent again


async def test_failures_back_off_exponentially_then_succeed(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish()
    sender, clock = Recorder(fail=3), Clock()
    w = worker(database, sender, clock)
    delays = []
    for _ in range(3):
        await w.drain()
        [row] = world.rows()
        assert row["status"] == "pending" and "503" in str(row["last_error"])
        delays.append(int(row["next_attempt_at"]) - clock.now)
        await w.drain()  # not due yet: nothing happens
        assert sender.attempts == len(delays)
        clock.now = int(row["next_attempt_at"])
    assert delays == [1000, 2000, 4000]
    await w.drain()
    [row] = world.rows()
    assert row["status"] == "delivered" and row["attempts"] == 4 and len(sender.sent) == 1


def test_backoff_is_capped_and_jittered() -> None:
    capped = Backoff(base_seconds=1, max_seconds=60, jitter=0)
    assert [capped.delay_ms(n) for n in (1, 2, 3, 7, 8, 30)] == [1000, 2000, 4000, 60000, 60000, 60000]
    jittered = {Backoff(1, 60, 0.2).delay_ms(3) for _ in range(50)}
    assert len(jittered) > 1 and all(3200 <= d <= 4800 for d in jittered)


async def test_past_time_to_live_a_row_goes_dead_and_retry_requeues_it(
    database: Database, signer: Signer
) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish(ttl="5")
    sender, clock = Recorder(fail=100), Clock()
    w = worker(database, sender, clock)
    await w.drain()
    while (row := world.rows()[0])["status"] != "dead":
        clock.now = int(row["next_attempt_at"])
        assert clock.now < T0 + 5_000
        await w.drain()
    [row] = world.rows()
    assert str(row["last_error"]).startswith("gave up after 3 attempts")  # 1 s + 2 s, and 4 s > ttl
    dead = database.read_sync(
        lambda conn: deliveries.list_deliveries(conn, world.project, status="dead", offset=0, limit=10)
    )
    assert dead[0] == 1
    retried = database.write_sync(
        lambda conn: deliveries.retry(conn, world.project, int(row["id"]), clock.now)
    )
    assert retried["status"] == "pending" and retried["attempts"] == 0
    assert retried["expires_at"] == clock.now + 5000
    sender.fail = 0
    await w.drain()
    assert world.rows()[0]["status"] == "delivered" and len(sender.sent) == 1


async def test_expired_before_the_first_attempt_is_dead_without_sending(
    database: Database, signer: Signer
) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish(ttl="1")
    sender, clock = Recorder(), Clock(T0 + 5000)  # e.g. the server was down longer than time_to_live
    await worker(database, sender, clock).drain()
    [row] = world.rows()
    assert row["status"] == "dead" and "time_to_live" in str(row["last_error"]) and sender.attempts == 0


async def test_a_permanent_failure_is_dead_at_once(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish()
    sender = Recorder(fail=1, permanent=True)
    await worker(database, sender, Clock()).drain()
    [row] = world.rows()
    assert row["status"] == "dead" and str(row["last_error"]).startswith("refused")


async def test_a_crashed_attempt_is_reclaimed_after_its_lease(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish()
    # a process claims the row and dies before recording anything
    [lost] = database.write_sync(lambda conn: claim_due(conn, now=T0, limit=10, lease_ms=30_000))
    assert world.rows()[0]["status"] == "delivering"
    sender, clock = Recorder(), Clock(T0 + 29_999)
    w = worker(database, sender, clock)
    await w.drain()
    assert sender.sent == []  # still leased
    clock.now = T0 + 30_000
    await w.drain()
    [row] = world.rows()
    assert row["status"] == "delivered" and row["attempts"] == 2 and len(sender.sent) == 1
    # the dead process's late result cannot overwrite the newer attempt's
    database.write_sync(
        lambda conn: complete(
            conn, [Outcome(lost.id, lost.claim, "late failure")], now=clock.now, backoff=NO_JITTER
        )
    )
    assert world.rows()[0]["status"] == "delivered"


async def test_cancelled_subscriptions_get_nothing_more(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    world.publish()
    token = signer.token(world.subs[0])
    database.write_sync(lambda conn: subscriptions.unsubscribe(conn, token))
    sender = Recorder()
    await worker(database, sender, Clock()).drain()
    [row] = world.rows()
    assert row["status"] == "dead" and "unsubscribed" in str(row["last_error"]) and sender.sent == []


async def test_many_rows_are_sent_concurrently_within_the_bound(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=2, unconfirmed=0)
    for _ in range(20):
        world.publish()
    running = 0
    peak = 0

    class Slow(Recorder):
        async def send(self, job: Job) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            await super().send(job)

    sender = Slow()
    await worker(database, sender, Clock(), concurrency=4).drain()
    assert len(sender.sent) == 40 and peak == 4
    assert len({(j.message_id, j.subscription_urn) for j in sender.sent}) == 40


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_two_instances_never_claim_the_same_row(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=2, unconfirmed=0)
    for _ in range(10):
        world.publish()
    with database.write_engine.connect() as first, database.write_engine.connect() as second:
        with first.begin():
            a = claim_due(first, now=T0, limit=12, lease_ms=30_000)
            with second.begin():  # runs while the first transaction still holds its row locks
                b = claim_due(second, now=T0, limit=12, lease_ms=30_000)
    assert len(a) == 12 and len(b) == 8
    assert not {j.id for j in a} & {j.id for j in b}


def messages(db: Database, kind: str = "notification") -> set[str]:
    """Published messages in the outbox (``make_world`` also left its subscriptions' confirmations)."""
    stmt = select(smn_messages.c.message_id).where(smn_messages.c.kind == kind)
    return set(db.read_sync(lambda conn: conn.execute(stmt).scalars().all()))


async def test_finished_messages_leave_the_outbox_unfinished_ones_stay(
    database: Database, signer: Signer
) -> None:
    world = make_world(database, signer, confirmed=2, unconfirmed=0)
    confirmations = len(messages(database, "confirmation"))
    clock = Clock()
    delivered = world.publish()
    await worker(database, Recorder(), clock).drain()
    dead = world.publish()
    await worker(database, Recorder(fail=2, permanent=True), clock).drain()
    half = world.publish()  # one subscriber got it, the other is still being retried
    await worker(database, Recorder(fail=1), clock).drain()
    assert sorted(r["status"] for r in world.rows() if r["message_id"] == half) == ["delivered", "pending"]
    pruned = database.write_sync(lambda conn: prune(conn, before=T0 + 1))
    assert pruned == 2 + confirmations and messages(database) == {half}
    assert {r["message_id"] for r in world.rows()} == {half}  # the deliveries went with their messages
    assert delivered not in messages(database) and dead not in messages(database)


async def test_the_worker_prunes_what_is_older_than_keep_days(database: Database, signer: Signer) -> None:
    world = make_world(database, signer, confirmed=1, unconfirmed=0)
    clock = Clock()
    w = DeliveryWorker(database, Recorder(), backoff=NO_JITTER, clock=clock, keep_days=7)
    old = world.publish()
    await w.drain()
    clock.now += 6 * DAY_MS
    young = world.publish(now=clock.now)
    await w.drain()
    assert messages(database) == {old, young}  # nothing is 7 days old yet
    clock.now += DAY_MS + HOUR_MS  # past the hour between two prunings, and past 7 days for `old`
    await w.drain()
    assert messages(database) == {young}

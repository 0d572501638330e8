"""The catalogue consumer and the two lists it serves, on SQLite and PostgreSQL."""

from __future__ import annotations

from itertools import count
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from opencts.clock import DAY_MS
from opencts.consumers import ConsumerRunner
from opencts.store import Database, trace_log
from opencts.store.tables import domains, projects, trace_resources, trace_users
from opencts.store.trace_log import TraceRow
from opencts.trackers.catalogue import CatalogueConsumer, trace_resource_list, user_list
from opencts.trackers.operations import full_catalogue, list_operations

DOMAIN, P1, P2, FOREIGN = "d" * 32, "1" * 32, "2" * 32, "f" * 32
NOW = 1_800_000_000_000
_ids = count()


def row(project: str, service: str, resource: str | None, user: str | None, record_time: int) -> TraceRow:
    trace_id = f"t{next(_ids)}"
    body: dict[str, Any] = {"trace_id": trace_id, "service_type": service}
    if resource is not None:
        body["resource_type"] = resource
    if user is not None:
        body["user"] = {"name": user, "domain": {"id": DOMAIN}}
    return TraceRow(
        project_id=project,
        trace_id=trace_id,
        kind="system",
        time=record_time,
        record_time=record_time,
        trace_name="op",
        trace_rating="normal",
        trace_type="ApiCall",
        service_type=service,
        resource_type=resource,
        resource_id=None,
        resource_name=None,
        user_name=user,
        access_key_id=None,
        tracker_name="system",
        enterprise_project_id=None,
        body=orjson.dumps(body),
    )


def setup_projects(conn: Connection) -> None:
    conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
    conn.execute(insert(domains).values(id="e" * 32, name="other", created_at=1))
    for pid, dom in ((P1, DOMAIN), (P2, DOMAIN), (FOREIGN, "e" * 32)):
        conn.execute(insert(projects).values(id=pid, domain_id=dom, name=pid[:4], created_at=1))


async def test_the_consumer_folds_the_log_into_the_catalogue(database: Database) -> None:
    database.write_sync(setup_projects)
    old = NOW - 10 * DAY_MS
    database.write_sync(
        lambda c: trace_log.append(
            c,
            [
                row(P1, "ECS", "ecs", "alice", NOW - 1000),
                row(P1, "ECS", "ecs", "alice", NOW - 5000),  # an older repeat does not move last_seen back
                row(P1, "ECS", "keypair", "bob", NOW - 2000),
                row(P2, "VPC", "vpc", "carol", NOW - 3000),
                row(P2, "IAM", None, None, NOW - 3000),
                row(P1, "RDS", "instance", "dave", old),
                row(FOREIGN, "OBS", "bucket", "eve", NOW - 1000),
            ],
        )
    )
    consumer = CatalogueConsumer(database)
    assert (consumer.name, consumer.batch_size, consumer.wake_on_append, consumer.with_body) == (
        "catalogue",
        2000,
        True,
        False,  # it reads the columns, never a body
    )
    assert await ConsumerRunner(database, consumer).drain() == 7

    resources = database.read_sync(lambda c: trace_resource_list(c, domain_id=DOMAIN, now=NOW))
    assert resources == [
        {"service_type": "ECS", "resource": ["ecs", "keypair"]},
        {"service_type": "IAM", "resource": []},
        {"service_type": "VPC", "resource": ["vpc"]},
    ]  # RDS is 10 days old; OBS belongs to another account
    assert database.read_sync(lambda c: user_list(c, project_id=P1, now=NOW)) == [
        {"name": "alice"},
        {"name": "bob"},
        {"name": "dave"},
    ]  # users are kept for 30 days
    later = database.read_sync(lambda c: user_list(c, project_id=P1, now=NOW + 25 * DAY_MS))
    assert later == [{"name": "alice"}, {"name": "bob"}]
    assert database.read_sync(lambda c: user_list(c, project_id=P1, now=NOW + 31 * DAY_MS)) == []
    last_seen = database.read_sync(
        lambda c: c.execute(
            select(trace_users.c.last_seen).where(
                trace_users.c.project_id == P1, trace_users.c.user_name == "alice"
            )
        ).scalar_one()
    )
    assert last_seen == NOW - 1000


async def test_replaying_a_batch_changes_nothing(database: Database) -> None:
    database.write_sync(setup_projects)
    rows = [row(P1, "ECS", "ecs", "alice", NOW - i) for i in range(3000)]
    database.write_sync(lambda c: trace_log.append(c, rows))
    await ConsumerRunner(database, CatalogueConsumer(database)).drain()

    def snapshot(conn: Connection) -> tuple[list[Any], list[Any]]:
        return (list(conn.execute(select(trace_resources))), list(conn.execute(select(trace_users))))

    before = database.read_sync(snapshot)
    replay = CatalogueConsumer(database)
    batch = database.read_sync(lambda c: trace_log.read_after(c, 0, 3000))
    await replay.process(batch)
    assert database.read_sync(snapshot) == before
    assert [tuple(r) for r in before[0]] == [(P1, "ECS", "ecs", NOW)]


def test_the_operations_catalogue() -> None:
    everything = list_operations()
    assert len(everything) == sum(len(r) for r in full_catalogue().values())
    [tracker] = list_operations("CTS", "tracker")
    assert {"createTracker", "updateTracker", "deleteTracker"} <= set(tracker["operation_list"])
    assert {r["resource_type"] for r in list_operations("IAM")} >= {"user", "credential"}
    assert "login" in list_operations("IAM", "user")[0]["operation_list"]
    for service in ("ECS", "EVS", "VPC", "OBS", "RDS", "KMS", "ELB", "CCE", "DNS", "SMN", "FunctionGraph"):
        assert list_operations(service), service
    assert list_operations("NOPE") == [] and list_operations("CTS", "nope") == []


async def test_empty_names_and_missing_resource_types_fold_as_before(database: Database) -> None:
    """A NULL and an empty resource type are one entry; an empty user name is nobody."""
    database.write_sync(setup_projects)
    database.write_sync(
        lambda c: trace_log.append(
            c,
            [
                row(P1, "ECS", None, "", NOW - 3000),
                row(P1, "ECS", "", None, NOW - 1000),
                row(P1, "ECS", None, "alice", NOW - 2000),
            ],
        )
    )
    runner = ConsumerRunner(database, CatalogueConsumer(database))
    assert await runner.drain() == 3
    assert database.read_sync(lambda c: list(c.execute(select(trace_resources)))) == [
        (P1, "ECS", "", NOW - 1000)
    ]
    assert database.read_sync(lambda c: user_list(c, project_id=P1, now=NOW)) == [{"name": "alice"}]
    assert await runner.drain() == 0  # and a batch with nothing new is not written at all

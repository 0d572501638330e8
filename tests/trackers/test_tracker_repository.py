"""Trackers, quotas, tags and the recording policy in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, insert

from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.store import Database
from opencts.store.tables import domains, projects
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, Tag, UpdateTrackerRequestBody
from opencts.trackers.recording import PolicyCache, load_policy

DOMAIN, PROJECT, OTHER = "d" * 32, "p" * 32, "q" * 32


@pytest.fixture
def db(database: Database) -> Database:
    def setup(conn: Connection) -> None:
        conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
        for pid, name in ((PROJECT, "r1"), (OTHER, "r2")):
            conn.execute(insert(projects).values(id=pid, domain_id=DOMAIN, name=name, created_at=1))
            repository.create_system_tracker(conn, project_id=pid, domain_id=DOMAIN)

    database.write_sync(setup)
    return database


def create(db: Database, project: str = PROJECT, **body: Any) -> dict[str, Any]:
    req = CreateTrackerRequestBody.model_validate(body)
    return db.write_sync(lambda c: repository.create_tracker(c, project_id=project, body=req))


def create_data(db: Database, name: str, project: str = PROJECT, **extra: Any) -> dict[str, Any]:
    return create(
        db,
        project,
        tracker_type="data",
        tracker_name=name,
        data_bucket={"data_bucket_name": "watched-bucket"},
        **extra,
    )


def update(db: Database, **body: Any) -> None:
    req = UpdateTrackerRequestBody.model_validate(body)
    db.write_sync(lambda c: repository.update_tracker(c, project_id=PROJECT, body=req))


def listed(db: Database, **filters: Any) -> list[dict[str, Any]]:
    return db.read_sync(lambda c: repository.list_trackers(c, project_id=PROJECT, **filters))


def test_a_new_project_has_its_management_tracker_once(db: Database) -> None:
    db.write_sync(lambda c: repository.create_system_tracker(c, project_id=PROJECT, domain_id=DOMAIN))
    [system] = listed(db)
    assert (system["tracker_name"], system["tracker_type"]) == ("system", "system")
    assert system["status"] == "enabled"
    assert system["domain_id"] == DOMAIN and system["project_id"] == PROJECT
    assert system["management_event_selector"] == {"exclude_service": []}
    assert system["obs_info"]["compress_type"] == "gzip" and system["obs_info"]["is_sort_by_service"] is True
    assert "data_bucket" not in system


def test_a_data_tracker_round_trips(db: Database) -> None:
    obs = {
        "bucket_name": "trace-out",
        "file_prefix_name": "p_",
        "is_obs_created": True,
        "bucket_lifecycle": 30,
        "compress_type": "json",
        "is_sort_by_service": False,
    }
    made = create_data(
        db,
        "reads",
        is_lts_enabled=True,
        agency_name="cts_admin_trust",
        is_support_validate=True,
        obs_info=obs,
    )
    assert made["tracker_name"] == "reads" and made["tracker_type"] == "data" and made["status"] == "enabled"
    assert made["lts"] == {"is_lts_enabled": True, "log_group_name": "CTS", "log_topic_name": "reads"}
    assert made["obs_info"] == {
        "bucket_name": "trace-out",
        "file_prefix_name": "p_",
        "is_obs_created": True,
        "is_authorized_bucket": True,
        "bucket_lifecycle": 30,
        "compress_type": "json",
        "is_sort_by_service": False,
    }
    assert made["data_bucket"] == {
        "data_bucket_name": "watched-bucket",
        "search_enabled": True,
        "data_event": ["READ", "WRITE"],
    }
    assert made["agency_name"] == "cts_admin_trust" and made["is_support_validate"] is True
    assert "group_id" not in made
    [again] = listed(db, tracker_name="reads")
    assert {k: v for k, v in again.items() if k not in ("group_id", "stream_id")} == made
    assert again["group_id"] and again["stream_id"]
    assert listed(db, tracker_name="reads") == [again]  # stable ids


def test_list_filters_and_order(db: Database) -> None:
    create_data(db, "b-second")
    create_data(db, "a-third")
    assert [t["tracker_name"] for t in listed(db)] == ["system", "b-second", "a-third"]
    assert [t["tracker_name"] for t in listed(db, tracker_type="data")] == ["b-second", "a-third"]
    assert listed(db, tracker_name="nope") == []
    with pytest.raises(BadRequest, match="tracker_type"):
        listed(db, tracker_type="mgmt")


def test_names_are_unique_per_project_only(db: Database) -> None:
    create_data(db, "dup")
    with pytest.raises(Conflict, match="'dup' already exists"):
        create_data(db, "dup")
    create_data(db, "dup", project=OTHER)
    with pytest.raises(Conflict, match="management tracker 'system' already exists"):
        create(db, tracker_type="system", tracker_name="system")


def test_the_data_tracker_quota(db: Database) -> None:
    for i in range(100):
        create_data(db, f"t{i}")
    with pytest.raises(QuotaExceeded, match="at most 100 data"):
        create_data(db, "one-too-many")
    quotas = db.read_sync(lambda c: repository.quotas(c, PROJECT))
    assert quotas == [
        {"type": "system_tracker", "used": 1, "quota": 1},
        {"type": "data_tracker", "used": 100, "quota": 100},
        {"type": "smn_notification", "used": 0, "quota": 100},
    ]
    create_data(db, "elsewhere", project=OTHER)  # the quota is per project


def test_creating_in_an_unknown_project_is_a_404(db: Database) -> None:
    with pytest.raises(NotFound):
        create_data(db, "x", project="0" * 32)


def test_update_changes_only_what_is_sent(db: Database) -> None:
    create_data(db, "t", obs_info={"bucket_name": "out-1", "file_prefix_name": "a"}, is_lts_enabled=True)
    update(
        db,
        tracker_type="data",
        tracker_name="t",
        status="disabled",
        obs_info={"compress_type": "json"},
        data_bucket={"data_bucket_name": "watched-bucket", "data_event": ["WRITE"]},
    )
    [t] = listed(db, tracker_name="t")
    assert t["status"] == "disabled" and t["lts"]["is_lts_enabled"] is True
    assert (t["obs_info"]["bucket_name"], t["obs_info"]["file_prefix_name"]) == ("out-1", "a")
    assert t["obs_info"]["compress_type"] == "json"
    assert t["data_bucket"]["data_event"] == ["WRITE"]
    update(
        db,
        tracker_type="system",
        tracker_name="system",
        is_support_trace_files_encryption=True,
        kms_id="k-1",
        management_event_selector={"exclude_service": ["KMS"]},
    )
    [system] = listed(db, tracker_type="system")
    assert system["is_support_trace_files_encryption"] is True and system["kms_id"] == "k-1"
    assert system["management_event_selector"] == {"exclude_service": ["KMS"]}
    update(db, tracker_type="system", tracker_name="system", is_support_trace_files_encryption=False)
    [system] = listed(db, tracker_type="system")
    assert system["is_support_trace_files_encryption"] is False and system["kms_id"] == "k-1"


def test_update_refusals(db: Database) -> None:
    create_data(db, "t")
    with pytest.raises(BadRequest, match="cannot be changed"):
        update(db, tracker_type="data", tracker_name="t", data_bucket={"data_bucket_name": "another"})
    with pytest.raises(NotFound):
        update(db, tracker_type="data", tracker_name="missing", status="enabled")
    with pytest.raises(BadRequest, match="needs kms_id"):
        update(db, tracker_type="system", tracker_name="system", is_support_trace_files_encryption=True)
    with pytest.raises(BadRequest, match="only to the management tracker"):
        update(db, tracker_type="data", tracker_name="t", kms_id="k")
    with pytest.raises(BadRequest, match="only to data trackers"):
        update(db, tracker_type="system", tracker_name="system", data_bucket={"data_bucket_name": "b-b"})


def test_delete_one_all_data_or_the_system_tracker(db: Database) -> None:
    for name in ("a", "b", "c"):
        create_data(db, name)
    delete = repository.delete_trackers
    assert db.write_sync(lambda c: delete(c, project_id=PROJECT, tracker_name="a")) == 1
    with pytest.raises(NotFound):
        db.write_sync(lambda c: delete(c, project_id=PROJECT, tracker_name="a"))
    with pytest.raises(NotFound):  # the management tracker is not a data tracker
        db.write_sync(lambda c: delete(c, project_id=PROJECT, tracker_name="system"))
    assert db.write_sync(lambda c: delete(c, project_id=PROJECT)) == 2
    assert db.write_sync(lambda c: delete(c, project_id=PROJECT)) == 0
    assert [t["tracker_name"] for t in listed(db)] == ["system"]
    assert db.write_sync(lambda c: delete(c, project_id=PROJECT, tracker_type="system")) == 1
    assert listed(db) == []
    assert len(db.read_sync(lambda c: repository.list_trackers(c, project_id=OTHER))) == 1
    with pytest.raises(BadRequest):
        db.write_sync(lambda c: delete(c, project_id=PROJECT, tracker_type="all"))
    create(db, tracker_type="system", tracker_name="system")  # and it can come back


def test_tags(db: Database) -> None:
    tracker_id = create_data(db, "t")["id"]

    def add(*tags: Tag, project: str = PROJECT, kind: str = "cts-tracker", rid: str = tracker_id) -> None:
        db.write_sync(
            lambda c: repository.add_tags(
                c, project_id=project, resource_type=kind, resource_id=rid, tags=list(tags)
            )
        )

    def remove(*tags: Tag) -> None:
        db.write_sync(
            lambda c: repository.remove_tags(
                c, project_id=PROJECT, resource_type="cts-tracker", resource_id=tracker_id, tags=list(tags)
            )
        )

    def tags() -> dict[str, str]:
        return db.read_sync(lambda c: repository.list_tags(c, resource_id=tracker_id))

    add(Tag(key="env", value="prod"), Tag(key="team"))
    assert tags() == {"env": "prod", "team": ""}
    add(Tag(key="env", value="dev"))
    assert tags() == {"env": "dev", "team": ""}
    remove(Tag(key="env", value="prod"))  # value differs: kept
    assert tags() == {"env": "dev", "team": ""}
    remove(Tag(key="env"), Tag(key="absent"))
    assert tags() == {"team": ""}
    add(*[Tag(key=f"k{i}", value="v") for i in range(19)])
    with pytest.raises(QuotaExceeded, match="at most 20 tags"):
        add(Tag(key="one-more", value="v"))
    add(Tag(key="k0", value="replaced"))  # replacing does not count against the limit
    with pytest.raises(NotFound):
        add(Tag(key="a", value="b"), project=OTHER)
    with pytest.raises(NotFound):
        add(Tag(key="a", value="b"), rid="no-such-tracker")
    with pytest.raises(BadRequest, match="cts-tracker"):
        add(Tag(key="a", value="b"), kind="ecs")
    db.write_sync(lambda c: repository.delete_trackers(c, project_id=PROJECT, tracker_name="t"))
    assert tags() == {}


def test_the_recording_policy_follows_the_trackers(db: Database) -> None:
    def refuse(
        kind: str = "system", service: str = "ECS", name: str = "createServer", tracker: str = "system"
    ) -> str | None:
        policy = db.read_sync(lambda c: load_policy(c, PROJECT))
        return policy.refuse(kind=kind, service_type=service, trace_name=name, tracker_name=tracker)

    assert refuse() is None
    assert refuse(service="KMS", name="createDatakey") is None
    update(
        db,
        tracker_type="system",
        tracker_name="system",
        management_event_selector={"exclude_service": ["KMS"]},
    )
    assert "excludes KMS createDatakey" in (refuse(service="KMS", name="createDatakey") or "")
    assert refuse(service="KMS", name="createKey") is None
    assert "does not exist" in (refuse(kind="data", tracker="reads") or "")
    create_data(db, "reads")
    assert refuse(kind="data", tracker="reads") is None
    update(db, tracker_type="data", tracker_name="reads", status="disabled")
    assert "disabled" in (refuse(kind="data", tracker="reads") or "")
    update(db, tracker_type="system", tracker_name="system", status="disabled")
    assert refuse() == "the management tracker is disabled; CTS records nothing"
    db.write_sync(lambda c: repository.delete_trackers(c, project_id=PROJECT, tracker_type="system"))
    assert "does not exist" in (refuse() or "")


async def test_the_policy_cache_expires_and_can_be_invalidated(db: Database) -> None:
    now = [0.0]
    cache = PolicyCache(ttl=2.0, clock=lambda: now[0])
    first = await cache.get(db, PROJECT)
    assert first.system_enabled is True
    update(db, tracker_type="system", tracker_name="system", status="disabled")
    assert await cache.get(db, PROJECT) is first  # cached
    now[0] = 2.5
    assert (await cache.get(db, PROJECT)).system_enabled is False
    update(db, tracker_type="system", tracker_name="system", status="enabled")
    cache.invalidate(PROJECT)
    assert (await cache.get(db, PROJECT)).system_enabled is True

"""The transfer on both backends: every trace of every tracker in exactly one file, read back and compared.

Also: two nodes racing on one database, a missing bucket shown on the tracker and caught up, files split at
the content limit, and retention waiting for traces that are not in a written file yet.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from archive.archive_world import OTHER, PROJECT
from cts_helpers import trace_row
from opencts.archive import encoding, files, layout, planner
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.config import Settings
from opencts.store import Database, trace_log
from opencts.store.tables import trace_files, traces
from opencts.traces.retention import RetentionConsumer
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, UpdateTrackerRequestBody

BASE_MS = 1_780_000_000_000


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", transfer_interval=1)


def system_obs(db: Database, project: str = PROJECT, **obs: Any) -> None:
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "obs_info": obs}
    )
    db.write_sync(lambda c: repository.update_tracker(c, project_id=project, body=body))


def data_tracker(db: Database, name: str, **obs: Any) -> dict[str, Any]:
    body = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": "watched"},
            "obs_info": obs,
        }
    )
    return db.write_sync(lambda c: repository.create_tracker(c, project_id=PROJECT, body=body))


def append(db: Database, count: int, start: int = 0, **columns: Any) -> None:
    project = columns.pop("project_id", PROJECT)
    rows = [
        trace_row(
            f"{columns.get('tracker_name', 'system')}-{project[:1]}-{start + i}",
            project_id=project,
            time=BASE_MS + start + i,
            service_type=("IAM", "ECS", "OBS")[i % 3],
            **columns,
        )
        for i in range(count)
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))


def bodies_in_log(db: Database, project: str, kind: str, tracker: str | None = None) -> list[bytes]:
    def read(conn: Connection) -> list[bytes]:
        stmt = select(traces.c.body).where(traces.c.project_id == project, traces.c.kind == kind)
        if tracker is not None:
            stmt = stmt.where(traces.c.tracker_name == tracker)
        return [bytes(b) for b in conn.execute(stmt.order_by(traces.c.seq)).scalars()]

    return db.read_sync(read)


def bodies_in_bucket(store: LocalStore, bucket: str) -> tuple[list[bytes], list[layout.ArchiveKey]]:
    found: list[bytes] = []
    keys = []
    for info in store.list(bucket):
        key = layout.parse_key(info.key)
        assert key is not None and key.kind == "trace", info.key
        keys.append(key)
        found.extend(encoding.decode(store.get(bucket, info.key), key.compress))
    return found, keys


def assert_once(expected: list[bytes], found: list[bytes]) -> None:
    assert len(expected) == len(set(expected))
    assert Counter(found) == Counter(expected)


def tracker_id(db: Database, name: str) -> str:
    row = db.read_sync(lambda c: repository.get_row(c, PROJECT, name))
    assert row is not None
    return str(row.id)


async def test_every_trace_lands_in_one_file_for_both_tracker_types(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    store.create_bucket("mgmt-bucket")
    store.create_bucket("data-bucket")
    system_obs(db, bucket_name="mgmt-bucket")
    data_tracker(
        db,
        "dt",
        bucket_name="data-bucket",
        file_prefix_name="pre",
        compress_type="json",
        is_sort_by_service=False,
    )
    append(db, 30)
    append(db, 12, tracker_name="dt", kind="data")
    append(db, 5, tracker_name="elsewhere", kind="data")  # no tracker of that name: not transferred
    append(db, 7, project_id=OTHER)  # a project whose tracker has no bucket
    transfer = Transfer(db, store, settings(tmp_path), clock=lambda: BASE_MS)
    await transfer.drain()
    append(db, 9, start=100)  # a second round adds files, repeats none
    await transfer.drain()
    await transfer.drain()

    found, keys = bodies_in_bucket(store, "mgmt-bucket")
    assert_once(bodies_in_log(db, PROJECT, "system"), found)
    assert {k.service for k in keys} == {"IAM", "ECS", "OBS"}
    assert all(k.compress == "gzip" and k.prefix is None and k.project_id == PROJECT for k in keys)
    found, keys = bodies_in_bucket(store, "data-bucket")
    assert_once(bodies_in_log(db, PROJECT, "data", "dt"), found)
    assert all(k.compress == "json" and k.prefix == "pre" and k.service is None for k in keys)
    assert all(k.tracker == "dt" and k.key.endswith(".json") for k in keys)

    records = db.read_sync(lambda c: files.written_files(c, tracker_id(db, "system"), 0, 2**62))
    assert [r.object_key for r in records] == sorted(k for k in (i.key for i in store.list("mgmt-bucket")))
    assert sum(r.trace_count for r in records) == 39
    for r in records:
        assert r.size == len(store.get("mgmt-bucket", r.object_key))
        assert r.stamp_ms == BASE_MS and r.first_seq <= r.last_seq and r.oldest_time <= r.newest_time
    assert not db.read_sync(lambda c: files.unwritten_before(c, tracker_id(db, "system"), 2**62))


async def test_two_nodes_never_plan_or_write_a_trace_twice(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    store.create_bucket("mgmt-bucket")
    system_obs(db, bucket_name="mgmt-bucket")
    other = Database(db.url)
    try:
        nodes = [Transfer(node, store, settings(tmp_path)) for node in (db, other)]
        for round_ in range(6):
            append(db, 40, start=round_ * 40)
            await asyncio.gather(*(node.drain() for node in nodes))
        await asyncio.gather(*(node.drain() for node in nodes))
    finally:
        other.close()
    found, _ = bodies_in_bucket(store, "mgmt-bucket")
    assert_once(bodies_in_log(db, PROJECT, "system"), found)


def test_a_plan_behind_a_moved_cursor_is_refused(db: Database) -> None:
    system_obs(db, bucket_name="mgmt-bucket")
    append(db, 5)

    def race(conn: Connection) -> None:
        planner.plan(conn, now=BASE_MS, region="r")
        planner._move_cursor(conn, 0, 1, BASE_MS)  # a second planner that read the old cursor

    with pytest.raises(planner.PlanConflict):
        db.write_sync(race)
    assert db.read_sync(planner.cursor) == 0  # rolled back with the files it planned
    assert db.read_sync(lambda c: files.written_files(c, tracker_id(db, "system"), 0, 2**62)) == []


async def test_a_missing_bucket_shows_on_the_tracker_and_is_caught_up(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    system_obs(db, bucket_name="late-bucket")
    data_tracker(db, "dt", bucket_name="made-bucket", is_obs_created=True)
    append(db, 10)
    append(db, 4, tracker_name="dt", kind="data")
    now = [BASE_MS]
    transfer = Transfer(db, store, settings(tmp_path), clock=lambda: now[0])
    await transfer.drain()
    listed = {
        t["tracker_name"]: t for t in db.read_sync(lambda c: repository.list_trackers(c, project_id=PROJECT))
    }
    assert (listed["system"]["status"], listed["system"]["detail"]) == ("error", "noBucket")
    assert listed["dt"]["status"] == "enabled" and "detail" not in listed["dt"]  # its bucket was created

    store.create_bucket("late-bucket")
    append(db, 6, start=10)
    now[0] += 120_000  # past the retry's backoff
    await transfer.drain()
    [system] = db.read_sync(lambda c: repository.list_trackers(c, project_id=PROJECT, tracker_name="system"))
    assert system["status"] == "enabled" and "detail" not in system
    found, _ = bodies_in_bucket(store, "late-bucket")
    assert_once(bodies_in_log(db, PROJECT, "system"), found)
    found, _ = bodies_in_bucket(store, "made-bucket")
    assert_once(bodies_in_log(db, PROJECT, "data", "dt"), found)


async def test_files_are_split_at_the_content_limit(db: Database, store: LocalStore, tmp_path: Path) -> None:
    store.create_bucket("mgmt-bucket")
    system_obs(db, bucket_name="mgmt-bucket", is_sort_by_service=False)
    big = b'{"pad":"' + b"x" * (3 * 1024 * 1024) + b'"}'
    rows = [
        trace_row(f"big-{i}", project_id=PROJECT, body=big[:-2] + str(i).encode() + b'"}') for i in range(5)
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))
    await Transfer(db, store, settings(tmp_path)).drain()
    found, keys = bodies_in_bucket(store, "mgmt-bucket")
    assert len(keys) == 3  # two 3 MiB traces to a file
    assert_once(bodies_in_log(db, PROJECT, "system"), found)
    for info in store.list("mgmt-bucket"):
        assert (
            len(encoding.content(encoding.decode(store.get("mgmt-bucket", info.key), "gzip")))
            <= encoding.MAX_CONTENT
        )


async def test_retention_waits_for_traces_not_in_a_written_file(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    system_obs(db, bucket_name="absent-bucket")
    append(db, 10)
    retention = RetentionConsumer(db, retention_ms=0, hold=planner.retention_hold, clock=lambda: 2**62)
    first = db.read_sync(lambda c: trace_log.read_after(c, 0, 100, with_body=False))
    await retention.process(first)
    assert db.read_sync(trace_log.count) == 10  # not planned yet
    await Transfer(db, store, settings(tmp_path)).drain()  # planned, but the bucket is missing
    await retention.process(first)
    assert db.read_sync(trace_log.count) == 10
    store.create_bucket("absent-bucket")
    await Transfer(db, store, settings(tmp_path), clock=lambda: 2**50).drain()
    await retention.process(first)
    assert db.read_sync(trace_log.count) == 1  # the newest row always stays


async def test_a_late_writer_keeps_the_file_another_wrote_first(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    """A writer whose record was lost (its lease ran out) and whose retry produces other bytes (an
    encrypted file has a fresh data key each time) must not replace the first object: it records that
    object's hash, so the digest names what the bucket holds."""
    store.create_bucket("mgmt-bucket")
    system_obs(db, bucket_name="mgmt-bucket", is_sort_by_service=False)
    append(db, 4)
    transfer = Transfer(db, store, settings(tmp_path), clock=lambda: BASE_MS)
    await transfer.drain()
    (key,) = [info.key for info in store.list("mgmt-bucket")]
    first = store.get("mgmt-bucket", key)
    db.write_sync(  # as if the first write's outcome had never been recorded
        lambda c: c.execute(
            update(trace_files).values(status=files.PLANNED, sha256=None, size=None, next_attempt_at=0)
        )
    )
    store.delete("mgmt-bucket", key)
    assert store.create("mgmt-bucket", key, b"another writer's bytes")
    await transfer.drain()
    assert store.get("mgmt-bucket", key) == b"another writer's bytes"
    (row,) = db.read_sync(lambda c: c.execute(select(trace_files.c.status, trace_files.c.sha256)).all())
    assert row == (files.WRITTEN, hashlib.sha256(b"another writer's bytes").hexdigest())
    assert first != b"another writer's bytes"

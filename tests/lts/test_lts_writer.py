"""The ``lts`` consumer and LTS queries in the database, on SQLite and PostgreSQL.

Trackers are made through their repository (as the API makes them), traces appended to the real log,
and the consumer driven by the same runner the server uses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, delete, func, insert, select

from cts_helpers import trace_row
from opencts.clock import now_ms
from opencts.consumers import ConsumerRunner
from opencts.errors import BadRequest, NotFound
from opencts.lts import query, streams
from opencts.lts.writer import (
    CURSOR,
    TRIGGER_CURSORS,
    LtsConsumer,
    holding,
    prune,
    retention_hold,
    write_range,
)
from opencts.store import Database, trace_log
from opencts.store.tables import consumer_cursors, domains, lts_records, projects
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, UpdateTrackerRequestBody

DOMAIN, PROJECT, OTHER = "d" * 32, "p" * 32, "q" * 32
T0 = 1_700_000_000_000


@pytest.fixture
def db(database: Database) -> Database:
    def setup(conn: Connection) -> None:
        conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
        for pid, name in ((PROJECT, "r1"), (OTHER, "r2")):
            conn.execute(insert(projects).values(id=pid, domain_id=DOMAIN, name=name, created_at=1))
            repository.create_system_tracker(conn, project_id=pid, domain_id=DOMAIN)

    database.write_sync(setup)
    return database


def enable_lts(db: Database, project: str = PROJECT, on: bool = True) -> None:
    req = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": on}
    )
    db.write_sync(lambda c: repository.update_tracker(c, project_id=project, body=req))


def create_data_tracker(db: Database, name: str, *, lts: bool) -> dict[str, Any]:
    req = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": "watched-bucket"},
            "is_lts_enabled": lts,
        }
    )
    return db.write_sync(lambda c: repository.create_tracker(c, project_id=PROJECT, body=req))


def append(db: Database, n: int, *, project: str = PROJECT, start: int = 0, **columns: Any) -> list[str]:
    """``n`` traces named t{start}..; each body holds its id, name and a message to search."""
    ids = [f"{project[:1]}-{start + i:05d}" for i in range(n)]
    rows = []
    for i, trace_id in enumerate(ids):
        body = {
            "trace_id": trace_id,
            "trace_name": columns.get("trace_name", "login"),
            "service_type": "IAM",
            "message": "ERROR disk full" if (start + i) % 3 == 0 else "all is well",
        }
        values = {
            "time": T0 + (start + i) * 1000,
            "project_id": project,
            "body": orjson.dumps(body),
            **columns,
        }
        rows.append(trace_row(trace_id, **values))
    db.write_sync(lambda c: trace_log.append(c, rows))
    return ids


async def drain(db: Database) -> int:
    return await ConsumerRunner(db, LtsConsumer(db)).drain()


def records(db: Database, stream_id: str) -> list[str]:
    stmt = (
        select(lts_records.c.trace_id).where(lts_records.c.stream_id == stream_id).order_by(lts_records.c.id)
    )
    return list(db.read_sync(lambda c: c.execute(stmt).scalars().all()))


SYSTEM = streams.stream_id(PROJECT, streams.SYSTEM_STREAM)
GROUP = streams.group_id(PROJECT)


async def test_enabling_lts_makes_group_and_stream_and_every_later_trace_one_record(db: Database) -> None:
    append(db, 3)  # LTS off: the consumer passes them by
    await drain(db)
    assert db.read_sync(lambda c: query.list_groups(c, PROJECT)) == []
    enable_lts(db)
    enable_lts(db)  # a second enable reuses the group and stream
    [group] = db.read_sync(lambda c: query.list_groups(c, PROJECT))
    assert (group["log_group_name"], group["log_group_id"], group["ttl_in_days"]) == ("CTS", GROUP, 7)
    [stream] = db.read_sync(lambda c: query.list_streams(c, PROJECT, GROUP))
    assert (stream["log_stream_name"], stream["log_stream_id"]) == ("system-trace", SYSTEM)
    ids = append(db, 250, start=3)
    assert await drain(db) == 250
    assert records(db, SYSTEM) == ids  # in the order the log recorded them
    [tracker] = db.read_sync(lambda c: repository.list_trackers(c, project_id=PROJECT))
    assert tracker["lts"] == {
        "is_lts_enabled": True,
        "log_group_name": "CTS",
        "log_topic_name": "system-trace",
    }
    assert (tracker["group_id"], tracker["stream_id"]) == (GROUP, SYSTEM)


async def test_a_replayed_batch_never_doubles_a_record(db: Database) -> None:
    enable_lts(db)
    ids = append(db, 40)
    await drain(db)
    db.write_sync(lambda c: c.execute(delete(consumer_cursors).where(consumer_cursors.c.name == CURSOR)))
    assert await drain(db) == 40  # seen again from the start ...
    last = db.read_sync(trace_log.last_seq)
    db.write_sync(lambda c: write_range(c, 1, last, now=now_ms()))  # ... and once more by hand
    assert records(db, SYSTEM) == ids  # ... and still one record each


async def test_data_traces_go_to_their_trackers_stream_only_while_it_has_lts(db: Database) -> None:
    enable_lts(db)
    create_data_tracker(db, "bucket-watch", lts=True)
    create_data_tracker(db, "quiet", lts=False)
    system_ids = append(db, 2)
    watched = append(db, 3, start=10, kind="data", tracker_name="bucket-watch", trace_name="PUT.OBJECT")
    append(db, 3, start=20, kind="data", tracker_name="quiet", trace_name="PUT.OBJECT")
    await drain(db)
    data_stream = streams.stream_id(PROJECT, "bucket-watch")
    assert records(db, SYSTEM) == system_ids
    assert records(db, data_stream) == watched
    names = {s["log_stream_name"] for s in db.read_sync(lambda c: query.list_streams(c, PROJECT, GROUP))}
    assert names == {"system-trace", "bucket-watch"}
    enable_lts(db, on=False)  # off: the stream stays, new traces pass it by
    append(db, 2, start=30)
    await drain(db)
    assert records(db, SYSTEM) == system_ids


async def test_projects_are_isolated(db: Database) -> None:
    enable_lts(db)
    enable_lts(db, OTHER)
    mine = append(db, 3)
    theirs = append(db, 3, project=OTHER)
    await drain(db)
    assert records(db, SYSTEM) == mine
    assert records(db, streams.stream_id(OTHER, streams.SYSTEM_STREAM)) == theirs
    their_group = streams.group_id(OTHER)
    with pytest.raises(NotFound):
        db.read_sync(lambda c: query.list_streams(c, PROJECT, their_group))
    q = query.LogQuery(start_time=0, end_time=T0 * 2)
    their_stream = streams.stream_id(OTHER, streams.SYSTEM_STREAM)
    with pytest.raises(NotFound):  # their stream under my group, or their group: both absent
        db.read_sync(lambda c: query.query_logs(c, PROJECT, GROUP, their_stream, q))
    with pytest.raises(NotFound):
        db.read_sync(lambda c: query.query_logs(c, PROJECT, their_group, their_stream, q))


def search(db: Database, **params: Any) -> dict[str, Any]:
    q = query.LogQuery.from_params({"start_time": str(T0), "end_time": str(T0 + 10**9), **params})
    return db.read_sync(lambda c: query.query_logs(c, PROJECT, GROUP, SYSTEM, q))


def ids_of(page: dict[str, Any]) -> list[str]:
    return [orjson.loads(log["content"])["trace_id"] for log in page["logs"]]


def receive_one_a_second(db: Database) -> None:
    """Copy the log into the stream a trace at a time, the i-th received at T0 + i seconds."""
    last = db.read_sync(trace_log.last_seq)
    for i, seq in enumerate(range(1, last + 1)):
        db.write_sync(lambda c, s=seq, n=T0 + i * 1000: write_range(c, s, s, now=n))  # type: ignore[misc]


async def test_query_by_time_range_keywords_labels_and_pages(db: Database) -> None:
    enable_lts(db)
    ids = append(db, 30)
    receive_one_a_second(db)
    page = search(db, start_time=str(T0 + 5000), end_time=str(T0 + 9000))  # by receipt
    assert ids_of(page) == ids[5:10]
    assert page["logs"][0]["labels"]["__time__"] == str(T0 + 5000)  # the trace's own time
    assert page["logs"][0]["labels"]["trace_name"] == "login"
    errors = [t for i, t in enumerate(ids) if i % 3 == 0]
    assert ids_of(search(db, keywords="error")) == errors  # whole words, any case
    assert ids_of(search(db, keywords="ERROR AND disk")) == errors
    assert ids_of(search(db, keywords="err")) == []  # not a word of its own
    assert ids_of(search(db, keywords="err*")) == errors
    assert ids_of(search(db, keywords='"disk full"')) == errors
    assert ids_of(search(db, keywords="NOT error")) == [t for t in ids if t not in errors]
    assert ids_of(search(db, keywords=f"{ids[1]} OR {ids[2]}")) == ids[1:3]
    assert ids_of(search(db, labels={"trace_id": ids[4]})) == [ids[4]]
    # pages of 4, forwards by line number, then backwards from the last page's first record
    first = search(db, keywords="error", limit=4, is_count=True)
    assert (ids_of(first), first["count"]) == (errors[:4], 10)
    second = search(
        db, keywords="error", limit=4, search_type="forwards", line_num=first["logs"][-1]["line_num"]
    )
    assert ids_of(second) == errors[4:8]
    back = search(
        db, keywords="error", limit=3, search_type="backwards", line_num=second["logs"][0]["line_num"]
    )
    assert ids_of(back) == errors[1:4]
    assert ids_of(search(db, is_desc=True, limit=2)) == [ids[29], ids[28]]


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"start_time": "x"}, "start_time"),
        ({"start_time": str(T0 + 1), "end_time": str(T0)}, "after end_time"),
        ({"limit": 0}, "limit"),
        ({"search_type": "sideways"}, "search_type"),
        ({"query": "select *", "is_analysis_query": True}, "not supported"),
        ({"search_type": "forwards", "line_num": "999999"}, "line_num"),
    ],
)
async def test_a_bad_query_names_what_is_wrong(db: Database, params: dict[str, Any], complaint: str) -> None:
    enable_lts(db)
    with pytest.raises(BadRequest, match=complaint):
        search(db, **params)


async def test_records_older_than_the_groups_ttl_are_pruned(db: Database) -> None:
    enable_lts(db)
    append(db, 5)  # traces of 2023: their own time does not count, only when LTS received them
    await drain(db)
    count = select(func.count()).select_from(lts_records)
    assert db.write_sync(lambda c: prune(c, now=now_ms(), batch=2)) == 0
    assert db.write_sync(lambda c: prune(c, now=now_ms() + 7 * 86_400_000 + 1000, batch=2)) == 5
    assert db.read_sync(lambda c: c.execute(count).scalar()) == 0


async def test_records_unread_by_a_trigger_outlive_their_time_up_to_the_hold(db: Database) -> None:
    enable_lts(db)
    append(db, 5)
    await drain(db)
    ids = db.read_sync(
        lambda c: [r[0] for r in c.execute(select(lts_records.c.id).order_by(lts_records.c.id))]
    )
    # a reader (an LTS trigger's cursor) that has read the first two records only
    db.write_sync(
        lambda c: c.execute(
            insert(consumer_cursors).values(name=f"{TRIGGER_CURSORS}t1", position=ids[1], updated_at=0)
        )
    )
    count = select(func.count()).select_from(lts_records)
    week = 7 * 86_400_000
    assert db.write_sync(lambda c: prune(c, now=now_ms() + week + 1000, max_hold_hours=72)) == 2
    assert db.read_sync(lambda c: c.execute(count).scalar()) == 3  # the unread three are held
    past_hold = now_ms() + week + 72 * 3_600_000 + 1000
    assert db.write_sync(lambda c: prune(c, now=past_hold, max_hold_hours=72)) == 3
    assert db.read_sync(lambda c: c.execute(count).scalar()) == 0


async def test_retention_keeps_what_the_lts_consumer_has_not_copied(db: Database) -> None:
    assert db.read_sync(retention_hold) is None  # no stream: LTS holds nothing back
    enable_lts(db)
    append(db, 4)
    assert db.read_sync(retention_hold) == 0
    assert db.read_sync(holding(lambda _conn: 3)) == 0  # the lower of the archive's hold and LTS's
    await drain(db)
    last = db.read_sync(trace_log.last_seq)
    assert db.read_sync(retention_hold) == last
    assert db.read_sync(holding(lambda _conn: 3)) == 3
    assert db.read_sync(holding(lambda _conn: None)) == last


async def test_two_nodes_draining_the_same_log_write_each_record_once(db: Database) -> None:
    enable_lts(db)
    ids = append(db, 3000)
    other = Database(db.url)  # a second node: its own engines on the same database
    try:
        await asyncio.gather(drain(db), ConsumerRunner(other, LtsConsumer(other)).drain())
    finally:
        other.close()
    assert records(db, SYSTEM) == ids


async def test_records_sort_by_receipt_whatever_their_traces_time(db: Database) -> None:
    enable_lts(db)
    late = append(db, 1, start=50)  # a trace of T0 + 50 s ...
    early = append(db, 1, start=1)  # ... and one of T0 + 1 s that arrives after it
    receive_one_a_second(db)
    assert ids_of(search(db)) == late + early
    first = search(db, limit=1)
    after = search(db, search_type="forwards", line_num=first["logs"][0]["line_num"])
    assert ids_of(after) == early  # following by line number misses nothing

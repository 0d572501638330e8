"""ListTraces filters answered by the term index (SQLite) agree with a brute-force reading of the log.

On PostgreSQL the same tests run the plain SQL path, so both backends are held to one oracle.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from pyroaring import BitMap64

from opencts.store import Database, migrate, term_index, trace_log
from opencts.store.term_index import TermIndex
from opencts.store.trace_log import Position, TraceRow
from opencts.testing.waiting import wait_for

USERS = ("alice", "bob", "carol", "dave")
SERVICES = ("ECS", "VPC", "OBS", "RDS")
RATINGS = ("normal", "warning", "incident")


def make_rows(rng: random.Random, start: int, n: int, *, base_time: int = 10**12) -> list[TraceRow]:
    """Traces mostly in time order, some sent late (older times than their neighbours), some odd pairs."""
    out = []
    for i in range(start, start + n):
        user = rng.choice(USERS)
        service = "RDS" if user == "dave" else rng.choice(SERVICES[:3])  # only dave ever touches RDS
        late = rng.random() < 0.1
        time = base_time + i * 100 - (rng.randrange(1, 200) * 100 if late else rng.randrange(50))
        out.append(
            TraceRow(
                project_id=rng.choice(("p1", "p1", "p1", "p2")),
                trace_id=f"t{i}",
                kind="data" if rng.random() < 0.1 else "system",
                time=time,
                record_time=time,
                trace_name=rng.choice(("create", "delete", "login")),
                trace_rating=rng.choices(RATINGS, weights=(90, 8, 2))[0],
                trace_type="ApiCall",
                service_type=service,
                resource_type=None,
                resource_id=f"r{rng.randrange(50)}",
                resource_name=rng.choice((None, "web-01", "db-01")),
                user_name=user,
                access_key_id=None if rng.random() < 0.5 else "AK1",
                tracker_name="system",
                enterprise_project_id=None,
                body=orjson.dumps({"trace_id": f"t{i}"}),
            )
        )
    return out


def oracle(
    rows: list[tuple[int, TraceRow]],
    *,
    kind: str,
    time_from: int,
    time_to: int,
    filters: dict[str, str],
    after: Position | None,
    limit: int,
) -> list[str]:
    hits = [
        (r.time, seq, r.trace_id)
        for seq, r in rows
        if r.project_id == "p1"
        and r.kind == kind
        and time_from < r.time < time_to
        and all(getattr(r, c) == v for c, v in filters.items())
        and (after is None or (r.time, seq) < (after.time, after.seq))
    ]
    hits.sort(reverse=True)
    return [trace_id for _, _, trace_id in hits[:limit]]


@contextmanager
def sqlite_database(path: Any) -> Iterator[Database]:
    """A migrated SQLite database of its own, for tests about the term index's life in one process."""
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db)
        yield db
    finally:
        db.close()


def stored(database: Database, rows: list[TraceRow]) -> list[tuple[int, TraceRow]]:
    by_id = {r.trace_id: r for r in rows}
    read = database.read_sync(lambda c: trace_log.read_after(c, 0, 10**6, with_body=True))
    return [(r.seq, by_id[orjson.loads(r.body)["trace_id"]]) for r in read]


def page(database: Database, **kw: Any) -> list[str]:
    got = database.read_sync(lambda c: trace_log.page(c, project_id="p1", index=database.term_index, **kw))
    return [r.trace_id for r in got]


FILTER_SETS: list[dict[str, str]] = [
    {"user_name": "alice"},
    {"trace_rating": "incident"},
    {"service_type": "RDS", "user_name": "alice"},  # never happens: an empty combination
    {"service_type": "RDS", "user_name": "dave", "trace_rating": "warning"},
    {"service_type": "ECS", "user_name": "bob", "trace_rating": "normal", "access_key_id": "AK1"},
    {"user_name": "nobody"},
    {"user_name": "carol", "resource_id": "r7"},  # a hashed column with a bitmap one
    {"resource_id": "r13"},
    {"resource_id": "r13", "resource_name": "nothing"},
    {"user_name": "carol", "service_type": "ECS", "trace_rating": "warning"},
]


def test_filters_agree_with_the_oracle_on_every_backend(database: Database) -> None:
    rng = random.Random(5)
    rows = make_rows(rng, 0, 3000)
    database.write_sync(lambda c: trace_log.append(c, rows))
    log = stored(database, rows)
    span = (10**12 - 30_000, 10**12 + 3000 * 100 + 1)
    windows = [span, (10**12 + 100_000, 10**12 + 140_000), (10**12 + 50_000, 10**12 + 50_001)]
    for filters in FILTER_SETS:
        for kind in ("system", "data"):
            for time_from, time_to in windows:
                for limit in (1, 10, 200):
                    q = {"kind": kind, "time_from": time_from, "time_to": time_to, "filters": filters}
                    expected = oracle(log, **q, after=None, limit=limit)  # type: ignore[arg-type]
                    assert page(database, **q, after=None, limit=limit) == expected, (q, limit)


def test_paging_with_markers_walks_every_match_once(database: Database) -> None:
    rng = random.Random(9)
    rows = make_rows(rng, 0, 2000)
    database.write_sync(lambda c: trace_log.append(c, rows))
    log = stored(database, rows)
    seq_of = {r.trace_id: seq for seq, r in log}
    time_of = {r.trace_id: r.time for _, r in log}
    q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": {"user_name": "bob"}}
    walked: list[str] = []
    after = None
    while True:
        got = page(database, **q, after=after, limit=7)
        walked += got
        if len(got) < 7:
            break
        after = Position(time_of[got[-1]], seq_of[got[-1]])
    assert walked == oracle(log, **q, after=None, limit=10**6)  # type: ignore[arg-type]


def test_rows_appended_behind_the_writer_are_found(database: Database, tmp_path: Any) -> None:
    """Another process (or a raw append) writes without feeding this process's index: refresh reads it."""
    rng = random.Random(3)
    first = make_rows(rng, 0, 500)
    database.write_sync(lambda c: trace_log.append(c, first))
    q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": {"user_name": "alice"}, "limit": 5}
    assert page(database, **q, after=None)
    more = make_rows(rng, 500, 300, base_time=10**12 + 10**6)
    database.write_sync(lambda c: trace_log.append(c, more))
    log = stored(database, first + more)
    assert page(database, **q, after=None) == oracle(log, **q, after=None)  # type: ignore[arg-type]
    assert page(database, **q, after=None)[0] in {r.trace_id for r in more}


def test_a_lagging_index_falls_back_to_sql(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(4)
    rows = make_rows(rng, 0, 400)
    database.write_sync(lambda c: trace_log.append(c, rows))
    log = stored(database, rows)
    monkeypatch.setattr(term_index, "MAX_QUERY_LAG", 10)  # as if a huge log were still being read
    q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": {"trace_rating": "warning"}}
    assert page(database, **q, after=None, limit=20) == oracle(log, **q, after=None, limit=20)  # type: ignore[arg-type]
    index = database.term_index
    if index is not None:
        assert index.upto == 0  # it refused to catch up inside the query


def test_a_wrong_bit_never_yields_a_wrong_row(tmp_path: Any) -> None:
    """Bitmaps are candidates: a seq fed with the wrong terms (a rolled-back write) is re-checked in SQL."""
    with sqlite_database(tmp_path / "x.db") as db:
        rows = make_rows(random.Random(1), 0, 50)
        db.write_sync(lambda c: trace_log.append(c, rows))
        index = db.term_index
        assert index is not None
        db.read_sync(index.refresh)
        index._terms[("p1", "system", "user_name", "mallory")] = BitMap64(range(1, 51))
        got = page(
            db,
            kind="system",
            time_from=0,
            time_to=10**13,
            filters={"user_name": "mallory"},
            after=None,
            limit=10,
        )
        assert got == []


def test_feed_stops_at_a_gap_and_refresh_fills_it() -> None:
    index = TermIndex()
    values = ("system", "ECS", "alice", None, "create", "normal", None, None, "vm-1", None)
    index.feed([(1, "p", "system", 10, values), (2, "p", "system", 11, values)])
    index.feed([(5, "p", "system", 12, values)])  # 3 and 4 were committed elsewhere: not taken
    assert index.upto == 2
    found = index.rank(
        "p", "system", {"user_name": "alice"}, time_from=0, time_below=100, after=None, count=5
    )
    assert found == [(11, 2), (10, 1)]


def test_a_snapshot_is_read_back_only_for_the_database_it_describes(tmp_path: Any) -> None:
    with sqlite_database(tmp_path / "x.db") as db:
        rows = make_rows(random.Random(8), 0, 300)
        db.write_sync(lambda c: trace_log.append(c, rows))
        index = db.term_index
        assert index is not None and db.term_snapshot is not None
        db.read_sync(index.refresh)
        assert db.read_sync(lambda c: index.save(tmp_path / "snap", c))

        again = TermIndex()
        assert db.read_sync(lambda c: again.load(tmp_path / "snap", c))
        assert again.upto == index.upto and again.terms == index.terms
        hours: dict[str, Any] = {
            "first_bucket": 0,
            "last_bucket": 10**13 // term_index.BUCKET_MS,
            "limit": 10,
        }
        assert again.top_values("p1", "system", "user_name", **hours) == index.top_values(
            "p1", "system", "user_name", **hours
        )
        q = {"user_name": "bob", "trace_rating": "normal"}
        args: dict[str, Any] = {"time_from": 0, "time_below": 10**13, "after": None, "count": 10**6}
        assert again.rank("p1", "system", q, **args) == index.rank("p1", "system", q, **args)
        assert len(index.rank("p1", "system", q, **args)) > 10

        with sqlite_database(tmp_path / "y.db") as other:  # same seqs, other traces
            other.write_sync(lambda c: trace_log.append(c, make_rows(random.Random(9), 1000, 300)))
            assert not other.read_sync(lambda c: TermIndex().load(tmp_path / "snap", c))
        (tmp_path / "torn").write_bytes((tmp_path / "snap").read_bytes()[:-100])
        assert not db.read_sync(lambda c: TermIndex().load(tmp_path / "torn", c))
        assert not db.read_sync(lambda c: TermIndex().load(tmp_path / "missing", c))


def test_the_server_keeps_its_index_across_a_restart(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = Database(url)
    migrate.upgrade(db)
    db.write_sync(lambda c: trace_log.append(c, make_rows(random.Random(8), 0, 300)))
    db.start_background()
    reading = db.term_index
    assert reading is not None
    # the upkeep thread reads the log written before it started
    wait_for(lambda: reading.upto == 300, 10, "the index to read the log")
    db.close()  # as the server does on the way out
    assert (tmp_path / "x.db.terms").exists()
    db = Database(url)
    try:
        index = db.term_index
        assert index is not None and db.term_snapshot is not None
        assert db.read_sync(lambda c: index.load(db.term_snapshot, c))  # type: ignore[arg-type]
        assert index.upto == 300
    finally:
        db.close()


@pytest.mark.postgres
def test_a_postgresql_node_keeps_its_index_in_its_data_dir(postgres_url: str, tmp_path: Any) -> None:
    """A PostgreSQL node has no database file to keep its index beside: it keeps it in its data dir, so a
    restart does not read the whole log again."""
    db = Database(postgres_url, data_dir=tmp_path)
    migrate.upgrade(db)
    db.write_sync(lambda c: trace_log.append(c, make_rows(random.Random(8), 0, 300)))
    db.start_background()
    reading = db.term_index
    assert reading is not None
    # the upkeep thread reads the log written before it started
    wait_for(lambda: reading.upto >= 300, 10, "the index to read the log")
    upto = reading.upto
    db.close()
    assert (tmp_path / "postgresql.terms").exists()
    db = Database(postgres_url, data_dir=tmp_path)
    try:
        index = db.term_index
        assert index is not None and db.term_snapshot == tmp_path / "postgresql.terms"
        assert db.read_sync(lambda c: index.load(tmp_path / "postgresql.terms", c))
        assert index.upto == upto >= 300
    finally:
        db.close()


def test_resources_whose_hashes_collide_stay_apart(database: Database) -> None:
    """Resource values are indexed by a 32-bit hash; two values with the same hash never mix."""
    seen: dict[int, str] = {}
    rng = random.Random(0)
    while True:  # a birthday search: about 80,000 random names
        value = f"obj-{rng.getrandbits(64):x}"
        digest = term_index._hash(value)
        if digest in seen and seen[digest] != value:
            a, b = seen[digest], value
            break
        seen[digest] = value
    rows = [
        r._replace(resource_id=a if i % 3 else b) for i, r in enumerate(make_rows(random.Random(2), 0, 90))
    ]
    database.write_sync(lambda c: trace_log.append(c, rows))
    log = stored(database, rows)
    for value in (a, b):
        q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": {"resource_id": value}}
        assert page(database, **q, after=None, limit=200) == oracle(log, **q, after=None, limit=200)  # type: ignore[arg-type]


def test_what_retention_deleted_is_pruned_and_the_rest_still_found(database: Database) -> None:
    rows = make_rows(random.Random(6), 0, 400)
    rows[0] = rows[0]._replace(project_id="p1", kind="system", user_name="gone")  # only in what is deleted
    database.write_sync(lambda c: trace_log.append(c, rows))
    q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": {"resource_id": "r3"}}
    page(database, **q, after=None, limit=5)  # the index reads the log
    database.write_sync(lambda c: trace_log.delete_through(c, 0, 250))
    index = database.term_index
    if index is not None:
        index._fed_since_prune = 10**6  # as after many appends
        database.read_sync(index.refresh)
        assert index._hash_base == 251 and index._pruned_below == 251
    log = [(seq, r) for seq, r in stored(database, rows)]
    if index is not None:  # the dashboard's tops count what is left, and forget a value with nothing left
        left = Counter(r.user_name for _, r in log if (r.project_id, r.kind) == ("p1", "system"))
        hours: dict[str, Any] = {
            "first_bucket": 0,
            "last_bucket": 10**13 // term_index.BUCKET_MS,
            "limit": 10,
        }
        tops = index.top_values("p1", "system", "user_name", **hours)
        assert {value: n for (value,), n in tops} == dict(left) and "gone" not in left
        by_column = index._columns  # the tops' view of the terms holds exactly the terms left
        assert sum(map(len, by_column.values())) == index.terms
        assert all(by_column[term[:3]][term[3]] is bitmap for term, bitmap in index._terms.items())
    for filters in (
        {"resource_id": "r3"},
        {"user_name": "bob"},
        {"resource_name": "web-01", "user_name": "alice"},
    ):
        q = {"kind": "system", "time_from": 0, "time_to": 10**13, "filters": filters}
        assert page(database, **q, after=None, limit=50) == oracle(log, **q, after=None, limit=50)  # type: ignore[arg-type]


def test_sequence_numbers_past_32_bits_are_indexed() -> None:
    """seq counts every trace ever appended; a busy log passes 2**32 within months."""
    index = TermIndex()
    values = ("system", "ECS", "alice", None, "create", "normal", None, None, "vm-1", None)
    start = 2**32 + 5
    index.upto = start - 1
    index.feed([(start + i, "p", "system", 10 + i, values) for i in range(3)])
    window: dict[str, Any] = {"time_from": 0, "time_below": 100, "after": None, "count": 5}
    expected = [(12, start + 2), (11, start + 1), (10, start)]
    assert index.rank("p", "system", {"user_name": "alice"}, **window) == expected
    assert index.rank("p", "system", {"resource_id": "vm-1"}, **window) == expected
    assert index._hash_base == start  # memory follows the live log, not seq 0


def test_a_long_catch_up_is_saved_at_once(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After reading the log at start the server keeps what it read, without waiting for shutdown."""
    from opencts.store import database

    monkeypatch.setattr(database, "SNAPSHOT_ROWS", 100)
    with sqlite_database(tmp_path / "x.db") as db:
        db.write_sync(lambda c: trace_log.append(c, make_rows(random.Random(8), 0, 300)))
        db.start_background()
        wait_for((tmp_path / "x.db.terms").exists, 10, "the snapshot to be saved")
        assert db.read_sync(lambda c: TermIndex().load(tmp_path / "x.db.terms", c))

"""ListTraces agrees with plain SQL whatever order traces arrived in, on every backend.

Traces that arrive out of time order (an import, a backfill, producers with skewed clocks) are the case
where an order taken from arrival would be wrong. Every filter mix, and every page reached through
``next`` markers, is compared with ``ORDER BY time DESC, seq DESC`` over the whole table. The term index's
time buckets and its direct-ranking threshold are shrunk so that a few thousand traces go through every
way it ranks: directly, by walking buckets, and walking too far and ranking directly after all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text

from opencts.store import Database, migrate, term_index, trace_log
from opencts.store.trace_log import TraceRow
from opencts.traces.listing import list_traces
from opencts.traces.query import TraceQuery

BASE = 1_700_000_000_000
SPAN = 200_000  # times lie in (BASE, BASE + SPAN); steps of 100 ms, so many traces share a time
COUNT = 3000
USERS = ("alice", "bob", "carol", "dave", "erin")
SERVICES = ("ECS", "VPC", "OBS", "RDS")
RATINGS = ("normal", "warning", "incident")
NAMES = ("createServer", "deleteServer", "login", "updateRule")


def arrival_times(order: str, rng: random.Random) -> list[int]:
    """Each trace's time, in arrival (seq) order."""
    in_order = [BASE + 1 + (SPAN - 2) * i // COUNT // 100 * 100 for i in range(COUNT)]
    if order == "time":
        return in_order
    if order == "random":
        return [BASE + 1 + rng.randrange(SPAN - 2) // 100 * 100 for _ in range(COUNT)]
    assert order == "backfill"
    return [BASE + 1 + rng.randrange(t - BASE) // 100 * 100 if rng.random() < 0.1 else t for t in in_order]


def make_rows(order: str, seed: int) -> list[TraceRow]:
    rng = random.Random(seed)
    rows = []
    for i, time in enumerate(arrival_times(order, rng)):
        user = rng.choices(USERS, weights=(50, 25, 15, 8, 2))[0]
        service = "RDS" if user == "dave" else rng.choice(SERVICES[:3])  # only dave ever touches RDS
        resource = rng.randrange(40)
        rows.append(
            TraceRow(
                project_id="p1" if rng.random() < 0.9 else "p2",
                trace_id=f"t{i:05d}",
                kind="data" if rng.random() < 0.1 else "system",
                time=time,
                record_time=BASE + SPAN + i,
                trace_name=rng.choice(NAMES),
                trace_rating=rng.choices(RATINGS, weights=(85, 12, 3))[0],
                trace_type="ApiCall",
                service_type=service,
                resource_type=rng.choice(("server", "vpc", None)),
                resource_id=f"r{resource}",
                resource_name=rng.choice((f"web-{resource % 7}", None)),
                user_name=user,
                access_key_id=rng.choice((None, "AK1", "AK2")),
                tracker_name="system",
                enterprise_project_id=rng.choice(("0", "ep-1")),
                body=orjson.dumps({"trace_id": f"t{i:05d}"}),
            )
        )
    return rows


#: (filters, kind); the window is the whole span unless a case says otherwise
FILTER_MIXES: list[dict[str, str]] = [
    {},
    {"user_name": "alice"},
    {"user_name": "erin"},
    {"service_type": "VPC"},
    {"trace_rating": "incident"},
    {"trace_name": "login"},
    {"resource_type": "server"},
    {"access_key_id": "AK2"},
    {"enterprise_project_id": "ep-1"},
    {"resource_id": "r3"},
    {"resource_name": "web-2"},
    {"resource_id": "r5", "resource_name": "web-5"},
    {"user_name": "bob", "trace_rating": "warning"},
    {"service_type": "ECS", "user_name": "alice", "trace_rating": "normal"},
    {"user_name": "carol", "resource_id": "r1", "trace_name": "login"},
    {"service_type": "RDS", "user_name": "alice"},  # never together: an empty combination
    {"user_name": "mallory"},  # a value nobody has
]


def oracle(
    database: Database, *, kind: str, time_from: int, time_to: int, filters: dict[str, str]
) -> list[str]:
    """Every match, in the list's order, by plain SQL over the whole table."""
    where = "".join(f" AND {column} = :{column}" for column in filters)
    sql = text(
        "SELECT trace_id FROM traces WHERE project_id = 'p1' AND kind = :kind AND time > :lo AND time < :hi"
        + where
        + " ORDER BY time DESC, seq DESC"
    )
    params = {"kind": kind, "lo": time_from, "hi": time_to, **filters}
    return database.read_sync(lambda c: [str(r[0]) for r in c.execute(sql, params)])


def listing(database: Database, query: TraceQuery) -> tuple[list[str], str | None]:
    def run(conn: Any) -> tuple[list[str], str | None]:
        rows, marker = list_traces(conn, project_id="p1", query=query, index=database.term_index)
        return [str(r.trace_id) for r in rows], marker

    return database.read_sync(run)


def every_page(database: Database, query: TraceQuery) -> list[list[str]]:
    """The pages ListTraces gives, following ``next`` markers to the end."""
    pages = []
    marker: str | None = None
    while True:
        page, marker = listing(database, replace(query, next=marker))
        pages.append(page)
        if marker is None:
            return pages
        assert len(pages) < COUNT, "the markers never end"


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets of 2,000 ms (a hundred of them), and direct ranking only for a few dozen candidates: a few
    thousand traces then take both ways the index ranks, and walks of one bucket and of many."""
    monkeypatch.setattr(term_index, "BUCKET_MS", 2_000)
    monkeypatch.setattr(term_index, "DIRECT_RANK", 40)
    monkeypatch.setattr(term_index, "MAX_BUCKET_STEP", 8)
    monkeypatch.setattr(term_index, "SORT_AFTER", 500)
    monkeypatch.setattr(term_index, "FENCE", 4)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the term index ranked directly and by walking buckets."""
    seen: dict[str, int] = {}
    rank = term_index.TermIndex.rank

    def counted_rank(self: term_index.TermIndex, *args: Any, **kwargs: Any) -> Any:
        found = self.candidates(*args[:3])
        key = "buckets" if len(found) > term_index.DIRECT_RANK else "direct" if found else "none"
        seen[key] = seen.get(key, 0) + 1
        return rank(self, *args, **kwargs)

    monkeypatch.setattr(term_index.TermIndex, "rank", counted_rank)
    return seen


@pytest.mark.usefixtures("small_buckets")
@pytest.mark.parametrize("order", ["time", "random", "backfill"])
def test_every_filter_mix_and_page_matches_plain_sql(
    database: Database, order: str, walks: dict[str, int]
) -> None:
    rows = make_rows(order, seed=len(order))
    index = database.term_index
    for start in range(0, COUNT, 500):  # batches, as ingest commits them
        database.write_sync(partial(trace_log.append, rows=rows[start : start + 500]))
        if index is not None and start == 1500:  # resource hashes: half sorted, half after the sort
            database.read_sync(index.refresh)
            index.tidy()
    # the page of 200 starts at an odd offset: 3 windows, one narrow, one inside the span's middle
    windows = [(BASE - 1, BASE + SPAN + 1), (BASE + 50_000, BASE + 90_010), (BASE + 150_000, BASE + 150_011)]
    checked = 0
    for filters in FILTER_MIXES:
        for kind in ("system", "data"):
            for time_from, time_to in windows:
                want = oracle(database, kind=kind, time_from=time_from, time_to=time_to, filters=filters)
                for limit in (200, 37):
                    query = TraceQuery(
                        kind=kind, time_from=time_from, time_to=time_to, limit=limit, filters=filters
                    )
                    pages = every_page(database, query)
                    assert [t for page in pages for t in page] == want, (filters, kind, time_from, limit)
                    assert all(len(page) == limit for page in pages[:-1])
                    checked += len(want)
    assert checked > 5 * COUNT  # the cases are not all empty
    if database.term_index is not None:  # SQLite: the index ranked every way it can
        assert walks.keys() >= {"direct", "buckets"}, walks


@pytest.mark.parametrize("order", ["random", "backfill"])
def test_a_trace_id_is_found_whatever_its_position(database: Database, order: str) -> None:
    rows = make_rows(order, seed=3)
    database.write_sync(lambda c: trace_log.append(c, rows))
    for row in rows[:: COUNT // 20]:
        query = TraceQuery(kind=row.kind, time_from=BASE, time_to=BASE + SPAN, trace_id=row.trace_id)
        found, marker = listing(database, query)
        assert found == ([row.trace_id] if row.project_id == "p1" else [])
        assert marker is None


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'order.db'}")
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.close()


def test_a_dropped_candidate_is_replaced_by_the_next_one(sqlite_database: Database) -> None:
    """A bitmap may over-include (a rolled-back write, a hash collision): the rows after it fill the page."""
    database = sqlite_database
    rows = make_rows("random", seed=11)
    database.write_sync(lambda c: trace_log.append(c, rows))
    index = database.term_index
    assert index is not None
    database.read_sync(index.refresh)
    # claim that alice touched every trace: all but hers fail the SQL re-check
    bitmap = index._terms[("p1", "system", "user_name", "alice")]
    bitmap.update(range(1, COUNT + 1))
    query = TraceQuery(kind="system", time_from=BASE - 1, time_to=BASE + SPAN + 1, limit=150)
    filters = {"user_name": "alice"}
    want = oracle(database, kind="system", time_from=BASE - 1, time_to=BASE + SPAN + 1, filters=filters)
    pages = every_page(database, replace(query, filters=filters))
    assert [t for page in pages for t in page] == want


@pytest.mark.parametrize("order", ["time", "random", "backfill"])
def test_a_filtered_page_reads_only_its_own_rows(sqlite_database: Database, order: str) -> None:
    """SQLite reads the rows of the page and no others, however far arrival order is from time order:
    what a page costs must not grow with the candidates that arrived before or after it."""
    database = sqlite_database
    database.write_sync(partial(trace_log.append, rows=make_rows(order, seed=5)))
    handed: list[int] = []

    def count_seqs(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "json_each" in statement:
            handed.extend(len(orjson.loads(p)) for p in params if isinstance(p, str) and p.startswith("["))

    event.listen(database.read_engine, "before_cursor_execute", count_seqs)
    for filters in ({"user_name": "alice"}, {"service_type": "VPC", "trace_rating": "normal"}):
        handed.clear()
        query = TraceQuery(
            kind="system", time_from=BASE - 1, time_to=BASE + SPAN + 1, limit=20, filters=filters
        )
        found, marker = listing(database, query)
        assert len(found) == 20 and marker is not None
        assert sum(handed) <= 21, (filters, handed)  # the page and the one row that says "there is more"

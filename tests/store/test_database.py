"""The trace log on both backends, over real connections."""

from __future__ import annotations

import orjson
from sqlalchemy import inspect, text

from cts_helpers import trace_row
from opencts.store import Database, trace_log
from opencts.store.tables import metadata
from opencts.store.term_index import INDEXED_COLUMNS
from opencts.store.trace_log import Position, TraceRow


def row(trace_id: str, time: int, **kw: str) -> TraceRow:
    return trace_row(trace_id, time=time, record_time=time, **kw)


def test_migrations_create_the_declared_schema(database: Database) -> None:
    tables = set(inspect(database.write_engine).get_table_names())
    assert set(metadata.tables) <= tables
    indexes = {ix["name"] for ix in inspect(database.write_engine).get_indexes("traces")}
    assert "ix_traces_time" in indexes
    term_btrees = {f"ix_traces_{col}" for col in INDEXED_COLUMNS}
    if database.is_sqlite:  # the term index answers these filters: no B-tree per column
        assert not term_btrees & indexes
    else:
        assert term_btrees <= indexes


def test_append_is_idempotent_by_project_and_trace_id(database: Database) -> None:
    first = database.write_sync(lambda c: trace_log.append(c, [row("a", 1), row("b", 2)]))
    again = database.write_sync(lambda c: trace_log.append(c, [row("a", 1), row("c", 3)]))
    other_project = database.write_sync(lambda c: trace_log.append(c, [row("a", 1, project_id="p2")]))
    assert (first, again, other_project) == ({"a", "b"}, {"c"}, {"a"})
    assert database.read_sync(lambda c: trace_log.count(c, "p1")) == 3


def test_sequence_numbers_increase_in_append_order(database: Database) -> None:
    database.write_sync(lambda c: trace_log.append(c, [row(f"t{i}", 1000 - i) for i in range(5)]))
    rows = database.read_sync(lambda c: trace_log.read_after(c, 0, 100))
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert [orjson.loads(r.body)["trace_id"] for r in rows] == [f"t{i}" for i in range(5)]
    later = database.read_sync(lambda c: trace_log.read_after(c, rows[1].seq, 100))
    assert len(later) == 3


def test_keyset_pages_and_deletes(database: Database) -> None:
    database.write_sync(lambda c: trace_log.append(c, [row(f"t{i}", 100 + i // 2) for i in range(10)]))

    def page(after: Position | None) -> list[str]:
        rows = database.read_sync(
            lambda c: trace_log.page(
                c,
                project_id="p1",
                kind="system",
                time_from=0,
                time_to=10**6,
                filters={"user_name": "alice"},
                after=after,
                index=database.term_index,
                limit=4,
            )
        )
        return [r.trace_id for r in rows]

    first = page(None)
    pos = database.read_sync(lambda c: trace_log.position_of(c, "p1", first[-1]))
    second = page(pos)
    assert first == ["t9", "t8", "t7", "t6"] and second == ["t5", "t4", "t3", "t2"]
    last = database.read_sync(trace_log.last_seq)
    deleted = database.write_sync(lambda c: trace_log.delete_through(c, 0, last - 2))
    assert deleted == 8
    assert database.read_sync(lambda c: trace_log.count(c)) == 2


def test_sqlite_is_durable_and_concurrent(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        with db.write_engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        db.close()

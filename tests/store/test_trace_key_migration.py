"""Migration 0007: a log written before it keeps every row and seq, and its trace ids stay unique."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cts_helpers import database_url, trace_row
from opencts.store import Database, migrate, trace_log
from opencts.store.trace_log import trace_key

OLD_INSERT = text(
    "INSERT INTO traces (project_id, trace_id, kind, time, record_time, trace_name, trace_rating, trace_type,"
    " service_type, tracker_name, body) VALUES (:p, :t, 'system', :time, :time, 'login', 'normal',"
    " 'ConsoleAction', 'IAM', 'system', :body)"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database migrated to 0006 only, holding traces written the old way."""
    db = Database(database_url(request, tmp_path))
    migrate.upgrade(db, "0006")
    old = [("p1", f"t{i}", 1_700_000_000_000 + i) for i in range(50)] + [("p2", "t0", 1_700_000_000_999)]
    db.write_sync(
        lambda c: c.execute(OLD_INSERT, [{"p": p, "t": t, "time": ms, "body": b"{}"} for p, t, ms in old])
    )
    try:
        yield db
    finally:
        db.close()


def test_old_rows_get_their_key_and_keep_their_seq(at_0006: Database) -> None:
    db = at_0006
    before = db.read_sync(lambda c: c.execute(text("SELECT seq, project_id, trace_id FROM traces")).all())
    migrate.upgrade(db)
    after = db.read_sync(
        lambda c: c.execute(
            text("SELECT seq, project_id, trace_id, trace_key FROM traces ORDER BY seq")
        ).all()
    )
    assert [tuple(r[:3]) for r in after] == sorted(tuple(r) for r in before)
    # the SQL that PostgreSQL ran and the function SQLite called agree with the store's own key
    assert all(bytes(r[3]) == trace_key(r[1], r[2]) for r in after)


def test_after_the_migration_old_ids_are_still_duplicates(at_0006: Database) -> None:
    db = at_0006
    migrate.upgrade(db)
    rows = [trace_row("t3"), trace_row("t-new")]
    inserted = db.write_sync(lambda c: trace_log.append(c, rows))
    assert inserted == {"t-new"}
    assert db.read_sync(lambda c: trace_log.count(c, "p1")) == 51
    assert db.read_sync(lambda c: trace_log.position_of(c, "p1", "t3")) is not None
    assert db.read_sync(lambda c: trace_log.position_of(c, "p2", "t0")) is not None
    assert db.read_sync(lambda c: trace_log.position_of(c, "p2", "t1")) is None


def test_downgrade_restores_the_old_constraint(at_0006: Database) -> None:
    db = at_0006
    migrate.upgrade(db)
    migrate.downgrade(db, "0006")
    count = db.read_sync(lambda c: c.execute(text("SELECT count(*) FROM traces")).scalar_one())
    assert count == 51
    with pytest.raises(IntegrityError, match="(?i)unique"):
        db.write_sync(lambda c: c.execute(OLD_INSERT, {"p": "p1", "t": "t1", "time": 1, "body": b"{}"}))

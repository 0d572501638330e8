"""Migration 0011: the submitter column, on both backends; traces from before it keep no submitter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cts_helpers import database_url, trace_row
from opencts.store import Database, migrate, trace_log
from opencts.store.trace_log import trace_key

OLD_INSERT = text(
    "INSERT INTO traces (project_id, trace_id, kind, time, record_time, trace_name, trace_rating, trace_type,"
    " service_type, tracker_name, body, trace_key) VALUES ('p1', 'old', 'system', 1700000000000,"
    " 1700000000000, 'login', 'normal', 'ConsoleAction', 'IAM', 'system', :body, :key)"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database migrated to 0010 only, holding one trace written then."""
    db = Database(database_url(request, tmp_path))
    migrate.upgrade(db, "0010")
    db.write_sync(lambda c: c.execute(OLD_INSERT, {"body": b"{}", "key": trace_key("p1", "old")}))
    try:
        yield db
    finally:
        db.close()


def test_old_rows_have_no_submitter_and_new_rows_keep_theirs(at_0010: Database) -> None:
    db = at_0010
    migrate.upgrade(db)
    assert db.write_sync(lambda c: trace_log.append(c, [trace_row("new", submitter="OpenCTS")])) == {"new"}
    stored = db.read_sync(
        lambda c: c.execute(text("SELECT trace_id, submitter FROM traces ORDER BY seq")).all()
    )
    assert [tuple(r) for r in stored] == [("old", None), ("new", "OpenCTS")]
    migrate.downgrade(db, "0010")
    columns = db.read_sync(lambda c: list(c.execute(text("SELECT * FROM traces")).keys()))
    assert "submitter" not in columns and "trace_key" in columns
    assert db.read_sync(lambda c: trace_log.count(c)) == 2

"""Upgrades: a database made by the oldest migration, with data in it, brought forward to whatever head is.

Every released schema must upgrade in place, so the test starts from the oldest (0001) and walks every
migration there is, on both backends; then the node opens on it as a server would (keys, sealing of
plain-text secrets). Downgrades and revisions this version does not know are refused with a sentence,
and ``opencts migrate --check`` lists what would run without running it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cts_helpers import database_url
from opencts.cli.main import app
from opencts.config import Settings
from opencts.opening import open_store
from opencts.store import Database, migrate, trace_log
from opencts.store.revisions import SchemaRevisionError, current, head, pending, scripts

ROWS_0001 = [
    "INSERT INTO domains (id, name, created_at) VALUES ('d1', 'acme', 1700000000000)",
    "INSERT INTO projects (id, domain_id, name, created_at) VALUES ('p1', 'd1', 'region-1', 1700000000000)",
    "INSERT INTO users (id, domain_id, name, password_hash, enabled, created_at)"
    " VALUES ('u1', 'd1', 'alice', NULL, TRUE, 1700000000000)",
    "INSERT INTO credentials (access_key, secret_key, user_id, status, description, created_at)"
    " VALUES ('AK1', 'plain-secret', 'u1', 'active', '', 1700000000000)",
    "INSERT INTO consumer_cursors (name, position, updated_at) VALUES ('notifier', 2, 1700000000000)",
    *(
        "INSERT INTO traces (project_id, trace_id, kind, time, record_time, trace_name, trace_rating,"
        " trace_type, service_type, tracker_name, user_name, body) VALUES ('p1', "
        f"'old{i}', 'system', {1700000000000 + i}, {1700000000000 + i}, 'login', 'normal', 'ConsoleAction',"
        f" 'IAM', 'system', 'alice', :body)"
        for i in range(3)
    ),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_at_0001(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database at revision 0001 holding an account, a key, a cursor and three traces."""
    url = database_url(request, tmp_path)
    db = Database(url)
    try:
        migrate.upgrade(db, "0001")
        body = b'{"trace_id": "old", "trace_name": "login"}'

        def fill(conn: object) -> None:
            for sql in ROWS_0001:
                conn.execute(text(sql), {"body": body})  # type: ignore[attr-defined]

        db.write_sync(fill)
    finally:
        db.close()
    yield url


def test_every_migration_runs_from_0001_with_data(url_at_0001: str, tmp_path: Path) -> None:
    db = Database(url_at_0001)
    try:
        steps = db.read_sync(pending)
        every = [s.revision for s in scripts().walk_revisions("base", "heads")][::-1]
        assert [s.revision for s in steps] == every[1:] and steps[-1].revision == head()
        migrate.upgrade(db)
        assert db.read_sync(current) == head() and db.read_sync(pending) == []
        assert db.read_sync(trace_log.count) == 3
        cursor = db.read_sync(
            lambda c: c.execute(
                text("SELECT position FROM consumer_cursors WHERE name = 'notifier'")
            ).scalar()
        )
        assert cursor == 2
    finally:
        db.close()
    settings = Settings(data_dir=tmp_path / "node", database_url=url_at_0001)
    opened = open_store(settings)  # keys, sealing of the plain-text secret key, SMN signing key
    try:
        secret = opened.db.read_sync(
            lambda c: c.execute(text("SELECT secret_key FROM credentials WHERE access_key = 'AK1'")).scalar()
        )
        assert secret != "plain-secret", "the secret key stored in plain text is sealed on the first open"
    finally:
        opened.db.close()


def test_downgrade_and_unknown_revisions_are_refused(url_at_0001: str) -> None:
    db = Database(url_at_0001)
    try:
        migrate.upgrade(db, "0002")
        with pytest.raises(SchemaRevisionError, match="newer than 0001: a downgrade is refused"):
            migrate.upgrade(db, "0001")
        with pytest.raises(SchemaRevisionError, match="not a schema revision"):
            migrate.upgrade(db, "0xyz")
        db.write_sync(lambda c: c.execute(text("UPDATE alembic_version SET version_num = '9999'")))
        with pytest.raises(SchemaRevisionError, match="revision 9999, which OpenCTS .* does not know"):
            migrate.upgrade(db)
    finally:
        db.close()


def test_migrate_check_says_what_would_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        migrate.upgrade(db, "0001")
    finally:
        db.close()
    runner = CliRunner()
    checked = runner.invoke(app, ["migrate", "--check", "--data-dir", str(data_dir)])
    assert checked.exit_code == 3, checked.output  # pending: a script can tell
    assert f"schema revision 0001 -> {head()}: would run" in checked.output
    assert "0002  " in checked.output and f"{head()}  " in checked.output
    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        assert db.read_sync(current) == "0001", "--check changed nothing"
    finally:
        db.close()
    ran = runner.invoke(app, ["migrate", "--data-dir", str(data_dir)])
    assert ran.exit_code == 0 and f"schema revision {head()}" in ran.output, ran.output
    again = runner.invoke(app, ["migrate", "--check", "--data-dir", str(data_dir)])
    assert again.exit_code == 0 and "up to date" in again.output

    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        db.write_sync(lambda c: c.execute(text("UPDATE alembic_version SET version_num = '9999'")))
    finally:
        db.close()
    refused = runner.invoke(app, ["migrate", "--check", "--data-dir", str(data_dir)])
    assert refused.exit_code == 1 and "written by a newer OpenCTS" in refused.output

"""open_database: a data dir's database, private and at the current schema, with nothing else done."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import func, inspect, select

from opencts.config import Settings
from opencts.store import open_database
from opencts.store.tables import metadata, users


def test_a_fresh_data_dir_is_private_and_migrated_but_not_bootstrapped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db = open_database(Settings(data_dir=data_dir))
    try:
        assert set(metadata.tables) <= set(inspect(db.write_engine).get_table_names())
        assert db.read_sync(lambda c: c.execute(select(func.count()).select_from(users)).scalar()) == 0
    finally:
        db.close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert not (data_dir / "credentials.json").exists(), "accounts are opencts.opening's business"

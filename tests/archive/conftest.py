"""What the archive tests share: the database with two projects (``archive_world``) and an empty local
object store (a bucket is a folder under ``tmp_path/buckets``; tests create the buckets they need)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.archive_world import two_projects
from opencts.archive.storage import LocalStore
from opencts.store import Database


@pytest.fixture
def db(database: Database) -> Database:
    database.write_sync(two_projects)
    return database


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "buckets"
    root.mkdir()
    return LocalStore(root)

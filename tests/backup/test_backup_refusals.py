"""Backups of a data dir, in process: what the manifest holds, and every backup a restore refuses.

A restore must never lay a damaged, incomplete or foreign backup into a data dir, nor touch a data dir
that is not empty: each case below is refused with a sentence that names the problem, and the data dir is
left as it was.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cts_helpers import trace_row
from opencts.backup.manifest import MANIFEST, BackupError, Manifest
from opencts.backup.restore import restore
from opencts.backup.snapshot import take
from opencts.config import Settings
from opencts.opening import open_store
from opencts.store import trace_log
from opencts.store.revisions import head


@pytest.fixture
def node(tmp_path: Path) -> Settings:
    """A data dir made by a first start (keys, credentials), a few traces and a local archive file."""
    settings = Settings(data_dir=tmp_path / "data")
    opened = open_store(settings)
    try:
        rows = [trace_row(f"t{i}") for i in range(50)]
        opened.db.write_sync(lambda c: trace_log.append(c, rows))
    finally:
        opened.db.close()
    bucket = settings.data_dir / "buckets" / "audit" / "CloudTraces"
    bucket.mkdir(parents=True)
    (bucket / "file.json.gz").write_bytes(b"archived")
    return settings


def test_backup_holds_the_log_the_keys_and_the_archive(node: Settings, tmp_path: Path) -> None:
    manifest = take(node, tmp_path / "bk")
    paths = {e.path for e in manifest.files}
    assert {"opencts.db", "data/master.key", "data/credentials.json"} <= paths
    assert "data/buckets/audit/CloudTraces/file.json.gz" in paths
    assert not [p for p in paths if p.endswith(("-wal", "-shm", ".terms"))]
    assert manifest.schema_revision == head() and manifest.database == "sqlite"
    assert Manifest.read(tmp_path / "bk") == manifest
    raw = json.loads((tmp_path / "bk" / MANIFEST).read_text())
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in raw["files"])

    restored = Settings(data_dir=tmp_path / "restored")
    restore(tmp_path / "bk", restored)
    conn = sqlite3.connect(restored.data_dir / "opencts.db")
    assert conn.execute("SELECT count(*) FROM traces WHERE trace_id LIKE 't%'").fetchone()[0] == 50
    conn.close()
    assert (restored.data_dir / "master.key").read_bytes() == (node.data_dir / "master.key").read_bytes()
    assert (restored.data_dir / "buckets/audit/CloudTraces/file.json.gz").read_bytes() == b"archived"
    assert (restored.data_dir / "master.key").stat().st_mode & 0o777 == 0o600
    open_store(restored).db.close()  # the restored node opens with its own keys


def _refused(source: Path, settings: Settings, match: str) -> None:
    with pytest.raises(BackupError, match=match):
        restore(source, settings)
    data_dir = settings.data_dir
    assert not data_dir.exists() or not any(data_dir.iterdir()), "a refused restore wrote something"


def test_damaged_incomplete_and_foreign_backups_are_refused(node: Settings, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    take(node, bk)
    target = Settings(data_dir=tmp_path / "target")

    db = bk / "opencts.db"
    original = db.read_bytes()
    db.write_bytes(original[:4096] + bytes([original[4096] ^ 1]) + original[4097:])
    _refused(bk, target, "damaged: opencts.db does not match its SHA-256")
    db.write_bytes(original[:-4096])
    _refused(bk, target, "damaged: opencts.db has")
    db.write_bytes(original)

    key = bk / "data" / "master.key"
    key_bytes = key.read_bytes()
    key.unlink()
    _refused(bk, target, "incomplete: data/master.key is missing")
    key.write_bytes(key_bytes)

    manifest = (bk / MANIFEST).read_text()
    (bk / MANIFEST).write_text(manifest[: len(manifest) // 2])
    _refused(bk, target, "manifest.json is damaged")
    (bk / MANIFEST).unlink()
    _refused(bk, target, "no manifest.json: the backup is incomplete")
    newer = manifest.replace(f'"schema_revision": "{head()}"', '"schema_revision": "9999"')
    (bk / MANIFEST).write_text(newer)
    _refused(bk, target, "schema revision 9999, which OpenCTS .* does not know")
    (bk / MANIFEST).write_text(manifest)

    target.data_dir.mkdir()
    (target.data_dir / "something").write_text("x")
    with pytest.raises(BackupError, match="is not empty"):
        restore(bk, target)
    (target.data_dir / "something").unlink()
    restore(bk, target)  # whole again: restored


def test_a_backup_goes_into_a_new_directory(node: Settings, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not an empty directory"):
        take(node, tmp_path / "full")
    with pytest.raises(BackupError, match="inside the data dir"):
        take(node, node.data_dir / "bk")


def test_a_backup_cut_short_has_no_manifest(node: Settings, tmp_path: Path) -> None:
    """The manifest is written last: a backup interrupted before it is never taken for a whole one."""
    calls = 0

    def interrupt(what: str, done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if what == "files":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        take(node, tmp_path / "bk", interrupt)
    assert calls and not (tmp_path / "bk" / MANIFEST).exists()
    _refused(tmp_path / "bk", Settings(data_dir=tmp_path / "t"), "incomplete")


def test_schema_revision_is_read_from_the_snapshot(node: Settings, tmp_path: Path) -> None:
    manifest = take(node, tmp_path / "bk")
    conn = sqlite3.connect(tmp_path / "bk" / "opencts.db")
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == manifest.schema_revision
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    conn.close()

"""``opencts backup``: a consistent copy of a running node's data dir, taken while ingest goes on.

The SQLite log is copied with SQLite's online backup API from a connection that holds one read
transaction from the first page to the last. In WAL mode that transaction sees one snapshot of the
database and never blocks the writer, and since the snapshot cannot change under it the backup never
restarts, however fast traces arrive: the copy is the database exactly as it was at one commit. It
goes a few thousand pages a step, so progress can be shown; the WAL grows meanwhile (the checkpointer
cannot pass the snapshot) and is cut back once the backup ends.

Everything else in the data dir that matters is copied after it: the master key and KMS master key
files, ``credentials.json``, keys left by earlier versions, and the local archive store
(``DATA_DIR/buckets``). Archive files written after the database snapshot are left out: the snapshot
does not know them, and after a restore the transfer writes them again from its cursor, exactly as
after a crash between a file's upload and its record. Derived files (the term index's ``.terms``
snapshot) are left out too: the restored node rebuilds them.

With PostgreSQL the database is ``pg_dump``'s (docs/backup.md); this command then backs up the rest of
the data dir and records the schema revision the dump must be at.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from opencts import __version__
from opencts.backup.manifest import CHUNK, BackupError, Entry, Manifest, Progress, sha256_file
from opencts.config import Settings
from opencts.store.files import DIR_MODE, open_private, private_dir

#: the log's name inside a backup, whatever it was called in the data dir
DATABASE = "opencts.db"
#: pages copied per backup step: 32 MiB at SQLite's default 4 KiB page
STEP_PAGES = 8192
#: SQLite's companions of a database file, and derived files, which a backup never copies
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".terms")


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(url.database)


def _empty_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not an empty directory: a backup goes into a new one")
    private_dir(target)


def copy_sqlite(source: Path, dest: Path, progress: Progress | None = None) -> tuple[str | None, float]:
    """Copy the database at ``source`` to ``dest`` as of one snapshot; returns its schema revision and time.

    The time is that of the snapshot (seconds since the epoch): files written after it are not in it.
    """
    if not source.exists():
        raise BackupError(f"there is no database at {source}: nothing to back up")
    src = sqlite3.connect(source, isolation_level=None, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.execute("BEGIN")  # the snapshot starts at the first read and lasts until COMMIT
        taken_at = time.time()
        revision = _revision(src)
        page_size = src.execute("PRAGMA page_size").fetchone()[0]
        with open_private(dest, exclusive=True):
            pass  # created 0600 before SQLite writes a byte of it
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            # a half-written copy is worthless anyway (no manifest names it): no journal, no syncs while
            # pages are copied; the file is synced once at the end
            dst.execute("PRAGMA journal_mode=OFF")
            dst.execute("PRAGMA synchronous=OFF")

            def step(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress("database", (total - remaining) * page_size, total * page_size)

            src.backup(dst, pages=STEP_PAGES, progress=step)
            src.execute("COMMIT")
            # one self-contained file: the WAL flag in the copied header is turned back to a rollback journal
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the database {source} could not be copied: {exc}") from None
    finally:
        src.close()
    return revision, taken_at


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # never migrated
        return None
    return str(row[0]) if row else None


def _data_files(data_dir: Path, database: Path | None) -> Iterator[Path]:
    """The files of the data dir a backup keeps, in a stable order; the database's own are not among them."""
    skip_names = set()
    if database is not None and database.parent.resolve() == data_dir.resolve():
        skip_names = {database.name + s for s in ("", *SKIPPED_SUFFIXES)}
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if name in skip_names or name.endswith(SKIPPED_SUFFIXES) or path.is_symlink():
                continue
            yield path


def copy_file(source: Path, dest: Path, on_bytes: Progress, done: int, total: int) -> tuple[int, str]:
    """Copy one file, hashing it as it is read; returns its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with source.open("rb") as src, open_private(dest, exclusive=True) as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            on_bytes("files", done + size, total)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _notes(settings: Settings) -> list[str]:
    """What the backup does not hold and a restore needs: keys kept outside the data dir, other stores."""
    notes = []
    outside = [
        ("OPENCTS_MASTER_KEY", settings.master_key is not None),
        (f"OPENCTS_MASTER_KEY_FILE ({settings.master_key_file})", settings.master_key_file is not None),
        ("OPENCTS_KMS_MASTER_KEY", settings.kms_master_key is not None),
        (
            f"OPENCTS_KMS_MASTER_KEY_FILE ({settings.kms_master_key_file})",
            settings.kms_master_key_file is not None,
        ),
    ]
    for name, given in outside:
        if given:
            notes.append(f"{name} is not in this backup: keep it apart; the restored node needs it")
    if settings.storage_url is not None:
        notes.append(
            f"the archive store {settings.storage_url} is not in this backup: back it up with the store's"
            " own means (its files and digests are already there, written once and never changed)"
        )
    return notes


def take(settings: Settings, target: Path, progress: Progress | None = None) -> Manifest:
    """Back up the node ``settings`` describe into the new directory ``target``; returns its manifest."""

    def report(what: str, done: int, total: int) -> None:
        if progress is not None:
            progress(what, done, total)

    data_dir = settings.data_dir
    if not data_dir.is_dir():
        raise BackupError(f"the data dir {data_dir} does not exist")
    if target.resolve() == data_dir.resolve() or data_dir.resolve() in target.resolve().parents:
        raise BackupError("a backup cannot go inside the data dir it backs up")
    _empty_target(target)
    database = sqlite_path(settings)
    manifest = Manifest(
        opencts_version=__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database="sqlite" if database is not None else "postgresql",
        schema_revision=None,
        sqlite_version=sqlite3.sqlite_version if database is not None else None,
        notes=_notes(settings),
    )
    if database is not None:
        revision, taken_at = copy_sqlite(database, target / DATABASE, report)
        manifest.schema_revision = revision
        size = (target / DATABASE).stat().st_size
        hashed = 0

        def hashing(n: int) -> None:
            nonlocal hashed
            hashed += n
            report("checksum", hashed, size)

        # the copy is synced to disk while it is read back for its checksum (both about as long)
        with ThreadPoolExecutor(1) as syncing:
            synced = syncing.submit(_fsync, target / DATABASE)
            manifest.files.append(Entry(DATABASE, size, sha256_file(target / DATABASE, hashing)))
            synced.result()
    else:
        manifest.schema_revision = postgres_revision(settings)
        taken_at = time.time()
        manifest.notes.append(
            "the PostgreSQL database is not in this backup: take it with pg_dump (docs/backup.md)"
            f" and restore it at schema revision {manifest.schema_revision}"
        )
    buckets = data_dir / "buckets"
    files = [
        p
        for p in _data_files(data_dir, database)
        # archive files newer than the snapshot are unknown to it; the transfer writes them again
        if buckets not in p.parents or p.stat().st_mtime <= taken_at
    ]
    total = sum(p.stat().st_size for p in files)
    done = 0
    for path in files:
        rel = path.relative_to(data_dir).as_posix()
        size, sha = copy_file(path, target / "data" / rel, report, done, total)
        done += size
        manifest.files.append(Entry(f"data/{rel}", size, sha))
    manifest.write(target)
    return manifest


def postgres_revision(settings: Settings) -> str | None:
    """The schema revision of the PostgreSQL database the settings name; None when it has no schema."""
    from opencts.store.database import Database
    from opencts.store.revisions import current

    db = Database(settings.resolved_database_url)
    try:
        return db.read_sync(current)
    finally:
        db.close()

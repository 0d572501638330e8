"""``opencts restore``: a backup laid into an empty data dir, once it is known whole and usable.

Nothing is written before the backup has been checked end to end: the manifest present and readable,
every file it names present with its size and SHA-256, the schema revision one this version of OpenCTS
can open (an older one is migrated forward on the first start), and the database kind the one the
settings name. A restore cut short removes what it wrote, so the data dir is left as empty as it was.

The restored database holds every consumer's cursor (notifier, retention, transfer, triggers...), the
SMN delivery queue and the archive's digest chain as they were at the snapshot, so the node resumes from
there: what was already alarmed or invoked is not done again, and the next digest links to the last one.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from opencts.backup.manifest import BackupError, Manifest, Progress, verify
from opencts.backup.snapshot import DATABASE, copy_file, postgres_revision, sqlite_path
from opencts.config import Settings
from opencts.store.files import private_dir


def _check_revision(revision: str | None) -> None:
    from opencts.store.revisions import known, unknown_message

    if revision is not None and not known(revision):
        raise BackupError(unknown_message(revision))


def _check_restored_database(settings: Settings) -> None:
    """The files of a PostgreSQL node go with its pg_dump: keys and cursors without the database they
    belong to would start a node that cannot read its own secrets, so the dump must be restored first."""
    try:
        revision = postgres_revision(settings)
    except Exception as exc:  # unreachable, refused, no such database: the operator's to fix
        raise BackupError(f"cannot read the database named by OPENCTS_DATABASE_URL: {exc}") from None
    if revision is None:
        raise BackupError(
            "the database named by OPENCTS_DATABASE_URL is empty: restore the backup's pg_dump into it first"
            " (pg_restore, docs/backup.md), then run this restore again"
        )


def _check_database(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        result = str(exc)
    if result != "ok":
        raise BackupError(f"the backup's database is damaged ({result}): refused")


def check(source: Path, settings: Settings, progress: Progress | None = None) -> Manifest:
    """Everything a restore checks before writing anything; returns the manifest. BackupError if refused."""
    manifest = Manifest.read(source)
    database = sqlite_path(settings)
    if manifest.database == "sqlite" and database is None:
        raise BackupError(
            "this backup holds a SQLite database, but OPENCTS_DATABASE_URL names PostgreSQL: unset it to"
            " restore into the data dir"
        )
    if manifest.database == "postgresql" and database is not None:
        raise BackupError(
            "this backup was taken on PostgreSQL: restore its pg_dump first (docs/backup.md), then run"
            " the restore with OPENCTS_DATABASE_URL naming that database"
        )
    if manifest.database == "postgresql":
        _check_restored_database(settings)
    if manifest.database == "sqlite" and not any(e.path == DATABASE for e in manifest.files):
        raise BackupError(f"the backup is incomplete: its manifest names no {DATABASE}")
    _check_revision(manifest.schema_revision)
    verify(source, manifest, progress)
    if manifest.database == "sqlite":
        _check_database(source / DATABASE)
    return manifest


def _empty_data_dir(settings: Settings) -> None:
    data_dir = settings.data_dir
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"the data dir {data_dir} is not empty: a restore goes into an empty one")
    database = sqlite_path(settings)
    if database is not None and database.exists():
        raise BackupError(f"{database} exists: a restore never overwrites a database")


def _undo(data_dir: Path, created: bool, written: list[Path]) -> None:
    """Take back what a restore cut short wrote: the data dir is left as empty as it was found."""
    if created:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for path in written:
        path.unlink(missing_ok=True)
    for child in data_dir.iterdir():  # directories the copy made
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


def restore(source: Path, settings: Settings, progress: Progress | None = None) -> Manifest:
    """Restore the backup at ``source`` into the (empty or missing) data dir of ``settings``."""
    _empty_data_dir(settings)
    manifest = check(source, settings, progress)
    data_dir, database = settings.data_dir, sqlite_path(settings)
    created = not data_dir.exists()
    private_dir(data_dir)
    written: list[Path] = []

    def report(what: str, done: int, total: int) -> None:
        if progress is not None:
            progress("restoring", done, total)

    try:
        done = 0
        for entry in manifest.files:
            dest = database if entry.path == DATABASE and database else data_dir / entry.path[len("data/") :]
            written.append(dest)
            size, sha = copy_file(source / entry.path, dest, report, done, manifest.total_bytes)
            if sha != entry.sha256:  # changed since it was verified
                raise BackupError(f"the backup is damaged: {entry.path} changed while it was restored")
            done += size
    except BaseException:
        _undo(data_dir, created, written)
        raise
    return manifest

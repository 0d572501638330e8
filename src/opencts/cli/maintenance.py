"""An operator's commands that work on the data dir itself: ``migrate``, ``backup`` and ``restore``.

They run beside a live server (``migrate --check``, ``backup``) or before it starts (``restore``,
``migrate``), on the data dir and database the same settings as ``opencts serve`` name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from opencts.cli.client import CliError
from opencts.cli.common import console, err

if TYPE_CHECKING:
    from opencts.backup.manifest import Progress as ProgressFn
    from opencts.config import Settings

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (OPENCTS_DATA_DIR, default ./data).")
]


def _settings(data_dir: Path | None) -> Settings:
    from pydantic import ValidationError

    from opencts.config import Settings

    overrides: dict[str, object] = {} if data_dir is None else {"data_dir": data_dir}
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid setting: {problems}") from None


@contextmanager
def _bars() -> Iterator[ProgressFn]:
    """Rich progress bars on stderr, one per phase (database, checksum, files, verifying)."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=not err.is_terminal,
    ) as bars:

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

        yield update


def backup(
    path: Annotated[Path, typer.Argument(help="A new (or empty) directory for the backup.")],
    data_dir: DataDir = None,
) -> None:
    """Back up the data dir (SQLite log, keys, local archive) while the server runs, with a manifest."""
    from opencts.backup.manifest import BackupError
    from opencts.backup.snapshot import take

    settings = _settings(data_dir)
    try:
        with _bars() as progress:
            manifest = take(settings, path, progress)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    size = manifest.total_bytes / 1e6
    console.print(
        f"backup: {len(manifest.files)} files, {size:.1f} MB, schema revision {manifest.schema_revision}"
        f" -> {path}",
        markup=False,
    )
    for note in manifest.notes:
        err.print(f"note: {note}", markup=False)


def restore(
    path: Annotated[Path, typer.Argument(help="A backup directory made by `opencts backup`.")],
    data_dir: DataDir = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the backup (manifest, sizes, checksums).")
    ] = False,
) -> None:
    """Restore a backup into an empty data dir; a damaged or incomplete backup is refused."""
    from opencts.backup import restore as restoring
    from opencts.backup.manifest import BackupError

    settings = _settings(data_dir)
    try:
        with _bars() as progress:
            if check:
                manifest = restoring.check(path, settings, progress)
            else:
                manifest = restoring.restore(path, settings, progress)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    verb = "is whole" if check else f"restored into {settings.data_dir}"
    console.print(
        f"backup of {manifest.created_at} (OpenCTS {manifest.opencts_version}, schema revision"
        f" {manifest.schema_revision}) {verb}: {len(manifest.files)} files",
        markup=False,
    )
    for note in manifest.notes:
        err.print(f"note: {note}", markup=False)


def migrate(
    data_dir: DataDir = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only say what would run; change nothing. Exits 3 when migrations are pending.",
        ),
    ] = False,
) -> None:
    """Bring the database's schema to this version's (the server also does it on start)."""
    from opencts.store import migrate as migrating
    from opencts.store.database import Database
    from opencts.store.revisions import SchemaRevisionError, current, head, pending

    settings = _settings(data_dir)
    if settings.database_url is None and not (settings.data_dir / "opencts.db").exists():
        raise CliError(f"there is no database in {settings.data_dir}: `opencts serve` creates one")
    db = Database(settings.resolved_database_url, data_dir=settings.data_dir)
    try:
        at = db.read_sync(current)
        try:
            steps = db.read_sync(pending)
        except SchemaRevisionError as exc:
            raise CliError(str(exc)) from None
        if not steps:
            console.print(f"schema revision {at}: up to date (head {head()})", markup=False)
            return
        verb = "would run" if check else "running"
        console.print(f"schema revision {at or '(empty)'} -> {head()}: {verb} {len(steps)}", markup=False)
        for step in steps:
            console.print(f"  {step.revision}  {step.summary}", markup=False, highlight=False)
        if check:  # a deployment script can gate on it: 0 up to date, 3 pending, 1 refused
            raise typer.Exit(3)
        migrating.upgrade(db)
        console.print(f"schema revision {db.read_sync(current)}", markup=False)
    finally:
        db.close()

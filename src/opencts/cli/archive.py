"""``opencts archive query "SQL"``: SQL over archived trace files, run on this machine with no server.

``opencts archive keys`` lists (through the API) the keys that sign digests and checkpoints;
``opencts archive status`` and ``opencts archive files`` show (through the API) how far each tracker's
transfer is behind the log and which files it wrote; ``opencts archive verifications`` runs and lists the
server's verifications of a tracker's archive (``cli/archive_verifications.py``).

The settings name the database (trackers, and the key service for encrypted files) and the object store;
the files are read, decrypted and loaded into DuckDB here (``opencts.archive.query``), with a progress bar
over the bytes read. Trusted like any local tool with the data dir: every project's trackers are read
unless ``--tracker``/``--bucket`` narrow it, and the SQL is not sandboxed (the API's is).
"""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opencts.cli.archive_verifications import app as verifications_app
from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import (
    CliGroup,
    Column,
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    err,
    fit_table,
    print_json,
    session,
)
from opencts.cli.timeparse import format_ms, parse_time
from opencts.clock import DAY_MS, now_ms

if TYPE_CHECKING:
    from opencts.archive.query import ArchiveQuery, Source, Unwrap
    from opencts.config import Settings
    from opencts.store import Database

app = typer.Typer(
    cls=CliGroup, help="The trace archive: SQL over archived trace files.", no_args_is_help=True
)


keys_app = typer.Typer(help="The keys that sign checkpoints and digests.")
app.add_typer(keys_app, name="keys")
app.add_typer(verifications_app, name="verifications")


@keys_app.callback(invoke_without_command=True)
def keys(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Write the published keys (JSON) to this file.")] = None,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the published signing keys (the verifier's --keys file), or write them with --output."""
    if ctx.invoked_subcommand is not None:
        return
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        doc = client.request("GET", f"/v3/{client.project}/archive/signing-keys").json()
    text = json.dumps(doc, indent=2) + "\n"
    if output is None:
        console.print(text, end="", markup=False, highlight=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"{len(doc['keys'])} key(s) written to {output}", markup=False)


@keys_app.command("rotate")
def rotate(endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Retire the current signing key now; a new one signs from now on (old ones stay published)."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        doc = client.request("POST", f"/v3/{client.project}/archive/signing-keys/rotate").json()
    console.print(f"current signing key: {doc['current']}", markup=False)


STATUS_COLUMNS = (
    Column("Tracker"),
    Column("Bucket", shrink=8),
    Column("Status"),
    Column("Lag (traces)"),
    Column("Lag (s)"),
    Column("Transferred seq", drop=3),
    Column("Head seq", drop=3),
    Column("Files", drop=2),
    Column("Bytes", drop=2),
    Column("Checkpoint", drop=4),
    Column("Digest head (UTC)", drop=5),
    Column("Last error", drop=1, shrink=12, wrap=True),
)
FILE_COLUMNS = (
    Column("Key", shrink=24, wrap=True),
    Column("Traces"),
    Column("Bytes"),
    Column("SHA-256", drop=1),
    Column("Written (UTC)", drop=2),
)


def _time(ms: int | None) -> str:
    return format_ms(ms) if ms is not None else "-"


def _status_row(t: dict[str, Any]) -> list[str]:
    error = t["detail"] or ""
    if t["message"]:
        error += f": {t['message']}"
    if t["error_since_ms"] is not None and t["detail"]:
        error += f" (since {format_ms(t['error_since_ms'])})"
    point = t["ledger"]["checkpoint_size"]
    head = t["digest_head"]
    return [
        escape(t["tracker_name"]),
        escape(t["bucket_name"]),
        t["status"],
        str(t["lag_traces"]),
        f"{t['lag_seconds']:.1f}",
        str(t["transferred_seq"]),
        str(t["head_seq"]),
        str(t["files_written"]),
        str(t["bytes_written"]),
        "-" if point is None else str(point),
        "-" if head is None else _time(head["hour_ms"]),
        escape(error) or "-",
    ]


@app.command("status")
def status(
    tracker: Annotated[str | None, typer.Option(help="Only this tracker.")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Each tracker's transfer: lag behind the log head, files written, the last error, ledger and digests."""
    with session(endpoint, data_dir) as client:
        params = {"tracker_name": tracker} if tracker else None
        doc = client.request("GET", f"/v3/{client.project}/archive/status", params=params).json()
    if as_json:
        print_json(doc)
        return
    rows = [_status_row(t) for t in doc["trackers"]]
    console.print(fit_table(STATUS_COLUMNS, rows, title=f"{len(rows)} tracker(s) with a bucket"))


@app.command("files")
def files(
    tracker: Annotated[str, typer.Option(help="The tracker whose files to list.")],
    day: Annotated[str | None, typer.Option(help="Only the files of this UTC day (YYYY-MM-DD).")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the trace files a tracker's transfer wrote: key, traces, bytes, SHA-256."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"tracker_name": tracker, **({"day": day} if day else {})}
    with session(endpoint, data_dir) as client:
        while True:
            page = client.request("GET", f"/v3/{client.project}/archive/files", params=params).json()
            found.extend(page["files"])
            if page["next_marker"] is None:
                break
            params["marker"] = page["next_marker"]
    if as_json:
        print_json({"files": found})
        return
    rows = [
        [escape(f["object_key"]), str(f["trace_count"]), str(f["size"]), f["sha256"], _time(f["written_at"])]
        for f in found
    ]
    total = sum(f["trace_count"] for f in found)
    console.print(fit_table(FILE_COLUMNS, rows, title=f"{len(rows)} file(s), {total} trace(s)"))


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command("query")
def query_command(
    sql: Annotated[str, typer.Argument(help="One SQL statement over the table `traces`.")],
    tracker: Annotated[
        str | None, typer.Option(help="Only this tracker's files (default every tracker).")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(help="Only this bucket (a bucket no tracker names: every trace file in it).")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start: ms, ISO 8601 or 30d ago (default 30 days before --to)."),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End (exclusive), default now.")] = None,
    output: Annotated[
        Format, typer.Option("--format", help="table, json (one object a line) or csv.")
    ] = Format.table,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many rows.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (OPENCTS_DATA_DIR).")] = None,
) -> None:
    """Run SQL through DuckDB over the archived trace files of a date range, decrypting as needed."""
    from opencts.archive import query
    from opencts.config import Settings
    from opencts.store.opening import open_database

    now = now_ms()
    try:
        end = parse_time(to, now) if to else now + 1
        start = parse_time(from_, now) if from_ else end - 30 * DAY_MS
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if start >= end:
        raise CliError("--from must be before --to")
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    db = open_database(settings)
    try:
        sources = _sources(db, tracker, bucket)
        with query.ArchiveQuery() as run:
            try:
                run.check(sql)
            except query.QueryError as exc:
                raise CliError(exc.message) from None
            _load(run, settings, db, sources, start, end)
            try:
                result = run.run(sql)
                rows = islice(result.rows, limit) if limit else result.rows
                _print(output, result.columns, rows)
            except query.QueryError as exc:
                raise CliError(exc.message) from None
    finally:
        db.close()


def _sources(db: Database, tracker: str | None, bucket: str | None) -> list[Source]:
    from opencts.archive import planner, query

    found = query.pick_sources(db.read_sync(planner.targets), project_id=None, tracker=tracker)
    if bucket is not None:
        found = [s for s in found if s.bucket == bucket] or ([] if tracker else [query.Source(bucket)])
    if not found:
        raise CliError(
            "no tracker transfers to a bucket"
            + (f" named {bucket}" if bucket else "")
            + (f" under the name {tracker}" if tracker else "")
        )
    return found


def _unwrap(db: Database, settings: Settings) -> Unwrap | None:
    """The key service's unwrap, or None when its master key cannot be opened (then encrypted files fail)."""
    from opencts.iam.secrets import MasterKeyError
    from opencts.kms.service import KeyService, open_box

    try:
        return KeyService(db, open_box(db, settings)).unwrap
    except MasterKeyError:
        return None


def _load(
    run: ArchiveQuery, settings: Settings, db: Database, sources: list[Source], start: int, end: int
) -> None:
    from opencts.archive import query
    from opencts.archive.storage import StorageError, open_store

    try:
        store = open_store(settings)
        files = query.pick_files(
            store,
            sources,
            region=settings.region,
            start_ms=start,
            end_ms=end,
            late_ms=settings.retention_ms + DAY_MS,
        )
    except StorageError as exc:
        raise CliError(str(exc)) from None
    unwrap = _unwrap(db, settings) if any(f.key.encrypted for f in files) else None
    with Progress(
        TextColumn("loading {task.fields[count]} files"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("load", total=sum(f.size for f in files), count=len(files))
        try:
            run.load(
                store,
                files,
                start_ms=start,
                end_ms=end,
                unwrap=unwrap,
                progress=lambda n: progress.advance(task, n),
            )
        except query.QueryError as exc:
            raise CliError(exc.message) from None


def _print(output: Format, columns: list[str], rows: Any) -> None:
    from opencts.archive.query import jsonable

    if output is Format.json:
        for row in rows:
            sys.stdout.write(
                json.dumps(dict(zip(columns, map(jsonable, row), strict=True)), ensure_ascii=False)
            )
            sys.stdout.write("\n")
    elif output is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(_cell(v) for v in row))

        console.print(table)


def _cell(value: Any) -> str:
    from opencts.archive.query import jsonable

    value = jsonable(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _register_verify() -> None:
    """``opencts archive verify`` is ``opencts verify``, beside the archive's other commands."""
    from opencts.cli.verify import verify

    app.command("verify")(verify)


_register_verify()

"""``opencts import cloudtrail|cts FILE|DIR``: another trail's files, sent through the signed ingest API.

Traces go in batches within the API's limits (1,000 traces, 5 MiB), each trace with a stable id
(CloudTrail's ``eventID``, CTS's ``trace_id``), so an import interrupted or run twice adds each trace
once: the second run reports them as duplicates. Traces older than the retention window are refused
by ingest as always; they are counted apart, since an old trail holds many and nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import DataDirOpt, EndpointOpt, console, err
from opencts.importers import cloudtrail, cts
from opencts.importers.files import ImportFileError, find, read_json
from opencts.traces.ingest import MAX_BATCH_BYTES, MAX_BATCH_TRACES

app = typer.Typer(help="Import traces: CloudTrail log files, CTS trace files.", no_args_is_help=True)
TOO_OLD = "older than the retention window"
SourceArg = Annotated[Path, typer.Argument(help="A file, or a folder searched for .json and .json.gz files.")]


@dataclass(frozen=True)
class Format:
    name: str
    extract: Callable[[Path, Any], list[Any]]
    to_trace: Callable[[Any], dict[str, Any]]
    exclude: tuple[str, ...] = ()


CLOUDTRAIL = Format("CloudTrail", cloudtrail.extract, cloudtrail.to_trace, ("CloudTrail-Digest",))
CTS = Format("CTS", cts.extract, cts.to_trace, cts.EXCLUDE)


@dataclass
class Totals:
    accepted: int = 0
    duplicates: int = 0
    too_old: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)


class Sender:
    """Collects traces into batches within the API's limits and posts each one."""

    def __init__(self, client: ApiClient, totals: Totals) -> None:
        self.client = client
        self.totals = totals
        self._traces: list[bytes] = []
        self._labels: list[str] = []
        self._size = 64

    def add(self, trace: dict[str, Any], label: str) -> None:
        encoded = orjson.dumps(trace)
        if self._traces and (
            len(self._traces) >= MAX_BATCH_TRACES or self._size + len(encoded) + 1 > MAX_BATCH_BYTES
        ):
            self.flush()
        self._traces.append(encoded)
        self._labels.append(label)
        self._size += len(encoded) + 1

    def flush(self) -> None:
        if not self._traces:
            return
        body = b'{"traces":[' + b",".join(self._traces) + b"]}"
        resp = self.client.post_raw(f"/v3/{self.client.project}/traces", body)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or "results" not in data:
            ApiClient.check(resp)
            raise CliError(f"unexpected answer from {self.client.target.endpoint}: HTTP {resp.status_code}")
        t = self.totals
        t.accepted += data["accepted"]
        t.duplicates += data["duplicates"]
        for result in data["results"]:
            if result["status"] != "rejected":
                continue
            reason = str(result.get("reason", ""))
            if TOO_OLD in reason:
                t.too_old += 1
            else:
                t.rejected.append((self._labels[result["index"]], reason))
        self._traces, self._labels, self._size = [], [], 64


def run_import(source: Path, fmt: Format, endpoint: str | None, data_dir: Path | None) -> Totals:
    try:
        found = find(source, exclude=fmt.exclude)
    except ImportFileError as exc:
        raise CliError(str(exc)) from None
    if not found.files:
        raise CliError(f"no .json or .json.gz files in {source}")
    totals = Totals()
    with (
        ApiClient(resolve_target(endpoint, data_dir)) as client,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress,
    ):
        task = progress.add_task(f"importing {fmt.name} files", total=found.total_bytes)
        sender = Sender(client, totals)
        for path in found.files:
            _read_file(path, fmt, sender, totals)
            progress.update(task, advance=path.stat().st_size, description=f"{path.name[:40]}")
        sender.flush()
    _report(fmt, found.files, found.skipped, totals)
    return totals


def _read_file(path: Path, fmt: Format, sender: Sender, totals: Totals) -> None:
    try:
        items = fmt.extract(path, read_json(path))
    except ImportFileError as exc:
        totals.bad_files.append(str(exc))
        return
    for index, item in enumerate(items):
        label = f"{path.name}#{index}"
        try:
            trace = fmt.to_trace(item)
        except ValueError as exc:
            totals.rejected.append((label, str(exc)))
            continue
        sender.add(trace, label)


def _report(fmt: Format, files: list[Path], skipped: list[Path], t: Totals) -> None:
    console.print(
        f"{fmt.name}: {len(files)} files, imported [green]{t.accepted}[/green], already there {t.duplicates},"
        f" older than the retention window {t.too_old}, rejected [red]{len(t.rejected)}[/red]"
    )
    if skipped:
        console.print(f"  skipped {len(skipped)} files that are not .json/.json.gz trace files", markup=False)
    for problem in t.bad_files[:20]:
        console.print(f"  {problem}", markup=False)
    for label, reason in t.rejected[:20]:
        console.print(f"  {label}: {reason}", markup=False)
    if t.too_old:
        console.print("  (OPENCTS_RETENTION_DAYS sets how far back the trace list reaches)", markup=False)


def _exit_code(totals: Totals) -> None:
    if totals.rejected or totals.bad_files:
        raise typer.Exit(1)


@app.command("cloudtrail")
def import_cloudtrail(source: SourceArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """CloudTrail log files ({"Records": [...]}, .json or .json.gz); eventID is the trace id."""
    _exit_code(run_import(source, CLOUDTRAIL, endpoint, data_dir))


@app.command("cts")
def import_cts(source: SourceArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """CTS trace files (from OBS, or written by OpenCTS's transfer); trace_id is kept."""
    _exit_code(run_import(source, CTS, endpoint, data_dir))

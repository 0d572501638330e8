"""``opencts traces put|list|export``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import Column, DataDirOpt, EndpointOpt, console, err, fit_table
from opencts.cli.timeparse import format_ms, parse_time
from opencts.clock import now_ms
from opencts.traces.ingest import MAX_BATCH_BYTES, MAX_BATCH_TRACES
from opencts.traces.submitter import label_of

app = typer.Typer(help="Send, list and export traces.", no_args_is_help=True)


def load_traces(source: str) -> list[Any]:
    """JSON (an array, one trace, or ``{"traces": [...]}``) or NDJSON, from a file or ``-``."""
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise CliError(f"{source} is neither JSON nor NDJSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("traces"), list):
        return list(doc["traces"])
    return doc if isinstance(doc, list) else [doc]


def batches(items: list[Any]) -> Iterator[list[Any]]:
    """Batches within the API's limits (1,000 traces, 5 MiB)."""
    batch: list[Any] = []
    size = 64
    for item in items:
        item_size = len(orjson.dumps(item)) + 1
        if batch and (len(batch) >= MAX_BATCH_TRACES or size + item_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 64
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def send(client: ApiClient, items: list[Any], *, label: str = "sending traces") -> dict[str, Any]:
    totals: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": 0, "reasons": []}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,  # the summary line follows; an error stays the only line
        disable=not err.is_terminal,  # a bar is for people watching; a log gets the summary
    ) as progress:
        task = progress.add_task(label, total=len(items))
        offset = 0
        for batch in batches(items):
            resp = client.post_raw(f"/v3/{client.project}/traces", orjson.dumps({"traces": batch}))
            try:
                data = resp.json()
            except ValueError:
                data = {}
            if not isinstance(data, dict) or "results" not in data:
                ApiClient.check(resp)
                raise CliError(f"unexpected answer from {client.target.endpoint}: HTTP {resp.status_code}")
            for key in ("accepted", "duplicates", "rejected"):
                totals[key] += data[key]
            totals["reasons"].extend(
                (offset + r["index"], r.get("reason", ""))
                for r in data["results"]
                if r["status"] == "rejected"
            )
            offset += len(batch)
            progress.advance(task, len(batch))
    return totals


@app.command("put")
def put(
    source: Annotated[str, typer.Argument(help="A JSON or NDJSON file of traces, or - for standard input.")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Send traces (batched, idempotent: sending the same file twice adds nothing)."""
    items = load_traces(source)
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        totals = send(client, items)
    console.print(
        f"accepted [green]{totals['accepted']}[/green], duplicates {totals['duplicates']}, "
        f"rejected [red]{totals['rejected']}[/red]"
    )
    for index, reason in totals["reasons"][:20]:
        console.print(f"  trace #{index}: {reason}")
    if totals["rejected"]:
        raise typer.Exit(1)


def _params(
    trace_type: str, since: str | None, until: str | None, filters: dict[str, str | None]
) -> dict[str, Any]:
    now = now_ms()
    params: dict[str, Any] = {"trace_type": trace_type}
    try:
        if since:
            params["from"] = parse_time(since, now)
        if until:
            params["to"] = parse_time(until, now)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    params.update({k: v for k, v in filters.items() if v})
    return params


FilterOpt = Annotated[str | None, typer.Option()]

#: who did what, when, and how it went stay; where from and the fine detail go first on a narrow terminal
TRACE_COLUMNS = (
    Column("Time (UTC)"),
    Column("Trace", shrink=10),
    Column("Service", shrink=7),
    Column("Resource type", drop=4),
    Column("Resource", shrink=8),
    Column("User", shrink=7),
    Column("Source IP", drop=3),
    Column("Code", drop=2),
    Column("Rating"),
    Column("Submitter", drop=5, shrink=10),
)


@app.command("list")
def list_(
    trace_type: Annotated[str, typer.Option(help="system or data")] = "system",
    since: Annotated[str | None, typer.Option("--from", help="Start (ms, ISO 8601, or 2h/7d ago).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="End (ms, ISO 8601, or 2h ago).")] = None,
    limit: Annotated[int, typer.Option(help="Traces per page (1-200).")] = 10,
    next_: Annotated[str | None, typer.Option("--next", help="Marker from the previous page.")] = None,
    pages: Annotated[int, typer.Option(help="Follow markers for this many pages.")] = 1,
    tracker_name: FilterOpt = None,
    service_type: FilterOpt = None,
    user: FilterOpt = None,
    resource_id: FilterOpt = None,
    resource_name: FilterOpt = None,
    resource_type: FilterOpt = None,
    trace_id: FilterOpt = None,
    trace_name: FilterOpt = None,
    trace_rating: FilterOpt = None,
    access_key_id: FilterOpt = None,
    enterprise_project_id: FilterOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")] = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List traces, newest first, as CTS's ListTraces does; filters combine."""
    filters = {
        "tracker_name": tracker_name,
        "service_type": service_type,
        "user": user,
        "resource_id": resource_id,
        "resource_name": resource_name,
        "resource_type": resource_type,
        "trace_id": trace_id,
        "trace_name": trace_name,
        "trace_rating": trace_rating,
        "access_key_id": access_key_id,
        "enterprise_project_id": enterprise_project_id,
    }
    params = _params(trace_type, since, until, filters)
    params["limit"] = limit
    traces: list[dict[str, Any]] = []
    marker = next_
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        for _ in range(max(pages, 1)):
            if marker:
                params["next"] = marker
            data = client.request("GET", f"/v3/{client.project}/traces", params=params).json()
            traces.extend(data["traces"])
            marker = data["meta_data"]["marker"]
            if not marker:
                break
    if as_json:
        sys.stdout.write(
            json.dumps({"traces": traces, "meta_data": {"count": len(traces), "marker": marker}})
        )
        sys.stdout.write("\n")
        return
    colour = {"warning": "yellow", "incident": "red"}
    rows = []
    for t in traces:
        rating = t.get("trace_rating", "")
        rows.append(
            [
                format_ms(t["time"]),
                escape(t.get("trace_name", "")),
                escape(t.get("service_type", "")),
                escape(t.get("resource_type", "")),
                escape(t.get("resource_name", "")),
                escape((t.get("user") or {}).get("name", "")),
                escape(t.get("source_ip", "")),
                escape(t.get("code", "")),
                f"[{colour[rating]}]{rating}[/]" if rating in colour else escape(rating),
                escape(label_of(t.get("submitter"))),
            ]
        )
    table = fit_table(TRACE_COLUMNS, rows)
    console.print(table)
    console.print(f"{len(traces)} trace(s)" + (f"; next page: --next {marker}" if marker else ""))


class RowCounter:
    """Counts the records of an export as it streams, whatever the chunk boundaries.

    NDJSON is one record a line. In CSV a quoted cell may hold line breaks, so only a line break outside
    quotes ends a record (an escaped quote, ``""``, toggles twice and changes nothing); the first record
    is the header, which is not a trace. An NDJSON export that fails midway ends with an error record
    instead of a trace; :meth:`failure` tells it apart.
    """

    TAIL = 8192

    def __init__(self, fmt: str) -> None:
        self.csv = fmt == "csv"
        self.records = 0
        self.in_quotes = False
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-self.TAIL :]
        if not self.csv or (not self.in_quotes and b'"' not in chunk):
            self.records += chunk.count(b"\n")
            return
        for i, part in enumerate(chunk.split(b'"')):
            if i:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes:
                self.records += part.count(b"\n")

    def failure(self) -> str | None:
        """The server's message if the export ended with an error record rather than a trace."""
        if self.csv:
            return None
        last = self.tail.rstrip(b"\n").rpartition(b"\n")[2]
        if b'"error_code"' not in last:
            return None
        try:
            record = orjson.loads(last)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict) or "error_code" not in record or "trace_id" in record:
            return None
        return f"{record['error_code']}: {record.get('error_msg', '')}"

    @property
    def rows(self) -> int:
        if self.csv:
            return max(self.records - 1, 0)
        return self.records - (1 if self.failure() else 0)


EXPORT_FORMATS = ("csv", "ndjson")


def count_traces(client: ApiClient, params: dict[str, Any]) -> int | None:
    """How many traces the export will hold, for the progress bar; None if the server cannot say."""
    counted = {k: v for k, v in params.items() if k != "format"}
    try:
        resp = client.http.get(f"/v3/{client.project}/traces/count", params=counted)
        return int(resp.json()["count"]) if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _stream(
    resp: httpx.Response, output: Path | None, counter: RowCounter, total: Future[int | None]
) -> None:
    """Copy the export to its destination with a progress bar whose total is known once counted."""
    out = output.open("wb") if output else sys.stdout.buffer
    try:
        with Progress(
            TextColumn("[bold]exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("traces"),
            TimeRemainingColumn(),
            console=err,
            transient=True,  # the summary line follows; an error stays the only line
            disable=not err.is_terminal,  # a bar is for people watching; a log gets the summary
        ) as progress:
            task = progress.add_task("export", total=None)
            for chunk in resp.iter_bytes():
                out.write(chunk)
                counter.feed(chunk)
                if progress.tasks[0].total is None and total.done():
                    progress.update(task, total=total.result())
                progress.update(task, completed=counter.rows)
            progress.update(task, total=counter.rows, completed=counter.rows)
    finally:
        if output:
            out.close()
        else:
            out.flush()


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or ndjson")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default stdout).")
    ] = None,
    trace_type: Annotated[str, typer.Option(help="system or data")] = "system",
    since: Annotated[
        str | None,
        typer.Option("--from", help="Start (ms, ISO 8601, or 7d ago). Default: every trace still kept."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="End (ms, ISO 8601, or 2h ago). Default: now.")
    ] = None,
    service_type: FilterOpt = None,
    user: FilterOpt = None,
    resource_type: FilterOpt = None,
    resource_name: FilterOpt = None,
    resource_id: FilterOpt = None,
    trace_name: FilterOpt = None,
    trace_rating: FilterOpt = None,
    tracker_name: FilterOpt = None,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export every matching trace (no 5,000-row cap), streamed, with a progress bar on stderr.

    Without --from the export covers the whole retention window, unlike `traces list`, whose default
    (the last hour) is the one ListTraces has.
    """
    if fmt not in EXPORT_FORMATS:
        raise CliError(f"--format must be csv or ndjson, not {fmt!r}")
    filters = {
        "service_type": service_type,
        "user": user,
        "resource_type": resource_type,
        "resource_name": resource_name,
        "resource_id": resource_id,
        "trace_name": trace_name,
        "trace_rating": trace_rating,
        "tracker_name": tracker_name,
    }
    params = _params(trace_type, since, until, filters)
    # from=0 is before anything kept: the server narrows it to its retention window
    params.setdefault("from", 0)
    params["format"] = fmt
    counter = RowCounter(fmt)
    path = "/v3/{}/traces/export"
    with ApiClient(resolve_target(endpoint, data_dir)) as client, ThreadPoolExecutor(1) as pool:
        # counted beside the stream, so a slow count never delays the first row
        total = pool.submit(count_traces, client, params)
        started = False
        try:
            with client.http.stream("GET", path.format(client.project), params=params) as resp:
                started = True
                if resp.status_code >= 400:
                    resp.read()
                    ApiClient.check(resp)
                _stream(resp, output, counter, total)
        except httpx.TransportError as exc:
            if not started:
                raise client.unreachable(exc) from None
            raise CliError(
                f"the export from {client.target.endpoint} stopped after {counter.rows} traces: "
                f"{exc or type(exc).__name__}; the output is incomplete"
            ) from None
    if (failure := counter.failure()) is not None:
        raise CliError(f"the export stopped after {counter.rows} traces: {failure}; the output is incomplete")
    err.print(f"exported {counter.rows} traces" + (f" to {output}" if output else ""), highlight=False)

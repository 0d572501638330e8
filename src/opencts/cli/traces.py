"""``opencts traces put|list|export``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opencts.cli.client import ApiClient, ApiError, resolve_target
from opencts.cli.common import DataDirOpt, EndpointOpt, console, err
from opencts.cli.timeparse import format_ms, parse_time
from opencts.clock import now_ms
from opencts.traces.ingest import MAX_BATCH_BYTES, MAX_BATCH_TRACES

app = typer.Typer(help="Send, list and export traces.", no_args_is_help=True)


def load_traces(source: str) -> list[Any]:
    """JSON (an array, one trace, or ``{"traces": [...]}``) or NDJSON, from a file or ``-``."""
    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"{source} is neither JSON nor NDJSON: {exc}") from None
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
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=len(items))
        offset = 0
        for batch in batches(items):
            resp = client.post_raw(f"/v3/{client.project}/traces", orjson.dumps({"traces": batch}))
            data = resp.json()
            if "results" not in data:
                ApiClient.check(resp)
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
        try:
            totals = send(client, items)
        except ApiError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
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
        raise typer.BadParameter(str(exc)) from None
    params.update({k: v for k, v in filters.items() if v})
    return params


FilterOpt = Annotated[str | None, typer.Option()]


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
            try:
                data = client.request("GET", f"/v3/{client.project}/traces", params=params).json()
            except ApiError as exc:
                err.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from None
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
    table = Table(show_lines=False)
    for col in (
        "Time (UTC)",
        "Trace",
        "Service",
        "Resource type",
        "Resource",
        "User",
        "Source IP",
        "Code",
        "Rating",
    ):
        table.add_column(col)
    colour = {"warning": "yellow", "incident": "red"}
    for t in traces:
        rating = t.get("trace_rating", "")
        table.add_row(
            format_ms(t["time"]),
            t.get("trace_name", ""),
            t.get("service_type", ""),
            t.get("resource_type", ""),
            t.get("resource_name", ""),
            (t.get("user") or {}).get("name", ""),
            t.get("source_ip", ""),
            t.get("code", ""),
            f"[{colour[rating]}]{rating}[/]" if rating in colour else rating,
        )
    console.print(table)
    console.print(f"{len(traces)} trace(s)" + (f"; next page: --next {marker}" if marker else ""))


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or ndjson")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default stdout).")
    ] = None,
    trace_type: Annotated[str, typer.Option(help="system or data")] = "system",
    since: Annotated[str | None, typer.Option("--from", help="Start (ms, ISO 8601, or 7d ago).")] = None,
    until: Annotated[str | None, typer.Option("--to")] = None,
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
    """Export every matching trace (no 5,000-row cap), streamed."""
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
    params["format"] = fmt
    out = output.open("wb") if output else sys.stdout.buffer
    rows = 0
    try:
        with (
            ApiClient(resolve_target(endpoint, data_dir)) as client,
            Progress(
                TextColumn("[bold]exporting"), TextColumn("{task.completed:,} rows"), console=err
            ) as progress,
        ):
            task = progress.add_task("export", total=None)
            with client.http.stream("GET", f"/v3/{client.project}/traces/export", params=params) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    ApiClient.check(resp)
                for chunk in resp.iter_bytes():
                    out.write(chunk)
                    rows += chunk.count(b"\n")
                    progress.update(task, completed=rows)
    except ApiError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        if output:
            out.close()
    if output:
        err.print(f"wrote {output}")

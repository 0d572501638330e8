"""``opencts lts groups|streams|tail|search``: the LTS streams trackers feed, read through the LTS v2 API.

Groups and streams are named as people know them (``CTS``, ``system-trace``, a data tracker's name) or
by id; the commands look the ids up. ``tail`` prints a stream's newest records, oldest first, and with
``--follow`` keeps printing new ones as they arrive (paging forwards by line number, as LTS clients do).
``search`` finds records by keywords (LTS's whole-word search: ``error``, ``ERROR AND disk``,
``createServer OR deleteServer``, ``NOT login``, ``delete*``) over a time range.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape

from opencts.cli.client import ApiClient, CliError
from opencts.cli.common import (
    CliGroup,
    Column,
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    fit_table,
    print_json,
    session,
)
from opencts.cli.timeparse import format_ms, parse_time
from opencts.clock import now_ms

app = typer.Typer(
    cls=CliGroup, help="LTS: the log streams trackers with is_lts_enabled feed.", no_args_is_help=True
)

GroupOpt = Annotated[str, typer.Option("--group", help="The log group, by name or id.")]
StreamArg = Annotated[
    str, typer.Argument(help="The log stream, by name (system-trace, a data tracker) or id.")
]

GROUP_COLUMNS = (Column("Name"), Column("Id"), Column("Created (UTC)", drop=1), Column("TTL (days)", drop=2))
STREAM_COLUMNS = (Column("Name"), Column("Id"), Column("Created (UTC)", drop=1))
RECORD_COLUMNS = (
    Column("Time (UTC)"),
    Column("Service"),
    Column("Operation"),
    Column("Rating"),
    Column("User", drop=2, shrink=8),
    Column("Resource", drop=3, shrink=12),
    Column("Line", drop=4),
)
_RATING_STYLE = {"warning": "yellow", "incident": "bold red"}
#: records one page of ``tail --follow`` or ``search`` asks for
PAGE = 500


def _groups(client: ApiClient) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = client.request("GET", f"/v2/{client.project}/groups").json()["log_groups"]
    return groups


def _group_id(client: ApiClient, group: str) -> str:
    for g in _groups(client):
        if group in (g["log_group_name"], g["log_group_id"]):
            return str(g["log_group_id"])
    raise CliError(f"no log group {group!r} in project {client.project} (enable LTS on a tracker first)")


def _streams(client: ApiClient, group_id: str) -> list[dict[str, Any]]:
    path = f"/v2/{client.project}/groups/{group_id}/streams"
    streams: list[dict[str, Any]] = client.request("GET", path).json()["log_streams"]
    return streams


def _stream_path(client: ApiClient, group: str, stream: str) -> str:
    group_id = _group_id(client, group)
    for s in _streams(client, group_id):
        if stream in (s["log_stream_name"], s["log_stream_id"]):
            return f"/v2/{client.project}/groups/{group_id}/streams/{s['log_stream_id']}/content/query"
    raise CliError(f"no log stream {stream!r} in log group {group!r}")


def _query(client: ApiClient, path: str, **params: Any) -> dict[str, Any]:
    body = {k: v for k, v in params.items() if v is not None}
    page: dict[str, Any] = client.request("POST", path, body=body).json()
    return page


@app.command("groups")
def groups(as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """List the project's log groups."""
    with session(endpoint, data_dir) as client:
        found = _groups(client)
    if as_json:
        print_json({"log_groups": found})
        return
    rows = [
        [escape(g["log_group_name"]), g["log_group_id"], format_ms(g["creation_time"]), str(g["ttl_in_days"])]
        for g in found
    ]
    console.print(fit_table(GROUP_COLUMNS, rows, title=f"{len(rows)} log group(s)"))


@app.command("streams")
def streams(
    group: GroupOpt = "CTS",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List a log group's streams (default group CTS)."""
    with session(endpoint, data_dir) as client:
        found = _streams(client, _group_id(client, group))
    if as_json:
        print_json({"log_streams": found})
        return
    rows = [[escape(s["log_stream_name"]), s["log_stream_id"], format_ms(s["creation_time"])] for s in found]
    console.print(fit_table(STREAM_COLUMNS, rows, title=f"{len(rows)} log stream(s) in {escape(group)}"))


def _trace(log: dict[str, Any]) -> dict[str, Any]:
    try:
        trace = orjson.loads(log["content"])
    except orjson.JSONDecodeError:
        return {}
    return trace if isinstance(trace, dict) else {}


def _row(log: dict[str, Any]) -> list[str]:
    trace = _trace(log)
    rating = str(trace.get("trace_rating", ""))
    style = _RATING_STYLE.get(rating)
    user = trace.get("user") if isinstance(trace.get("user"), dict) else {}
    resource = trace.get("resource_name") or trace.get("resource_id") or ""
    return [
        format_ms(int(log["labels"].get("__time__") or trace.get("time") or 0)),
        escape(str(trace.get("service_type", ""))),
        escape(str(trace.get("trace_name", ""))),
        f"[{style}]{escape(rating)}[/]" if style else escape(rating),
        escape(str((user or {}).get("name", ""))),
        escape(str(resource)),
        str(log["line_num"]),
    ]


def _print_line(log: dict[str, Any], raw: bool) -> None:
    if raw:
        console.print(log["content"], markup=False, highlight=False)
        return
    when, service, name, rating, user, resource, _ = _row(log)
    console.print(f"[dim]{when}[/] {service} [bold]{name}[/] {rating} {user} {resource}".rstrip())


def _window(since: str, until: str | None) -> tuple[int, int]:
    now = now_ms()
    try:
        start, end = parse_time(since, now), parse_time(until, now) if until else now
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if start > end:
        raise CliError("--from must not be after --to")
    return start, end


@app.command("tail")
def tail(
    stream: StreamArg,
    group: GroupOpt = "CTS",
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=5000, help="How many records.")] = 20,
    since: Annotated[
        str, typer.Option("--since", help="Look back this far: 15m, 2h, 7d, ms or ISO 8601.")
    ] = "7d",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C stops).")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between looks with --follow.")] = 2.0,
    raw: Annotated[bool, typer.Option("--raw", help="Print each record's JSON as stored.")] = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a stream's newest records, oldest first; --follow keeps printing new ones."""
    start, end = _window(since, None)
    with session(endpoint, data_dir) as client:
        path = _stream_path(client, group, stream)
        page = _query(client, path, start_time=str(start), end_time=str(end), is_desc=True, limit=lines)
        newest = list(reversed(page["logs"]))
        for log in newest:
            _print_line(log, raw)
        last = newest[-1]["line_num"] if newest else None
        try:
            while follow:
                time.sleep(interval)
                more = _query(
                    client,
                    path,
                    start_time=str(start),
                    end_time=str(now_ms()),
                    line_num=last,
                    search_type="forwards" if last else None,
                    limit=PAGE,
                )
                for log in more["logs"]:
                    _print_line(log, raw)
                if more["logs"]:
                    last = more["logs"][-1]["line_num"]
        except KeyboardInterrupt:
            return


@app.command("search")
def search(
    stream: StreamArg,
    keywords: Annotated[str, typer.Argument(help='Words to find: error, "ERROR AND disk", "a OR b", NOT x.')],
    group: GroupOpt = "CTS",
    from_: Annotated[str, typer.Option("--from", help="Start: 15m, 2h, 7d ago, ms or ISO 8601.")] = "1d",
    to: Annotated[str | None, typer.Option("--to", help="End (default now).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records.")] = 100,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Find a stream's records by keywords over a time range, oldest first."""
    start, end = _window(from_, to)
    found: list[dict[str, Any]] = []
    total = 0
    with session(endpoint, data_dir) as client:
        path = _stream_path(client, group, stream)
        line: str | None = None
        while len(found) < limit:
            asked = min(PAGE, limit - len(found))
            page = _query(
                client,
                path,
                start_time=str(start),
                end_time=str(end),
                keywords=keywords,
                line_num=line,
                search_type="forwards" if line else None,
                limit=asked,
                is_count=line is None,
            )
            if line is None:
                total = int(page["count"])
            found.extend(page["logs"])
            if len(page["logs"]) < asked:
                break
            line = page["logs"][-1]["line_num"]
    if as_json:
        print_json({"count": total, "logs": found})
        return
    rows = [_row(log) for log in found]
    shown = f"{len(rows)} of {total}" if total > len(rows) else str(len(rows))
    console.print(fit_table(RECORD_COLUMNS, rows, title=f"{shown} record(s) matching {escape(keywords)}"))


def _add_sinks() -> None:
    """``opencts lts sinks ...`` (:mod:`opencts.cli.lts_sinks`), imported late: it builds on this module."""
    from opencts.cli.lts_sinks import app as sinks_app

    app.add_typer(sinks_app, name="sinks")


_add_sinks()

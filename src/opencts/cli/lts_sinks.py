"""``opencts lts sinks add|list|remove``: forward a log stream to syslog, OTLP/HTTP or signed HTTP NDJSON.

Header values and the client key are read from the command line or files and sent once; the server stores
them sealed and never shows them again (``list`` shows only the header names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from opencts.cli.lts import GroupOpt, _group_id, _streams

app = typer.Typer(
    cls=CliGroup,
    help="Forward a log stream to syslog, OTLP/HTTP or HTTP NDJSON receivers.",
    no_args_is_help=True,
)
SINK_COLUMNS = (
    Column("Name"),
    Column("Type"),
    Column("Endpoint", shrink=16),
    Column("State"),
    Column("Lag", drop=1),
    Column("Delivered", drop=2),
    Column("Last error", drop=3, shrink=20),
    Column("Id", drop=4),
)
_STATE_STYLE = {"ok": "green", "lagging": "yellow", "error": "bold red"}


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _headers(items: list[str]) -> dict[str, str] | None:
    found = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep:
            raise CliError(f"--header {item!r}: write it as 'Name: value'")
        found[name.strip()] = value.strip()
    return found or None


def _stream_base(client: ApiClient, group: str, stream: str) -> str:
    group_id = _group_id(client, group)
    for s in _streams(client, group_id):
        if stream in (s["log_stream_name"], s["log_stream_id"]):
            return f"/v3/{client.project}/lts/groups/{group_id}/streams/{s['log_stream_id']}/sinks"
    raise CliError(f"no log stream {stream!r} in log group {group!r}")


def _filter(operations: list[str], users: list[str], rules: list[str], condition: str) -> dict[str, Any]:
    found: dict[str, Any] = {"operation_type": "customized" if operations else "complete"}
    if operations:
        merged: dict[tuple[str, str], list[str]] = {}
        for op in operations:
            parts = op.split(":")
            if len(parts) != 3:
                raise CliError(f"--operation {op!r}: write it as SERVICE:RESOURCE_TYPE:TRACE_NAME")
            merged.setdefault((parts[0], parts[1]), []).append(parts[2])
        found["operations"] = [
            {"service_type": s, "resource_type": r, "trace_names": names} for (s, r), names in merged.items()
        ]
    if users:
        found["notify_user_list"] = [{"user_group": "sink", "user_list": users}]
    if rules:
        found["filter"] = {"condition": condition, "is_support_filter": True, "rule": rules}
    return found


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The sink's name (letters, digits, - and _).")],
    sink_type: Annotated[str, typer.Option("--type", help="ndjson, syslog or otlp.")],
    to: Annotated[str, typer.Option("--to", help="http(s) URL (ndjson, otlp) or host:port (syslog).")],
    stream: Annotated[str, typer.Option("--stream", help="The log stream, by name or id.")] = "system-trace",
    group: GroupOpt = "CTS",
    header: Annotated[list[str], typer.Option("--header", help="'Name: value', sealed (repeatable).")] = [],  # noqa: B006
    ca_file: Annotated[Path | None, typer.Option(help="PEM CA the receiver's certificate chains to.")] = None,
    client_cert_file: Annotated[Path | None, typer.Option(help="PEM client certificate.")] = None,
    client_key_file: Annotated[Path | None, typer.Option(help="PEM client key (stored sealed).")] = None,
    server_name: Annotated[str | None, typer.Option(help="Name the receiver's certificate carries.")] = None,
    tls: Annotated[bool, typer.Option("--tls/--no-tls", help="syslog: TLS (default) or plain TCP.")] = True,
    hostname: Annotated[str | None, typer.Option(help="syslog HOSTNAME (default this host's).")] = None,
    facility: Annotated[int, typer.Option(min=0, max=23, help="syslog facility (13: log audit).")] = 13,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Records per batch.")] = 100,
    operation: Annotated[
        list[str], typer.Option("--operation", help="Only SERVICE:RESOURCE_TYPE:TRACE_NAME (repeatable).")
    ] = [],  # noqa: B006
    user: Annotated[list[str], typer.Option("--user", help="Only this user's operations (repeatable).")] = [],  # noqa: B006
    rule: Annotated[
        list[str], typer.Option("--rule", help="Advanced filter rule, e.g. 'code != 200' (repeatable).")
    ] = [],  # noqa: B006
    condition: Annotated[str, typer.Option(help="AND or OR between --rule's.")] = "AND",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Forward a stream's new records to a receiver, in order and once each."""
    body: dict[str, Any] = {
        "sink_name": name,
        "sink_type": sink_type,
        "endpoint": to,
        "secret_headers": _headers(header),
        "tls": tls,
        "ca_cert": _read(ca_file),
        "client_cert": _read(client_cert_file),
        "client_private_key": _read(client_key_file),
        "server_name": server_name,
        "hostname": hostname,
        "facility": facility,
        "batch_size": batch_size,
        "records_filter": _filter(operation, user, rule, condition),
    }
    body = {k: v for k, v in body.items() if v is not None}
    with session(endpoint, data_dir) as client:
        made = client.request("POST", _stream_base(client, group, stream), body=body).json()
    if as_json:
        print_json(made)
        return
    console.print(f"sink [bold]{escape(made['sink_name'])}[/] ({made['sink_type']}) added: {made['sink_id']}")


def _sinks(client: ApiClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.request("GET", f"/v3/{client.project}/lts/sinks").json()["sinks"]
    return found


@app.command("list")
def list_(as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """The project's sinks: state, lag and the last error."""
    with session(endpoint, data_dir) as client:
        found = _sinks(client)
    if as_json:
        print_json({"sinks": found})
        return
    rows = []
    for s in found:
        style = _STATE_STYLE.get(s["state"], "")
        rows.append(
            [
                escape(s["sink_name"]),
                s["sink_type"],
                escape(s["endpoint"]),
                f"[{style}]{s['state']}[/]",
                f"{s['lag_records']} ({s['lag_seconds']:.0f}s)",
                str(s["delivered"]),
                escape(s["last_error"] or "") if s["state"] == "error" else "",
                s["sink_id"],
            ]
        )
    console.print(fit_table(SINK_COLUMNS, rows, title=f"{len(rows)} sink(s)"))


@app.command("remove")
def remove(
    sink: Annotated[str, typer.Argument(help="The sink, by name or id.")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Stop forwarding and forget the sink (and its sealed secrets)."""
    with session(endpoint, data_dir) as client:
        matches = [s for s in _sinks(client) if sink in (s["sink_id"], s["sink_name"])]
        if not matches:
            raise CliError(f"no sink {sink!r} in project {client.project}")
        if len(matches) > 1:
            raise CliError(f"{len(matches)} sinks are named {sink!r} (one per stream): give its id")
        client.request("DELETE", f"/v3/{client.project}/lts/sinks/{matches[0]['sink_id']}")
    console.print(f"sink {escape(sink)} removed")

"""``opencts trackers list|show|create|update|enable|disable|delete``: trackers through the CTS v3 API.

A tracker is named by its name, as in the API: ``system`` is the management tracker, every other name a
data tracker (the operations on one OBS bucket). ``create`` makes data trackers; the management tracker
comes with its project and is changed with ``update system``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from opencts.cli.client import ApiClient
from opencts.cli.common import (
    Column,
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    fail,
    fit_table,
    print_json,
    session,
)
from opencts.cli.timeparse import format_ms

app = typer.Typer(
    help="Trackers: the management tracker and data trackers (what gets recorded).", no_args_is_help=True
)

TrackerArg = Annotated[str, typer.Argument(help="Tracker name (system is the management tracker).")]
EventOpt = Annotated[
    list[str] | None,
    typer.Option("--event", help="READ or WRITE: the bucket operations recorded; repeatable."),
]
ObsBucketOpt = Annotated[
    str | None, typer.Option("--obs-bucket", help="OBS bucket the trace files are written to.")
]
FilePrefixOpt = Annotated[str | None, typer.Option(help="Prefix of the trace files in the OBS bucket.")]
LifecycleOpt = Annotated[
    int | None, typer.Option(help="Days the trace files are kept in the OBS bucket (1-3650).")
]
LtsOpt = Annotated[bool | None, typer.Option("--lts/--no-lts", help="Also send traces to LTS.")]
ValidateOpt = Annotated[
    bool | None, typer.Option("--validate/--no-validate", help="Verify trace files (digest files).")
]

COLUMNS = (
    Column("Name", shrink=12),
    Column("Type"),
    Column("Status"),
    Column("Bucket", shrink=12),
    Column("Events", drop=2),
    Column("Id", drop=3),
    Column("Created (UTC)", drop=1),
)


def _path(client: ApiClient, singular: bool = False) -> str:
    return f"/v3/{client.project}/{'tracker' if singular else 'trackers'}"


def _find(client: ApiClient, name: str) -> dict[str, Any]:
    found = client.request("GET", _path(client), params={"tracker_name": name}).json()["trackers"]
    if not found:
        raise fail(f"no tracker named {name!r} in project {client.project}")
    return dict(found[0])


def _events(events: list[str] | None) -> list[str] | None:
    if not events:
        return None
    wanted = sorted({e.strip().upper() for e in events})
    if not set(wanted) <= {"READ", "WRITE"}:
        raise fail(f"--event takes READ or WRITE, not {', '.join(events)}")
    return wanted


def _settings(
    *,
    events: list[str] | None,
    obs_bucket: str | None,
    file_prefix: str | None,
    lifecycle: int | None,
    lts: bool | None,
    validate: bool | None,
) -> dict[str, Any]:
    """The request body's fields for the options given; an option left out is not sent (kept as it is)."""
    body: dict[str, Any] = {}
    obs = {
        k: v
        for k, v in (
            ("bucket_name", obs_bucket),
            ("file_prefix_name", file_prefix),
            ("bucket_lifecycle", lifecycle),
        )
        if v is not None
    }
    if obs:
        body["obs_info"] = obs
    if (wanted := _events(events)) is not None:
        body["data_bucket"] = {"data_event": wanted}
    if lts is not None:
        body["is_lts_enabled"] = lts
    if validate is not None:
        body["is_support_validate"] = validate
    return body


def _bucket(t: dict[str, Any]) -> str:
    if t["tracker_type"] == "data":
        return str((t.get("data_bucket") or {}).get("data_bucket_name") or "")
    return str((t.get("obs_info") or {}).get("bucket_name") or "")


@app.command("list")
def list_trackers(
    kind: Annotated[str | None, typer.Option("--type", help="system or data (default: both).")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the project's trackers: the management tracker first, then data trackers oldest first."""
    if kind is not None and kind not in ("system", "data"):
        raise fail("--type must be system or data")
    with session(endpoint, data_dir) as client:
        params = {"tracker_type": kind} if kind else None
        found = client.request("GET", _path(client), params=params).json()["trackers"]
    if as_json:
        print_json({"trackers": found})
        return
    rows = []
    for t in found:
        style = {"enabled": "green", "disabled": "yellow"}.get(t["status"], "red")
        events = (
            ",".join((t.get("data_bucket") or {}).get("data_event") or [])
            if t["tracker_type"] == "data"
            else ""
        )
        rows.append(
            [
                escape(t["tracker_name"]),
                t["tracker_type"],
                f"[{style}]{t['status']}[/]",
                escape(_bucket(t)),
                events,
                t["id"],
                format_ms(t["create_time"]),
            ]
        )
    console.print(fit_table(COLUMNS, rows, title=f"{len(found)} tracker(s)"))


@app.command("show")
def show(
    name: TrackerArg, as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Show one tracker with all its settings (JSON, as ListTrackers returns it)."""
    with session(endpoint, data_dir) as client:
        tracker = _find(client, name)
    if as_json:
        print_json(tracker)
        return
    console.print(json.dumps(tracker, indent=2, ensure_ascii=False), markup=False, highlight=False)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="1-64 letters, digits, '.', '_' and '-' (not 'system').")],
    bucket: Annotated[str, typer.Option(help="The OBS bucket whose operations are recorded.")],
    event: EventOpt = None,
    obs_bucket: ObsBucketOpt = None,
    file_prefix: FilePrefixOpt = None,
    lifecycle: LifecycleOpt = None,
    lts: LtsOpt = None,
    validate: ValidateOpt = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a data tracker for a bucket (READ and WRITE events unless --event says otherwise)."""
    body = _settings(
        events=event,
        obs_bucket=obs_bucket,
        file_prefix=file_prefix,
        lifecycle=lifecycle,
        lts=lts,
        validate=validate,
    )
    body["data_bucket"] = {"data_bucket_name": bucket, **body.get("data_bucket", {})}
    body.update(tracker_type="data", tracker_name=name)
    with session(endpoint, data_dir) as client:
        made = client.request("POST", _path(client, singular=True), body=body).json()
    if as_json:
        print_json(made)
        return
    console.print(
        f"created data tracker {made['tracker_name']} ({made['id']})", markup=False, highlight=False
    )


@app.command("update")
def update(
    name: TrackerArg,
    event: EventOpt = None,
    obs_bucket: ObsBucketOpt = None,
    file_prefix: FilePrefixOpt = None,
    lifecycle: LifecycleOpt = None,
    lts: LtsOpt = None,
    validate: ValidateOpt = None,
    exclude_service: Annotated[
        list[str] | None,
        typer.Option(help="Management tracker only: a service not to record (KMS); repeatable."),
    ] = None,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a tracker's settings; settings not given keep their value."""
    body = _settings(
        events=event,
        obs_bucket=obs_bucket,
        file_prefix=file_prefix,
        lifecycle=lifecycle,
        lts=lts,
        validate=validate,
    )
    if exclude_service is not None:
        body["management_event_selector"] = {"exclude_service": exclude_service}
    if not body:
        raise fail("nothing to change: give at least one setting (see --help)")
    with session(endpoint, data_dir) as client:
        tracker = _find(client, name)
        body.update(tracker_type=tracker["tracker_type"], tracker_name=tracker["tracker_name"])
        client.request("PUT", _path(client, singular=True), body=body)
    console.print(f"updated tracker {tracker['tracker_name']}", markup=False, highlight=False)


def _set_status(name: str, status: str, endpoint: str | None, data_dir: Any) -> None:
    with session(endpoint, data_dir) as client:
        tracker = _find(client, name)
        body = {
            "tracker_type": tracker["tracker_type"],
            "tracker_name": tracker["tracker_name"],
            "status": status,
        }
        client.request("PUT", _path(client, singular=True), body=body)
    console.print(f"tracker {tracker['tracker_name']} {status}", markup=False, highlight=False)


@app.command("enable")
def enable(name: TrackerArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Switch a tracker on: it records again from now."""
    _set_status(name, "enabled", endpoint, data_dir)


@app.command("disable")
def disable(name: TrackerArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Switch a tracker off: it records nothing until enabled (its settings are kept)."""
    _set_status(name, "disabled", endpoint, data_dir)


@app.command("delete")
def delete(
    name: TrackerArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a tracker with its tags (deleting `system` stops recording management traces)."""
    with session(endpoint, data_dir) as client:
        tracker = _find(client, name)
        if not yes and not typer.confirm(
            f"delete {tracker['tracker_type']} tracker {tracker['tracker_name']}?"
        ):
            raise typer.Exit(1)
        params = {"tracker_name": tracker["tracker_name"], "tracker_type": tracker["tracker_type"]}
        client.request("DELETE", _path(client), params=params)
    console.print(f"deleted tracker {tracker['tracker_name']}", markup=False, highlight=False)

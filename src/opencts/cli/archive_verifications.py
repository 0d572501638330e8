"""``opencts archive verifications run|list|show``: verifications of a tracker's archive run by the server
(``POST|GET /v3/{project_id}/archive/verifications``), for whoever has no copy of the bucket to give
``opencts verify``. ``run`` waits for the result by default, with a spinner, and exits as ``opencts
verify`` does: 0 when the archive verified, 1 otherwise.
"""

from __future__ import annotations

import time
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
    err,
    fail,
    fit_table,
    print_json,
    session,
)
from opencts.cli.timeparse import format_ms

app = typer.Typer(help="Verifications of a tracker's archive run by the server.", no_args_is_help=True)

LIST_COLUMNS = (
    Column("Asked"),
    Column("Tracker"),
    Column("By", shrink=8),
    Column("Status"),
    Column("Digests", drop=2),
    Column("Files", drop=2),
    Column("Traces", drop=1),
    Column("Failures"),
    Column("ID", drop=3),
)
FINDING_COLUMNS = (
    Column("Problem", shrink=16, wrap=True),
    Column("Hour", drop=2),
    Column("Object", shrink=24, wrap=True),
    Column("Trace ID", drop=1),
    Column("Detail", shrink=12, wrap=True, drop=3),
)
#: seconds between two looks at a running verification
POLL_SECONDS = 1.0


def _path(client: ApiClient) -> str:
    return f"/v3/{client.project}/archive/verifications"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


@app.command("run")
def run(
    tracker: Annotated[str, typer.Option(help="The tracker whose archive to verify.")],
    proofs: Annotated[
        bool, typer.Option("--proofs", help="Also check every trace against the Merkle tree.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the result (default) or only queue it.")
    ] = True,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the result.")] = 3600,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify a tracker's archive on the server; exit 0 when it verified, 1 otherwise."""
    with session(endpoint, data_dir) as client:
        found = client.request("POST", _path(client), body={"tracker_name": tracker, "proofs": proofs}).json()
        if wait:
            found = _wait(client, found, timeout)
    if as_json:
        print_json(found)
    else:
        _print(found)
    if wait and found["status"] != "verified":
        raise typer.Exit(1)


def _wait(client: ApiClient, found: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with err.status(f"verifying the archive of tracker {escape(found['tracker_name'])}") as spinner:
        while found["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise fail(f"verification {found['id']} is still {found['status']} after {timeout:g} s")
            spinner.update(f"verification {found['status']}: tracker {escape(found['tracker_name'])}")
            time.sleep(POLL_SECONDS)
            found = client.request("GET", f"{_path(client)}/{found['id']}").json()
    return found


@app.command("list")
def list_command(
    tracker: Annotated[str | None, typer.Option(help="Only this tracker's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The project's verifications, newest first."""
    params: dict[str, Any] = {"limit": limit, **({"tracker_name": tracker} if tracker else {})}
    with session(endpoint, data_dir) as client:
        doc = client.request("GET", _path(client), params=params).json()
    if as_json:
        print_json(doc)
        return
    rows = [
        [
            format_ms(v["created_at"]),
            escape(v["tracker_name"]),
            escape(v["requested_by"]),
            v["status"],
            _count(v["digests"]),
            _count(v["files"]),
            _count(v["traces"]),
            _count(v["failure_count"]),
            v["id"],
        ]
        for v in doc["verifications"]
    ]
    console.print(fit_table(LIST_COLUMNS, rows, title=f"{len(rows)} verification(s)"))


@app.command("show")
def show(
    verification_id: Annotated[str, typer.Argument(help="A verification's id (from run or list).")],
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """One verification with what it found."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", f"{_path(client)}/{verification_id}").json()
    if as_json:
        print_json(found)
    else:
        _print(found)


def _print(found: dict[str, Any]) -> None:
    status = found["status"]
    name = escape(found["tracker_name"])
    if status == "verified":
        console.print(
            f"[green]verified[/]: tracker {name}, {found['digests']} digest(s), {found['files']} file(s),"
            f" {found['traces']} trace(s); nothing altered, removed or added"
        )
    elif status == "failed":
        console.print(f"[red]FAILED[/]: tracker {name}, {found['failure_count']} failure(s)")
    elif status == "error":
        console.print(f"[red]not verified[/]: tracker {name}: {escape(found['error'] or '')}")
    else:
        console.print(
            f"{status}: tracker {name} (id {found['id']}); see it with: opencts archive verifications show ID"
        )
    failures = [f for f in found["findings"] if f.get("failure", True)]
    if failures:
        rows = [
            [
                escape(f["problem"]),
                f.get("hour") or "",
                escape(f.get("key") or ""),
                escape(f.get("trace_id") or ""),
                escape(f.get("detail") or ""),
            ]
            for f in failures
        ]
        more = found["failure_count"] - len(failures)
        title = f"{len(failures)} failure(s)" + (f", {more} more not kept" if more > 0 else "")
        console.print(fit_table(FINDING_COLUMNS, rows, title=title))

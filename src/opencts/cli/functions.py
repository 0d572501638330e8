"""``opencts functions ...``: deploy, run and watch FunctionGraph functions and their CTS triggers.

A function is named by its name (in package ``default``, or ``--package``) or by its URN. ``deploy``
zips a directory or a single ``.py`` file and creates the function, or replaces its code and settings;
``create --template`` deploys a ready-made handler (:mod:`opencts.functions.templates`):

    opencts functions create guard --template login-whitelist \\
        --env SMN_Topic=cts_test --env RegionName=local-1 --env IP=10.0.0.0/8,2001:db8::/32 \\
        --env SMN_ENDPOINT=http://127.0.0.1:8080
    opencts functions triggers add guard --name logins --operation IAM:user:login,logout
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

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
from opencts.functions.event import cts_event
from opencts.functions.templates import TEMPLATES, source

app = typer.Typer(help="Functions (FunctionGraph): deploy, invoke, logs, CTS triggers.", no_args_is_help=True)
triggers_app = typer.Typer(help="CTS triggers: the key events that invoke a function.", no_args_is_help=True)
app.add_typer(triggers_app, name="triggers")

FunctionArg = Annotated[str, typer.Argument(help="Function name (or URN).")]
PackageOpt = Annotated[str, typer.Option("--package", help="The function's package.")]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", help="KEY=VALUE, an environment variable; repeatable.")
]
DEFAULT_AGENCY = "serverless_trust"
#: what a deployed directory never carries
_SKIPPED = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache"}

COLUMNS = (
    Column("Name", shrink=12),
    Column("Runtime"),
    Column("Handler", drop=4, shrink=12),
    Column("Memory", drop=3),
    Column("Timeout", drop=2),
    Column("Agency", drop=5),
    Column("URN", drop=6),
    Column("Modified (UTC)", drop=1),
)
TRIGGER_COLUMNS = (
    Column("Id"),
    Column("Type"),
    Column("Status"),
    Column("Name"),
    Column("Operations", shrink=20, wrap=True),
    Column("Created (UTC)", drop=1),
)
INVOCATION_COLUMNS = (
    Column("Request id"),
    Column("Status"),
    Column("Error", shrink=20, wrap=True),
    Column("Start (UTC)", drop=1),
    Column("End (UTC)", drop=2),
)


def _base(client: ApiClient) -> str:
    return f"/v2/{client.project}/fgs/functions"


def _q(urn: str) -> str:
    return quote(urn, safe="")


def find_function(client: ApiClient, ref: str, package: str = "default") -> dict[str, Any] | None:
    """The listed function named ``ref`` (or whose URN it is), or None."""
    marker = 0
    while True:
        page = client.request(
            "GET", _base(client), params={"func_name": ref.rsplit(":", 1)[-1], "marker": str(marker)}
        ).json()
        for f in page["functions"]:
            urn = str(f["func_urn"])
            if ref.startswith("urn:") and (urn == ref or urn.rsplit(":", 1)[0] == ref.rsplit(":", 1)[0]):
                return dict(f)
            if f["func_name"] == ref and f.get("package", "default") == package:
                return dict(f)
        marker = int(page.get("next_marker") or 0)
        if not marker:
            return None


def _urn(client: ApiClient, ref: str, package: str) -> str:
    found = find_function(client, ref, package)
    if found is None:
        raise fail(f"no function {ref!r} in package {package} of project {client.project}")
    return str(found["func_urn"])


def parse_env(pairs: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--env {pair!r} must read KEY=VALUE")
        env[key.strip()] = value
    return env


def zip_code(path: Path) -> bytes:
    """A directory's files (the archive's root is the directory), or one file at the archive's root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if path.is_file():
            archive.write(path, path.name)
        else:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
                for name in sorted(files):
                    full = Path(root) / name
                    if full.suffix != ".pyc":
                        archive.write(full, full.relative_to(path).as_posix())
    return buffer.getvalue()


def _deploy(
    client: ApiClient,
    *,
    name: str,
    package: str,
    code: bytes,
    filename: str,
    handler: str,
    runtime: str,
    memory: int,
    timeout: int,
    env: dict[str, str] | None,
    agency: str | None,
) -> dict[str, Any]:
    """Create the function, or replace the code and settings of the one with that name."""
    file_b64 = base64.b64encode(code).decode()
    existing = find_function(client, name, package)
    if existing is None:
        body: dict[str, Any] = {
            "func_name": name,
            "package": package,
            "runtime": runtime,
            "handler": handler,
            "memory_size": memory,
            "timeout": timeout,
            "code_type": "zip",
            "code_filename": filename,
            "func_code": {"file": file_b64},
            "user_data": json.dumps(env or {}),
        }
        if agency:
            body["xrole"] = agency
        made: dict[str, Any] = client.request("POST", _base(client), body=body).json()
        return made
    urn = _q(str(existing["func_urn"]))
    code_body = {"code_type": "zip", "code_filename": filename, "func_code": {"file": file_b64}}
    client.request("PUT", f"{_base(client)}/{urn}/code", body=code_body)
    current = client.request("GET", f"{_base(client)}/{urn}/config").json()
    config = {
        "func_name": name,
        "runtime": runtime,
        "handler": handler,
        "memory_size": memory,
        "timeout": timeout,
        "user_data": json.dumps(env) if env is not None else current.get("user_data") or "{}",
    }
    if agency or current.get("xrole"):
        config["xrole"] = agency or current.get("xrole")
    updated: dict[str, Any] = client.request("PUT", f"{_base(client)}/{urn}/config", body=config).json()
    return updated


def _print_deployed(done: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(done)
    else:
        console.print(done["func_urn"])


@app.command("deploy")
def deploy(
    path: Annotated[Path, typer.Argument(help="A directory (zipped whole) or a single .py file.")],
    name: Annotated[
        str | None, typer.Option(help="Function name (default: the directory or file name).")
    ] = None,
    handler: Annotated[
        str | None, typer.Option(help="file.function (default index.handler, or FILE.handler).")
    ] = None,
    runtime: Annotated[str, typer.Option(help="Python3.9, Python3.10 or Python3.12.")] = "Python3.10",
    memory: Annotated[int, typer.Option(help="Memory in MB (128, 256, 512, ...).")] = 128,
    timeout: Annotated[int, typer.Option(help="Seconds an invocation may run (3-259200).")] = 30,
    env: EnvOpt = None,
    agency: Annotated[
        str | None, typer.Option(help="Agency whose credentials the context hands out.")
    ] = None,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a function from a directory or file, or update its code and settings."""
    if not path.exists():
        raise fail(f"{path} does not exist")
    if path.is_file() and path.suffix != ".py":
        raise fail(f"{path}: deploy a directory or a .py file")
    stem = path.stem if path.is_file() else path.resolve().name
    name = name or stem.replace(".", "_")
    handler = handler or (f"{path.stem}.handler" if path.is_file() else "index.handler")
    with console.status(f"zipping {path}"):
        code = zip_code(path)
    with session(endpoint, data_dir) as client, console.status(f"deploying {name} ({len(code)} bytes)"):
        done = _deploy(
            client,
            name=name,
            package=package,
            code=code,
            filename=f"{name}.zip",
            handler=handler,
            runtime=runtime,
            memory=memory,
            timeout=timeout,
            env=parse_env(env) if env else None,
            agency=agency,
        )
    _print_deployed(done, as_json)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Function name.")],
    template: Annotated[str, typer.Option(help=f"One of: {', '.join(TEMPLATES)}.")],
    env: EnvOpt = None,
    agency: Annotated[
        str, typer.Option(help="Agency whose credentials the context hands out.")
    ] = DEFAULT_AGENCY,
    timeout: Annotated[int, typer.Option(help="Seconds an invocation may run.")] = 30,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create (or update) a function from a ready-made template."""
    if template not in TEMPLATES:
        raise fail(f"--template {template!r}: choose one of {', '.join(TEMPLATES)}")
    filename, handler, wanted = TEMPLATES[template]
    variables = parse_env(env)
    missing = [v for v in wanted if v not in variables]
    if missing:
        raise fail(f"template {template} needs --env {', '.join(f'{v}=...' for v in missing)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(filename, source(template))
    with session(endpoint, data_dir) as client:
        done = _deploy(
            client,
            name=name,
            package=package,
            code=buffer.getvalue(),
            filename=f"{name}.zip",
            handler=handler,
            runtime="Python3.10",
            memory=128,
            timeout=timeout,
            env=variables,
            agency=agency,
        )
    _print_deployed(done, as_json)


@app.command("list")
def list_functions(
    as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """List the project's functions."""
    found: list[dict[str, Any]] = []
    with session(endpoint, data_dir) as client:
        marker = 0
        while True:
            page = client.request("GET", _base(client), params={"marker": str(marker)}).json()
            found.extend(page["functions"])
            marker = int(page.get("next_marker") or 0)
            if not marker:
                break
    if as_json:
        print_json({"functions": found})
        return
    rows = [
        [
            escape(str(f["func_name"])),
            str(f.get("runtime", "")),
            escape(str(f.get("handler", ""))),
            f"{f.get('memory_size', '')} MB",
            f"{f.get('timeout', '')} s",
            escape(str(f.get("xrole") or "")),
            str(f["func_urn"]),
            str(f.get("last_modified", ""))[:19].replace("T", " "),
        ]
        for f in found
    ]
    console.print(fit_table(COLUMNS, rows, title=f"{len(found)} function(s)"))


def stored_trace(client: ApiClient, trace_id: str) -> dict[str, Any]:
    """A stored trace, read through ListTraces (management traces first, then data traces)."""
    now = int(time.time() * 1000)
    for kind in ("system", "data"):
        params = {
            "trace_type": kind,
            "trace_id": trace_id,
            "from": "1",
            "to": str(now + 3_600_000),
            "limit": "1",
        }
        found = client.request("GET", f"/v3/{client.project}/traces", params=params).json()["traces"]
        if found:
            return dict(found[0])
    raise fail(f"no trace {trace_id!r} in project {client.project}")


def read_event(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (``-``: standard input)."""
    try:
        doc = json.loads(sys.stdin.read() if str(path) == "-" else path.read_text())
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise fail(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise fail(f"{path}: the event must be a JSON object")
    return doc


@app.command("invoke")
def invoke(
    function: FunctionArg,
    event: Annotated[
        Path | None, typer.Option(help="A JSON file with the event (- reads standard input).")
    ] = None,
    cts_event_of: Annotated[
        str | None, typer.Option("--cts-event", help="Send the CTS event of this stored trace id.")
    ] = None,
    asynchronous: Annotated[bool, typer.Option("--async", help="Queue it; print the request id.")] = False,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Invoke a function with an event, and print its result and log (exit 1 if the handler failed)."""
    if event is not None and cts_event_of is not None:
        raise fail("give --event or --cts-event, not both")
    doc = read_event(event) if event is not None else {}
    with session(endpoint, data_dir) as client:
        if cts_event_of is not None:
            doc = cts_event(stored_trace(client, cts_event_of))
        urn = _q(_urn(client, function, package))
        if asynchronous:
            queued = client.request("POST", f"{_base(client)}/{urn}/invocations-async", body=doc).json()
            console.print(queued["request_id"])
            return
        resp = client.http.post(
            f"{_base(client)}/{urn}/invocations",
            content=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json", "X-Cff-Log-Type": "tail"},
        )
        result = client.check(resp).json()
    if as_json:
        print_json(result)
    else:
        if result.get("log"):
            console.print(escape(str(result["log"]).rstrip("\n")), style="dim")
        console.print(escape(str(result.get("result"))))
    if result.get("status") != 200:
        raise typer.Exit(1)


def _invocation_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    def when(value: Any) -> str:
        return str(value or "")[:19].replace("T", " ")

    return [
        [
            str(i["request_id"]),
            str(i["status"]),
            escape(str(i.get("error_message") or "")),
            when(i.get("start_time")),
            when(i.get("end_time")),
        ]
        for i in items
    ]


@app.command("logs")
def logs(
    function: FunctionArg,
    request_id: Annotated[str | None, typer.Option("--request-id", help="One invocation's log.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the latest queued invocations.")] = 5,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the log of an invocation, or of the latest async and trigger invocations."""
    with session(endpoint, data_dir) as client:
        urn = _q(_urn(client, function, package))
        if request_id is None:
            listed = client.request(
                "GET", f"{_base(client)}/{urn}/async-invocations", params={"limit": str(limit)}
            ).json()
            ids = [str(i["request_id"]) for i in listed["invocations"]]
        else:
            ids = [request_id]
        records = [client.request("GET", f"{_base(client)}/{urn}/invocations/{rid}").json() for rid in ids]
    if as_json:
        print_json({"invocations": records})
        return
    if not records:
        console.print("no queued or triggered invocations yet")
    for record in records:
        console.rule(f"{record['request_id']}  {record['status']}")
        console.print(escape(str(record.get("log") or "(no log)").rstrip("\n")))
        if record.get("result") is not None:
            console.print(f"result: {escape(str(record['result']))}")


@app.command("dead-letters")
def dead_letters(
    function: FunctionArg,
    redrive: Annotated[
        list[str] | None, typer.Option("--redrive", help="Queue this dead letter again; repeatable.")
    ] = None,
    redrive_all: Annotated[
        bool, typer.Option("--redrive-all", help="Queue every dead letter again.")
    ] = False,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the invocations that failed every attempt, or queue them again."""
    with session(endpoint, data_dir) as client:
        urn = _q(_urn(client, function, package))
        if redrive or redrive_all:
            body: dict[str, Any] = {"request_ids": redrive} if redrive else {}
            done = client.request("POST", f"{_base(client)}/{urn}/dead-letters/redrive", body=body).json()
            console.print(f"queued {done['count']} invocation(s) again")
            return
        found = client.request("GET", f"{_base(client)}/{urn}/dead-letters").json()
    if as_json:
        print_json(found)
        return
    rows = _invocation_rows(found["dead_letters"])
    console.print(fit_table(INVOCATION_COLUMNS, rows, title=f"{found['count']} dead letter(s)"))


# --- triggers -----------------------------------------------------------------------------------------------


def _triggers_path(client: ApiClient, urn: str) -> str:
    return f"/v2/{client.project}/fgs/triggers/{_q(urn)}"


def parse_operations(texts: list[str]) -> list[str]:
    """``SERVICE:RESOURCE:trace1,trace2`` (repeatable) → ``["SERVICE:RESOURCE:trace1", ...]``."""
    found: list[str] = []
    for text in texts:
        service, sep, rest = text.partition(":")
        resource, sep2, names = rest.rpartition(":")
        listed = [n.strip() for n in names.split(",") if n.strip()]
        if not (sep and sep2 and service and resource and listed):
            raise fail(
                f"--operation {text!r} must read SERVICE:RESOURCE:trace1,trace2 (e.g. IAM:user:login,logout)"
            )
        found.extend(f"{service}:{resource}:{n}" for n in listed)
    return found


@triggers_app.command("add")
def triggers_add(
    function: FunctionArg,
    name: Annotated[str, typer.Option(help="The trigger's name (its key event notification's).")],
    operation: Annotated[list[str], typer.Option(help="SERVICE:RESOURCE:trace1,trace2; repeatable.")],
    disabled: Annotated[bool, typer.Option(help="Create it switched off.")] = False,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Invoke the function on these key events (a CTS trigger); prints the trigger id."""
    body = {
        "trigger_type_code": "CTS",
        "trigger_status": "DISABLED" if disabled else "ACTIVE",
        "event_data": {"name": name, "operations": parse_operations(operation)},
    }
    with session(endpoint, data_dir) as client:
        made = client.request(
            "POST", _triggers_path(client, _urn(client, function, package)), body=body
        ).json()
    if as_json:
        print_json(made)
        return
    console.print(made["trigger_id"])


@triggers_app.command("list")
def triggers_list(
    function: FunctionArg,
    package: PackageOpt = "default",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List a function's triggers."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", _triggers_path(client, _urn(client, function, package))).json()
    if as_json:
        print_json(found)
        return
    rows = []
    for t in found:
        style = "green" if t["trigger_status"] == "ACTIVE" else "yellow"
        data = t.get("event_data") or {}
        rows.append(
            [
                str(t["trigger_id"]),
                str(t["trigger_type_code"]),
                f"[{style}]{t['trigger_status']}[/{style}]",
                escape(str(data.get("name", ""))),
                escape(", ".join(data.get("operations") or [])),
                str(t.get("created_time", ""))[:19].replace("T", " "),
            ]
        )
    console.print(fit_table(TRIGGER_COLUMNS, rows, title=f"{len(found)} trigger(s)"))


@triggers_app.command("remove")
def triggers_remove(
    function: FunctionArg,
    triggers: Annotated[
        list[str] | None, typer.Argument(help="Trigger ids or names (none with --all).")
    ] = None,
    remove_all: Annotated[bool, typer.Option("--all", help="Remove every trigger of the function.")] = False,
    package: PackageOpt = "default",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Remove triggers of a function (their key event notifications go with them)."""
    if not triggers and not remove_all:
        raise fail("name the triggers to remove, or give --all")
    with session(endpoint, data_dir) as client:
        path = _triggers_path(client, _urn(client, function, package))
        if remove_all:
            client.request("DELETE", path)
            console.print("removed every trigger")
            return
        known = client.request("GET", path).json()
        by_ref = {t["trigger_id"]: t for t in known} | {t["event_data"].get("name"): t for t in known}
        missing = [ref for ref in triggers or [] if ref not in by_ref]
        if missing:
            raise fail(f"no trigger {', '.join(missing)} on {function}")
        for ref in triggers or []:
            t = by_ref[ref]
            client.request("DELETE", f"{path}/{t['trigger_type_code']}/{t['trigger_id']}")
    console.print(f"removed {len(triggers or [])} trigger(s)")

"""``opencts notifications list|create|enable|disable|delete``: key-event notifications from the shell.

A notification can be named by its id or by its name; a topic by its SMN URN, a function URN, or the plain
name of an SMN topic of the project. ``create`` takes either a JSON file (the API's request body) or flags:

    opencts notifications create risky_sg --topic security \\
        --operation VPC:securityGroup:deleteSecurityGroupRule,createSecurityGroupRule \\
        --user admins:alice,bob --filter "code = 200" --filter "trace_rating != normal" --condition AND
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
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
    topic_urn,
)
from opencts.cli.timeparse import format_ms

app = typer.Typer(
    help="Key-event notifications: alarms by SMN when chosen operations happen.", no_args_is_help=True
)

#: the name, its state and what it watches stay; what can be read with --json goes first
COLUMNS = (
    Column("Name", shrink=12),
    Column("Id", drop=3),
    Column("Status"),
    Column("Operations", shrink=16, wrap=True),
    Column("Users", drop=4, shrink=10, wrap=True),
    Column("Filter", drop=2, shrink=10, wrap=True),
    Column("Topic", drop=5, shrink=16),
    Column("Created (UTC)", drop=6),
)

NotificationArg = Annotated[str, typer.Argument(help="Notification id or name.")]
TYPES = ("smn", "fun")


def _path(client: ApiClient, rest: str = "") -> str:
    return f"/v3/{client.project}/notifications{rest}"


def _all(client: ApiClient, kinds: tuple[str, ...] = TYPES) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for kind in kinds:
        found.extend(client.request("GET", _path(client, f"/{kind}")).json()["notifications"])
    return found


def _find(client: ApiClient, ref: str) -> dict[str, Any]:
    for n in _all(client):
        if ref in (n["notification_id"], n["notification_name"]):
            return n
    raise fail(f"no notification with id or name {ref!r} in project {client.project}")


def parse_operation(text: str) -> dict[str, Any]:
    """``SERVICE:RESOURCE:trace1,trace2`` → an ``Operations`` object."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise fail(f"--operation {text!r} must read SERVICE:RESOURCE:trace1,trace2 (e.g. IAM:user:login)")
    names = [t.strip() for t in parts[2].split(",") if t.strip()]
    return {"service_type": parts[0], "resource_type": parts[1], "trace_names": names}


def parse_users(text: str) -> dict[str, Any]:
    """``GROUP:user1,user2`` → a ``NotificationUsers`` object."""
    group, sep, users = text.partition(":")
    names = [u.strip() for u in users.split(",") if u.strip()]
    if not sep or not group or not names:
        raise fail(f"--user {text!r} must read GROUP:user1,user2 (e.g. admins:alice,bob)")
    return {"user_group": group, "user_list": names}


def _summary(n: dict[str, Any]) -> tuple[str, str, str]:
    if n["operation_type"] == "complete":
        ops = "every operation"
    else:
        triples = [
            f"{o['service_type']}:{o['resource_type']}:{t}" for o in n["operations"] for t in o["trace_names"]
        ]
        ops = ", ".join(triples[:3]) + (f" (+{len(triples) - 3} more)" if len(triples) > 3 else "")
    users = [u for g in n["notify_user_list"] for u in g["user_list"]]
    who = ", ".join(users) if users else "every user"
    flt = n.get("filter") or {}
    rules = f" {flt['condition']} ".join(flt.get("rule") or []) if flt.get("is_support_filter") else ""
    return ops, who, rules


@app.command("list")
def list_notifications(
    kind: Annotated[str | None, typer.Option("--type", help="smn or fun (default: both).")] = None,
    name: Annotated[str | None, typer.Option(help="Only the notification with this name.")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the project's key-event notifications."""
    if kind is not None and kind not in TYPES:
        raise fail("--type must be smn or fun")
    with session(endpoint, data_dir) as client:
        found = _all(client, (kind,) if kind else TYPES)
    if name is not None:
        found = [n for n in found if n["notification_name"] == name]
    if as_json:
        print_json({"notifications": found})
        return
    rows = []
    for n in found:
        ops, who, rules = _summary(n)
        style = "green" if n["status"] == "enabled" else "yellow"
        rows.append(
            [
                escape(n["notification_name"]),
                n["notification_id"],
                f"[{style}]{n['status']}[/{style}]",
                escape(ops),
                escape(who),
                escape(rules),
                escape(n["topic_id"] or "(none)"),
                format_ms(n["create_time"]),
            ]
        )
    console.print(fit_table(COLUMNS, rows, title=f"{len(found)} notification(s)"))


def _body_from_file(file: Path) -> dict[str, Any]:
    """The request body as written in ``file`` (``-``: standard input)."""
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        body: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"{file}: not JSON: {exc}") from None
    return body


def _body_from_flags(
    name: str, operation: list[str], user: list[str], filter_rule: list[str], condition: str, disabled: bool
) -> dict[str, Any]:
    """The request body the options describe: no operation means every operation, no user every user."""
    ops = [parse_operation(o) for o in operation]
    body: dict[str, Any] = {"notification_name": name, "operation_type": "customized" if ops else "complete"}
    if ops:
        body["operations"] = ops
    if user:
        body["notify_user_list"] = [parse_users(u) for u in user]
    if filter_rule:
        body["filter"] = {"condition": condition.upper(), "is_support_filter": True, "rule": filter_rule}
    if disabled:
        body["status"] = "disabled"
    return body


@app.command("create")
def create(
    name: Annotated[str | None, typer.Argument(help="Up to 64 letters, digits and _.")] = None,
    file: Annotated[Path | None, typer.Option(help="A JSON request body (- reads standard input).")] = None,
    name_option: Annotated[str | None, typer.Option("--name", hidden=True)] = None,
    topic: Annotated[str | None, typer.Option(help="SMN topic (URN or name) or function URN.")] = None,
    operation: Annotated[
        list[str] | None,
        typer.Option(help="SERVICE:RESOURCE:trace1,trace2; repeatable. None = every operation."),
    ] = None,
    user: Annotated[
        list[str] | None, typer.Option(help="GROUP:user1,user2; repeatable. None = every user.")
    ] = None,
    filter_rule: Annotated[
        list[str] | None, typer.Option("--filter", help='"<field> =|!= <value>", up to 6; repeatable.')
    ] = None,
    condition: Annotated[str, typer.Option(help="AND (every filter rule) or OR (any).")] = "AND",
    disabled: Annotated[bool, typer.Option(help="Create it switched off.")] = False,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a notification; prints its id."""
    name = name or name_option
    if file is not None:
        body = _body_from_file(file)
    elif name:
        body = _body_from_flags(name, operation or [], user or [], filter_rule or [], condition, disabled)
    else:
        raise fail("give a NAME (and the other settings as options) or --file with a JSON request body")
    with session(endpoint, data_dir) as client:
        if topic is not None:
            body["topic_id"] = topic_urn(client, topic)
        made = client.request("POST", _path(client), body=body).json()
    if as_json:
        print_json(made)
        return
    console.print(made["notification_id"])


def _set_status(ref: str, status: str, endpoint: str | None, data_dir: Path | None) -> None:
    with session(endpoint, data_dir) as client:
        n = _find(client, ref)
        if status == "enabled" and not n["topic_id"]:
            raise fail(f"{n['notification_name']} has no topic; create it again with --topic")
        body = {
            k: n[k]
            for k in (
                "notification_id",
                "notification_name",
                "operation_type",
                "topic_id",
                "agency_name",
                "filter",
            )
            if n.get(k) is not None
        }
        if n["operation_type"] == "customized":
            body["operations"] = n["operations"]
        if n["notify_user_list"]:
            body["notify_user_list"] = n["notify_user_list"]
        body["status"] = status
        client.request("PUT", _path(client), body=body)
    console.print(f"{n['notification_name']} ({n['notification_id']}) {status}")


@app.command("enable")
def enable(notification: NotificationArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Switch a notification on."""
    _set_status(notification, "enabled", endpoint, data_dir)


@app.command("disable")
def disable(notification: NotificationArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Switch a notification off (it keeps its settings and topic)."""
    _set_status(notification, "disabled", endpoint, data_dir)


@app.command("delete")
def delete(
    notifications: Annotated[list[str], typer.Argument(help="Ids or names; all are deleted, or none.")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete one or more notifications in one call (all or nothing)."""
    with session(endpoint, data_dir) as client:
        known = {n["notification_name"]: n["notification_id"] for n in _all(client)}
        ids = [known.get(ref, ref) for ref in notifications]
        client.request("DELETE", _path(client), params={"notification_id": ",".join(ids)})
    console.print(f"deleted {len(ids)} notification(s)")

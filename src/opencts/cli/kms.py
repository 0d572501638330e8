"""``opencts kms create|list|show|disable|enable|rotate``: the key service's keys, through its API.

A key is named by its id or by its alias (looked up in the project). Disabling a key stops new encrypted
trace files under it; files already written stay readable. Rotating adds a version that encrypts new
files; the earlier versions keep decrypting the files written under them.
"""

from __future__ import annotations

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
    help="KMS: keys that encrypt archived trace files (create, list, disable, enable, rotate).",
    no_args_is_help=True,
)

KeyArg = Annotated[str, typer.Argument(help="Key id or alias.")]
KEY_COLUMNS = (
    Column("Alias", shrink=12),
    Column("Key id"),
    Column("State"),
    Column("Version", drop=1),
    Column("Created (UTC)", drop=2),
    Column("Description", drop=3, shrink=10),
)
STATES = {"1": "pending activation", "2": "enabled", "3": "disabled", "4": "pending deletion"}
_STATE_CODES = {"enabled": "2", "disabled": "3"}


def _path(client: ApiClient, op: str) -> str:
    return f"/v1.0/{client.project}/kms/{op}"


def _all_keys(client: ApiClient, state: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    body: dict[str, Any] = {"limit": "1000", **({"key_state": state} if state else {})}
    while True:
        page = client.request("POST", _path(client, "list-keys"), body=body).json()
        found.extend(page["key_details"])
        if page["truncated"] != "true":
            return found
        body["marker"] = page["next_marker"]


def key_id(client: ApiClient, key: str) -> str:
    """``key`` if it is a key id, else the id of the project's key with that alias."""
    for details in _all_keys(client):
        if key in (details["key_id"], details["key_alias"]):
            return str(details["key_id"])
    raise fail(f"no key {key!r} in project {client.project}")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The key's alias: letters, digits, ':', '/', '_' and '-'.")],
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an AES-256 key and print its id (give it to a tracker as kms_id)."""
    with session(endpoint, data_dir) as client:
        body = {"key_alias": name, "key_description": description}
        made = client.request("POST", _path(client, "create-key"), body=body).json()
    console.print(made["key_info"]["key_id"])


@app.command("list")
def list_keys(
    state: Annotated[str | None, typer.Option(help="Only enabled or disabled keys.")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the project's keys."""
    if state is not None and state not in _STATE_CODES:
        raise fail("--state is enabled or disabled")
    with session(endpoint, data_dir) as client:
        found = _all_keys(client, _STATE_CODES.get(state or ""))
    if as_json:
        print_json({"keys": found})
        return
    rows = [
        [
            escape(k["key_alias"]),
            k["key_id"],
            STATES.get(k["key_state"], k["key_state"]),
            str(k["key_version"]),
            format_ms(int(k["creation_date"])),
            escape(k["key_description"]),
        ]
        for k in found
    ]
    console.print(fit_table(KEY_COLUMNS, rows, title=f"{len(found)} key(s)"))


@app.command("show")
def show(key: KeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Describe one key (JSON)."""
    with session(endpoint, data_dir) as client:
        body = {"key_id": key_id(client, key)}
        print_json(client.request("POST", _path(client, "describe-key"), body=body).json()["key_info"])


def _act(op: str, key: str, endpoint: str | None, data_dir: Any) -> dict[str, Any]:
    with session(endpoint, data_dir) as client:
        body = {"key_id": key_id(client, key)}
        info: dict[str, Any] = client.request("POST", _path(client, op), body=body).json()["key_info"]
    return info


@app.command("disable")
def disable(key: KeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Disable a key: no new trace file is encrypted under it (its trackers show an error)."""
    info = _act("disable-key", key, endpoint, data_dir)
    console.print(f"disabled {info['key_id']}")


@app.command("enable")
def enable(key: KeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enable a key again."""
    info = _act("enable-key", key, endpoint, data_dir)
    console.print(f"enabled {info['key_id']}")


@app.command("rotate")
def rotate(key: KeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Rotate a key now: a new version encrypts new files; old files stay readable."""
    info = _act("rotate-key", key, endpoint, data_dir)
    console.print(f"rotated {info['key_id']}: version {info['key_version']}")

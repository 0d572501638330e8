"""``opencts archive ...``: the trace archive. ``keys`` lists or rotates the signing keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import DataDirOpt, EndpointOpt, console, err

app = typer.Typer(help="The trace archive.", no_args_is_help=True)
keys_app = typer.Typer(help="The keys that sign checkpoints and digests.")
app.add_typer(keys_app, name="keys")


@keys_app.callback(invoke_without_command=True)
def keys(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Write the published keys (JSON) to this file.")] = None,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the published signing keys (the verifier's --keys file), or write them with --output."""
    if ctx.invoked_subcommand is not None:
        return
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        doc = client.request("GET", f"/v3/{client.project}/archive/signing-keys").json()
    text = json.dumps(doc, indent=2) + "\n"
    if output is None:
        console.print(text, end="", markup=False, highlight=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"{len(doc['keys'])} key(s) written to {output}", markup=False)


@keys_app.command("rotate")
def rotate(endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Retire the current signing key now; a new one signs from now on (old ones stay published)."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        doc = client.request("POST", f"/v3/{client.project}/archive/signing-keys/rotate").json()
    console.print(f"current signing key: {doc['current']}", markup=False)

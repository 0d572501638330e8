"""``opencts iam source-tokens`` and ``opencts sources``: the tokens webhooks send, and their setup.

A source token is printed once, on the last line of ``create``'s output, so a script can take it with
``| tail -n 1``; everything said around it goes to stderr. ``sources kubernetes-config`` prints the
kubeconfig an API server's ``--audit-webhook-config-file`` takes, reading the token from a file so that it
is never on a command line (shell history, ``ps``).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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
from opencts.clock import iso_ms
from opencts.config import DEFAULT_BIND

tokens_app = typer.Typer(
    help="Source tokens: what webhooks (Kubernetes, S3) ingest with.", no_args_is_help=True
)
app = typer.Typer(help="Set up the producers that send their own formats.", no_args_is_help=True)

ProjectOpt = Annotated[
    str | None, typer.Option("--project", help="Project id (default: the project you act in).")
]
TOKEN_COLUMNS = (
    Column("Name", shrink=12),
    Column("Id"),
    Column("Source"),
    Column("Status"),
    Column("Created (UTC)", drop=1),
)


def _path(project: str) -> str:
    return f"/v3/projects/{project}/source-tokens"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A name for the producer, e.g. the cluster's.")],
    project: ProjectOpt = None,
    source: Annotated[str, typer.Option(help="kubernetes (the default), s3 or generic.")] = "kubernetes",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a source token and print it, this once, on the last line."""
    with session(endpoint, data_dir) as client:
        body = {"name": name, "source": source}
        made = client.request("POST", _path(project or client.project), body=body).json()["source_token"]
    err.print("[yellow]The token is shown only now and cannot be retrieved later: store it safely.[/]")
    console.print(f"id:       {made['id']}")
    console.print(f"project:  {made['project_id']}")
    console.print(f"source:   {made['source']}")
    print(made["token"])  # noqa: T201 - plain, alone, last: for scripts


@tokens_app.command("list")
def tokens_list(
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List a project's source tokens (never the tokens themselves)."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", _path(project or client.project)).json()["source_tokens"]
    if as_json:
        print_json({"source_tokens": found})
        return
    rows = [
        [
            escape(t["name"]),
            t["id"],
            t["source"],
            "[green]active[/]" if t["status"] == "active" else "[red]revoked[/]",
            iso_ms(t["created_at"], "seconds"),
        ]
        for t in found
    ]
    console.print(fit_table(TOKEN_COLUMNS, rows))


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from list), or its name.")],
    project: ProjectOpt = None,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a source token: its producer is refused from the next request on."""
    with session(endpoint, data_dir) as client:
        path = _path(project or client.project)
        found = client.request("GET", path).json()["source_tokens"]
        match = [t for t in found if t["id"] == token_id] or [
            t for t in found if t["name"] == token_id and t["status"] == "active"
        ]
        if not match:
            raise fail(f"no source token {token_id!r} (id, or name of a working one) in this project")
        client.request("DELETE", f"{path}/{match[0]['id']}")
    console.print(f"source token {escape(match[0]['name'])} ({match[0]['id']}) is revoked")


def kubeconfig(server: str, token: str, ca_pem: bytes | None = None) -> str:
    """The webhook kubeconfig: one cluster (OpenCTS's URL), one user (the token), one context.

    Strings are written as JSON strings, which YAML reads as double-quoted scalars: nothing in a URL or a
    token can break the file.
    """
    cluster = f"    server: {json.dumps(server)}\n"
    if ca_pem is not None:
        cluster += f"    certificate-authority-data: {base64.b64encode(ca_pem).decode()}\n"
    return (
        "# Audit webhook backend for kube-apiserver: save this file and start the API server with\n"
        "#   --audit-webhook-config-file=<this file> --audit-policy-file=<your audit policy>\n"
        "# The token in it ingests into one OpenCTS project and can do nothing else; keep the file 0600.\n"
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: opencts\n"
        "  cluster:\n"
        f"{cluster}"
        "users:\n"
        "- name: opencts-source-token\n"
        "  user:\n"
        f"    token: {json.dumps(token)}\n"
        "contexts:\n"
        "- name: opencts\n"
        "  context:\n"
        "    cluster: opencts\n"
        "    user: opencts-source-token\n"
        "current-context: opencts\n"
    )


@app.command("kubernetes-config")
def kubernetes_config(
    project: Annotated[str, typer.Option("--project", help="The project the cluster's events go to.")],
    token_file: Annotated[
        Path, typer.Option("--token-file", help="A file holding a kubernetes source token.", exists=True)
    ],
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="PEM of the CA that signed OpenCTS's TLS certificate.")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OpenCTS URL the cluster reaches (default OPENCTS_PUBLIC_URL, OPENCTS_ENDPOINT,"
            " else http://OPENCTS_BIND).",
        ),
    ] = None,
) -> None:
    """Print the kubeconfig for kube-apiserver's --audit-webhook-config-file."""
    lines = [line.strip() for line in token_file.read_text().splitlines() if line.strip()]
    if not lines:
        raise fail(f"{token_file} holds no token")
    env = os.environ
    base = (
        endpoint
        or env.get("OPENCTS_PUBLIC_URL")
        or env.get("OPENCTS_ENDPOINT")
        or f"http://{env.get('OPENCTS_BIND', DEFAULT_BIND)}"
    ).rstrip("/")
    server = f"{base}/v3/{project}/sources/kubernetes"
    ca = ca_file.read_bytes() if ca_file is not None else None
    print(kubeconfig(server, lines[-1], ca), end="")  # noqa: T201 - the file, as is

"""What every ``opencts`` command group shares: where to connect, how to fail, how to print JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from opencts.cli.client import ApiClient, ApiError, resolve_target

console = Console()
err = Console(stderr=True)

EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="OpenCTS URL (default http://OPENCTS_BIND).")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Read credentials.json from here (default OPENCTS_DATA_DIR)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


@contextmanager
def session(endpoint: str | None, data_dir: Path | None) -> Iterator[ApiClient]:
    """A signed client whose API errors end the command with the server's message and exit status 1."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        try:
            yield client
        except ApiError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None


def fail(message: str) -> typer.Exit:
    """Print why, and return the exit to ``raise``."""
    err.print(f"[red]{message}[/red]")
    return typer.Exit(1)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False))  # one document per line, for scripts
    sys.stdout.write("\n")


def topic_urn(client: ApiClient, topic: str) -> str:
    """A URN as given, or the URN of the project's SMN topic with that name."""
    if topic.startswith("urn:"):
        return topic
    found = client.request("GET", f"/v2/{client.project}/notifications/topics", params={"name": topic}).json()
    if not found["topics"]:
        raise fail(f"no topic named {topic!r} in project {client.project}")
    return str(found["topics"][0]["topic_urn"])

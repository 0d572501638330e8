"""Entry point: ``opencts serve``, ``opencts demo`` and the ``traces`` group."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

from opencts.cli import iam, notifications, smn, traces
from opencts.cli.client import ApiClient, resolve_target
from opencts.cli.common import DataDirOpt, EndpointOpt
from opencts.clock import now_ms

app = typer.Typer(
    help="OpenCTS: a self-hosted Cloud Trace Service.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(traces.app, name="traces")
app.add_typer(iam.app, name="iam")
app.add_typer(smn.app, name="smn")
app.add_typer(notifications.app, name="notifications")
console = Console(stderr=True)


@app.command()
def serve(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (OPENCTS_DATA_DIR, default ./data).")
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="HOST:PORT (OPENCTS_BIND, default 127.0.0.1:8080).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Start the service; on first start it creates the account and writes credentials.json."""
    import uvicorn

    from opencts.api.app import create_app, open_database
    from opencts.config import Settings
    from opencts.iam.bootstrap import read_credentials

    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if bind is not None:
        overrides["bind"] = bind
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    open_database(settings).close()  # migrate and bootstrap now, so the banner can say how to log in
    creds = read_credentials(settings.credentials_path)
    url = settings.resolved_public_url
    # the command as it was started (``.venv/bin/opencts`` under ``make run``), so the hint runs as shown
    cmd = sys.argv[0] if sys.argv and sys.argv[0].endswith("opencts") else "opencts"
    console.print(
        Panel.fit(
            f"[bold]OpenCTS[/bold] is starting at [link={url}]{url}[/link]  (API docs: {url}/docs)\n"
            f"data dir:     {settings.data_dir.resolve()}\n"
            f"database:     {settings.resolved_database_url.split('?')[0]}\n"
            f"log in as:    user [bold]{creds.user_name}[/bold] in account {creds.domain_name}\n"
            f"credentials:  {settings.credentials_path.resolve()}\n"
            f"              (password, access key and secret key; readable by you only)\n"
            f"project id:   {creds.project_id}   region: {creds.region}\n"
            f"try:          {cmd} demo --data-dir {settings.data_dir}\n"
            f"              {cmd} traces list --data-dir {settings.data_dir} --from 7d",
            title="ready",
        )
    )
    app_ = create_app(settings)
    # An ingest batch of 1,000 traces allocates some 100,000 objects, so CPython's default threshold (a
    # collection every 700 allocations) spent a fifth of the event loop's time walking young objects that
    # were about to be freed anyway. Collections still run, a hundred times less often; what startup
    # imported is frozen out of them.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level=log_level, access_log=False)


@app.command()
def demo(
    count: Annotated[int, typer.Option(help="How many traces to generate over the last 7 days.")] = 5000,
    seed: Annotated[int, typer.Option(help="Same seed, same week (sending it twice adds nothing).")] = 7,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Load a realistic week: logins from several IPs, ECS/VPC/OBS/RDS work by several users, some alarms."""
    from opencts.traces.demo import demo_week

    target = resolve_target(endpoint, data_dir)
    items = demo_week(
        project_id=target.project_id,
        domain_id=target.domain_id or "0" * 32,
        domain_name=target.domain_name or "opencts",
        end_ms=now_ms(),
        count=count,
        seed=seed,
    )
    with ApiClient(target) as client:
        totals = traces.send(client, items, label="loading the demo week")
    counts = ", ".join(f"{key} {totals[key]}" for key in ("accepted", "duplicates", "rejected"))
    console.print(f"demo: {counts}")
    if totals["rejected"]:
        raise typer.Exit(1)


def main() -> None:
    app()

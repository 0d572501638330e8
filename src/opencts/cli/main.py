"""Entry point: ``opencts serve``, ``opencts demo`` and the command groups."""

from __future__ import annotations

import errno
import gc
import logging
import shlex
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel

from opencts.cli import (
    archive,
    config,
    functions,
    iam,
    imports,
    kms,
    ledger,
    lts,
    maintenance,
    notifications,
    smn,
    sources,
    traces,
    trackers,
    verify,
)
from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import CliGroup, DataDirOpt, EndpointOpt, err
from opencts.clock import now_ms
from opencts.config import DEFAULT_BIND

if TYPE_CHECKING:
    from opencts.config import Settings
    from opencts.iam.bootstrap import BootstrapCredentials

app = typer.Typer(
    cls=CliGroup,
    help="OpenCTS: a self-hosted Cloud Trace Service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(traces.app, name="traces")
app.add_typer(trackers.app, name="trackers")
app.add_typer(iam.app, name="iam")
app.add_typer(smn.app, name="smn")
app.add_typer(notifications.app, name="notifications")
app.add_typer(functions.app, name="functions")
app.add_typer(kms.app, name="kms")
app.command("verify")(verify.verify)
app.add_typer(ledger.app, name="ledger")
app.add_typer(archive.app, name="archive")
iam.app.add_typer(sources.tokens_app, name="source-tokens")
app.add_typer(sources.app, name="sources")
app.add_typer(imports.app, name="import")
app.add_typer(config.app, name="config")
app.command("migrate")(maintenance.migrate)
app.command("backup")(maintenance.backup)
app.command("restore")(maintenance.restore)
app.add_typer(lts.app, name="lts")
console = err


def _listen_host(settings: Settings) -> str:
    return settings.host.strip("[]")


def ensure_port_free(settings: Settings) -> None:
    """Fail with one line, before migrating or printing the banner, when the address cannot be listened on.

    Binding as uvicorn does (``SO_REUSEADDR``) fails exactly when uvicorn would, and a port left in
    TIME_WAIT by a server that just stopped is not mistaken for one in use.
    """
    host = _listen_host(settings)
    try:
        infos = socket.getaddrinfo(host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise CliError(f"cannot listen on {settings.bind}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            hint = "; stop what uses it or choose another with --bind HOST:PORT"
            reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
            raise CliError(f"cannot listen on {settings.bind}: {reason}{hint}") from None


def cli_endpoint(settings: Settings) -> str | None:
    """The ``--endpoint`` a CLI on this machine needs to reach this server; None when the default works."""
    if settings.bind == DEFAULT_BIND:
        return None
    host = _listen_host(settings)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


@app.command()
def serve(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (OPENCTS_DATA_DIR, default ./data).")
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="HOST:PORT (OPENCTS_BIND, default 127.0.0.1:8080).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error (OPENCTS_LOG_LEVEL, default info).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log each schema migration step (Alembic).")
    ] = False,
) -> None:
    """Start the service; on first start it creates the account and writes credentials.json."""
    import uvicorn

    from opencts.api.app import create_app
    from opencts.api.server import uvicorn_options
    from opencts.config_check import ConfigError, load_settings, unknown_variables
    from opencts.iam.bootstrap import read_credentials
    from opencts.iam.secrets import MasterKeyError
    from opencts.logs import configure as configure_logging
    from opencts.opening import open_store
    from opencts.store.revisions import SchemaRevisionError

    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if bind is not None:
        overrides["bind"] = bind
    try:
        settings = load_settings(overrides)  # one line naming the variable when a value is not allowed
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    level = (log_level or settings.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise CliError(f"--log-level must be debug, info, warning or error, not {log_level!r}")
    ensure_port_free(settings)
    configure_logging(settings, level)  # OPENCTS_LOG_FORMAT: text or JSON lines, secrets masked
    for name in unknown_variables():
        logging.getLogger("opencts").warning("%s is set but is no OpenCTS setting (a typo?)", name)
    # Alembic logs its context and every step at INFO on each start; they are asked for, not shown.
    logging.getLogger("alembic").setLevel(logging.INFO if verbose or level == "DEBUG" else logging.WARNING)
    try:
        open_store(settings).db.close()  # migrate and bootstrap now, so the banner can say how to log in
    except MasterKeyError as exc:
        raise CliError(str(exc)) from None
    except SchemaRevisionError as exc:
        raise CliError(str(exc)) from None
    if settings.credentials_path.exists():
        _banner(settings, read_credentials(settings.credentials_path))
    else:  # a node that joined a database another node set up has no credentials of its own
        url = settings.resolved_public_url
        console.print(f"OpenCTS is starting at {url} (joined an existing database)", markup=False)
    app_ = create_app(settings)
    # An ingest batch allocates a hundred-odd objects per trace, almost all freed when the batch is
    # answered; at CPython's default threshold (a collection every 700 allocations) the event loop would
    # spend much of its time walking those young objects. Collections still run, far less often, and what
    # startup imported is frozen out of them.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        log_level=level.lower(),
        log_config=None,  # uvicorn's records go through the handler configure_logging installed
        access_log=False,
        **uvicorn_options(settings),
    )


def _banner(settings: Settings, creds: BootstrapCredentials) -> None:
    url = settings.resolved_public_url
    # the command as it was started (``.venv/bin/opencts`` under ``make run``), so the hint runs as shown
    cmd = sys.argv[0] if sys.argv and sys.argv[0].endswith("opencts") else "opencts"
    where = f"--data-dir {shlex.quote(str(settings.data_dir))}"
    if (endpoint := cli_endpoint(settings)) is not None:
        where = f"--endpoint {endpoint} {where}"
    console.print(
        Panel.fit(
            f"[bold]OpenCTS[/bold] is starting at [link={url}]{url}[/link]  (API docs: {url}/docs)\n"
            f"console:      [link={url}/console/]{url}/console/[/link]\n"
            f"data dir:     {settings.data_dir.resolve()}\n"
            f"database:     {settings.resolved_database_url.split('?')[0]}\n"
            f"log in as:    user [bold]{creds.user_name}[/bold] in account {creds.domain_name}\n"
            f"credentials:  {settings.credentials_path.resolve()}\n"
            f"              (password, access key and secret key; readable by you only)\n"
            f"project id:   {creds.project_id}   region: {creds.region}",
            title="ready",
        )
    )
    # Outside the box and never wrapped by us, so each command is copied whole from a narrow terminal.
    for hint in (f"{cmd} demo {where}", f"{cmd} traces list {where} --from 7d"):
        console.print(f"try: {hint}", markup=False, highlight=False)


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

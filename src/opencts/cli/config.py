"""``opencts config check``: validate every ``OPENCTS_*`` setting and print the configuration in force."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opencts.cli.client import CliError
from opencts.cli.common import CliGroup, err
from opencts.config_check import ConfigError, effective, load_settings, unknown_variables

app = typer.Typer(cls=CliGroup, help="The service's configuration.", no_args_is_help=True)


@app.command("check")
def check(
    data_dir: Annotated[Path | None, typer.Option(help="As for `opencts serve` (OPENCTS_DATA_DIR).")] = None,
    bind: Annotated[str | None, typer.Option(help="As for `opencts serve` (OPENCTS_BIND).")] = None,
) -> None:
    """Check every OPENCTS_* setting; print the effective configuration, secrets masked.

    Exits 1, with one line naming the setting, when a value is not allowed; the same check stops
    `opencts serve`. Unknown OPENCTS_* variables (typos, most likely) are warned about.
    """
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if bind is not None:
        overrides["bind"] = bind
    for name in unknown_variables():
        err.print(f"warning: {name} is set but is no OpenCTS setting (a typo?)", markup=False)
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    rows = effective(settings, overrides=overrides)
    width = max(len(row.variable) for row in rows)
    for row in rows:
        typer.echo(f"{row.variable.ljust(width)}  {row.value}  ({row.source})")
    err.print("configuration is valid", markup=False)

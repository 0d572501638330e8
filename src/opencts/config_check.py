"""Checking the configuration: ``opencts config check`` and the first thing ``opencts serve`` does.

A bad value stops the start with one line that names the variable (``OPENCTS_RETENTION_DAYS=0: Input
should be greater than or equal to 1``), not a pydantic report. A variable with the ``OPENCTS_`` prefix
that nothing reads is most often a typo (``OPENCTS_RETENTON_DAYS``) whose setting silently kept its
default, so it is warned about; the CLI's own variables and those of the client library
(``OPENCTS_CLIENT_*``) are not settings of the server and are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url

from opencts.config import Settings

PREFIX = "OPENCTS_"
#: read by the client library, not the server
CLIENT_PREFIX = "OPENCTS_CLIENT_"
#: read by the CLI (``opencts traces list`` and friends) and the test suite, not by the server
OTHER_VARIABLES = frozenset(
    {
        "OPENCTS_ENDPOINT",
        "OPENCTS_ACCESS_KEY",
        "OPENCTS_SECRET_KEY",
        "OPENCTS_PROJECT_ID",
        "OPENCTS_TEST_POSTGRES",
    }
)
MASK = "***"


class ConfigError(ValueError):
    """A setting's value is not allowed; the message is one line naming the variable."""


def variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def _shown(field: str, value: Any) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and info.annotation is not None and "SecretStr" in str(info.annotation):
        return MASK
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of the environment and ``overrides``; :class:`ConfigError` names what is wrong."""
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(map(str, error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            if field:
                problems.append(f"{variable(field)}={_shown(field, error.get('input'))}: {message}")
            else:  # a rule over several settings: its message names them
                problems.append(message)
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``OPENCTS_*`` variables that are no setting and nothing else reads (typos, most likely)."""
    env = os.environ if environ is None else environ
    known = {variable(name) for name in Settings.model_fields} | OTHER_VARIABLES
    return sorted(
        name
        for name in env
        if name.upper().startswith(PREFIX)
        and not name.upper().startswith(CLIENT_PREFIX)
        and name.upper() not in known
    )


@dataclass(frozen=True)
class Effective:
    variable: str
    value: str
    source: str  # "environment", "option" or "default"


def _masked(field: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return MASK
    if field == "database_url":
        return make_url(str(value)).render_as_string(hide_password=True)
    return str(value)


def effective(
    settings: Settings, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> list[Effective]:
    """Every setting's value in force, secrets masked, and where it came from."""
    env = {k.upper() for k in (os.environ if environ is None else environ)}
    rows = []
    for field in Settings.model_fields:
        name = variable(field)
        source = "option" if field in (overrides or {}) else "environment" if name in env else "default"
        rows.append(Effective(name, _masked(field, getattr(settings, field)), source))
    return rows

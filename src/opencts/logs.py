"""How the service logs: text or JSON lines (``OPENCTS_LOG_FORMAT``), at ``OPENCTS_LOG_LEVEL``.

JSON lines carry ``time``, ``level``, ``logger`` and ``message``, then any fields the record was given
(``extra={"fields": {...}}``): the access log's request id, principal, route, status and duration land
there as their own keys, for a log pipeline to index. Whatever the format, the deployment's secrets (the
master keys, passwords, the scrape token, the AMQP URL) are masked if a message ever contains one.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from opencts.config import Settings

MASK = "***"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:  # a traceback MaskSecrets already rendered (and masked)
            out["exception"] = record.exc_text.rstrip()
        return orjson.dumps(out, default=str).decode()


class MaskSecrets(logging.Filter):
    """Replace any of the given secret values in a record's message (and traceback text) by ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and any(s in str(record.exc_info[1]) for s in self.secrets):
            record.exc_text = self._mask("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def secret_values(settings: Settings) -> list[str]:
    """The values of every secret setting (``SecretStr``), as given."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            values.append(str(value.get_secret_value()))
    return values


def configure(settings: Settings, level: str | None = None) -> None:
    """Send every logger's records to stderr in the configured format (uvicorn's too: it propagates)."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskSecrets(secret_values(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or settings.log_level).upper())

"""What the source mappings share: the error of one malformed item, and reading its times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class BadItem(ValueError):
    """One event or record is malformed; the message says which field and why. The mapping that catches
    it names the item (``items[3]``, ``Records[1]``) and refuses the whole batch."""


def time_ms(value: Any, key: str, form: str = "RFC 3339") -> int:
    """An ISO 8601 / RFC 3339 time with a zone (``2024-05-01T10:00:00.123456Z``) in ms since the epoch."""
    if not isinstance(value, str):
        raise BadItem(f"{key} must be an {form} time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadItem(f"{key} {value[:40]!r} is not an {form} time") from None
    if when.tzinfo is None:
        raise BadItem(f"{key} {value[:40]!r} has no time zone")
    return (when - _EPOCH) // _MS

"""One place to read and write the time, in the unit CTS speaks: integer milliseconds since the epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int, timespec: Literal["seconds", "milliseconds", "microseconds"] = "milliseconds") -> str:
    """``ms`` as ISO 8601 UTC with a ``Z``: ``2024-05-01T10:00:00.123Z``.

    ``timespec`` picks the precision each API's wire format has (SMN seconds, IAM microseconds). The
    arithmetic is exact (no float seconds). Beyond the years 1–9999 it raises ``OverflowError``.
    """
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec=timespec).replace("+00:00", "Z")

"""One place to read the time, in the unit CTS speaks: integer milliseconds since the epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """``2026-12-05T07:00:00.123Z``: UTC, to the millisecond, as the SDKs parse datetimes."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

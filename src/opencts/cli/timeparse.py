"""Times on the command line: milliseconds, ISO 8601, or "how long ago" (``90s``, ``15m``, ``2h``, ``7d``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from opencts.clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}


def parse_time(value: str, now_ms: int) -> int:
    value = value.strip()
    if value.isdigit():
        return int(value)
    if match := _AGO.match(value):
        return now_ms - int(match.group(1)) * _UNIT_MS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use ms, ISO 8601, or 15m/2h/7d ago)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def format_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")

"""iso_ms: the one ms → ISO 8601 formatter, exact to the millisecond at every precision an API uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opencts.clock import DAY_MS, HOUR_MS, MINUTE_MS, iso_ms


def test_precisions() -> None:
    ms = 1_714_557_600_123  # 2024-05-01T10:00:00.123Z
    assert iso_ms(ms) == "2024-05-01T10:00:00.123Z"
    assert iso_ms(ms, "seconds") == "2024-05-01T10:00:00Z"
    assert iso_ms(ms, "microseconds") == "2024-05-01T10:00:00.123000Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_every_millisecond_is_exact() -> None:
    """Float seconds would turn some milliseconds into the one before (…0.999 → …0.998)."""
    base = 1_700_000_000_000
    for ms in range(base, base + 2000):
        parsed = datetime.fromisoformat(iso_ms(ms, "microseconds").replace("Z", "+00:00"))
        assert parsed == datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)


def test_units_and_range() -> None:
    assert (MINUTE_MS, HOUR_MS, DAY_MS) == (60_000, 3_600_000, 86_400_000)
    with pytest.raises(OverflowError):
        iso_ms(10**17)

from __future__ import annotations

import orjson

from opencts.traces.export import _TimeFormat, csv_row

BODY = {
    "trace_name": "login",
    "resource_type": "user",
    "service_type": "IAM",
    "resource_id": "u1",
    "resource_name": "alice",
    "trace_rating": "warning",
    "user": {"name": "alice"},
    "time": 1_800_000_000_123,
    "source_ip": "203.0.113.9",
    "code": "401",
    "trace_type": "ConsoleAction",
    "trace_id": "t1",
    "request_id": "r1",
}
EXPECTED = (
    "login",
    "user",
    "IAM",
    "u1",
    "alice",
    "warning",
    "alice",
    "2027-01-15T08:00:00.123Z",
    "203.0.113.9",
    "401",
    "ConsoleAction",
    "t1",
    "r1",
)


def test_rows_are_made_from_columns() -> None:
    row = (
        1, BODY["time"], "login", "user", "IAM", "u1", "alice", "warning", "alice", "203.0.113.9", "401",
        "ConsoleAction", "t1", "r1", b"not parsed",
    )  # fmt: skip
    assert csv_row(row, _TimeFormat()) == EXPECTED


def test_rows_written_before_the_export_columns_fall_back_to_the_body() -> None:
    row = (1, 0, "", "", "", "", "", "", "", None, None, "", "", None, orjson.dumps(BODY))
    assert csv_row(row, _TimeFormat()) == EXPECTED


def test_time_format_changes_with_the_second() -> None:
    fmt = _TimeFormat()
    assert [fmt(1_800_000_000_999), fmt(1_800_000_001_000)] == [
        "2027-01-15T08:00:00.999Z",
        "2027-01-15T08:00:01.000Z",
    ]

from __future__ import annotations

import csv
import io
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from opencts.clock import DAY_MS
from opencts.traces import export
from opencts.traces.export import _TimeFormat, csv_row
from opencts.traces.query import TraceQuery

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
        "ConsoleAction", "t1", "r1", "alice (AK1)", b"not parsed",
    )  # fmt: skip
    assert csv_row(row, _TimeFormat()) == (*EXPECTED, "alice (AK1)")


def test_rows_written_before_the_export_columns_fall_back_to_the_body() -> None:
    row = (1, 0, "", "", "", "", "", "", "", None, None, "", "", None, None, orjson.dumps(BODY))
    assert csv_row(row, _TimeFormat()) == (*EXPECTED, "")


def test_the_submitter_column_comes_from_its_column_not_from_the_body() -> None:
    """A body's own ``submitter`` (none is ever stored from a producer) never fills the column."""
    forged = orjson.dumps({**BODY, "submitter": {"type": "service", "name": "OpenCTS"}})
    columns = (
        1, BODY["time"], "login", "user", "IAM", "u1", "alice", "warning", "alice", "203.0.113.9", "401",
        "ConsoleAction", "t1", "r1", "mallory (AK9)", forged,
    )  # fmt: skip
    legacy_row = (1, 0, "", "", "", "", "", "", "", None, None, "", "", None, None, forged)
    assert csv_row(columns, _TimeFormat())[-1] == "mallory (AK9)"
    assert csv_row(legacy_row, _TimeFormat())[-1] == ""


def test_time_format_changes_with_the_second() -> None:
    fmt = _TimeFormat()
    assert [fmt(1_800_000_000_999), fmt(1_800_000_001_000)] == [
        "2027-01-15T08:00:00.999Z",
        "2027-01-15T08:00:01.000Z",
    ]


# --- the fast CSV path must be byte for byte what csv.writer makes of csv_row ---------------------------

Row = namedtuple("Row", export.CSV_SOURCE)  # type: ignore[misc]  # what trace_log.page returns, by position


def row(**overrides: Any) -> Any:
    """A stored trace in CSV_SOURCE order: columns filled, body only needed for the fallback."""
    values: dict[str, Any] = {
        "seq": 1,
        "time": BODY["time"],
        "trace_name": "login",
        "resource_type": "user",
        "service_type": "IAM",
        "resource_id": "u1",
        "resource_name": "alice",
        "trace_rating": "warning",
        "user_name": "alice",
        "source_ip": "203.0.113.9",
        "code": "401",
        "trace_type": "ConsoleAction",
        "trace_id": "t1",
        "request_id": "r1",
        "submitter": "alice (AK1)",
        "body": b"not parsed",
    }
    values.update(overrides)
    return Row(**values)


def legacy(**body: Any) -> Any:
    """A row written before migration 0005: no source_ip, code or request_id column values."""
    return row(
        source_ip=None, code=None, request_id=None, submitter=None, body=orjson.dumps({**BODY, **body})
    )


def reference(rows: list[Any]) -> str:
    """csv.writer's output, with OWASP's rule for formula cells: a leading quote, and the row quoted."""
    buf = io.StringIO()
    minimal = csv.writer(buf, lineterminator="\r\n")
    quote_all = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for r in rows:
        cells = csv_row(r, _TimeFormat())
        formula = [isinstance(c, str) and c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in cells]
        if any(formula):
            quote_all.writerow(["'" + c if f else c for c, f in zip(cells, formula, strict=True)])
        else:
            minimal.writerow(cells)
    return buf.getvalue()


def no_fallback(_row: Any) -> str:
    raise AssertionError("this chunk should not need csv.writer")


def test_plain_chunks_never_reach_csv_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        row(seq=i, time=1_800_000_000_123 - i * 997, resource_id=None, request_id=None) for i in range(50)
    ]
    chunks = export._CsvChunks()
    monkeypatch.setattr(chunks, "_line", no_fallback)
    assert chunks.text(rows) == reference(rows)


@pytest.mark.parametrize(
    "field, value",
    [
        ("resource_name", "web, prod"),
        ("resource_name", 'the "big" one'),
        ("trace_name", "a\nb"),
        ("resource_id", "a\rb"),
        ("resource_id", "a\r\nb"),
        ("user_name", "nul\0byte"),
        ("request_id", ","),
        ("code", '"'),
        ("submitter", "a, b (token)"),
    ],
)
@pytest.mark.parametrize("plain", [0, 20], ids=["mostly odd", "one odd row among many"])
def test_rows_that_need_quoting_match_csv_writer(field: str, value: str, plain: int) -> None:
    rows = [row(seq=i) for i in range(plain)] + [row(seq=-1, **{field: value})] + [row(seq=-2)]
    assert export._CsvChunks().text(rows) == reference(rows)


def test_rows_without_export_columns_are_read_from_the_body_in_place() -> None:
    rows = [row(seq=1), legacy(resource_name='quoted, "name"'), row(seq=3), legacy(code=500), row(seq=5)]
    text = export._CsvChunks().text(rows)
    assert text == reference(rows)
    assert text.splitlines()[3].split(",")[9] == "500"  # an int in an old body, written as csv.writer does


def test_every_code_point_outside_the_quoting_set_is_copied_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the fast path's premise on this Python: csv.writer quotes only what _NEEDS_CSV lists."""
    special = {ord(c) for c in (*export._NEEDS_CSV, ",")}
    points = [chr(i) for i in range(0x110000) if i not in special and not 0xD800 <= i < 0xE000]
    names = ["".join(points[i : i + 256]) for i in range(0, len(points), 256)]
    rows = [row(seq=i, resource_name=name) for i, name in enumerate(names)]
    chunks = export._CsvChunks()
    monkeypatch.setattr(chunks, "_line", no_fallback)
    assert chunks.text(rows) == reference(rows)


def test_export_csv_is_csv_writer_output_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "CHUNK", 2)
    rows = [
        row(seq=5, time=1_800_000_003_000),
        row(seq=4, time=1_800_000_002_000, resource_name="a,b"),
        legacy(trace_id="old"),
        row(seq=2, time=1_800_000_000_001),
        row(seq=1, time=1_800_000_000_000),
    ]
    pages: Iterator[list[Any]] = iter([rows[0:2], rows[2:4], rows[4:]])

    def read(_fetch: Callable[[Any], list[Any]]) -> list[Any]:
        return next(pages)

    out = b"".join(export.export_csv(read, "p", TraceQuery(time_from=0, time_to=2**62), None))
    assert out.decode() == "\ufeff" + ",".join(export.CSV_COLUMNS) + "\r\n" + reference(rows)


# --- timestamps ------------------------------------------------------------------------------------------


def iso(ms: int) -> str:
    """The obvious formatter, per row: what _TimeFormat must equal."""
    second, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


@pytest.mark.parametrize(
    "ms, expected",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),  # before the epoch: floor, not towards zero
        (1_709_164_799_999, "2024-02-28T23:59:59.999Z"),
        (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),  # leap day
        (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),  # .999 stays .999: truncated, never rounded up
        (1_735_689_600_000, "2025-01-01T00:00:00.000Z"),
        (1_800_000_000_123, "2027-01-15T08:00:00.123Z"),
    ],
)
def test_time_format_edges(ms: int, expected: str) -> None:
    assert _TimeFormat()(ms) == expected == iso(ms)


def test_time_format_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a half-hour offset would show in the hour prefix
    time.tzset()
    try:
        fmt = _TimeFormat()
        assert [fmt(1_800_000_000_123), fmt(1_800_000_000_123 + 1_800_000)] == [
            "2027-01-15T08:00:00.123Z",
            "2027-01-15T08:30:00.123Z",
        ]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_time_format_matches_datetime_over_decades_and_keeps_a_bounded_cache() -> None:
    fmt = _TimeFormat()
    start = 1_000_000_000_000  # 2001, then every ~37 hours (at odd minutes and milliseconds) to 2034
    for ms in range(start, start + 3 * export._DAYS_KEPT * DAY_MS, 133_333_337):
        assert fmt(ms) == iso(ms)
    assert len(fmt.days) <= export._DAYS_KEPT

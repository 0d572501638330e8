"""Stream every trace a query matches, as CSV (the console's columns) or NDJSON, in constant memory.

CTS stops a console export at 5,000 rows; we stream the whole result in keyset chunks instead.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from opencts.clock import DAY_MS, HOUR_MS
from opencts.store import trace_log
from opencts.store.term_index import TermIndex
from opencts.traces.query import TraceQuery

CSV_COLUMNS = (
    "Trace Name",
    "Resource Type",
    "Trace Source",
    "Resource ID",
    "Resource Name",
    "Trace Rating",
    "Operator",
    "Operation Time",
    "Source IP",
    "Code",
    "Trace Type",
    "Trace ID",
    "Request ID",
    "Submitter",
)
CHUNK = 5000
log = logging.getLogger("opencts.export")
Reader = Callable[[Callable[[Any], list[Any]]], list[Any]]


#: what a CSV row is made of, all plain columns: no stored JSON is parsed unless a row predates them
CSV_SOURCE = (
    "seq",
    "time",
    "trace_name",
    "resource_type",
    "service_type",
    "resource_id",
    "resource_name",
    "trace_rating",
    "user_name",
    "source_ip",
    "code",
    "trace_type",
    "trace_id",
    "request_id",
    "submitter",
    "body",
)
NDJSON_SOURCE = ("seq", "time", "body")


def _chunks(
    read: Reader, project_id: str, query: TraceQuery, columns: tuple[str, ...], index: TermIndex | None
) -> Iterator[list[Any]]:
    """Keyset chunks, each read on its own connection so no connection is held between yields."""
    after: trace_log.Position | None = None
    while True:

        def fetch(conn: Any, after: trace_log.Position | None = after) -> list[Any]:
            return trace_log.page(
                conn,
                project_id=project_id,
                kind=query.kind,
                time_from=query.time_from,
                time_to=query.time_to,
                filters=query.filters,
                after=after,
                limit=CHUNK,
                index=index,
                columns=columns,
            )

        rows = read(fetch)
        if rows:
            yield rows
        if len(rows) < CHUNK:
            return
        after = trace_log.Position(rows[-1].time, rows[-1].seq)


#: "HH:" for each hour of a day, "MM:SS." for each second of an hour and "mmmZ" for each millisecond of a
#: second: with the day's prefix cached, a timestamp is four lookups. A cache per second or per hour
#: would not do: one strftime costs as much as a whole row, and a 7-day export has a new second on
#: nearly every row (a sparse one a new hour).
_HOURS = tuple(f"{h:02d}:" for h in range(24))
_MINUTE_SECOND = tuple(f"{m:02d}:{s:02d}." for m in range(60) for s in range(60))
_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
#: day prefixes kept at once: over ten years of days, so only an export spanning more ever clears it
_DAYS_KEPT = 4096


class _Days(dict[int, str]):
    """``"YYYY-MM-DDT"`` by days since the epoch. A dict subclass so that a hit stays a plain subscript
    in the row loop; only a miss reaches Python (and datetime)."""

    def __missing__(self, day: int) -> str:
        if len(self) >= _DAYS_KEPT:
            self.clear()
        prefix = self[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
        return prefix


class _TimeFormat:
    """ISO 8601 UTC with milliseconds, truncated (never rounded) from milliseconds since the epoch.

    Unix time has no leap seconds, so every day is 86,400 s and only the date needs a calendar.
    """

    __slots__ = ("days",)

    def __init__(self) -> None:
        self.days = _Days()

    def __call__(self, ms: int) -> str:
        return (
            f"{self.days[ms // DAY_MS]}{_HOURS[ms % DAY_MS // HOUR_MS]}"
            f"{_MINUTE_SECOND[ms % HOUR_MS // 1000]}{_MILLIS[ms % 1000]}"
        )


def csv_row(row: Any, time_format: Callable[[int], str]) -> tuple[Any, ...]:
    """One CSV line from a row in :data:`CSV_SOURCE` order (positions, not names: this runs per row).

    This is the reference :class:`_CsvChunks` must match; it handles the rows the fast path cannot.
    """
    (_, time, name, rtype, service, rid, rname, rating, user, ip, code, ttype, trace_id, request_id, *_) = row
    if code is None and ip is None and request_id is None:
        return _csv_row_from_body(row, time_format)  # written before these columns existed
    return (
        name,
        rtype or "",
        service,
        rid or "",
        rname or "",
        rating,
        user or "",
        time_format(time),
        ip or "",
        code or "",
        ttype,
        trace_id,
        request_id or "",
        row[-2] or "",
    )


def _csv_row_from_body(row: Any, time_format: Callable[[int], str]) -> tuple[Any, ...]:
    body = orjson.loads(row[-1])
    get = body.get
    user = get("user") or {}
    return (
        get("trace_name", ""),
        get("resource_type", ""),
        get("service_type", ""),
        get("resource_id", ""),
        get("resource_name", ""),
        get("trace_rating", ""),
        user.get("name") or user.get("user_name") or "",
        time_format(body["time"]),
        get("source_ip", ""),
        get("code", ""),
        get("trace_type", ""),
        get("trace_id", ""),
        get("request_id", ""),
        row[-2] or "",
    )


#: what a spreadsheet program reads as the start of a formula (OWASP's CSV injection list)
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
#: a field starting with one of them, inside a line (a line's first field is checked on its own)
_FORMULA_AFTER_COMMA = tuple("," + c for c in FORMULA_LEADS)
#: Whether a chunk holds a field starting with a lead is asked of compiled literal patterns: the regex
#: engine's literal search is several times faster than ``str.__contains__`` for two-character needles
#: whose last character is as common as "-" (in every timestamp and UUID). The other leads are rare, so a
#: one-character test rules them out first. CR is counted by the quoting check already.
_RARE_LEADS = ("=", "+", "@", "\t")
_DASH_STARTS = tuple(re.compile(sep + "-").search for sep in ",\n")
_RARE_STARTS = tuple(re.compile(re.escape(sep + lead)).search for sep in ",\n" for lead in _RARE_LEADS)


def neutralise(cells: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Cells a spreadsheet would run as formulas get a leading ``'`` (OWASP); says whether any did.

    A row holding such a cell is written with every cell quoted, as OWASP recommends, so the quote and
    the text after it stay one literal cell in every program that opens the file.
    """
    if not any(isinstance(c, str) and c.startswith(FORMULA_LEADS) for c in cells):
        return cells, False
    return tuple("'" + c if isinstance(c, str) and c.startswith(FORMULA_LEADS) else c for c in cells), True


def _has_formula(line: str) -> bool:
    return line.startswith(FORMULA_LEADS) or any(lead in line for lead in _FORMULA_AFTER_COMMA)


def _may_hold_formula(text: str) -> bool:
    """Whether any field of a chunk of lines may start like a formula (False is certain)."""
    if text.startswith(FORMULA_LEADS) or any(search(text) for search in _DASH_STARTS):
        return True
    return any(lead in text for lead in _RARE_LEADS) and any(search(text) for search in _RARE_STARTS)


_SEPARATORS = len(CSV_COLUMNS) - 1
#: what makes csv.writer (QUOTE_MINIMAL, "," and '"') quote a field; NUL too, in case a Python version
#: starts treating it specially. tests/traces/test_export.py checks this against every code point.
_NEEDS_CSV = ('"', "\r", "\n", "\0")


class _CsvChunks:
    """Whole chunks as CSV text, byte for byte what ``csv.writer`` makes of :func:`csv_row`.

    ``csv.writer`` inspects every character of every field, and that was most of the CSV export's time.
    Most traces need no quoting, so each row is one f-string joined with bare commas, and the finished
    chunk is checked in C instead: separator and line counts, no quote, CR, LF or NUL anywhere, and no
    field starting like a formula. Only a chunk that fails the check is looked at row by row, and only the
    rows that need it (and those that predate the export columns) go through ``csv.writer``.
    """

    def __init__(self) -> None:
        self._time = _TimeFormat()
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\r\n")
        self._quote_all = csv.writer(self._buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)

    def _line(self, row: Any) -> str:
        """One row through csv.writer, formulas neutralised, without its line terminator."""
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        cells, formula = neutralise(csv_row(row, self._time))
        (self._quote_all if formula else self._writer).writerow(cells)
        return buf.getvalue()[:-2]

    def text(self, rows: Sequence[Any]) -> str:
        days, hours, hms, millis = self._time.days, _HOURS, _MINUTE_SECOND, _MILLIS
        day_ms, hour_ms, line = DAY_MS, HOUR_MS, self._line
        # fmt: off
        lines = [
            f"{name},{rtype or ''},{service},{rid or ''},{rname or ''},{rating},{user or ''},"
            f"{days[t // day_ms]}{hours[t % day_ms // hour_ms]}{hms[t % hour_ms // 1000]}{millis[t % 1000]},"
            f"{ip or ''},{code or ''},{ttype},{trace_id},{request_id or ''},{by or ''}"
            if code is not None or ip is not None or request_id is not None
            else line(row)  # written before the export columns existed
            for row in rows
            for (_, t, name, rtype, service, rid, rname, rating, user, ip, code, ttype, trace_id, request_id,
                 by, _) in (row,)
        ]
        # fmt: on
        n = len(lines)
        lines.append("")  # the last line's terminator
        text = "\r\n".join(lines)
        if (
            text.count(",") == _SEPARATORS * n
            and text.count("\n") == n
            and text.count("\r") == n
            and '"' not in text
            and "\0" not in text
            and not _may_hold_formula(text)
        ):
            return text
        quote, cr, lf, nul = _NEEDS_CSV
        odd = [
            i
            for i, ln in enumerate(lines[:n])
            if ln.count(",") != _SEPARATORS
            or quote in ln
            or cr in ln
            or lf in ln
            or nul in ln
            or _has_formula(ln)
        ]  # lines that came from csv.writer are among them when they quote; redoing them changes nothing
        for i in odd:  # one by one even if all are odd: about as fast as writerows on the whole chunk
            lines[i] = line(rows[i])
        return "\r\n".join(lines)


def export_csv(read: Reader, project_id: str, query: TraceQuery, index: TermIndex | None) -> Iterator[bytes]:
    """The console's CSV: a UTF-8 BOM and header, then one chunk of text, encoded once, per keyset page.

    CSV has no record that says "incomplete". A read that fails midway ends the file inside an unclosed
    quoted field with no final newline (a saved file ends mid-line, which CSV readers flag), and the error
    propagates so the server cuts the chunked response without its last chunk: the client sees a broken
    transfer, never a short file that looks whole.
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(CSV_COLUMNS)
    yield ("\ufeff" + buf.getvalue()).encode()  # a BOM, so spreadsheet programs read UTF-8
    chunks = _CsvChunks()
    written = 0
    try:
        for rows in _chunks(read, project_id, query, CSV_SOURCE, index):
            yield chunks.text(rows).encode()
            written += len(rows)
    except Exception:
        log.error("CSV export failed after %d traces; cutting the response", written)
        yield CSV_CUT
        raise


#: the last bytes of a CSV export that failed midway: an opened quoted field, never closed
CSV_CUT = b'"the export failed here; this file is incomplete'


def export_ndjson(
    read: Reader, project_id: str, query: TraceQuery, index: TermIndex | None
) -> Iterator[bytes]:
    """One stored body a line. A read that fails midway ends the stream with an error record (a line with
    ``error_code`` and ``error_msg``, which no trace has), so a reader can tell the file is incomplete."""
    written = 0
    try:
        for rows in _chunks(read, project_id, query, NDJSON_SOURCE, index):
            yield b"\n".join(r.body for r in rows) + b"\n"
            written += len(rows)
    except Exception as exc:  # whatever failed, the stream must not end looking complete
        log.error("NDJSON export failed after %d traces: %r", written, exc)
        message = f"the export failed after {written} traces; this file is incomplete"
        yield orjson.dumps({"error_code": "CTS.9999", "error_msg": message}) + b"\n"

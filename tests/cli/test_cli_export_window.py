"""``opencts traces export``: what it covers without ``--from``, its count of traces, and the bar's total."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.cli.client import ApiClient, resolve_target
from opencts.cli.main import app
from opencts.cli.traces import RowCounter, count_traces
from opencts.clock import now_ms
from opencts.testing.peers import serving
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()
HOUR = 3_600_000


def invoke(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def spread(live_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path) -> str:
    """Four traces of one user: 10 minutes, 3 hours, 2 days and 6 days old (the retention is 7 days)."""
    user = f"export-{uuid.uuid4().hex[:8]}"
    now = now_ms()
    ages = (10 * 60_000, 3 * HOUR, 48 * HOUR, 144 * HOUR)
    traces = [
        make_trace(user={"name": user}, time=now - age, resource_name=f'r,\n"{i}"')
        for i, age in enumerate(ages)
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(traces))
    code, out, err = invoke(live_server, "traces", "put", str(path))
    assert code == 0, out + err
    return user


def test_without_from_the_export_covers_every_trace_kept(
    live_server: ServerProcess, spread: str, tmp_path: Path
) -> None:
    target = tmp_path / "all.csv"
    code, _, err = invoke(live_server, "traces", "export", "--user", spread, "-o", str(target))
    assert code == 0, err
    with target.open(encoding="utf-8-sig", newline="") as f:
        import csv

        rows = list(csv.reader(f))
    assert len(rows) == 1 + 4  # the header and every trace, the 6-day-old one included
    # the header is not a trace, and a cell holding a line break does not make two
    assert f"exported 4 traces to {target}" in err


def test_from_still_narrows_the_export(live_server: ServerProcess, spread: str) -> None:
    code, out, err = invoke(
        live_server, "traces", "export", "--user", spread, "--from", "1h", "--format", "ndjson"
    )
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert "exported 1 traces" in err


def test_the_progress_total_is_the_servers_count(live_server: ServerProcess, spread: str) -> None:
    with ApiClient(resolve_target(live_server.url, live_server.data_dir)) as client:
        everything = {"trace_type": "system", "from": 0, "user": spread}
        assert count_traces(client, everything) == 4
        assert count_traces(client, {**everything, "from": now_ms() - 4 * HOUR}) == 2
        # a count the server refuses is no count (the bar then has no total), never an error
        assert count_traces(client, {**everything, "trace_rating": "bogus"}) is None


def test_readme_says_what_export_covers_without_from() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "without `--from`" in readme and "retention window" in readme


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_row_counter_across_any_chunking(fmt: str) -> None:
    if fmt == "csv":
        doc = (
            b'\xef\xbb\xbfTrace Name,Resource Name\r\nlogin,"a\r\nb"\r\nlogout,"say ""hi""\nthere"\r\nx,y\r\n'
        )
        expected = 3
    else:
        doc = b'{"a": "line\\nbreak"}\n{"b": 1}\n'
        expected = 2
    for size in (1, 2, 3, 7, len(doc)):
        counter = RowCounter(fmt)
        for start in range(0, len(doc), size):
            counter.feed(doc[start : start + size])
        assert counter.rows == expected, size


class _FailingExport(BaseHTTPRequestHandler):
    """An export that fails midway, as a server may: NDJSON ends with an error record, CSV is cut off."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if "/traces/count" in self.path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ndjson = "format=ndjson" in self.path
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if ndjson else "text/csv")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if ndjson:
            error = b'{"error_code": "CTS.0500", "error_msg": "read failed"}\n'
            body = b'{"trace_id": "a"}\n{"trace_id": "b"}\n' + error
        else:
            body = b"Trace Name,Trace ID\r\nlogin,a\r\nlogout,b\r\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
        if ndjson:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True  # CSV: no last chunk, so the client sees the stream cut

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def failing_export() -> Iterator[str]:
    with serving(_FailingExport) as url:
        yield url


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_an_export_that_fails_midway_is_reported_incomplete(
    live_server: ServerProcess, failing_export: str, fmt: str, tmp_path: Path
) -> None:
    target = tmp_path / f"out.{fmt}"
    result = runner.invoke(
        app,
        ["traces", "export", "--format", fmt, "-o", str(target)]
        + ["--endpoint", failing_export, "--data-dir", str(live_server.data_dir)],
    )
    assert result.exit_code == 1
    assert "stopped after 2 traces" in result.stderr and "incomplete" in result.stderr
    assert len(result.stderr.splitlines()) == 1

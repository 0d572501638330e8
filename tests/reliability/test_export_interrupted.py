"""An export whose database read fails after the 200 and headers went out must not look complete.

The fault is real: the export's PostgreSQL backend is terminated (``pg_terminate_backend``) while its
query waits on a table lock, in a real ``opencts serve`` process. NDJSON then ends with an error record;
CSV, which has no in-band way to say so, is cut without its final chunk, which any HTTP client reports.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from cts_helpers import TraceFactory
from opencts.testing.server import ServerProcess, start_server
from opencts.testing.waiting import wait_for
from opencts.traces.export import CSV_CUT

pytestmark = pytest.mark.postgres
TRACES = 40


@pytest.fixture
def server(postgres_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    live = start_server(tmp_path / "data", {"OPENCTS_DATABASE_URL": postgres_url})
    try:
        yield live
    finally:
        live.stop()


def export_backend_waiting_on_lock(url: str) -> int:
    """The pid of the export's query once it waits for the table lock the test holds."""
    with psycopg.connect(url, autocommit=True) as watcher:

        def waiting() -> int:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%time DESC%'"
            ).fetchone()
            return int(row[0]) if row else 0

        return wait_for(waiting, 30, "the export's query to wait on the lock")


def kill_export_midway(server: ServerProcess, url: str, fmt: str) -> tuple[int, bytes, Exception | None]:
    """Start an export, kill its database backend mid-query, and read what the client gets."""
    with server.client() as client:
        project = server.creds.project_id
        with psycopg.connect(url) as locker:
            locker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
            path = f"/v3/{project}/traces/export"
            with client.stream("GET", path, params={"format": fmt}) as resp:
                status, received, error = resp.status_code, b"", None
                pid = export_backend_waiting_on_lock(url)
                with psycopg.connect(url, autocommit=True) as admin:
                    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
                locker.rollback()
                try:
                    for chunk in resp.iter_bytes():
                        received += chunk
                except httpx.RemoteProtocolError as exc:
                    error = exc
    return status, received, error


def put_traces(server: ServerProcess, make_trace: TraceFactory) -> None:
    with server.client() as client:
        resp = client.post(
            f"/v3/{server.creds.project_id}/traces", json={"traces": [make_trace() for _ in range(TRACES)]}
        )
        assert resp.json()["accepted"] == TRACES


def test_an_ndjson_export_that_fails_midway_ends_with_an_error_record(
    server: ServerProcess, postgres_url: str, make_trace: TraceFactory
) -> None:
    put_traces(server, make_trace)
    status, body, error = kill_export_midway(server, postgres_url, "ndjson")
    assert status == 200 and error is None  # the stream itself ends cleanly: the last line says why
    last = orjson.loads(body.splitlines()[-1])
    assert last["error_code"] == "CTS.9999" and "incomplete" in last["error_msg"]
    assert body.endswith(b"\n")


def test_a_csv_export_that_fails_midway_is_cut_without_a_clean_end(
    server: ServerProcess, postgres_url: str, make_trace: TraceFactory
) -> None:
    put_traces(server, make_trace)
    status, body, error = kill_export_midway(server, postgres_url, "csv")
    assert status == 200
    assert body.startswith("\ufeffTrace Name,".encode())  # the header went out before the fault
    assert isinstance(error, httpx.RemoteProtocolError)  # the chunked body never got its last chunk
    # and a file saved anyway ends mid-line, in a quoted field that never closes
    assert body.endswith(CSV_CUT) and not body.endswith(b"\n")
    with pytest.raises(csv.Error, match="unexpected end of data"):
        list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), strict=True))


def test_an_export_left_alone_completes(server: ServerProcess, make_trace: TraceFactory) -> None:
    """The control: the same export with no fault is whole (so the tests above see the fault)."""
    put_traces(server, make_trace)
    with server.client() as client:
        resp = client.get(f"/v3/{server.creds.project_id}/traces/export", params={"format": "ndjson"})
    lines = resp.content.splitlines()
    assert resp.status_code == 200 and len(lines) == TRACES
    assert all("error_code" not in orjson.loads(line) for line in lines)

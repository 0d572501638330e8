"""LTS sinks on a live server: added, listed and removed with ``opencts lts sinks``, fed by ingest, and
nothing lost or doubled across a receiver's outage and a restart (``kill -9``: test_lts_sinks_kill.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.clock import now_ms
from opencts.testing.server import ServerProcess
from opencts.testing.sink_peers import SinkReceiver
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()
ENV = {"OPENCTS_LTS_SINK_ALLOW_PRIVATE_ENDPOINTS": "1", "OPENCTS_LTS_SINK_RETRY_MAX_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (a test that restarts it leaves it running)."""
    with start_lts_server(tmp_path_factory.mktemp("sinks") / "data") as running:
        yield running


@contextmanager
def start_lts_server(data_dir: Path) -> Iterator[ServerProcess]:
    """A server whose management tracker feeds its LTS stream, allowed to forward to 127.0.0.1."""
    with ServerProcess(data_dir, ENV) as running:
        with running.client() as client:
            body = {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
            resp = client.put(f"/v3/{running.creds.project_id}/tracker", json=body)
            assert resp.status_code == 200, resp.text
        yield running


@pytest.fixture
def receiver() -> Iterator[SinkReceiver]:
    with SinkReceiver("ndjson") as r:
        yield r


#: only the traces the tests ingest (the server's own audit of the sink calls goes to the stream too)
ONLY = ("--operation", "ECS:ecs:createServer")


def cli(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["lts", "sinks", *args, "--endpoint", server.url, "--data-dir", str(server.data_dir)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, result.stdout + result.stderr


def ingest(server: ServerProcess, start: int, n: int) -> list[str]:
    at = now_ms() - 10_000
    traces = [
        {
            "trace_id": f"live-{start + i:05d}",
            "trace_name": "createServer",
            "trace_type": "ApiCall",
            "service_type": "ECS",
            "resource_type": "ecs",
            "time": at + i,
            "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
        }
        for i in range(n)
    ]
    with server.client() as client:
        resp = client.post(f"/v3/{server.creds.project_id}/traces", json={"traces": traces})
        assert resp.status_code == 200, resp.text
    return [str(t["trace_id"]) for t in traces]


def sinks(server: ServerProcess) -> list[dict[str, Any]]:
    code, out = cli(server, "list", "--json")
    assert code == 0, out
    found: list[dict[str, Any]] = json.loads(out)["sinks"]
    return found


def test_the_cli_adds_lists_and_removes_a_sink_and_the_api_checks_input(
    server: ServerProcess, receiver: SinkReceiver
) -> None:
    code, out = cli(
        server, "add", "siem", "--type", "ndjson", "--to", receiver.url, "--header", "X-Key: k-77", *ONLY
    )
    assert code == 0 and "siem" in out, out
    ids = ingest(server, 0, 5)
    wait_for(lambda: receiver.trace_ids() == ids, 20, "the five traces at the receiver")
    assert receiver.arrivals()[0].headers["X-Key"] == "k-77"
    code, out = cli(server, "list")
    assert code == 0 and "siem" in out and "ok" in out and "k-77" not in out, out
    [shown] = sinks(server)
    assert shown["delivered"] == 5 and shown["header_names"] == ["X-Key"]
    code, out = cli(server, "add", "siem", "--type", "ndjson", "--to", receiver.url)
    assert code != 0 and "already has a sink" in out, out
    project = server.creds.project_id
    with server.client() as client:
        base = f"/v3/{project}/lts/groups/{shown['log_group_id']}/streams/{shown['log_stream_id']}/sinks"
        bad = client.post(base, json={"sink_name": "x", "sink_type": "syslog", "endpoint": "nohost"})
        assert bad.status_code == 400 and bad.json()["error_code"].startswith("CTS."), bad.text
        missing = client.post(
            f"/v3/{project}/lts/groups/g/streams/nope/sinks",
            json={"sink_name": "x", "sink_type": "otlp", "endpoint": "http://127.0.0.1:1/v1/logs"},
        )
        assert missing.status_code == 404, missing.text
    assert httpx.get(f"{server.url}/v3/{project}/lts/sinks").status_code == 401
    assert "k-77" not in server.log()
    code, out = cli(server, "remove", "siem")
    assert code == 0, out
    assert sinks(server) == []


def test_an_outage_and_a_restart_lose_nothing_and_double_nothing(
    server: ServerProcess, receiver: SinkReceiver
) -> None:
    code, out = cli(
        server, "add", "siem", "--type", "ndjson", "--to", receiver.url, "--batch-size", "7", *ONLY
    )
    assert code == 0, out
    ids = ingest(server, 10_000, 10)
    wait_for(lambda: len(receiver.trace_ids()) == 10, 20, "the first traces")
    receiver.stop()
    ids += ingest(server, 10_100, 25)
    wait_for(lambda: sinks(server)[0]["state"] == "error", 20, "the sink to show the outage")
    [shown] = sinks(server)
    assert shown["lag_records"] == 25 and "POST" in shown["last_error"]
    server.stop()  # restarted while the receiver is still down
    server.start()
    ids += ingest(server, 10_200, 5)
    receiver.start()
    wait_for(lambda: len(receiver.trace_ids(dedupe=False)) >= 40, 30, "everything after the outage")
    time.sleep(0.5)
    assert receiver.trace_ids(dedupe=False) == ids
    wait_for(lambda: sinks(server)[0]["state"] == "ok", 10, "the sink to recover")

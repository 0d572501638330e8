"""Kill -9 of ``opencts serve`` while RabbitMQ holds thousands of CADF messages: each becomes one trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from cadf_helpers import AMQP_URL, audit_response, delete_queues, publish, queue_depth, unique_topic
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

N = 3000
pytestmark = pytest.mark.slow


def _count(server: ServerProcess) -> int:
    with server.client() as client:
        resp = client.get(f"/v3/{server.creds.project_id}/traces/count")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["count"])


def test_kill9_mid_drain_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as first:  # bootstrap: the project the events belong to
        project = first.creds.project_id
    topic = unique_topic()
    queue = f"{topic}.info"
    events = [
        audit_response(
            project_id=project,
            path=f"/v2.1/servers/s{i}",
            method_action="delete",
            type_uri="service/compute/servers/server",
        )
        for i in range(N)
    ]
    try:
        publish(topic, [("audit.http.response", e) for e in events])
        assert asyncio.run(queue_depth(queue)) == N
        env = {"OPENCTS_CADF_AMQP_URL": AMQP_URL, "OPENCTS_CADF_TOPIC": topic, "OPENCTS_CADF_BATCH": "50"}
        server = ServerProcess(data, env, log_path=tmp_path / "serve.log").start()
        try:
            at_kill = wait_for(lambda: _count(server) >= N // 5 and _count(server), 60, "a fifth drained")
            server.kill()
        finally:
            server.stop()
        assert at_kill < N, "the whole queue drained before the kill: nothing was tested"
        assert asyncio.run(queue_depth(queue)) > 0  # the unacknowledged rest went back to the queue
        with ServerProcess(data, env, log_path=tmp_path / "serve.log") as again:
            wait_for(lambda: _count(again) >= N, 120, "every message as a trace", interval=0.2)
            assert _count(again) == N
            with again.client(timeout=60) as client:
                resp = client.get(f"/v3/{project}/traces/export", params={"format": "ndjson"})
            ids = [orjson.loads(line)["trace_id"] for line in resp.content.splitlines() if line]
            assert sorted(ids) == sorted(e["id"] for e in events)
            wait_for(lambda: asyncio.run(queue_depth(queue)) == 0, 30, "an empty queue")
    finally:
        asyncio.run(delete_queues(queue, f"{queue}.dead"))

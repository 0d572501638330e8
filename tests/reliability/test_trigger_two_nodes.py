"""Two OpenCTS nodes on one PostgreSQL: each trace reaches a CTS trigger's function exactly once.

Both nodes run the notifier over the same log (one shared cursor) and an invocation worker over the same
queue. Traces are ingested through both nodes at once; every matching trace must be handed to the
function once (one ``function_invocations`` row, one claimed alarm) and run to SUCCESS, whichever node
claimed it and whichever ran it.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from opencts.client.signing import HmacAuth
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HANDLER = """
def handler(event, context):
    return event["cts"]["trace_id"]
"""
TRACES = 120


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    creds: BootstrapCredentials
    database_url: str


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    env = {
        "OPENCTS_DATABASE_URL": postgres_url,
        "OPENCTS_INGEST_WORKERS": "0",
        "OPENCTS_FUNCTIONS_WORKERS": "2",
    }
    first = ServerProcess(tmp_path / "first", env).start()
    nodes = [first]
    try:
        key = (first.data_dir / "master.key").read_text().strip()
        nodes.append(ServerProcess(tmp_path / "second", {**env, "OPENCTS_MASTER_KEY": key}).start())
        yield Cluster(nodes, first.creds, postgres_url)
    finally:
        logs = [node.stop() for node in nodes]
    assert not any("Traceback" in log for log in logs), logs


def trace(n: int) -> dict[str, Any]:
    return {
        "trace_id": str(uuid.uuid4()),
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "service_type": "ECS",
        "resource_type": "ecs",
        "resource_name": f"web-{n}",
        "time": int(time.time() * 1000) - 5_000,
        "user": {"name": "alice"},
        "source_ip": "10.1.2.3",
        "code": 200,
    }


def test_each_trace_reaches_the_trigger_once_with_two_nodes(cluster: Cluster) -> None:
    creds = cluster.creds
    project = creds.project_id
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=project)
    clients = [httpx.Client(base_url=node.url, auth=auth, timeout=60) for node in cluster.nodes]
    try:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("index.py", HANDLER)
        made = clients[0].post(
            f"/v2/{project}/fgs/functions",
            json={
                "func_name": "counter", "package": "default", "runtime": "Python3.10",
                "handler": "index.handler", "memory_size": 128, "timeout": 30, "code_type": "zip",
                "func_code": {"file": base64.b64encode(buffer.getvalue()).decode()},
            },
        )  # fmt: skip
        assert made.status_code < 300, made.text
        urn = made.json()["func_urn"]
        trigger = {
            "trigger_type_code": "CTS",
            "event_data": {"name": "servers", "operations": ["ECS:ecs:createServer"]},
        }
        made = clients[1].post(f"/v2/{project}/fgs/triggers/{quote(urn, safe='')}", json=trigger)
        assert made.status_code == 201, made.text

        batches = [[trace(n) for n in range(i, i + 10)] for i in range(0, TRACES, 10)]

        def ingest(client: httpx.Client, mine: list[list[dict[str, Any]]]) -> None:
            for batch in mine:
                resp = client.post(f"/v3/{project}/traces", json={"traces": batch})
                assert resp.status_code == 200, resp.text

        threads = [
            threading.Thread(target=ingest, args=(client, batches[i :: len(clients)]))
            for i, client in enumerate(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for client in clients:
            client.close()

    engine = sa.create_engine(cluster.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:

        def rows() -> list[Any]:
            with engine.connect() as conn:
                return list(
                    conn.execute(sa.text("SELECT trace_id, status, result FROM function_invocations"))
                )

        wait_for(
            lambda: sum(r.status == "SUCCESS" for r in rows()) >= TRACES, 120, "every invocation to succeed"
        )
        found = rows()
        with engine.connect() as conn:
            alarms = conn.execute(sa.text("SELECT count(*) FROM notification_alarms")).scalar_one()
    finally:
        engine.dispose()
    sent = sorted(t["trace_id"] for batch in batches for t in batch)
    assert sorted(r.trace_id for r in found) == sent, "each trace handed over exactly once"
    assert {r.status for r in found} == {"SUCCESS"} and alarms == TRACES
    assert sorted(r.result.strip('"') for r in found) == sent

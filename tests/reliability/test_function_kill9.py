"""A server killed with SIGKILL while invocations run loses none of them: each one ends SUCCESS after a
restart, at least once.

Rows claimed by the dead server are RUNNING under a lease (the function's timeout plus a margin); the
restarted server finds them due once the lease ends and runs them again. Rows still WAITing are claimed
at once. Nothing is kept in memory that the database does not also hold.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.slow]

HANDLER = b"""
import time

def handler(event, context):
    time.sleep(0.2)
    return {"n": event["n"], "request_id": context.getRequestID()}
"""
COUNT = 40


def statuses(server: ServerProcess, urn: str) -> dict[str, str]:
    with server.client() as client:
        resp = client.get(
            f"/v2/{server.creds.project_id}/fgs/functions/{urn}/async-invocations", params={"limit": 500}
        )
        assert resp.status_code == 200, resp.text
        return {i["request_id"]: i["status"] for i in resp.json()["invocations"]}


def test_kill_9_during_invocations_loses_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"OPENCTS_FUNCTIONS_CONCURRENCY": "2"}
    server = ServerProcess(data, env).start()
    try:
        project = server.creds.project_id
        with server.client(nonce=True) as client:
            made = client.post(
                f"/v2/{project}/fgs/functions",
                json={
                    "func_name": "slow",
                    "runtime": "Python3.10",
                    "timeout": 3,
                    "handler": "index.handler",
                    "memory_size": 128,
                    "code_type": "inline",
                    "func_code": {"file": base64.b64encode(HANDLER).decode()},
                },
            )
            assert made.status_code == 200, made.text
            urn = made.json()["func_urn"]
            ids = []
            for n in range(COUNT):
                resp = client.post(f"/v2/{project}/fgs/functions/{urn}/invocations-async", json={"n": n})
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["request_id"])
        # kill while some have finished and others run or wait
        wait_for(
            lambda: list(statuses(server, urn).values()).count("SUCCESS") >= 4, 30, "the first invocations"
        )
        before = statuses(server, urn)
        assert "WAIT" in before.values() or "RUNNING" in before.values()
        server.kill()
    finally:
        server.stop()

    restarted = ServerProcess(data, env, port=server.port).start()
    try:
        wait_for(
            lambda: set(statuses(restarted, urn).values()) == {"SUCCESS"}, 60, "every invocation to succeed"
        )
        assert set(statuses(restarted, urn)) == set(ids)
    finally:
        restarted.stop()

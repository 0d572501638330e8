"""``opencts functions ...`` against a real server process: deploy, invoke, logs, triggers, dead letters."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()

ECHO = """
def handler(event, context):
    context.getLogger().info("echo " + str(event.get("word")))
    cts = event.get("cts") or {}
    return {"word": event.get("word"), "ip": cts.get("source_ip"), "code": cts.get("code")}
"""
FAILING = """
def handler(event, context):
    raise ValueError("always fails")
"""


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "250"}
    )
    return result.exit_code, result.stdout + result.stderr


def deploy_source(server: ServerProcess, tmp_path: Path, name: str, code: str, *extra: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    status, out = run(server, "functions", "deploy", str(path), *extra)
    assert status == 0, out
    return out.strip()


def test_deploy_list_invoke_and_redeploy(live_server: ServerProcess, tmp_path: Path) -> None:
    name = f"echo_{uuid.uuid4().hex[:6]}"
    urn = deploy_source(live_server, tmp_path, name, ECHO, "--env", "GREETING=hi", "--timeout", "10")
    assert urn.endswith(f":function:default:{name}:latest")
    status, out = run(live_server, "functions", "list", "--json")
    assert status == 0, out
    [listed] = [f for f in json.loads(out)["functions"] if f["func_name"] == name]
    assert listed["handler"] == f"{name}.handler" and listed["timeout"] == 10

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"word": "hello"}))
    status, out = run(live_server, "functions", "invoke", name, "--event", str(event), "--json")
    assert status == 0, out
    result = json.loads(out)
    assert json.loads(result["result"])["word"] == "hello" and "echo hello" in result["log"]

    # a second deploy of the same name replaces its code
    deploy_source(live_server, tmp_path, name, FAILING)
    status, out = run(live_server, "functions", "invoke", name, "--event", str(event))
    assert status == 1 and "always fails" in out


def test_invoke_with_the_cts_event_of_a_stored_trace(live_server: ServerProcess, tmp_path: Path) -> None:
    name = f"cts_{uuid.uuid4().hex[:6]}"
    deploy_source(live_server, tmp_path, name, ECHO)
    creds = live_server.creds
    trace_id = str(uuid.uuid4())
    trace = {
        "trace_id": trace_id, "trace_name": "login", "trace_type": "ConsoleAction", "service_type": "IAM",
        "resource_type": "user", "time": int(time.time() * 1000) - 1000, "source_ip": "203.0.113.9",
        "code": "200", "user": {"name": "alice"},
    }  # fmt: skip
    with live_server.client() as api:
        assert api.post(f"/v3/{creds.project_id}/traces", json={"traces": [trace]}).status_code == 200
    status, out = run(live_server, "functions", "invoke", name, "--cts-event", trace_id, "--json")
    assert status == 0, out
    assert json.loads(json.loads(out)["result"]) == {"word": None, "ip": "203.0.113.9", "code": 200}
    status, out = run(live_server, "functions", "invoke", name, "--cts-event", "no-such-trace")
    assert status == 1 and "no trace 'no-such-trace'" in out


def test_template_and_triggers(live_server: ServerProcess) -> None:
    name = f"guard_{uuid.uuid4().hex[:6]}"
    status, out = run(
        live_server, "functions", "create", name, "--template", "login-whitelist", "--env", "IP=10.0.0.1"
    )
    assert status == 1 and "SMN_Topic=..." in out and "RegionName=..." in out
    env = ["--env", "SMN_Topic=cts_test", "--env", "RegionName=local-1", "--env", "IP=10.0.0.0/8"]
    status, out = run(live_server, "functions", "create", name, "--template", "login-whitelist", *env)
    assert status == 0, out
    status, out = run(live_server, "functions", "list", "--json")
    [made] = [f for f in json.loads(out)["functions"] if f["func_name"] == name]
    assert made["handler"] == "login_whitelist.handler" and made.get("xrole") == "serverless_trust"

    trigger_name = f"logins_{uuid.uuid4().hex[:6]}"
    status, out = run(
        live_server, "functions", "triggers", "add", name, "--name", trigger_name,
        "--operation", "IAM:user:login,logout",
    )  # fmt: skip
    assert status == 0, out
    trigger_id = out.strip()
    status, out = run(live_server, "functions", "triggers", "list", name, "--json")
    [trigger] = json.loads(out)
    assert trigger["trigger_id"] == trigger_id
    assert trigger["event_data"] == {
        "name": trigger_name,
        "operations": ["IAM:user:login", "IAM:user:logout"],
    }
    status, out = run(live_server, "notifications", "list", "--type", "fun", "--name", trigger_name, "--json")
    assert status == 0 and json.loads(out)["notifications"][0]["notification_id"] == trigger_id
    status, out = run(live_server, "functions", "triggers", "list", name)
    assert status == 0 and trigger_name in out and "ACTIVE" in out

    status, out = run(live_server, "functions", "triggers", "remove", name, "nope")
    assert status == 1 and "no trigger nope" in out
    status, out = run(live_server, "functions", "triggers", "remove", name, trigger_name)
    assert status == 0, out
    status, out = run(live_server, "functions", "triggers", "list", name, "--json")
    assert json.loads(out) == []


def test_logs_and_dead_letters(live_server: ServerProcess, tmp_path: Path) -> None:
    name = f"bad_{uuid.uuid4().hex[:6]}"
    deploy_source(live_server, tmp_path, name, FAILING)
    status, out = run(live_server, "functions", "invoke", name, "--async")
    assert status == 0, out
    request_id = out.strip()

    def dead() -> list[dict[str, Any]]:
        code, text = run(live_server, "functions", "dead-letters", name, "--json")
        assert code == 0, text
        found: list[dict[str, Any]] = json.loads(text)["dead_letters"]
        return found

    wait_for(lambda: bool(dead()), 60, "the invocation to fail every attempt", interval=0.2)
    assert [d["request_id"] for d in dead()] == [request_id]
    status, out = run(live_server, "functions", "logs", name, "--request-id", request_id)
    assert status == 0 and "always fails" in out and request_id in out
    status, out = run(live_server, "functions", "dead-letters", name)
    assert status == 0 and request_id in out

    status, out = run(live_server, "functions", "dead-letters", name, "--redrive-all")
    assert status == 0 and "queued 1 invocation(s) again" in out
    status, out = run(live_server, "functions", "logs", name, "--limit", "1", "--json")
    assert status == 0 and json.loads(out)["invocations"][0]["request_id"] == request_id

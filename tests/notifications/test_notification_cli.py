"""``opencts notifications ...`` against a real server process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "250"}
    )
    return result.exit_code, result.stdout + result.stderr


def listed(server: ServerProcess, name: str) -> dict[str, object]:
    code, out = run(server, "notifications", "list", "--name", name, "--json")
    assert code == 0, out
    [found] = json.loads(out.splitlines()[0])["notifications"]
    assert isinstance(found, dict)
    return found


def test_create_from_flags_enable_disable_delete(live_server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"cli-alarms-{suffix}"
    assert run(live_server, "smn", "topics", "create", topic)[0] == 0
    name = f"cli_sg_{suffix}"
    code, out = run(
        live_server, "notifications", "create", "--name", name, "--topic", topic,
        "--operation", "VPC:securityGroup:deleteSecurityGroupRule,createSecurityGroupRule",
        "--operation", "IAM:user:login", "--user", "admins:alice,bob",
        "--filter", "code = 200", "--filter", "trace_rating != normal", "--condition", "OR",
    )  # fmt: skip
    assert code == 0, out
    notification_id = out.strip()
    made = listed(live_server, name)
    assert made["notification_id"] == notification_id and made["status"] == "enabled"
    assert str(made["topic_id"]).endswith(f":{topic}")
    assert made["filter"] == {
        "condition": "OR", "is_support_filter": True, "rule": ["code = 200", "trace_rating != normal"]
    }  # fmt: skip
    assert made["notify_user_list"] == [{"user_group": "admins", "user_list": ["alice", "bob"]}]

    code, out = run(live_server, "notifications", "list", "--type", "smn")
    assert code == 0 and name in out and "VPC:securityGroup:deleteSecurityGroupRule" in out

    assert run(live_server, "notifications", "disable", name)[0] == 0
    disabled = listed(live_server, name)
    assert disabled["status"] == "disabled" and disabled["topic_id"] == made["topic_id"]
    assert disabled["operations"] == made["operations"] and disabled["filter"] == made["filter"]
    assert run(live_server, "notifications", "enable", notification_id)[0] == 0
    assert listed(live_server, name)["status"] == "enabled"

    code, out = run(live_server, "notifications", "delete", name)
    assert code == 0, out
    code, out = run(live_server, "notifications", "list", "--name", name, "--json")
    assert json.loads(out.splitlines()[0])["notifications"] == []


def test_create_from_a_file_and_errors(live_server: ServerProcess, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    func = f"urn:fss:local-1:{live_server.creds.project_id}:function:default:hook:latest"
    body = {"notification_name": f"cli_all_{suffix}", "operation_type": "complete", "topic_id": func}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(body))
    code, out = run(live_server, "notifications", "create", "--file", str(path))
    assert code == 0, out
    code, out = run(live_server, "notifications", "list", "--type", "fun", "--json")
    assert body["notification_name"] in out

    code, out = run(live_server, "notifications", "create", "--name", "bad", "--operation", "IAM:login")
    assert code == 1 and "must read SERVICE:RESOURCE:trace1,trace2" in out
    code, out = run(live_server, "notifications", "create", "--name", "x", "--filter", "user = bob")
    assert code == 1 and "400 CTS.0001" in out and "field 'user' is not one of" in out
    code, out = run(live_server, "notifications", "delete", f"cli_all_{suffix}", "no-such-id")
    assert code == 1 and "no-such-id do not exist" in out
    assert run(live_server, "notifications", "delete", f"cli_all_{suffix}")[0] == 0

"""``opencts smn ...`` against a real server process (which has no SMTP relay, so email goes dead)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LiveServer
from opencts.cli.main import app
from opencts.smn.signing import load_or_create

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: LiveServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "250"}
    )
    return result.exit_code, result.stdout + result.stderr


def test_topics_subscriptions_publish_and_dead_letters(live_server: LiveServer) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out = run(live_server, "smn", "topics", "create", name, "--display-name", "CLI")
    assert code == 0, out
    urn = out.strip()
    assert urn.endswith(f":{name}")
    code, out = run(live_server, "smn", "topics", "list", "--name", name)
    assert code == 0 and name in out

    address = f"{name}@example.com"
    code, out = run(live_server, "smn", "subscriptions", "add", name, "email", address, "--remark", "r")
    assert code == 0, out
    sub = out.splitlines()[0].strip()
    code, out = run(live_server, "smn", "subscriptions", "list", "--topic", name, "--json")
    [listed] = json.loads(out.splitlines()[0])["subscriptions"]
    assert listed["subscription_urn"] == sub and listed["status"] == 0

    # the confirmation link an email would carry (the test reads the server's key to make it)
    token = load_or_create(live_server.data_dir).token(sub)
    resp = httpx.get(f"{live_server.url}/v2/notifications/subscriptions/confirm", params={"token": token})
    assert resp.json()["result"] == "confirmed"

    code, out = run(live_server, "smn", "publish", name, "--message", "hello", "--subject", "s", "--ttl", "1")
    assert code == 0, out
    message_id = out.strip()

    deadline = time.monotonic() + 30
    while True:
        code, out = run(
            live_server, "smn", "deliveries", "--status", "dead", "--message-id", message_id, "--json"
        )
        dead = json.loads(out.splitlines()[0])["deliveries"]
        if dead:
            break
        assert time.monotonic() < deadline, "the undeliverable message never went dead"
        time.sleep(0.3)
    assert "OPENCTS_SMTP_HOST" in dead[0]["last_error"]
    code, out = run(live_server, "smn", "deliveries", "--status", "dead")
    assert code == 0 and "dead" in out and address in out

    code, out = run(live_server, "smn", "retry", str(dead[0]["id"]))
    assert code == 0 and "re-queued" in out
    code, out = run(live_server, "smn", "retry", "987654321")
    assert code == 1 and "does not exist" in out

    code, out = run(live_server, "smn", "subscriptions", "cancel", sub)
    assert code == 0, out
    code, out = run(live_server, "smn", "topics", "delete", name)
    assert code == 0, out
    time.sleep(1.1)
    code, out = run(live_server, "smn", "topics", "delete", name)
    assert code == 1 and "no topic named" in out

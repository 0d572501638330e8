"""``opencts smn ...`` against real server processes: one whose SMTP relay does not answer (so email goes
dead), and the shared one, which has no SMTP relay at all (so email subscriptions are refused)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cts_helpers import master_box
from opencts.cli.main import app
from opencts.smn.signing import Signer, load_or_create
from opencts.store import Database
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()


def live_signer(data_dir: Path) -> Signer:
    """The server's signing key, read from its database with its master key."""
    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        return db.read_sync(lambda conn: load_or_create(conn, master_box(data_dir)))
    finally:
        db.close()


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "250"}
    )
    return result.exit_code, result.stdout + result.stderr


def test_without_smtp_an_email_subscription_is_refused(live_server: ServerProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert run(live_server, "smn", "topics", "create", name)[0] == 0
    code, out = run(live_server, "smn", "subscriptions", "add", name, "email", "ops@example.com")
    assert code == 1
    assert "SMN.00011002" in out and "OPENCTS_SMTP_HOST" in out and "confirmation link" not in out
    code, out = run(live_server, "smn", "subscriptions", "add", name, "sms", "+8613800000000")
    assert code == 1 and "SMN.00011002" in out and "OPENCTS_SMS_GATEWAY_URL" in out
    code, out = run(live_server, "smn", "subscriptions", "list", "--topic", name, "--json")
    assert json.loads(out.splitlines()[0])["subscription_count"] == 0


def test_topics_subscriptions_publish_and_dead_letters(relay_down: ServerProcess) -> None:
    live_server = relay_down
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
    token = live_signer(live_server.data_dir).token(sub)
    resp = httpx.get(
        f"{live_server.url}/v2/notifications/subscriptions/confirm",
        params={"token": token},
        headers={"Accept": "application/json"},
    )
    assert resp.json()["result"] == "confirmed"

    code, out = run(live_server, "smn", "publish", name, "--message", "hello", "--subject", "s", "--ttl", "1")
    assert code == 0, out
    message_id = out.strip()

    def dead_deliveries() -> list[dict[str, Any]]:
        code, out = run(
            live_server, "smn", "deliveries", "--status", "dead", "--message-id", message_id, "--json"
        )
        found: list[dict[str, Any]] = json.loads(out.splitlines()[0])["deliveries"]
        return found

    dead = wait_for(dead_deliveries, 30, "the undeliverable message to go dead", interval=0.3)
    assert "SMTP 127.0.0.1" in dead[0]["last_error"]
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
    code, out = run(live_server, "smn", "topics", "delete", name)
    assert code == 1 and "no topic named" in out

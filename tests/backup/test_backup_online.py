"""An online backup of a running server, restored into a new data dir and served from there.

A real ``opencts serve`` takes traces without a pause while ``opencts backup`` runs beside it. The backup
is restored with ``opencts restore`` into a new data dir and a second server starts on it. Asserted:

* every trace acknowledged before the backup began is in the restored node, and nothing that was never
  acknowledged is;
* the alarms sent before the backup are not sent again by the restored node (its notifier resumes from
  the cursor in the backup), while a new matching trace is alarmed once;
* the restored node answers with the restored credentials (keys, credentials.json).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cts_helpers import TraceFactory
from opencts.testing.peers import HttpReceiver
from opencts.testing.server import ServerProcess, start_server
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from opencts.cli.main import main; main()"]
ALARMS = 5


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def login(make_trace: TraceFactory, user: str) -> dict[str, Any]:
    return make_trace(
        service_type="IAM", resource_type="user", trace_name="login", trace_type="ConsoleAction",
        resource_name=user, user={"name": user, "domain": {"name": "acme"}},
    )  # fmt: skip


def alarmed(hook: HttpReceiver) -> Counter[str]:
    """How often each trace id was alarmed at the webhook."""
    import orjson

    found: Counter[str] = Counter()
    for doc in hook.docs("Notification"):
        found[orjson.loads(doc["message"])["trace"]["trace_id"]] += 1
    return found


def watch_alice(server: ServerProcess, hook: HttpReceiver) -> None:
    """A topic with the webhook subscribed (it confirms itself) and a notification on alice's logins."""
    project = server.creds.project_id
    smn = f"/v2/{project}/notifications"
    with server.client() as api:
        urn = api.post(f"{smn}/topics", json={"name": "sec", "display_name": "Sec"}).json()["topic_urn"]
        sub = api.post(f"{smn}/topics/{urn}/subscriptions", json={"protocol": "http", "endpoint": hook.url})
        assert sub.status_code < 300, sub.text

        def confirmed() -> bool:
            subs = api.get(f"{smn}/topics/{urn}/subscriptions").json()["subscriptions"]
            return [s["status"] for s in subs] == [1]

        wait_for(confirmed, 30, "the webhook subscription to be confirmed")
        notification = {
            "notification_name": "alice_logins",
            "operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "notify_user_list": [{"user_group": "admins", "user_list": ["alice"]}],
            "topic_id": urn,
        }
        resp = api.post(f"/v3/{project}/notifications", json=notification)
        assert resp.status_code == 201, resp.text


class Ingest(threading.Thread):
    """Batches of traces sent back to back until stopped; the ids of each acknowledged batch, with times."""

    def __init__(self, server: ServerProcess, make_trace: TraceFactory) -> None:
        super().__init__(daemon=True)
        self.server, self.make_trace = server, make_trace
        self.acked: list[tuple[float, list[str]]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        project = self.server.creds.project_id
        with self.server.client() as api:
            while not self.stopping.is_set():
                batch = [self.make_trace() for _ in range(200)]
                resp = api.post(f"/v3/{project}/traces", json={"traces": batch})
                if resp.status_code != 200 or resp.json()["accepted"] != len(batch):
                    self.errors.append(resp.text)
                    return
                self.acked.append((time.time(), [t["trace_id"] for t in batch]))

    def acked_before(self, moment: float) -> set[str]:
        return {i for at, ids in self.acked if at < moment for i in ids}


def alarm_then_ingest(
    server: ServerProcess, hook: HttpReceiver, make_trace: TraceFactory
) -> tuple[list[dict[str, Any]], Ingest]:
    """Alice's logins alarmed (each once, at the webhook), then ingest running: a backup is taken under it."""
    watch_alice(server, hook)
    alarms = [login(make_trace, "alice") for _ in range(ALARMS)]
    with server.client() as api:
        resp = api.post(f"/v3/{server.creds.project_id}/traces", json={"traces": alarms})
        assert resp.status_code == 200 and resp.json()["accepted"] == ALARMS, resp.text
    wait_for(lambda: len(alarmed(hook)) == ALARMS, 30, "the alarms before the backup")
    ingest = Ingest(server, make_trace)
    ingest.start()
    wait_for(lambda: len(ingest.acked) >= 5, 60, "ingest to be under way")
    return alarms, ingest


def stored_ids(data_dir: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{data_dir / 'opencts.db'}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT trace_id FROM traces")}
    finally:
        conn.close()


def test_backup_while_ingesting_then_restore_resumes_without_resending(
    tmp_path: Path, hook: HttpReceiver, make_trace: TraceFactory
) -> None:
    env = {
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        "OPENCTS_SMN_POLL_SECONDS": "0.2",
        "OPENCTS_SMN_RETRY_BASE_SECONDS": "0.2",
    }
    first = start_server(tmp_path / "a", env)
    try:
        alarms, ingest = alarm_then_ingest(first, hook, make_trace)
        began = time.time()
        taken = cli("backup", str(tmp_path / "bk"), "--data-dir", str(first.data_dir))
        ended = time.time()
        wait_for(lambda: ingest.acked[-1][0] > ended, 30, "ingest to go on after the backup")
        ingest.stopping.set()
        ingest.join(30)
        assert taken.returncode == 0, taken.stderr
        assert not ingest.errors, ingest.errors
        acked_all = ingest.acked_before(float("inf")) | {t["trace_id"] for t in alarms}
        acked_early = ingest.acked_before(began) | {t["trace_id"] for t in alarms}
    finally:
        first.stop()

    bk = tmp_path / "bk"
    checked = cli("restore", "--check", str(bk))
    assert checked.returncode == 0 and "is whole" in checked.stdout, checked.stderr
    restored = cli("restore", str(bk), "--data-dir", str(tmp_path / "b"))
    assert restored.returncode == 0, restored.stderr
    ids = stored_ids(tmp_path / "b")
    assert acked_early <= ids, f"{len(acked_early - ids)} acknowledged traces missing"
    in_backup = ids & acked_all
    assert len(in_backup) >= len(acked_early), "fewer traces than were acknowledged before the backup"

    again = cli("restore", str(bk), "--data-dir", str(tmp_path / "b"))
    assert again.returncode == 1 and "is not empty" in again.stderr

    second = start_server(tmp_path / "b", env)
    try:
        sentinel = login(make_trace, "alice")
        with second.client() as api:  # the restored credentials.json signs for the restored account
            resp = api.post(f"/v3/{second.creds.project_id}/traces", json={"traces": [sentinel]})
            assert resp.status_code == 200, resp.text
        wait_for(lambda: sentinel["trace_id"] in alarmed(hook), 30, "the sentinel's alarm")
        counts = alarmed(hook)
        assert all(counts[t["trace_id"]] == 1 for t in alarms), "an alarm was sent again after the restore"
        assert counts[sentinel["trace_id"]] == 1
    finally:
        second.stop()

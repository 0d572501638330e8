"""The PostgreSQL procedure of docs/backup.md, run for real: ``pg_dump`` of a running node's database
and ``opencts backup`` of its files, both while it takes traces; ``pg_restore`` into a new database and
``opencts restore`` into a new data dir; a second node started on them.

Asserted, as for SQLite: every trace acknowledged before the backup is in the restored database; the alarms
sent before are not sent again (the notifier's cursor travelled in the dump); a new matching trace is
alarmed once; the restored node signs with the restored keys.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from test_backup_online import CLI, alarm_then_ingest, alarmed, login

from conftest import POSTGRES_ADMIN_URL
from cts_helpers import TraceFactory
from opencts.testing.peers import HttpReceiver
from opencts.testing.server import start_server
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    env["OPENCTS_DATABASE_URL"] = database_url
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def trace_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute("SELECT trace_id FROM traces")}


@pytest.fixture
def second_database() -> Iterator[str]:
    name = f"opencts_restored_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs PostgreSQL's client tools (pg_dump)")
def test_pg_dump_and_files_backup_restore_resumes_without_resending(
    tmp_path: Path, hook: HttpReceiver, make_trace: TraceFactory, postgres_url: str, second_database: str
) -> None:
    env = {
        "OPENCTS_DATABASE_URL": postgres_url,
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        "OPENCTS_SMN_POLL_SECONDS": "0.2",
        "OPENCTS_SMN_RETRY_BASE_SECONDS": "0.2",
    }
    first = start_server(tmp_path / "a", env)
    try:
        alarms, ingest = alarm_then_ingest(first, hook, make_trace)
        began = time.time()
        dump = tmp_path / "opencts.dump"
        dumped = subprocess.run(
            ["pg_dump", "--format=custom", f"--file={dump}", postgres_url], capture_output=True, text=True
        )
        taken = cli(
            "backup", str(tmp_path / "bk"), "--data-dir", str(first.data_dir), database_url=postgres_url
        )
        wait_for(lambda: ingest.acked[-1][0] > time.time() - 0.5, 30, "ingest to go on after the backup")
        ingest.stopping.set()
        ingest.join(30)
        assert dumped.returncode == 0, dumped.stderr
        assert taken.returncode == 0, taken.stderr
        assert "pg_dump" in taken.stdout + taken.stderr  # it says the database is not in this backup
        assert not ingest.errors, ingest.errors
        acked_early = ingest.acked_before(began) | {t["trace_id"] for t in alarms}
    finally:
        first.stop()

    # the files restored before the dump is refused: the database must come first
    early = cli(
        "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "b"), database_url=second_database
    )
    assert early.returncode == 1 and "pg_dump" in early.stderr, early.stderr

    loaded = subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={second_database}", str(dump)], capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    restored = cli(
        "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "b"), database_url=second_database
    )
    assert restored.returncode == 0, restored.stderr
    ids = trace_ids(second_database)
    assert acked_early <= ids, f"{len(acked_early - ids)} acknowledged traces missing"

    second = start_server(tmp_path / "b", {**env, "OPENCTS_DATABASE_URL": second_database})
    try:
        sentinel = login(make_trace, "alice")
        with second.client() as api:  # the restored credentials sign for the restored account
            resp = api.post(f"/v3/{second.creds.project_id}/traces", json={"traces": [sentinel]})
            assert resp.status_code == 200, resp.text
        wait_for(lambda: sentinel["trace_id"] in alarmed(hook), 30, "the sentinel's alarm")
        counts = alarmed(hook)
        assert all(counts[t["trace_id"]] == 1 for t in alarms), "an alarm was sent again after the restore"
        assert counts[sentinel["trace_id"]] == 1
    finally:
        second.stop()

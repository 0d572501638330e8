"""kill -9 during the transfer, ten times: afterwards every trace is in exactly one trace file.

Each round starts the server on the same data dir (transfer interval 1 s), posts a backlog, waits until the
transfer has written at least one new file and kills the server with SIGKILL while the rest are planned,
claimed or half written. A final start catches up; every file in the bucket is then read back and compared
with the log.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from cts_helpers import TraceFactory
from opencts.archive import encoding, layout
from opencts.archive.storage import LocalStore
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.slow]

ROUNDS = 10
BATCHES = 3
BUCKET = "crash-bucket"
SERVICES = ("IAM", "ECS", "OBS", "VPC")


def written(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM trace_files WHERE status = 'written'").fetchone()[0])


def caught_up(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        pending = conn.execute("SELECT count(*) FROM trace_files WHERE status = 'planned'").fetchone()[0]
        cursor = conn.execute("SELECT position FROM consumer_cursors WHERE name = 'transfer'").fetchone()
        last = conn.execute("SELECT max(seq) FROM traces").fetchone()[0]
    return pending == 0 and cursor is not None and cursor[0] == last


def system_bodies(db: Path, project: str) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT body FROM traces WHERE project_id = ? AND kind = 'system' ORDER BY seq", (project,)
        )
        return [bytes(r[0]) for r in rows]


def post_backlog(server: ServerProcess, make_trace: TraceFactory, round_: int) -> None:
    with server.client() as client:
        for b in range(BATCHES):
            traces = [make_trace(service_type=SERVICES[(round_ + b + i) % 4]) for i in range(1000)]
            resp = client.post(f"/v3/{server.creds.project_id}/traces", json={"traces": traces})
            assert resp.status_code == 200, resp.text


def test_kill_9_during_transfer_loses_and_doubles_nothing(tmp_path: Path, make_trace: TraceFactory) -> None:
    data = tmp_path / "data"
    env = {"OPENCTS_TRANSFER_INTERVAL": "1"}
    db = data / "opencts.db"
    server = ServerProcess(data, env).start()
    project = server.creds.project_id
    try:
        with server.client() as client:
            resp = client.put(
                f"/v3/{project}/tracker",
                json={
                    "tracker_type": "system",
                    "tracker_name": "system",
                    "obs_info": {"bucket_name": BUCKET, "is_obs_created": True},
                },
            )
            assert resp.status_code == 200, resp.text
        for round_ in range(ROUNDS):
            if round_:
                server = ServerProcess(data, env, port=server.port).start()
            before = written(db)
            post_backlog(server, make_trace, round_)
            wait_for(lambda: written(db) > before, 60, "the transfer to write a file")  # noqa: B023
            server.kill()
        server = ServerProcess(data, env, port=server.port).start()
        wait_for(lambda: caught_up(db), 90, "the transfer to catch up")
    finally:
        server.stop()

    store = LocalStore(data / "buckets")
    found: list[bytes] = []
    for info in store.list(BUCKET):
        key = layout.parse_key(info.key)
        assert key is not None and key.kind == "trace" and key.service in SERVICES + ("CTS",), info.key
        found.extend(encoding.decode(store.get(BUCKET, info.key), key.compress))
    expected = system_bodies(db, project)
    assert len(expected) >= ROUNDS * BATCHES * 1000
    doubled = [body for body, n in Counter(found).items() if n > 1]
    assert not doubled, f"{len(doubled)} traces in more than one file"
    assert Counter(found) == Counter(expected)

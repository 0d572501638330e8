"""``archive.status`` on both backends: the lag before and after the real transfer, a failing bucket, the
ledger's checkpoint and the digest chain's head written by the real digest writer, projects kept apart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from archive.archive_world import OTHER, PROJECT
from cts_helpers import trace_row
from opencts.archive import signing_keys, status
from opencts.archive.digests import DigestWriter, LedgerReader
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.ledger import repository as ledger
from opencts.ledger.repository import NoteSigner
from opencts.store import Database, trace_log
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, UpdateTrackerRequestBody

H0 = 1_796_450_400_000  # 2026-12-05T06:00:00Z
BUCKET = "audit"


def append(db: Database, project: str, tag: str, count: int, at: int, **columns: Any) -> None:
    rows = [
        trace_row(f"{tag}{i}", project_id=project, time=at, record_time=at, **columns) for i in range(count)
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))


def statuses(db: Database, now: int) -> dict[str, status.TrackerStatus]:
    found = db.read_sync(lambda c: status.tracker_statuses(c, PROJECT, now=now))
    return {s.tracker_name: s for s in found}


async def test_status_through_transfer_ledger_and_digests(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    store.create_bucket(BUCKET)
    system = UpdateTrackerRequestBody.model_validate(
        {
            "tracker_type": "system",
            "tracker_name": "system",
            "obs_info": {"bucket_name": BUCKET},
            "is_support_validate": True,
        }
    )
    reads = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "data",
            "tracker_name": "reads",
            "data_bucket": {"data_bucket_name": "watched"},
            "obs_info": {"bucket_name": "missing"},
        }
    )

    def setup(conn: Connection) -> None:
        for project in (PROJECT, OTHER):
            repository.update_tracker(conn, project_id=project, body=system)
        repository.create_tracker(conn, project_id=PROJECT, body=reads)

    db.write_sync(setup)
    append(db, PROJECT, "s", 12, H0 + MINUTE_MS)
    append(db, PROJECT, "d", 5, H0 + MINUTE_MS, kind="data", tracker_name="reads")
    append(db, OTHER, "o", 9, H0 + MINUTE_MS)

    before = statuses(db, H0 + 2 * MINUTE_MS)
    assert set(before) == {"reads", "system"}
    mine = before["system"]
    assert (mine.lag_traces, mine.lag_seconds, mine.transferred_seq) == (12, 60.0, 0)
    assert mine.head_seq == 12 and mine.head_time_ms == H0 + MINUTE_MS and mine.files_written == 0
    assert before["reads"].lag_traces == 5 and before["reads"].head_seq == 17

    settings = Settings(data_dir=tmp_path / "data", transfer_interval=1)
    await Transfer(db, store, settings, clock=lambda: H0 + 2 * MINUTE_MS).drain()
    after = statuses(db, H0 + 3 * MINUTE_MS)
    mine, failing = after["system"], after["reads"]
    assert (mine.lag_traces, mine.lag_seconds, mine.pending_files, mine.status) == (0, 0.0, 0, "ok")
    assert mine.traces_written == 12 and mine.files_written >= 1 and mine.bytes_written > 0
    assert mine.transferred_seq >= mine.head_seq == 12
    # the other project's traces (seq 18..26) are no part of this tracker's lag or head
    assert mine.transferred_seq == 26
    assert failing.status == "error" and failing.detail == "noBucket" and failing.error_since_ms is not None
    assert (failing.lag_traces, failing.pending_files, failing.files_written) == (5, 1, 0)
    assert failing.transferred_seq == 12 and failing.head_seq == 17 and failing.lag_seconds == 120.0
    assert failing.head_lag_seconds == 0.0 and mine.head_lag_seconds == 0.0
    append(db, PROJECT, "late", 2, H0 + 2 * MINUTE_MS + 30_000, kind="data", tracker_name="reads")
    behind = statuses(db, H0 + 4 * MINUTE_MS)["reads"]  # its head moved on 90 s; the oldest still waits
    assert (behind.lag_traces, behind.head_lag_seconds, behind.lag_seconds) == (7, 90.0, 180.0)

    # the ledger takes the log; the digest writer starts the chain, and writes the hour once it is over
    assert mine.ledger.tree_size == 0 and mine.ledger.checkpoint_size is None and mine.digest_head is None
    db.write_sync(lambda c: ledger.append_log_rows(c, trace_log.read_after(c, 0, 1000), H0 + 2 * MINUTE_MS))
    box = SecretBox(os.urandom(32))
    signer = NoteSigner.from_settings(settings, box)

    def keys(conn: Connection, now: int) -> signing_keys.SigningKey:
        return signing_keys.current_key(conn, box, now, 30, name=signer.key_name)

    now = H0 + 2 * MINUTE_MS
    writer = DigestWriter(
        db, store, region=settings.region, keys=keys, ledger=LedgerReader(signer), clock=lambda: now
    )
    await writer.run_once()
    now = H0 + HOUR_MS + MINUTE_MS
    assert await writer.run_once() == 2  # one per project
    head = statuses(db, now)["system"]
    assert head.digest_head is not None and head.digest_head.hour_ms == H0
    assert head.digest_head.status == "written" and head.digest_head.chain_start_ms == H0
    assert store.get(BUCKET, head.digest_head.object_key)
    # the project's 12 + 5 + 2 data traces (seq 27, 28 after the other project's)
    assert head.ledger.tree_size == 19 and head.ledger.last_seq == 28
    assert head.ledger.checkpoint_size == head.digest_head.tree_size == 19

    # the files: one page at a time, one day at a time, none of the other project's
    found = db.read_sync(lambda c: status.written_files(c, PROJECT, "system"))
    assert found is not None and sum(f.trace_count for f in found) == 12
    assert all(PROJECT in f.object_key for f in found)
    page = db.read_sync(lambda c: status.written_files(c, PROJECT, "system", limit=1))
    assert page == found[:1]
    assert db.read_sync(lambda c: status.written_files(c, PROJECT, "system", day_ms=H0 - 86_400_000)) == []
    assert db.read_sync(lambda c: status.written_files(c, PROJECT, "nope")) is None

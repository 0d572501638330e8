"""Retention gated on the archive (``traces.retention_hold``), on both backends, with an injected clock.

Traces in a written file that no digest covers yet stay until the digest is written; traces the archive
cannot take (a missing bucket) stay until the hold runs out, then go, and the tracker shows it until its
archive is past the deleted range.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from archive.archive_world import PROJECT
from archive.test_digests import BUCKET, Clock, append, transfer_at, validate, writer
from opencts.archive.status import RetentionLoss, tracker_statuses
from opencts.archive.storage import LocalStore
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.iam.secrets import SecretBox
from opencts.store import Database, trace_log
from opencts.store.tables import retention_state
from opencts.traces.retention import RetentionConsumer
from opencts.traces.retention_hold import HOLD_EXPIRED, ArchiveHold
from opencts.trackers import repository

H0 = 1_780_002_000_000 // HOUR_MS * HOUR_MS
HOLD_MS = 72 * HOUR_MS


def retention(db: Database, clock: Clock) -> RetentionConsumer:
    gate = ArchiveHold(max_hold_ms=HOLD_MS, clock=clock)
    return RetentionConsumer(db, retention_ms=HOUR_MS, gate=gate, clock=clock)


async def sweep(db: Database, consumer: RetentionConsumer) -> int:
    rows = db.read_sync(lambda c: trace_log.read_after(c, 0, 1000, with_body=False))
    await consumer.process(rows)
    return db.read_sync(trace_log.count)


def system_tracker(db: Database) -> dict[str, Any]:
    found = db.read_sync(lambda c: repository.list_trackers(c, project_id=PROJECT, tracker_name="system"))
    return found[0]


async def test_traces_wait_for_the_digest_that_covers_their_file(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    box = SecretBox(os.urandom(32))
    store.create_bucket(BUCKET)
    clock = Clock(H0 + 10 * MINUTE_MS)
    digest_writer = writer(db, store, box, clock)
    validate(db, True)
    await digest_writer.run_once()  # the chain starts in hour H0
    append(db, H0 + 15 * MINUTE_MS, 3, "a")
    await transfer_at(db, store, tmp_path, H0 + 20 * MINUTE_MS)
    append(db, H0 + 2 * HOUR_MS, 1, "newest")
    clock.now = H0 + 2 * HOUR_MS + 5 * MINUTE_MS  # "a" is past its retention (an hour), its file written
    consumer = retention(db, clock)
    assert await sweep(db, consumer) == 4  # ... but no digest covers it yet
    assert await digest_writer.run_once() == 2  # hours H0 and H0 + 1
    assert await sweep(db, consumer) == 1  # the newest row always stays
    assert system_tracker(db)["status"] == "enabled"


async def test_a_hold_runs_out_and_the_tracker_shows_it_until_the_archive_is_past(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    validate(db, False, bucket="late-bucket")  # no such bucket yet: nothing can be written
    append(db, H0, 3, "held")
    await transfer_at(db, store, tmp_path, H0 + MINUTE_MS)
    append(db, H0 + 80 * HOUR_MS, 1, "newest")
    clock = Clock(H0 + 2 * HOUR_MS)
    consumer = retention(db, clock)
    assert await sweep(db, consumer) == 4  # held: the file is not written
    assert system_tracker(db).get("detail") == "noBucket"

    clock.now = H0 + HOUR_MS + HOLD_MS + MINUTE_MS  # past retention by more than the hold
    assert await sweep(db, consumer) == 1
    tracker = system_tracker(db)
    assert (tracker["status"], tracker.get("detail")) == ("error", HOLD_EXPIRED)
    state = db.read_sync(lambda c: c.execute(select(retention_state)).one())
    assert (state.expired_through, state.cleared_at) == (3, None)
    (status,) = db.read_sync(lambda c: tracker_statuses(c, PROJECT, now=clock.now))
    assert status.retention_loss == RetentionLoss(1, 3, clock.now, None)

    store.create_bucket("late-bucket")  # the archive catches up past the deleted range
    await transfer_at(db, store, tmp_path, clock.now)
    gate = ArchiveHold(max_hold_ms=HOLD_MS, clock=clock)
    db.write_sync(lambda c: gate.limit(c, 0))
    assert system_tracker(db)["status"] == "enabled"
    state = db.read_sync(lambda c: c.execute(select(retention_state)).one())
    assert state.cleared_at == clock.now and state.expired_from == 1

"""Verifications run by the server (``archive.verifications`` and its worker) over an archive the real
pipeline wrote: a clean archive verifies; a changed file, or the newest digest deleted, fails and is named;
another project's files in the same bucket are neither read nor blamed; asking twice queues once; the
schedule queues one run per tracker and period however many nodes ask; a lease that runs out is taken
again, and given up after three."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, select, update

from archive.archive_pipeline import BUCKET, H0, PROJECT, Pipeline
from archive.test_tamper_pipeline import flip_byte, keys_of
from opencts.archive import verifications
from opencts.archive.verification_worker import VerificationWorker
from opencts.archive.verifications import Verification
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.errors import BadRequest, NotFound
from opencts.store import Database
from opencts.store.tables import archive_verifications, trackers

OTHER = "f" * 32


async def built(db: Database, tmp_path: Path, projects: tuple[str, ...] = (PROJECT,)) -> Pipeline:
    """Three hours of digests: one empty, then 5 and 3 traces a project."""
    pipe = Pipeline(db, tmp_path, projects=projects)
    pipe.setup()
    await pipe.hour(H0, 0, "none")
    await pipe.hour(H0 + HOUR_MS, 5, "a")
    await pipe.hour(H0 + 2 * HOUR_MS, 3, "b")
    await pipe.digests(H0 + 3 * HOUR_MS + MINUTE_MS)
    return pipe


def worker(pipe: Pipeline, *, interval_s: float = 0.0) -> VerificationWorker:
    return VerificationWorker(pipe.db, pipe.store, unwrap=None, interval_s=interval_s, clock=lambda: pipe.now)


def ask(pipe: Pipeline, project: str = PROJECT, *, proofs: bool = False) -> tuple[Verification, bool]:
    return pipe.db.write_sync(
        lambda conn: verifications.request(
            conn, project_id=project, tracker_name="system", proofs=proofs, requested_by="alice", now=pipe.now
        )
    )


async def run(pipe: Pipeline, project: str = PROJECT, *, proofs: bool = False) -> Verification:
    pipe.now += 1  # each asked a moment after the last
    asked, queued = ask(pipe, project, proofs=proofs)
    assert queued
    await worker(pipe).drain()
    return pipe.db.read_sync(lambda conn: verifications.get(conn, project, asked.id))


def trace_files(pipe: Pipeline, project: str) -> list[str]:
    return [k for k in keys_of(pipe.store.root / BUCKET, "trace") if f"-{project}_" in k]


async def test_a_clean_archive_verifies_and_a_changed_file_is_named(
    database: Database, tmp_path: Path
) -> None:
    pipe = await built(database, tmp_path)

    clean = await run(pipe)
    assert clean.status == "verified", clean.findings
    assert (clean.digests, clean.files, clean.traces, clean.failure_count) == (3, 2, 8, 0)
    assert clean.requested_by == "alice" and clean.started_at is not None and clean.finished_at is not None

    proved = await run(pipe, proofs=True)
    assert proved.status == "verified", proved.findings
    assert (proved.traces, proved.leaves) == (8, 8)

    changed = trace_files(pipe, PROJECT)[0]
    flip_byte(pipe.store.root / BUCKET / changed)
    failed = await run(pipe)
    assert failed.status == "failed" and failed.failure_count == 1
    assert [(f["problem"], f["key"]) for f in failed.failures] == [("hash value doesn't match", changed)]

    latest = pipe.db.read_sync(lambda conn: verifications.latest(conn, PROJECT))
    assert latest["system"].id == failed.id


async def test_the_newest_digest_deleted_is_a_gap(database: Database, tmp_path: Path) -> None:
    """Offline, deleting the newest digests is silent without --until; the server knows its newest digest."""
    pipe = await built(database, tmp_path)
    newest = keys_of(pipe.store.root / BUCKET, "digest")[-1]
    (pipe.store.root / BUCKET / newest).unlink()
    found = await run(pipe)
    assert found.status == "failed"
    assert [f["problem"] for f in found.failures] == [f"gap: no digest for hour {_hour(H0 + 2 * HOUR_MS)}"]


def _hour(ms: int) -> str:
    from opencts.archive.digest_format import hour_text

    return hour_text(ms)


async def test_another_projects_files_in_the_same_bucket_are_not_read(
    database: Database, tmp_path: Path
) -> None:
    pipe = await built(database, tmp_path, projects=(PROJECT, OTHER))
    theirs = trace_files(pipe, OTHER)
    assert len(theirs) == 2 and len(trace_files(pipe, PROJECT)) == 2
    flip_byte(pipe.store.root / BUCKET / theirs[-1])

    mine = await run(pipe, PROJECT)
    assert mine.status == "verified", mine.findings
    assert (mine.digests, mine.files, mine.traces) == (3, 2, 8)
    assert not any(OTHER in (f.get("key") or "") for f in mine.findings)

    their = await run(pipe, OTHER)
    assert [(f["problem"], f["key"]) for f in their.failures] == [("hash value doesn't match", theirs[-1])]
    with pytest.raises(NotFound):  # one project cannot read another's verification
        database.read_sync(lambda conn: verifications.get(conn, PROJECT, their.id))


async def test_asking_twice_queues_once_and_what_cannot_be_verified_is_refused(
    database: Database, tmp_path: Path
) -> None:
    pipe = await built(database, tmp_path)
    first, queued = ask(pipe)
    again, queued_again = ask(pipe, proofs=True)
    assert queued and not queued_again and again.id == first.id

    with pytest.raises(NotFound, match="tracker nope does not exist"):
        database.write_sync(
            lambda conn: verifications.request(
                conn, project_id=PROJECT, tracker_name="nope", proofs=False, requested_by="a", now=pipe.now
            )
        )

    def no_bucket(conn: Connection) -> None:
        conn.execute(archive_verifications.delete())
        config = orjson.loads(
            conn.execute(select(trackers.c.config).where(trackers.c.project_id == PROJECT)).scalar_one()
        )
        config.pop("obs_info")
        conn.execute(
            update(trackers)
            .where(trackers.c.project_id == PROJECT)
            .values(config=orjson.dumps(config).decode())
        )

    database.write_sync(no_bucket)
    with pytest.raises(BadRequest, match="transfers to no bucket"):
        ask(pipe)


async def test_no_digest_yet_is_refused(database: Database, tmp_path: Path) -> None:
    pipe = Pipeline(database, tmp_path)
    pipe.setup()
    with pytest.raises(BadRequest, match="no digest file yet"):
        ask(pipe)


async def test_the_schedule_queues_one_run_per_tracker_and_period(database: Database, tmp_path: Path) -> None:
    pipe = await built(database, tmp_path)
    nodes = [worker(pipe, interval_s=3600), worker(pipe, interval_s=3600)]
    for node in nodes:
        await node.drain()
    done = database.read_sync(lambda conn: verifications.listing(conn, PROJECT))
    assert [(v.requested_by, v.status) for v in done] == [("schedule", "verified")]

    pipe.now += HOUR_MS
    for node in nodes:
        node._schedule_at = 0  # a minute passed on each node: both look again
        await node.drain()
    done = database.read_sync(lambda conn: verifications.listing(conn, PROJECT))
    assert [v.requested_by for v in done] == ["schedule", "schedule"]
    assert len({v.id for v in done}) == 2


async def test_a_lease_that_ran_out_is_taken_again_and_given_up_after_three(
    database: Database, tmp_path: Path
) -> None:
    pipe = await built(database, tmp_path)
    asked, _ = ask(pipe)

    def claim(at: int) -> list[str]:
        jobs = database.write_sync(lambda conn: verifications.claim_due(conn, now=at, limit=1))
        return [j.id for j in jobs]

    at = pipe.now
    for attempt in range(1, verifications.MAX_ATTEMPTS + 1):
        assert claim(at) == [asked.id], attempt
        assert claim(at + 1) == []
        at += verifications.LEASE_MS  # its node died: the lease runs out
    assert claim(at) == []
    gone = database.read_sync(lambda conn: verifications.get(conn, PROJECT, asked.id))
    assert gone.status == "error" and gone.error is not None and "given up after 3 attempts" in gone.error

"""The invocation queue on both backends: claim under a lease, retries, dead letters, re-drive, pruning.

The runtime is not involved: outcomes are the results a pool would return, so each rule of the queue is
checked on its own. Two claimants on PostgreSQL (``FOR UPDATE SKIP LOCKED``) never take the same row.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from sqlalchemy import Connection, select

from opencts.errors import BadRequest
from opencts.functions import code, invocations, repository
from opencts.functions.model import CreateFunctionRequestBody
from opencts.functions.runtime import InvocationResult
from opencts.iam.bootstrap import bootstrap
from opencts.iam.secrets import SecretBox
from opencts.store import Database
from opencts.store.tables import function_invocations

BOX = SecretBox(bytes(range(32)))
NOW = 1_800_000_000_000
SOURCE = base64.b64encode(b"def handler(e, c):\n    return 1\n").decode()


def make_function(database: Database, *, timeout: int = 5) -> repository.FunctionRecord:
    def setup(conn: Connection) -> repository.FunctionRecord:
        creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
        assert creds is not None
        body = CreateFunctionRequestBody.model_validate(
            {
                "func_name": "f",
                "runtime": "Python3.10",
                "timeout": timeout,
                "handler": "index.handler",
                "memory_size": 128,
                "func_code": {"file": SOURCE},
            }
        )
        packaged = code.package("inline", SOURCE, body.handler, None)
        return repository.create(
            conn,
            project_id=creds.project_id,
            region="local-1",
            body=body,
            code=packaged,
            encrypted_user_data=None,
            now=NOW,
        )

    return database.write_sync(setup)


def result(job: invocations.Job, status: str = "success") -> InvocationResult:
    return InvocationResult(
        request_id=job.request_id,
        status=status,  # type: ignore[arg-type]
        result='"ok"' if status == "success" else '{"errorMessage": "boom"}',
        log="a log line\n",
        duration_ms=12.4,
        error_message="" if status == "success" else "boom",
    )


def row(database: Database, request_id: str) -> Any:
    return database.read_sync(
        lambda conn: conn.execute(
            select(function_invocations).where(function_invocations.c.request_id == request_id)
        ).one()
    )


def enqueue(database: Database, fn: repository.FunctionRecord, now: int = NOW) -> str:
    return database.write_sync(
        lambda conn: invocations.enqueue(
            conn, project_id=fn.project_id, func_id=fn.func_id, source="async", event=b'{"a": 1}', now=now
        )
    )


def claim(database: Database, now: int, limit: int = 10) -> list[invocations.Job]:
    return database.write_sync(lambda conn: invocations.claim_due(conn, now=now, limit=limit, margin_ms=1000))


def complete(database: Database, outcomes: list[invocations.Outcome], now: int, retries: int = 2) -> None:
    database.write_sync(
        lambda conn: invocations.complete(conn, outcomes, now=now, retries=retries, backoff_ms=100)
    )


def test_a_claimed_row_is_leased_for_its_timeout_and_succeeds_once(database: Database) -> None:
    fn = make_function(database, timeout=5)
    request_id = enqueue(database, fn)
    assert claim(database, NOW - 1) == []  # not due yet
    [job] = claim(database, NOW)
    assert job.request_id == request_id and job.attempt == 1 and job.event == b'{"a": 1}'
    leased = row(database, request_id)
    assert leased.status == "RUNNING" and leased.next_attempt_at == NOW + 5000 + 1000
    assert claim(database, NOW + 5999) == []  # leased
    complete(database, [invocations.Outcome(job, result(job))], NOW + 20)
    done = row(database, request_id)
    assert (done.status, done.result, done.duration_ms, done.error_code) == ("SUCCESS", '"ok"', 12, 0)
    assert done.event is None and done.log == "a log line\n"
    assert claim(database, NOW + 10**7) == []


def test_a_lease_that_ran_out_is_claimed_again_and_the_old_claim_is_fenced(database: Database) -> None:
    fn = make_function(database, timeout=3)
    request_id = enqueue(database, fn)
    [first] = claim(database, NOW)
    [second] = claim(database, NOW + 4001)  # the node holding it died
    assert second.request_id == request_id and second.attempt == 2 and second.claim != first.claim
    complete(database, [invocations.Outcome(first, result(first, "error"))], NOW + 4002)
    assert row(database, request_id).status == "RUNNING"  # the stale attempt records nothing
    complete(database, [invocations.Outcome(second, result(second))], NOW + 4003)
    assert row(database, request_id).status == "SUCCESS"


def test_failures_are_retried_then_kept_as_dead_letters_and_can_be_redriven(database: Database) -> None:
    fn = make_function(database)
    request_id = enqueue(database, fn)
    now = NOW
    for attempt in (1, 2, 3):
        [job] = claim(database, now + 10_000)
        assert job.attempt == attempt
        now += 10_000
        complete(database, [invocations.Outcome(job, result(job, "timeout"))], now, retries=2)
    dead = row(database, request_id)
    assert dead.status == "FAIL" and dead.error_code == invocations.ERROR_CODES["timeout"]
    assert dead.event == b'{"a": 1}'  # kept, so it can be re-driven
    assert claim(database, now + 10**7) == []
    count = database.read_sync(
        lambda conn: invocations.dead_letter_count(conn, project_id=fn.project_id, func_id=fn.func_id)
    )
    assert count == 1
    redriven = database.write_sync(
        lambda conn: invocations.redrive(
            conn, project_id=fn.project_id, func_id=fn.func_id, request_ids=None, now=now
        )
    )
    assert redriven == 1
    [job] = claim(database, now)
    assert job.attempt == 1
    complete(database, [invocations.Outcome(job, result(job))], now + 1)
    assert row(database, request_id).status == "SUCCESS"


def test_a_busy_pool_sends_the_row_back_without_spending_an_attempt(database: Database) -> None:
    fn = make_function(database)
    request_id = enqueue(database, fn)
    [job] = claim(database, NOW)
    complete(database, [invocations.Outcome(job, None, busy=True)], NOW + 1)
    back = row(database, request_id)
    assert back.status == "WAIT" and back.attempts == 0 and back.next_attempt_at > NOW + 1


def test_cancel_discards_only_what_has_not_started(database: Database) -> None:
    fn = make_function(database)
    waiting, started = enqueue(database, fn), enqueue(database, fn, now=NOW - 1)
    claim(database, NOW - 1, limit=1)

    def cancel(request_id: str) -> None:
        database.write_sync(
            lambda conn: invocations.cancel(
                conn, project_id=fn.project_id, func_id=fn.func_id, request_id=request_id
            )
        )

    cancel(waiting)
    assert row(database, waiting).status == "DISCARD"
    with pytest.raises(BadRequest, match="has started"):
        cancel(started)


def test_pruning_keeps_dead_letters_and_unfinished_rows(database: Database) -> None:
    fn = make_function(database)
    ids = [enqueue(database, fn) for _ in range(3)]
    jobs = claim(database, NOW)
    complete(
        database,
        [
            invocations.Outcome(jobs[0], result(jobs[0])),
            invocations.Outcome(jobs[1], result(jobs[1], "error")),
        ],
        NOW + 1,
        retries=0,
    )
    pruned = database.write_sync(lambda conn: invocations.prune(conn, before=NOW + 2, limit=1000))
    assert pruned == 1
    remaining = database.read_sync(
        lambda conn: set(conn.execute(select(function_invocations.c.request_id)).scalars())
    )
    assert remaining == {ids[1], ids[2]}  # the dead letter and the one still running


def test_statistics_bucket_counts_durations_and_rejections(database: Database) -> None:
    fn = make_function(database)
    for _ in range(4):
        enqueue(database, fn)
    jobs = claim(database, NOW)
    statuses = ["success", "success", "error", "timeout"]
    complete(
        database,
        [invocations.Outcome(j, result(j, s)) for j, s in zip(jobs, statuses, strict=True)],
        NOW + 10,
        retries=0,
    )
    database.write_sync(
        lambda conn: invocations.record_rejected(
            conn, project_id=fn.project_id, func_id=fn.func_id, request_id="rejected-1", now=NOW + 20
        )
    )
    [bucket] = database.read_sync(
        lambda conn: invocations.statistics(
            conn, project_id=fn.project_id, func_id=fn.func_id, since=NOW, until=NOW + 60_000, step_ms=60_000
        )
    )
    assert (bucket.count, bucket.fail_count, bucket.reject_count) == (4, 2, 1)
    assert (bucket.function_errors, bucket.system_errors) == (1, 1)
    assert bucket.max_duration == bucket.min_duration == 12


@pytest.mark.postgres
def test_two_claimants_never_take_the_same_row(postgres_url: str) -> None:
    from opencts.store import migrate

    database = Database(postgres_url)
    migrate.upgrade(database)
    try:
        fn = make_function(database)
        for _ in range(200):
            enqueue(database, fn)
        taken: list[list[invocations.Job]] = [[], []]
        start = threading.Barrier(2)

        def claimant(slot: int) -> None:
            other = Database(postgres_url)
            try:
                start.wait()
                while batch := other.write_sync(
                    lambda conn: invocations.claim_due(conn, now=NOW, limit=7, margin_ms=60_000)
                ):
                    taken[slot].extend(batch)
            finally:
                other.close()

        threads = [threading.Thread(target=claimant, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ids = [j.request_id for j in taken[0] + taken[1]]
        assert len(ids) == 200 and len(set(ids)) == 200
    finally:
        database.close()

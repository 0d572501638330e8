"""Login lockout: wrong passwords per user name and per address, through the login API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cts_helpers import Api
from opencts.iam import lockout
from opencts.iam.lockout import Attempt, LockoutPolicy
from opencts.store import Database

MINUTE_MS = 60_000


def body(name: str, password: str, *, domain: dict[str, str]) -> dict[str, Any]:
    user = {"name": name, "password": password, "domain": domain}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}


@pytest.fixture
async def bare(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def by_name(api: Api) -> dict[str, str]:
    return {"name": api.creds.domain_name}


async def login(client: httpx.AsyncClient, api: Api, name: str, password: str, **kw: Any) -> httpx.Response:
    return await client.post(
        "/v3/auth/tokens", json=body(name, password, domain=kw.get("domain", by_name(api)))
    )


def age_failures(api: Api, minutes: int) -> None:
    """Move every recorded failure into the past, as if that much time had gone by."""
    db = api.app.state.services.db
    shift = minutes * MINUTE_MS
    db.write_sync(
        lambda c: c.execute(
            text("UPDATE login_failures SET first_at = first_at - :s, last_at = last_at - :s"), {"s": shift}
        )
    )


async def test_five_wrong_passwords_lock_the_user_even_against_the_right_one(
    api: Api, bare: httpx.AsyncClient
) -> None:
    admin, password = api.creds.user_name, api.creds.password
    for _ in range(5):
        assert (await login(bare, api, admin, "wrong")).status_code == 401
    locked = await login(bare, api, admin, password)
    assert locked.status_code == 429
    assert locked.json()["error_code"] == "CTS.0430"
    assert "too many failed logins" in locked.json()["error_msg"]
    assert 14 * 60 <= int(locked.headers["retry-after"]) <= 15 * 60
    assert locked.headers["x-request-id"]
    age_failures(api, 16)  # the lockout is over, and the count starts again
    assert (await login(bare, api, admin, password)).status_code == 201


async def test_unknown_names_lock_the_same_way_so_nothing_is_learnt(
    api: Api, bare: httpx.AsyncClient
) -> None:
    for _ in range(5):
        assert (await login(bare, api, "nobody", "guess")).status_code == 401
    real, made_up = api.creds.user_name, "nobody"
    for _ in range(4):
        assert (await login(bare, api, real, "guess")).status_code == 401
    real_locked = await login(bare, api, real, "guess")  # the fifth for the real user: still a plain 401
    assert real_locked.status_code == 401
    answers = [await login(bare, api, name, "guess") for name in (real, made_up)]
    assert [a.status_code for a in answers] == [429, 429]
    assert answers[0].json()["error_msg"] == answers[1].json()["error_msg"]


async def test_an_administrator_can_unlock_a_user_at_once(api: Api, bare: httpx.AsyncClient) -> None:
    admin, password = api.creds.user_name, api.creds.password
    for _ in range(5):
        await login(bare, api, admin, "wrong")
    assert (await login(bare, api, admin, password)).status_code == 429
    users = (await api.client.get("/v3/users", params={"name": admin})).json()["users"]
    unlocked = await api.client.delete(f"/v3/users/{users[0]['id']}/lockout")  # signed with the admin's AK/SK
    assert unlocked.status_code == 204
    assert (await login(bare, api, admin, password)).status_code == 201
    missing = await api.client.delete(f"/v3/users/{'0' * 32}/lockout")
    assert missing.status_code == 404 and missing.json()["error_code"] == "CTS.0404"
    unlocks = (await api.list(trace_name="unlockUser", limit=5)).json()["traces"]
    assert [t["code"] for t in unlocks] == ["404", "204"]  # the unlock is in the audit trail too


async def test_a_success_starts_the_count_again(api: Api, bare: httpx.AsyncClient) -> None:
    admin, password = api.creds.user_name, api.creds.password
    for _ in range(4):
        await login(bare, api, admin, "wrong")
    assert (await login(bare, api, admin, password)).status_code == 201
    for _ in range(4):
        assert (await login(bare, api, admin, "wrong")).status_code == 401
    assert (await login(bare, api, admin, password)).status_code == 201


async def test_naming_the_account_by_id_or_by_name_counts_as_one(api: Api, bare: httpx.AsyncClient) -> None:
    admin = api.creds.user_name
    for i in range(5):
        domain = {"id": api.creds.domain_id} if i % 2 else by_name(api)
        assert (await login(bare, api, admin, "wrong", domain=domain)).status_code == 401
    locked = await login(bare, api, admin, api.creds.password, domain={"id": api.creds.domain_id})
    assert locked.status_code == 429


async def test_one_address_spraying_many_names_is_stopped(api: Api, bare: httpx.AsyncClient) -> None:
    for i in range(25):
        assert (await login(bare, api, f"user{i}", "Spring2026!")).status_code == 401
    assert (await login(bare, api, api.creds.user_name, api.creds.password)).status_code == 429
    # another address is not held back by this one
    other = httpx.ASGITransport(app=api.app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=other, base_url="http://testserver") as elsewhere:
        assert (await login(elsewhere, api, api.creds.user_name, api.creds.password)).status_code == 201


async def test_refused_attempts_are_in_the_audit_trail(api: Api, bare: httpx.AsyncClient) -> None:
    admin = api.creds.user_name
    for _ in range(6):
        await login(bare, api, admin, "hunter2-guess")
    logins = (await api.list(trace_name="login", limit=20)).json()["traces"]
    assert [t["code"] for t in logins] == ["429"] + ["401"] * 5
    assert all(t["source_ip"] == "198.51.100.7" for t in logins)
    assert "hunter2" not in str(logins)  # the password is redacted, as for every login


def test_counting_and_forgetting_on_both_backends(database: Database) -> None:
    policy = LockoutPolicy(max_failures=2, max_failures_per_ip=3, window_ms=10_000, lockout_ms=20_000)
    alice, bob = Attempt.of("acct", "alice", "192.0.2.1"), Attempt.of("acct", "bob", "192.0.2.1")

    def fail(attempt: Attempt, at: int) -> None:
        database.write_sync(lambda c: lockout.record_failure(c, attempt, policy, now=at))

    def wait(attempt: Attempt, at: int) -> int:
        return database.read_sync(lambda c: lockout.locked_for(c, attempt, policy, now=at))

    fail(alice, 1_000)
    assert wait(alice, 1_001) == 0
    fail(alice, 2_000)
    assert wait(alice, 2_001) == 19_999 and wait(bob, 2_001) == 0  # alice's name, not the address (2 < 3)
    assert wait(alice, 22_000) == 0  # the lockout ran out
    fail(alice, 30_000)  # the window started over: one failure, not three
    assert wait(alice, 30_001) == 0
    fail(bob, 30_500)
    assert wait(Attempt.of("acct", "carol", "192.0.2.1"), 30_501) == 0  # the address has 2 in this window
    fail(bob, 30_600)  # its third within the window locks every name from it
    assert wait(Attempt.of("acct", "carol", "192.0.2.1"), 30_601) == 20_000 - 1
    database.write_sync(lambda c: lockout.clear(c, alice))
    assert wait(Attempt.of("acct", "alice", None), 30_601) == 0
    fail(bob, 100_000)  # rows long over are deleted as failures are recorded
    count = database.read_sync(lambda c: c.execute(text("SELECT count(*) FROM login_failures")).scalar_one())
    assert count == 2  # bob's name and the address, both counted afresh

"""An access key's ``last_used`` is filled in when it authenticates, at most once a minute per key.

On both backends, with the authenticator's clock in the test's hands: many signed requests within a minute
make one write, and the first use after the minute makes the next. Over the app, the IAM API shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import event, select

from cts_helpers import Api
from opencts.api.deps import Services
from opencts.client.signing import HmacAuth, sign_headers
from opencts.clock import now_ms
from opencts.iam.authenticate import USE_RECORD_MS, Authenticator
from opencts.iam.bootstrap import BootstrapCredentials, bootstrap
from opencts.iam.secrets import SecretBox
from opencts.store import Database
from opencts.store.tables import credentials

BOX = SecretBox(bytes(range(32)))


class Clock:
    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


def count_use_writes(db: Database) -> list[str]:
    """Every UPDATE of ``credentials`` the database runs from now on."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE CREDENTIALS"):
            seen.append(statement)

    event.listen(db.write_engine, "before_cursor_execute", listen)
    return seen


async def authenticate(auth: Authenticator, creds: BootstrapCredentials) -> None:
    path = f"/v3/{creds.project_id}/traces"
    signed = sign_headers(
        method="GET",
        url="http://127.0.0.1:8080" + path,
        headers={"X-Project-Id": creds.project_id},
        body=b"",
        access_key=creds.access_key,
        secret_key=creds.secret_key,
    )
    headers = {name.lower(): value for name, value in signed.items()}
    principal = await auth.by_signature(
        authorization=headers["authorization"],
        method="GET",
        raw_path=path,
        query_string="",
        headers=headers,
        body=b"",
    )
    assert principal.access_key == creds.access_key


def last_used(db: Database, access_key: str) -> int | None:
    stmt = select(credentials.c.last_used_at).where(credentials.c.access_key == access_key)
    value = db.read_sync(lambda conn: conn.execute(stmt).scalar())
    return None if value is None else int(value)


async def test_last_used_is_written_once_a_minute_per_key(database: Database) -> None:
    creds = database.write_sync(lambda conn: bootstrap(conn, box=BOX, region="r-1", password="Admin-Pass-1"))
    assert creds is not None and last_used(database, creds.access_key) is None
    clock = Clock()
    auth = Authenticator(database, BOX, clock=clock)
    writes = count_use_writes(database)
    first = clock.now

    for _ in range(10):
        await authenticate(auth, creds)
        clock.now += 1_000
    await auth.close()
    assert (len(writes), last_used(database, creds.access_key)) == (1, first)

    clock.now = first + USE_RECORD_MS - 1
    await authenticate(auth, creds)
    await auth.close()
    assert (len(writes), last_used(database, creds.access_key)) == (1, first)

    clock.now = first + USE_RECORD_MS
    await authenticate(auth, creds)
    await auth.close()
    assert (len(writes), last_used(database, creds.access_key)) == (2, first + USE_RECORD_MS)

    # another process that saw an older use never moves the time back
    behind = Authenticator(database, BOX, clock=lambda: first + 5_000)
    await authenticate(behind, creds)
    await behind.close()
    assert last_used(database, creds.access_key) == first + USE_RECORD_MS


async def test_the_iam_api_shows_when_a_key_was_last_used(api: Api) -> None:
    services: Services = api.app.state.services
    before = now_ms()
    created = await api.client.post(
        "/v3.0/OS-CREDENTIAL/credentials", json={"credential": {"user_id": await admin_id(api)}}
    )
    assert created.status_code == 201, created.text
    key = created.json()["credential"]
    assert key["last_use_time"] is None
    auth = HmacAuth(key["access"], key["secret"], project_id=api.project)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", auth=auth) as c:
        for _ in range(5):
            assert (await c.get(f"/v3/{api.project}/traces")).status_code == 200
    await services.authenticator.close()  # the write is beside the requests: wait for it
    listed = await api.client.get("/v3.0/OS-CREDENTIAL/credentials")
    [shown] = [k for k in listed.json()["credentials"] if k["access"] == key["access"]]
    assert shown["last_use_time"] is not None
    used = datetime.strptime(shown["last_use_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= used.timestamp() * 1000 <= now_ms()


async def admin_id(api: Api) -> str:
    users = (await api.client.get("/v3/users", params={"name": api.creds.user_name})).json()["users"]
    return str(users[0]["id"])

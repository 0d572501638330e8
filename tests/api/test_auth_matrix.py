"""The negative authentication/authorisation matrix: every way in that must be refused, refused exactly.

Each case asserts the status and CTS error code (401 = CTS.0401: who are you?; 403 = CTS.0403: you may
not), and that no response ever carries a secret key. The in-process half builds requests byte by byte with
``sign_headers``; the second half drives the official SDK against a real server process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import (
    CreateTrackerRequest,
    CreateTrackerRequestBody,
    CtsClient,
    ListTracesRequest,
)
from sqlalchemy import Connection, insert
from starlette.routing import NoMatchFound

from cts_helpers import MEMBER_PASSWORD, Api, Member, TraceFactory, create_member, master_box, sdk_client
from opencts.api.app import create_app
from opencts.api.deps import Services
from opencts.client.signing import sign_headers
from opencts.config import Settings
from opencts.iam import groups, projects
from opencts.iam.bootstrap import ADMIN_GROUP
from opencts.iam.permissions import CTS_READ_ONLY, CTS_TRACE_PRODUCER, SECURITY_ADMINISTRATOR
from opencts.iam.secrets import SecretBox, new_id
from opencts.store import Database
from opencts.store.tables import domains
from opencts.testing.server import ServerProcess

BASE = "http://127.0.0.1:8080"


def create_other_account(conn: Connection, box: SecretBox) -> tuple[str, Member]:
    """A second account (bootstrap makes only the first) with a project and a full-CTS user."""
    domain_id = new_id()
    conn.execute(insert(domains).values(id=domain_id, name=f"other-{domain_id[:6]}", created_at=0))
    project = projects.create_project(conn, domain_id=domain_id, name="r-1")
    return project.id, create_member(conn, box, domain_id, "outsider", "CTS FullAccess")


def grant_security_admin(conn: Connection, domain_id: str) -> None:
    """The first admin manages IAM (the README says it holds Security Administrator); make sure it does."""
    group = groups.list_groups(conn, domain_id=domain_id, name=ADMIN_GROUP)[0]
    groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=SECURITY_ADMINISTRATOR)


# -- in process ---------------------------------------------------------------------------------------------


@dataclass
class World:
    api: Api
    raw: httpx.AsyncClient
    reader: Member
    producer: Member
    second_project: str
    other_project: str
    outsider: Member

    @property
    def project(self) -> str:
        return self.api.project

    @property
    def secrets(self) -> list[str]:
        keys = (self.reader, self.producer, self.outsider)
        return [self.api.creds.secret_key, *(k.secret_key for k in keys)]

    def sign(
        self,
        method: str,
        path: str,
        key: Member | None = None,
        *,
        body: bytes = b"",
        project: str | None = None,
        now: datetime | None = None,
        secret_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Headers signed as ``key`` (the admin by default); ``secret_key`` overrides the key's own SK."""
        access_key = key.access_key if key else self.api.creds.access_key
        sk = secret_key or (key.secret_key if key else self.api.creds.secret_key)
        wanted = {"Content-Type": "application/json", "X-Project-Id": project or self.project}
        wanted.update(headers or {})
        return sign_headers(
            method=method,
            url=BASE + path,
            headers=wanted,
            body=body,
            access_key=access_key,
            secret_key=sk,
            now=now,
        )

    async def send(self, method: str, path: str, key: Member | None = None, **kw: Any) -> httpx.Response:
        """Sign (see :meth:`sign`) and send."""
        headers = self.sign(method, path, key, **kw)
        return await self.raw.request(method, path, headers=headers, content=kw.get("body"))

    def check(self, resp: httpx.Response, status: int, code: str | None = None) -> str:
        for secret in self.secrets:
            assert secret not in resp.text
        assert resp.status_code == status, resp.text
        if code is None:
            return ""
        assert resp.json()["error_code"] == code
        return str(resp.json()["error_msg"])


def services_of(api: Api) -> Services:
    services: Services = api.app.state.services
    return services


@pytest.fixture
async def world(api: Api) -> AsyncIterator[World]:
    domain_id = api.creds.domain_id
    box = services_of(api).box

    def build(conn: Connection) -> tuple[Member, Member, str, str, Member]:
        grant_security_admin(conn, domain_id)
        reader = create_member(conn, box, domain_id, "reader", CTS_READ_ONLY)
        producer = create_member(conn, box, domain_id, "producer", CTS_TRACE_PRODUCER)
        second = projects.create_project(conn, domain_id=domain_id, name="r-1_second")
        other_project, outsider = create_other_account(conn, box)
        return reader, producer, second.id, other_project, outsider

    reader, producer, second, other_project, outsider = await services_of(api).db.write(build)
    services_of(api).authenticator.invalidate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE) as raw:
        yield World(api, raw, reader, producer, second, other_project, outsider)


def traces_body(make_trace: TraceFactory) -> bytes:
    return orjson.dumps({"traces": [make_trace()]})


async def test_no_signature(world: World) -> None:
    resp = await world.raw.get(f"/v3/{world.project}/traces")
    assert "authentication required" in world.check(resp, 401, "CTS.0401")


async def test_wrong_secret_key(world: World) -> None:
    resp = await world.send("GET", f"/v3/{world.project}/traces", secret_key="x" * 40)
    assert "does not match" in world.check(resp, 401, "CTS.0401")


async def test_body_tampered_after_signing(world: World, make_trace: TraceFactory) -> None:
    path = f"/v3/{world.project}/traces"
    headers = world.sign("POST", path, body=traces_body(make_trace))
    resp = await world.raw.post(path, headers=headers, content=traces_body(make_trace))
    assert "does not match" in world.check(resp, 401, "CTS.0401")


@pytest.mark.parametrize(("minutes", "words"), [(-16, "behind"), (16, "ahead of")])
async def test_date_outside_the_15_minute_window(world: World, minutes: int, words: str) -> None:
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    resp = await world.send("GET", f"/v3/{world.project}/traces", now=when)
    assert words in world.check(resp, 401, "CTS.0401")


NONCE = {"X-Request-Nonce": "5f2b9c0e7a1d4e36"}


async def test_a_replayed_write_that_signs_a_nonce_is_refused(world: World) -> None:
    body = orjson.dumps({"group": {"name": "replayed"}})
    path = "/v3/groups"
    headers = world.sign("POST", path, body=body, headers=NONCE)
    world.check(await world.raw.post(path, headers=headers, content=body), 201)
    resp = await world.raw.post(path, headers=headers, content=body)
    assert "replay" in world.check(resp, 401, "CTS.0401")


async def test_a_write_replayed_to_another_process_is_refused(world: World) -> None:
    """Two servers on one database (as several processes share PostgreSQL): each remembers the
    signatures it served, and the database remembers them for all."""
    settings = world.api.settings
    twin = create_app(
        Settings(data_dir=settings.data_dir, bind=settings.bind, ingest_workers=0), start_consumers=False
    )
    async with twin.router.lifespan_context(twin):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=twin), base_url=BASE) as other:
            body = orjson.dumps({"group": {"name": "replayed-elsewhere"}})
            path = "/v3/groups"
            headers = world.sign("POST", path, body=body, headers=NONCE)
            world.check(await world.raw.post(path, headers=headers, content=body), 201)
            resp = await other.post(path, headers=headers, content=body)
            assert "replay" in world.check(resp, 401, "CTS.0401")
            fresh = world.sign("POST", path, body=orjson.dumps({"group": {"name": "new-one"}}))
            created = await other.post(
                path, headers=fresh, content=orjson.dumps({"group": {"name": "new-one"}})
            )
            world.check(created, 201)  # the twin serves writes it has not seen


async def test_a_write_repeated_without_a_nonce_gets_the_answer_a_repeat_gets(world: World) -> None:
    """The SDK signs with one-second resolution: the same write twice in a second is the same request
    twice, and is answered as a repeat is (here: created, then already exists; deleted, then not found)."""
    body = orjson.dumps({"group": {"name": "twice"}})
    headers = world.sign("POST", "/v3/groups", body=body)
    created = await world.raw.post("/v3/groups", headers=headers, content=body)
    world.check(created, 201)
    world.check(await world.raw.post("/v3/groups", headers=headers, content=body), 409, "CTS.0409")
    path = f"/v3/groups/{created.json()['group']['id']}"
    headers = world.sign("DELETE", path)
    world.check(await world.raw.delete(path, headers=headers), 204)
    world.check(await world.raw.delete(path, headers=headers), 404, "CTS.0404")


async def test_a_retried_ingest_is_not_a_replay(world: World, make_trace: TraceFactory) -> None:
    body, path = traces_body(make_trace), f"/v3/{world.project}/traces"
    headers = world.sign("POST", path, world.producer, body=body)
    first = await world.raw.post(path, headers=headers, content=body)
    second = await world.raw.post(path, headers=headers, content=body)
    world.check(first, 200)
    world.check(second, 200)
    assert (first.json()["accepted"], second.json()["duplicates"]) == (1, 1)


async def test_unknown_access_key(world: World) -> None:
    ghost = Member("-", "-", "GHOSTGHOSTGHOSTGHOST", world.reader.secret_key)
    resp = await world.send("GET", f"/v3/{world.project}/traces", ghost)
    assert "unknown access key" in world.check(resp, 401, "CTS.0401")


async def test_disabled_then_enabled_access_key(world: World) -> None:
    path = f"/v3.0/OS-CREDENTIAL/credentials/{world.reader.access_key}"
    world.check(await world.send("PUT", path, body=b'{"credential": {"status": "inactive"}}'), 200)
    resp = await world.send("GET", f"/v3/{world.project}/traces", world.reader)
    assert "disabled" in world.check(resp, 401, "CTS.0401")
    world.check(await world.send("PUT", path, body=b'{"credential": {"status": "active"}}'), 200)
    world.check(await world.send("GET", f"/v3/{world.project}/traces", world.reader), 200)


async def test_a_deleted_users_key(world: World) -> None:
    world.check(await world.send("GET", f"/v3/{world.project}/traces", world.reader), 200)
    world.check(await world.send("DELETE", f"/v3/users/{world.reader.user_id}"), 204)
    resp = await world.send("GET", f"/v3/{world.project}/traces", world.reader)
    assert "unknown access key" in world.check(resp, 401, "CTS.0401")


async def test_another_accounts_project(world: World) -> None:
    other = world.other_project
    for method in ("GET", "POST"):
        body = b"{}" if method == "POST" else b""
        resp = await world.send(method, f"/v3/{other}/traces", project=other, body=body)
        assert "not a project of your account" in world.check(resp, 403, "CTS.0403")
    # while a second project of one's own account is fine for an AK/SK
    second = world.second_project
    world.check(await world.send("GET", f"/v3/{second}/traces", project=second), 200)


async def test_x_project_id_disagreeing_with_the_path(world: World) -> None:
    resp = await world.send("GET", f"/v3/{world.second_project}/traces", project=world.project)
    assert "X-Project-Id does not match" in world.check(resp, 403, "CTS.0403")


async def test_literal_project_id_placeholder(world: World) -> None:
    resp = await world.send("GET", "/v3/%7Bproject_id%7D/traces")
    assert "literal {project_id}" in world.check(resp, 403, "CTS.0403")


async def test_read_only_user(world: World, make_trace: TraceFactory) -> None:
    path = f"/v3/{world.project}/traces"
    world.check(await world.send("GET", path, world.reader), 200)
    resp = await world.send("POST", path, world.reader, body=traces_body(make_trace))
    assert "cts:traces:put" in world.check(resp, 403, "CTS.0403")
    try:
        world.api.app.url_path_for("updateTracker", project_id=world.project)
    except NoMatchFound:
        pytest.skip("the tracker API (updateTracker) is not wired into the app yet")
    body = b'{"tracker_type": "system", "tracker_name": "system", "status": "disabled"}'
    resp = await world.send("PUT", f"/v3/{world.project}/tracker", world.reader, body=body)
    world.check(resp, 403, "CTS.0403")


async def test_producer_user(world: World, make_trace: TraceFactory) -> None:
    path = f"/v3/{world.project}/traces"
    world.check(await world.send("POST", path, world.producer, body=traces_body(make_trace)), 200)
    resp = await world.send("GET", path, world.producer)
    assert "cts:traces:list" in world.check(resp, 403, "CTS.0403")


def login_body(name: str, password: str, project_id: str, domain: str = "opencts") -> dict[str, Any]:
    user = {"name": name, "password": password, "domain": {"name": domain}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"id": project_id}},
        }
    }


async def test_token_login_use_and_logout(world: World) -> None:
    login = await world.raw.post("/v3/auth/tokens", json=login_body("reader", MEMBER_PASSWORD, world.project))
    world.check(login, 201)
    token = login.headers["X-Subject-Token"]
    assert token not in login.text and MEMBER_PASSWORD not in login.text
    auth = {"X-Auth-Token": token}
    world.check(await world.raw.get(f"/v3/{world.project}/traces", headers=auth), 200)
    # a token acts only in its own project, even one of the same account
    resp = await world.raw.get(f"/v3/{world.second_project}/traces", headers=auth)
    assert "scoped to another project" in world.check(resp, 403, "CTS.0403")
    world.check(await world.raw.delete("/v3/auth/tokens", headers={**auth, "X-Subject-Token": token}), 204)
    resp = await world.raw.get(f"/v3/{world.project}/traces", headers=auth)
    assert "revoked" in world.check(resp, 401, "CTS.0401")


async def test_wrong_password_reads_like_an_unknown_user(world: World) -> None:
    bad_password = login_body("reader", "Not-The-Pass-1", world.project)
    wrong = await world.raw.post("/v3/auth/tokens", json=bad_password)
    nobody = await world.raw.post(
        "/v3/auth/tokens", json=login_body("nobody", MEMBER_PASSWORD, world.project)
    )
    assert world.check(wrong, 401, "CTS.0401") == world.check(nobody, 401, "CTS.0401")
    assert "Not-The-Pass-1" not in wrong.text and MEMBER_PASSWORD not in nobody.text


# -- through the official SDK, against a server process -----------------------------------------------------


@dataclass
class LiveWorld:
    server: ServerProcess
    reader: Member
    producer: Member
    disabled: Member
    other_project: str

    def client(self, access_key: str, secret_key: str, project_id: str | None) -> Any:
        return sdk_client(CtsClient, self.server.url, access_key, secret_key, project_id)


@pytest.fixture(scope="module")
def live_world(live_server: ServerProcess) -> Iterator[LiveWorld]:
    """Users made directly in the server's database: new keys are never in its cache, so no waiting."""
    db = Database(f"sqlite:///{live_server.data_dir / 'opencts.db'}")
    domain_id, suffix = live_server.creds.domain_id, new_id()[:6]
    box = master_box(live_server.data_dir)

    def build(conn: Connection) -> tuple[Member, Member, Member, str]:
        reader = create_member(conn, box, domain_id, f"sdk-reader-{suffix}", CTS_READ_ONLY)
        producer = create_member(conn, box, domain_id, f"sdk-producer-{suffix}", CTS_TRACE_PRODUCER)
        disabled = create_member(conn, box, domain_id, f"sdk-disabled-{suffix}", CTS_READ_ONLY, active=False)
        other_project, _ = create_other_account(conn, box)
        return reader, producer, disabled, other_project

    try:
        yield LiveWorld(live_server, *db.write_sync(build))
    finally:
        db.close()


def sdk_error(call: Any, status: int, code: str, secrets: list[str]) -> str:
    with pytest.raises(ClientRequestException) as caught:
        call()
    exc = caught.value
    assert (exc.status_code, exc.error_code) == (status, code), exc.error_msg
    for secret in secrets:
        assert secret not in str(exc.error_msg)
    return str(exc.error_msg)


LIST = ListTracesRequest(trace_type="system", limit=1)


@pytest.mark.sdk
@pytest.mark.slow
def test_sdk_negative_matrix(live_world: LiveWorld) -> None:
    w, pid = live_world, live_world.server.creds.project_id
    reader, producer, disabled = w.reader, w.producer, w.disabled
    secrets = [reader.secret_key, producer.secret_key, disabled.secret_key, w.server.creds.secret_key]
    assert w.client(reader.access_key, reader.secret_key, pid).list_traces(LIST).meta_data is not None

    cases: list[tuple[str, Any, int, str]] = [
        ("wrong SK", w.client(reader.access_key, "y" * 40, pid), 401, "does not match"),
        ("unknown AK", w.client("NOSUCHKEYNOSUCHKEY00", reader.secret_key, pid), 401, "unknown access key"),
        ("disabled AK", w.client(disabled.access_key, disabled.secret_key, pid), 401, "disabled"),
        ("no project_id", w.client(reader.access_key, reader.secret_key, None), 403, "{project_id}"),
        ("other account", w.client(reader.access_key, reader.secret_key, w.other_project), 403, "not a proj"),
        ("producer reads", w.client(producer.access_key, producer.secret_key, pid), 403, "cts:traces:list"),
    ]
    for name, client, status, words in cases:
        message = sdk_error(lambda c=client: c.list_traces(LIST), status, f"CTS.0{status}", secrets)
        assert words in message, name


@pytest.mark.sdk
@pytest.mark.slow
def test_sdk_read_only_user_cannot_create_a_tracker(live_world: LiveWorld) -> None:
    w, pid = live_world, live_world.server.creds.project_id
    client = w.client(w.reader.access_key, w.reader.secret_key, pid)
    body = CreateTrackerRequestBody(tracker_type="system", tracker_name="system")
    request = CreateTrackerRequest(body=body)
    with pytest.raises(ClientRequestException) as caught:
        client.create_tracker(request)
    if caught.value.status_code == 404:
        pytest.skip("the tracker API is not wired into the app yet")
    assert (caught.value.status_code, caught.value.error_code) == (403, "CTS.0403")
    assert w.reader.secret_key not in str(caught.value.error_msg)

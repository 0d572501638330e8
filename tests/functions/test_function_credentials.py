"""A function's temporary credentials: they publish to an SMN topic of its project, and nothing else.

The credentials come from :class:`AgencyCredentials` as the function service calls it; requests go to the
real app (signature checks, scoping, roles), signed the SDK's way with the security token as a signed
header, or with the X-Auth-Token.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, insert, select

from cts_helpers import in_process_api
from opencts.client.signing import HmacAuth
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.functions import repository
from opencts.functions.credentials import MARGIN_MS, AgencyCredentials
from opencts.iam import temporary
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.iam.projects import create_project
from opencts.store import Database
from opencts.store.tables import functions, smn_messages


class TemporaryAuth(HmacAuth):
    """The SDK's ``BasicCredentials(...).with_security_token(token)``: the token is a signed header."""

    def __init__(self, issued: temporary.Issued, project_id: str | None = None) -> None:
        super().__init__(issued.access_key, issued.secret_key, project_id=project_id)
        self.security_token = issued.security_token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["X-Security-Token"] = self.security_token
        return super().auth_flow(request)


@dataclass
class World:
    app: FastAPI
    creds: BootstrapCredentials
    admin: httpx.AsyncClient
    record: repository.FunctionRecord
    topic: str
    other_topic: str
    other_project: str

    @property
    def project(self) -> str:
        return self.creds.project_id

    def client(self, auth: httpx.Auth | None = None, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1:8080",
            auth=auth,
            headers={"X-Auth-Token": token} if token else None,
        )

    async def issue(self, ttl_ms: int = 60_000) -> temporary.Issued:
        issued = await AgencyCredentials(self.app.state.services.db, self.app.state.services.box).issue(
            self.record, ttl_ms
        )
        assert issued is not None
        return issued


def publish_path(project_id: str, topic_urn: str) -> str:
    return f"/v2/{project_id}/notifications/topics/{quote(topic_urn, safe='')}/publish"


MESSAGE = {"subject": "CTSTrigger", "message": "Illegal operation[IP:203.0.113.9, Action:login]"}


def add_function(conn: Connection, project_id: str, xrole: str | None) -> repository.FunctionRecord:
    name = f"f{uuid.uuid4().hex[:8]}"
    code = b"PK\x05\x06" + bytes(18)
    now = now_ms()
    conn.execute(
        insert(functions).values(
            func_id=str(uuid.uuid4()), project_id=project_id, package="default", name=name,
            func_urn=f"urn:fss:local-1:{project_id}:function:default:{name}", runtime="Python3.10",
            handler="index.handler", timeout=30, memory_size=128, code_type="zip", code=code,
            code_digest=hashlib.sha512(code).hexdigest(), code_size=len(code), user_data="{}",
            description="", xrole=xrole, config="{}", created_at=now, last_modified=now,
        )
    )  # fmt: skip
    return repository.get_by_urn(conn, project_id, f"urn:fss:local-1:{project_id}:function:default:{name}")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0)
    async with in_process_api(settings) as api:
        creds = api.creds
        db = api.app.state.services.db
        record = db.write_sync(lambda conn: add_function(conn, creds.project_id, "serverless_trust"))
        other = db.write_sync(
            lambda conn: create_project(conn, domain_id=creds.domain_id, name="eu-de_other")
        )
        # signed without a project: the admin acts in both projects of the account
        transport = httpx.ASGITransport(app=api.app)
        admin_auth = HmacAuth(creds.access_key, creds.secret_key)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8080", auth=admin_auth
        ) as a:
            urns = []
            for project in (creds.project_id, other.id):
                body = {"name": "cts_test", "display_name": "x"}
                made = await a.post(f"/v2/{project}/notifications/topics", json=body)
                assert made.status_code == 200, made.text
                urns.append(made.json()["topic_urn"])
            yield World(api.app, creds, a, record, urns[0], urns[1], other.id)


def messages(world: World) -> list[str]:
    db: Database = world.app.state.services.db
    return db.read_sync(lambda conn: [str(r.message) for r in conn.execute(select(smn_messages.c.message))])


async def test_the_token_and_the_signed_keys_publish_in_the_functions_project(world: World) -> None:
    issued = await world.issue()
    async with world.client(token=issued.auth_token) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 200, resp.text
    async with world.client(TemporaryAuth(issued, world.project)) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 200, resp.text
    assert messages(world).count(MESSAGE["message"]) == 2
    # the trail names the agency and the function, not a user
    listed = await world.admin.get(f"/v3/{world.project}/traces", params={"trace_name": "publishMessage"})
    users = [t["user"] for t in listed.json()["traces"]]
    assert len(users) == 2 and all(u["type"] == "AssumedAgency" for u in users)
    assert {u["id"] for u in users} == {world.record.func_id} and users[0]["name"] == "serverless_trust"
    assert {u.get("access_key_id") for u in users} == {None, issued.access_key}


async def test_they_are_refused_in_another_project_and_on_account_routes(world: World) -> None:
    issued = await world.issue()
    async with world.client(token=issued.auth_token) as c:
        resp = await c.post(publish_path(world.other_project, world.other_topic), json=MESSAGE)
        assert resp.status_code == 403, resp.text
    async with world.client(TemporaryAuth(issued)) as c:
        resp = await c.post(publish_path(world.other_project, world.other_topic), json=MESSAGE)
        assert resp.status_code == 403, resp.text
        assert (await c.get("/v3/projects")).status_code == 403
        assert (await c.get(f"/v3/{world.creds.domain_id}/resources")).status_code in (403, 404)
        assert (await c.get("/v3/users")).status_code == 403
    assert messages(world) == []


async def test_the_keys_need_their_signed_security_token(world: World) -> None:
    issued = await world.issue()
    other = await world.issue()
    async with world.client(HmacAuth(issued.access_key, issued.secret_key, project_id=world.project)) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 401 and "X-Security-Token" in resp.json()["message"]
    mixed = temporary.Issued(issued.access_key, issued.secret_key, other.security_token, "", 0)
    async with world.client(TemporaryAuth(mixed, world.project)) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 401 and "security token" in resp.json()["message"]
    assert messages(world) == []


async def test_they_are_refused_after_expiry(world: World) -> None:
    db = world.app.state.services.db
    box = world.app.state.services.box
    past = now_ms() - 120_000
    expired = db.write_sync(
        lambda conn: temporary.issue(
            conn,
            box=box,
            project_id=world.project,
            func_id=world.record.func_id,
            agency="a",
            now=past,
            ttl_ms=60_000,
        )
    )
    async with world.client(token=expired.auth_token) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 401 and "expired" in resp.json()["message"]
    async with world.client(TemporaryAuth(expired, world.project)) as c:
        resp = await c.post(publish_path(world.project, world.topic), json=MESSAGE)
        assert resp.status_code == 401
    assert messages(world) == []


async def test_they_last_no_longer_than_the_invocation_and_need_an_agency(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = now_ms()
    issued = await world.issue(ttl_ms=24 * 3_600_000)
    assert before < issued.expires_at_ms <= now_ms() + world.record.timeout * 1000 + MARGIN_MS
    short = await world.issue(ttl_ms=5_000)
    assert short.expires_at_ms <= now_ms() + 5_000
    db = world.app.state.services.db
    plain = db.write_sync(lambda conn: add_function(conn, world.project, None))
    assert await AgencyCredentials(db, world.app.state.services.box).issue(plain, 60_000) is None
    for secret in (issued.secret_key, issued.security_token, issued.auth_token):
        assert secret not in repr(issued) and secret not in caplog.text

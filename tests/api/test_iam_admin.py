"""The IAM administration API in process: shapes, status codes, refusals, and isolation between accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, insert, select

from cts_helpers import Api, TraceFactory
from opencts.api import iam_admin
from opencts.api.deps import Services
from opencts.client.signing import HmacAuth
from opencts.iam import credentials, groups, projects, users
from opencts.iam.bootstrap import ADMIN_GROUP
from opencts.iam.permissions import (
    CTS_READ_ONLY,
    ROLES,
    SECURITY_ADMINISTRATOR,
    TENANT_ADMINISTRATOR,
)
from opencts.iam.secrets import new_id
from opencts.store.tables import domains, trackers

BASE = "http://127.0.0.1:8080"
PASSWORD = "Str0ng-Enough"
#: An extra signed header makes a repeated write a request of its own, with a signature of its own.
AGAIN = {"X-Attempt": "2"}


def services_of(api: Api) -> Services:
    services: Services = api.app.state.services
    return services


async def grant_security_admin(api: Api) -> None:
    """The first admin manages IAM (the README says it holds Security Administrator): make sure."""
    domain_id = api.creds.domain_id

    def grant(conn: Connection) -> None:
        group = groups.list_groups(conn, domain_id=domain_id, name=ADMIN_GROUP)[0]
        groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=SECURITY_ADMINISTRATOR)

    await services_of(api).db.write(grant)
    services_of(api).authenticator.invalidate()


@pytest.fixture
async def iam(api: Api) -> Api:
    await grant_security_admin(api)
    return api


def client_for(app: FastAPI, access_key: str, secret_key: str, project_id: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        auth=HmacAuth(access_key, secret_key, project_id),
    )


@dataclass
class Member:
    """A user made through the API, in a group of their own holding ``roles``, with one access key."""

    user_id: str
    group_id: str
    access_key: str
    secret_key: str


async def make_member(api: Api, name: str, *roles: str) -> Member:
    c = api.client
    user = await c.post("/v3.0/OS-USER/users", json={"user": {"name": name, "password": PASSWORD}})
    assert user.status_code == 201, user.text
    user_id = user.json()["user"]["id"]
    group = await c.post("/v3/groups", json={"group": {"name": f"{name}-group", "description": name}})
    group_id = group.json()["group"]["id"]
    assert (await c.put(f"/v3/groups/{group_id}/users/{user_id}")).status_code == 204
    for role in roles:
        assert (await c.put(f"/v3/groups/{group_id}/roles/{quote(role)}")).status_code == 204
    cred = await c.post("/v3.0/OS-CREDENTIAL/credentials", json={"credential": {"user_id": user_id}})
    assert cred.status_code == 201, cred.text
    body = cred.json()["credential"]
    return Member(user_id, group_id, body["access"], body["secret"])


def error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    data = resp.json()
    assert data["error_code"] == code
    return str(data["error_msg"])


async def test_user_lifecycle(iam: Api) -> None:
    c = iam.client
    resp = await c.post("/v3.0/OS-USER/users", json={"user": {"name": "alice", "password": PASSWORD}})
    assert resp.status_code == 201
    user = resp.json()["user"]
    assert user["name"] == "alice" and user["enabled"] is True and user["domain_id"] == iam.creds.domain_id
    assert PASSWORD not in resp.text and "password" not in resp.text
    listed = (await c.get("/v3/users")).json()["users"]
    assert {u["name"] for u in listed} == {"admin", "alice"}
    by_name = (await c.get("/v3/users", params={"name": "alice"})).json()["users"]
    assert [u["id"] for u in by_name] == [user["id"]]
    off = await c.patch(f"/v3/users/{user['id']}", json={"user": {"enabled": False}})
    assert off.status_code == 200 and off.json()["user"]["enabled"] is False
    shown = (await c.get(f"/v3/users/{user['id']}")).json()["user"]
    assert shown["enabled"] is False and shown["groups"] == [] and shown["roles"] == []
    assert (await c.delete(f"/v3/users/{user['id']}")).status_code == 204
    error(await c.get(f"/v3/users/{user['id']}"), 404, "CTS.0404")


async def test_show_user_lists_groups_and_roles(iam: Api) -> None:
    member = await make_member(iam, "bob", CTS_READ_ONLY)
    shown = (await iam.client.get(f"/v3/users/{member.user_id}")).json()["user"]
    assert shown["groups"] == [{"id": member.group_id, "name": "bob-group"}]
    assert shown["roles"] == [CTS_READ_ONLY]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{nope", "CTS.0002", "not valid JSON"),
        (b"[]", "CTS.0002", "must be a JSON object"),
        (b'{"user": {"name": "x"}}', "CTS.0001", "user.password: is required"),
        (b'{"user": {"name": "has space", "password": "Str0ng-Enough"}}', "CTS.0001", "user name must be"),
        (b'{"user": {"name": "weak", "password": "weakpassword"}}', "CTS.0001", "at least two"),
        (b'{"user": {"name": "weak", "password": "Sh0rt"}}', "CTS.0001", "8-128 characters"),
        (b'{"user": {"name": "x", "password": 12345678}}', "CTS.0001", "user.password"),
    ],
)
async def test_bad_user_bodies_are_400s_that_never_echo_the_password(
    iam: Api, body: bytes, code: str, message: str
) -> None:
    resp = await iam.client.post(
        "/v3.0/OS-USER/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert message in error(resp, 400, code)
    assert "Str0ng-Enough" not in resp.text and "weakpassword" not in resp.text and "Sh0rt" not in resp.text


async def test_bodies_over_64_kib_are_refused(iam: Api) -> None:
    resp = await iam.client.post("/v3/groups", json={"group": {"name": "g", "description": "x" * 70_000}})
    error(resp, 413, "CTS.0413")


async def test_duplicates_are_409(iam: Api) -> None:
    await iam.client.post("/v3/groups", json={"group": {"name": "dup", "description": "1"}})
    again = await iam.client.post("/v3/groups", json={"group": {"name": "dup", "description": "2"}})
    error(again, 409, "CTS.0409")
    same_name = {"user": {"name": "admin", "password": PASSWORD}}
    error(await iam.client.post("/v3.0/OS-USER/users", json=same_name), 409, "CTS.0409")


async def test_groups_roles_and_membership(iam: Api) -> None:
    c = iam.client
    member = await make_member(iam, "carol")
    gid = member.group_id
    resp = await c.put(f"/v3/groups/{gid}/roles/CTS%20ReadOnlyAccess")
    assert resp.status_code == 204 and resp.content == b""
    roles = (await c.get(f"/v3/groups/{gid}/roles")).json()["roles"]
    assert [(r["name"], r["actions"]) for r in roles] == [(CTS_READ_ONLY, [*ROLES[CTS_READ_ONLY]])]
    message = error(await c.put(f"/v3/groups/{gid}/roles/Root"), 400, "CTS.0001")
    assert "valid roles" in message and TENANT_ADMINISTRATOR in message
    assert [u["name"] for u in (await c.get(f"/v3/groups/{gid}/users")).json()["users"]] == ["carol"]
    assert (await c.delete(f"/v3/groups/{gid}/users/{member.user_id}")).status_code == 204
    error(await c.delete(f"/v3/groups/{gid}/users/{member.user_id}", headers=AGAIN), 404, "CTS.0404")
    assert (await c.delete(f"/v3/groups/{gid}/roles/{quote(CTS_READ_ONLY)}")).status_code == 204
    assert (await c.delete(f"/v3/groups/{gid}")).status_code == 204
    names = {g["name"] for g in (await c.get("/v3/groups")).json()["groups"]}
    assert names == {ADMIN_GROUP}


async def test_list_roles(iam: Api) -> None:
    roles = {r["name"]: r["actions"] for r in (await iam.client.get("/v3/roles")).json()["roles"]}
    assert roles == {name: list(actions) for name, actions in ROLES.items()}


async def test_the_last_security_administrator_stays(iam: Api) -> None:
    users = (await iam.client.get("/v3/users", params={"name": "admin"})).json()["users"]
    message = error(await iam.client.delete(f"/v3/users/{users[0]['id']}"), 409, "CTS.0409")
    assert SECURITY_ADMINISTRATOR in message
    assert (await iam.client.get("/v3/users")).status_code == 200  # and the admin still works


async def test_credentials_secret_once_quota_status_delete(iam: Api, make_trace: TraceFactory) -> None:
    c = iam.client
    member = await make_member(iam, "dave", CTS_READ_ONLY)
    listed = await c.get("/v3.0/OS-CREDENTIAL/credentials", params={"user_id": member.user_id})
    assert [k["access"] for k in listed.json()["credentials"]] == [member.access_key]
    assert member.secret_key not in listed.text and "secret" not in listed.text
    every = (await c.get("/v3.0/OS-CREDENTIAL/credentials")).json()["credentials"]
    assert {k["user_name"] for k in every} == {"admin", "dave"}
    new_key = {"credential": {"user_id": member.user_id, "description": "second"}}
    assert (await c.post("/v3.0/OS-CREDENTIAL/credentials", json=new_key)).status_code == 201
    new_key["credential"]["description"] = "third"
    third = await c.post("/v3.0/OS-CREDENTIAL/credentials", json=new_key)
    error(third, 400, "CTS.0412")

    async with client_for(iam.app, member.access_key, member.secret_key, iam.project) as dave:
        assert (await dave.get(f"/v3/{iam.project}/traces")).status_code == 200
        path = f"/v3.0/OS-CREDENTIAL/credentials/{member.access_key}"
        resp = await c.put(path, json={"credential": {"status": "inactive", "description": "paused"}})
        assert resp.status_code == 200
        assert (resp.json()["credential"]["status"], resp.json()["credential"]["description"]) == (
            "inactive",
            "paused",
        )
        assert "disabled" in error(await dave.get(f"/v3/{iam.project}/traces"), 401, "CTS.0401")
        error(await c.put(path, json={"credential": {"status": "on"}}), 400, "CTS.0001")
        assert (await c.put(path, json={"credential": {"status": "active"}})).status_code == 200
        assert (await dave.get(f"/v3/{iam.project}/traces")).status_code == 200
        assert (await c.delete(path)).status_code == 204
        assert "unknown access key" in error(await dave.get(f"/v3/{iam.project}/traces"), 401, "CTS.0401")
        error(await c.delete(path, headers=AGAIN), 404, "CTS.0404")


async def test_a_disabled_user_is_locked_out_at_once(iam: Api) -> None:
    member = await make_member(iam, "erin", CTS_READ_ONLY)
    async with client_for(iam.app, member.access_key, member.secret_key, iam.project) as erin:
        assert (await erin.get(f"/v3/{iam.project}/traces")).status_code == 200
        await iam.client.patch(f"/v3/users/{member.user_id}", json={"user": {"enabled": False}})
        assert "user is disabled" in error(await erin.get(f"/v3/{iam.project}/traces"), 401, "CTS.0401")


async def test_create_project_gives_it_a_management_tracker(iam: Api) -> None:
    resp = await iam.client.post("/v3/projects", json={"project": {"name": "r-2_prod", "description": "x"}})
    assert resp.status_code == 201
    project = resp.json()["project"]
    assert project["name"] == "r-2_prod" and project["domain_id"] == iam.creds.domain_id
    listed = (await iam.client.get("/v3/projects")).json()["projects"]
    assert project["id"] in {p["id"] for p in listed}
    stmt = select(trackers.c.name, trackers.c.tracker_type).where(trackers.c.project_id == project["id"])
    rows = await services_of(iam).db.read(lambda conn: [tuple(r) for r in conn.execute(stmt)])
    assert rows == [("system", "system")]
    error(await iam.client.post("/v3/projects", json={"project": {"name": "r-2_prod"}}), 409, "CTS.0409")
    error(await iam.client.post("/v3/projects", json={"project": {"name": "Bad Name"}}), 400, "CTS.0001")
    # an AK/SK acts in any project of its account
    async with client_for(iam.app, iam.creds.access_key, iam.creds.secret_key, project["id"]) as in_new:
        assert (await in_new.get(f"/v3/{project['id']}/traces")).status_code == 200


async def test_iam_needs_an_iam_role(iam: Api) -> None:
    member = await make_member(iam, "frank", TENANT_ADMINISTRATOR)
    async with client_for(iam.app, member.access_key, member.secret_key, iam.project) as frank:
        assert "iam:users:list" in error(await frank.get("/v3/users"), 403, "CTS.0403")
        error(
            await frank.post("/v3.0/OS-USER/users", json={"user": {"name": "z", "password": PASSWORD}}),
            403,
            "CTS.0403",
        )
        path = f"/v3.0/OS-CREDENTIAL/credentials/{iam.creds.access_key}"
        error(await frank.put(path, json={"credential": {"status": "inactive"}}), 403, "CTS.0403")
        assert (await frank.get("/v3/projects")).status_code == 200  # what any user may do


def test_every_route_has_a_camel_case_operation_name() -> None:
    names = [getattr(r, "name", "") for r in iam_admin.router.routes]
    assert len(names) == len(set(names)) == 21
    assert all(n[0].islower() and n.isalnum() for n in names)


# -- two accounts in one database ---------------------------------------------------------------------------


@dataclass
class OtherAccount:
    domain_id: str
    project_id: str
    user_id: str
    access_key: str
    secret_key: str
    client: httpx.AsyncClient


@pytest.fixture
async def other(iam: Api) -> AsyncIterator[OtherAccount]:
    """A second account with its own project and an all-powerful admin, made directly in the store."""

    def build(conn: Connection) -> tuple[str, str, str, str, str]:
        domain_id = new_id()
        conn.execute(insert(domains).values(id=domain_id, name="rival", created_at=0))
        project = projects.create_project(conn, domain_id=domain_id, name="r-1")
        user = users.create_user(conn, domain_id=domain_id, name="admin", password=PASSWORD)
        group = groups.create_group(conn, domain_id=domain_id, name="admin")
        groups.add_member(conn, domain_id=domain_id, group_id=group.id, user_id=user.id)
        for role in (SECURITY_ADMINISTRATOR, TENANT_ADMINISTRATOR):
            groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=role)
        key = credentials.create_credential(
            conn, box=services_of(iam).box, domain_id=domain_id, user_id=user.id
        )
        return domain_id, project.id, user.id, key.credential.access_key, key.secret_key

    domain_id, project_id, user_id, ak, sk = await services_of(iam).db.write(build)
    async with client_for(iam.app, ak, sk, project_id) as client:
        yield OtherAccount(domain_id, project_id, user_id, ak, sk, client)


async def test_accounts_cannot_see_or_change_each_other(
    iam: Api, other: OtherAccount, make_trace: TraceFactory
) -> None:
    mine = await make_member(iam, "gina", CTS_READ_ONLY)
    trace = make_trace()
    assert (await iam.put([trace])).status_code == 200
    rival = other.client
    assert [u["name"] for u in (await rival.get("/v3/users")).json()["users"]] == ["admin"]
    assert [p["id"] for p in (await rival.get("/v3/projects")).json()["projects"]] == [other.project_id]
    assert [g["name"] for g in (await rival.get("/v3/groups")).json()["groups"]] == ["admin"]
    keys = (await rival.get("/v3.0/OS-CREDENTIAL/credentials")).json()["credentials"]
    assert iam.creds.access_key not in {k["access"] for k in keys} and mine.access_key not in str(keys)

    not_found: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v3/users/{mine.user_id}", None),
        ("PATCH", f"/v3/users/{mine.user_id}", {"user": {"enabled": False}}),
        ("DELETE", f"/v3/users/{mine.user_id}", None),
        ("DELETE", f"/v3/groups/{mine.group_id}", None),
        ("GET", f"/v3/groups/{mine.group_id}/users", None),
        ("PUT", f"/v3/groups/{mine.group_id}/roles/{quote(SECURITY_ADMINISTRATOR)}", None),
        ("PUT", f"/v3/groups/{mine.group_id}/users/{other.user_id}", None),
        ("GET", f"/v3.0/OS-CREDENTIAL/credentials?user_id={mine.user_id}", None),
        ("POST", "/v3.0/OS-CREDENTIAL/credentials", {"credential": {"user_id": mine.user_id}}),
        ("PUT", f"/v3.0/OS-CREDENTIAL/credentials/{mine.access_key}", {"credential": {"status": "inactive"}}),
        ("DELETE", f"/v3.0/OS-CREDENTIAL/credentials/{iam.creds.access_key}", None),
    ]
    for method, path, body in not_found:
        error(await rival.request(method, path, json=body), 404, "CTS.0404")
    # exactly the answer for an id that exists nowhere: existence is not revealed
    nowhere = new_id()
    theirs = error(await rival.get(f"/v3/users/{mine.user_id}"), 404, "CTS.0404")
    missing = error(await rival.get(f"/v3/users/{nowhere}"), 404, "CTS.0404")
    assert theirs.replace(mine.user_id, "?") == missing.replace(nowhere, "?")

    # naming the first account's project consistently in the path and X-Project-Id does not help
    async with client_for(iam.app, other.access_key, other.secret_key, iam.project) as intruder:
        forbidden = [
            await intruder.get(f"/v3/{iam.project}/traces"),
            await intruder.post(f"/v3/{iam.project}/traces", json={"traces": [make_trace()]}),
            await intruder.get(f"/v3/{iam.project}/traces/export"),
        ]
    for resp in forbidden:
        assert "not a project of your account" in error(resp, 403, "CTS.0403")
    # ... and nothing of the first account changed
    async with client_for(iam.app, mine.access_key, mine.secret_key, iam.project) as gina:
        listed = await gina.get(f"/v3/{iam.project}/traces", params={"trace_id": trace["trace_id"]})
        assert listed.json()["meta_data"]["count"] == 1
    assert len((await iam.client.get("/v3/users")).json()["users"]) == 2
    # the reverse direction holds too
    error(await iam.client.get(f"/v3/users/{other.user_id}"), 404, "CTS.0404")
    async with client_for(iam.app, iam.creds.access_key, iam.creds.secret_key, other.project_id) as reverse:
        resp = await reverse.get(f"/v3/{other.project_id}/traces")
        assert "not a project of your account" in error(resp, 403, "CTS.0403")


async def test_the_audit_trail_never_holds_a_password_or_secret_key(iam: Api) -> None:
    member = await make_member(iam, "hank", CTS_READ_ONLY)
    await iam.client.patch(f"/v3/users/{member.user_id}", json={"user": {"password": "An0ther-Secret"}})
    listed = await iam.client.get(f"/v3/{iam.project}/traces", params={"limit": 200})
    names = {t["trace_name"] for t in listed.json()["traces"]}
    assert {"createUser", "createCredential", "updateUser"} <= names
    for secret in (PASSWORD, member.secret_key, "An0ther-Secret"):
        assert secret not in listed.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v3.0/OS-USER/users", {"user": None}),
        ("POST", "/v3.0/OS-USER/users", {"user": {"name": ["x"], "password": PASSWORD}}),
        ("PATCH", "/v3/users/%00", {"user": {"enabled": False}}),
        ("PATCH", "/v3/users/x", {"user": {"enabled": "maybe"}}),
        ("GET", "/v3/users/a%00b", None),
        ("PUT", "/v3/groups/%00/roles/%00", None),
        ("PUT", "/v3/groups/x/users/%E2%82%AC", None),
        ("POST", "/v3/groups", {"group": {"name": "g", "description": 5}}),
        ("POST", "/v3.0/OS-CREDENTIAL/credentials", {"credential": {"user_id": 5}}),
        ("POST", "/v3.0/OS-CREDENTIAL/credentials", {"credential": {"user_id": "\u0000"}}),
        ("PUT", "/v3.0/OS-CREDENTIAL/credentials/%00", {"credential": {"status": "active"}}),
        ("PUT", "/v3.0/OS-CREDENTIAL/credentials/AK", {"credential": None}),
        ("POST", "/v3/projects", {"project": {"name": "\u0000"}}),
        ("POST", "/v3/projects", {}),
    ],
)
async def test_odd_input_is_a_4xx_never_a_500(iam: Api, method: str, path: str, body: Any) -> None:
    resp = await iam.client.request(method, path, json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["error_code"].startswith("CTS.0")


async def test_a_name_that_cannot_exist_lists_nothing(iam: Api) -> None:
    for path in ("/v3/users?name=%00", "/v3/groups?name=a%00b"):
        resp = await iam.client.get(path)
        assert resp.status_code == 200 and next(iter(resp.json().values())) == []

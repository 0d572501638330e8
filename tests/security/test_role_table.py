"""Every role against every IAM route and a sample of each cloud service's reads and writes.

The expected table is written out here, independently of ``iam.permissions``, from Huawei IAM's system
roles: IAM is the Security Administrator's alone (the Tenant roles span every service *except* IAM, so a
Tenant Guest lists no users, groups or access keys), and each service's roles reach that service only.
Writes are sent with an empty body or to an id that does not exist: a role that may do them gets a 400 or
404, one that may not gets a 403, and nothing is changed either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute

from cts_helpers import Api, Member, create_member
from opencts.api import iam_admin, source_tokens
from opencts.api.deps import Services
from opencts.client.signing import HmacAuth
from opencts.iam.permissions import (
    CTS_ADMINISTRATOR,
    CTS_FULL_ACCESS,
    CTS_READ_ONLY,
    CTS_TRACE_PRODUCER,
    FUNCTIONGRAPH_FULL_ACCESS,
    FUNCTIONGRAPH_READ_ONLY,
    KMS_ADMINISTRATOR,
    KMS_CMK_FULL_ACCESS,
    KMS_READ_ONLY,
    ROLES,
    SECURITY_ADMINISTRATOR,
    SMN_FULL_ACCESS,
    SMN_READ_ONLY,
    TENANT_ADMINISTRATOR,
    TENANT_GUEST,
)
from opencts.iam.secrets import new_id

GHOST = new_id()

#: IAM route name -> (method, path, body). {user} and {group} are real; GHOST ids exist nowhere.
IAM_ROUTES: dict[str, tuple[str, str, Any]] = {
    "createUser": ("POST", "/v3.0/OS-USER/users", {}),
    "listUsers": ("GET", "/v3/users", None),
    "showUser": ("GET", "/v3/users/{user}", None),
    "updateUser": ("PATCH", "/v3/users/{user}", {}),
    "unlockUser": ("DELETE", f"/v3/users/{GHOST}/lockout", None),
    "deleteUser": ("DELETE", f"/v3/users/{GHOST}", None),
    "createGroup": ("POST", "/v3/groups", {}),
    "listGroups": ("GET", "/v3/groups", None),
    "deleteGroup": ("DELETE", f"/v3/groups/{GHOST}", None),
    "addUserToGroup": ("PUT", f"/v3/groups/{GHOST}/users/{{user}}", None),
    "removeUserFromGroup": ("DELETE", f"/v3/groups/{GHOST}/users/{{user}}", None),
    "listGroupUsers": ("GET", "/v3/groups/{group}/users", None),
    "grantRoleToGroup": ("PUT", f"/v3/groups/{GHOST}/roles/{quote(TENANT_GUEST)}", None),
    "revokeRoleFromGroup": ("DELETE", f"/v3/groups/{GHOST}/roles/{quote(TENANT_GUEST)}", None),
    "listGroupRoles": ("GET", "/v3/groups/{group}/roles", None),
    "listRoles": ("GET", "/v3/roles", None),
    "createCredential": ("POST", "/v3.0/OS-CREDENTIAL/credentials", {}),
    "listCredentials": ("GET", "/v3.0/OS-CREDENTIAL/credentials", None),
    "updateCredential": ("PUT", "/v3.0/OS-CREDENTIAL/credentials/GHOSTGHOSTGHOSTGHOST", {}),
    "deleteCredential": ("DELETE", "/v3.0/OS-CREDENTIAL/credentials/GHOSTGHOSTGHOSTGHOST", None),
    "createProject": ("POST", "/v3/projects", {}),
    "createSourceToken": ("POST", "/v3/projects/{project}/source-tokens", {}),
    "listSourceTokens": ("GET", "/v3/projects/{project}/source-tokens", None),
    "deleteSourceToken": ("DELETE", f"/v3/projects/{{project}}/source-tokens/{GHOST}", None),
}

#: a read and a write of each cloud service, and trace ingest
CLOUD_ROUTES: dict[str, tuple[str, str, Any]] = {
    "cts read": ("GET", "/v3/{project}/trackers", None),
    "cts write": ("POST", "/v3/{project}/tracker", {}),
    "cts ingest": ("POST", "/v3/{project}/traces", {}),
    "cts kubernetes": ("POST", "/v3/{project}/sources/kubernetes", {}),
    "cts bucket events": ("POST", "/v3/{project}/sources/s3", {}),
    "smn read": ("GET", "/v2/{project}/notifications/topics", None),
    "smn write": ("POST", "/v2/{project}/notifications/topics", {}),
    "kms read": ("POST", "/v1.0/{project}/kms/list-keys", {}),
    "kms write": ("POST", "/v1.0/{project}/kms/create-key", {}),
    "lts read": ("GET", "/v2/{project}/groups", None),
    "projects": ("GET", "/v3/projects", None),  # every user: the SDK looks its project up by name
}

ALL_IAM = frozenset(IAM_ROUTES)
CTS_INGEST = frozenset({"cts ingest", "cts kubernetes", "cts bucket events"})
CTS_ALL = frozenset({"cts read", "cts write"}) | CTS_INGEST
SMN_ALL = frozenset({"smn read", "smn write"})
KMS_ALL = frozenset({"kms read", "kms write"})

#: what every authenticated user may do, whatever their roles
EVERYONE = frozenset({"projects"})

#: role -> what it may do besides, by the names above
EXPECTED: dict[str, frozenset[str]] = {
    TENANT_ADMINISTRATOR: CTS_ALL | SMN_ALL | KMS_ALL | {"lts read"},
    SECURITY_ADMINISTRATOR: ALL_IAM,
    TENANT_GUEST: frozenset({"cts read", "smn read", "kms read", "lts read"}),
    CTS_ADMINISTRATOR: CTS_ALL,
    CTS_FULL_ACCESS: CTS_ALL,
    CTS_READ_ONLY: frozenset({"cts read"}),
    CTS_TRACE_PRODUCER: CTS_INGEST,
    SMN_FULL_ACCESS: SMN_ALL,
    SMN_READ_ONLY: frozenset({"smn read"}),
    FUNCTIONGRAPH_FULL_ACCESS: frozenset(),
    FUNCTIONGRAPH_READ_ONLY: frozenset(),
    KMS_ADMINISTRATOR: KMS_ALL,
    KMS_CMK_FULL_ACCESS: KMS_ALL,
    KMS_READ_ONLY: frozenset({"kms read"}),
}


def test_every_role_and_every_iam_route_is_in_the_table() -> None:
    iam_routes = (*iam_admin.router.routes, *source_tokens.router.routes)
    routes = {r.name for r in iam_routes if isinstance(r, APIRoute)}
    assert set(IAM_ROUTES) == routes
    assert set(EXPECTED) == set(ROLES)


@pytest.fixture
async def member_client(
    api: Api, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, Member, httpx.AsyncClient]]:
    """A client signed by a new user holding the role ``request.param`` (and only it)."""
    services: Services = api.app.state.services
    role: str = request.param
    member = await services.db.write(
        lambda conn: create_member(conn, services.box, api.creds.domain_id, "m-" + new_id()[:8], role)
    )
    auth = HmacAuth(member.access_key, member.secret_key, project_id=api.project)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", auth=auth) as c:
        yield role, member, c


@pytest.mark.parametrize("member_client", sorted(EXPECTED), indirect=True)
async def test_each_role_may_do_exactly_what_its_row_says(
    api: Api, member_client: tuple[str, Member, httpx.AsyncClient]
) -> None:
    role, member, client = member_client
    wrong: list[str] = []
    for name, (method, template, body) in {**IAM_ROUTES, **CLOUD_ROUTES}.items():
        path = template.format(user=member.user_id, group=member.group_id, project=api.project)
        resp = await client.request(method, path, json=body)
        allowed = name in EXPECTED[role] | EVERYONE
        if allowed and resp.status_code in (401, 403) or resp.status_code >= 500:
            wrong.append(f"{name}: {resp.status_code} {resp.text[:120]}")
        if not allowed and resp.status_code != 403:
            wrong.append(f"{name}: {resp.status_code}, expected 403")
    assert wrong == [], role

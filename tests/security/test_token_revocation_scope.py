"""Revoking a token given its value stays inside the caller's account.

``iam:tokens:revoke-any`` lets a Security Administrator end any session of their own account. Holding it in
one account must not reach another's: such a token is answered exactly as a token that does not exist (404),
so the attempt neither revokes it nor confirms that it is valid.
"""

from __future__ import annotations

import httpx
from sqlalchemy import Connection, insert

from cts_helpers import Api
from opencts.api.deps import Services
from opencts.iam import groups, projects, users
from opencts.iam.permissions import CTS_READ_ONLY, SECURITY_ADMINISTRATOR
from opencts.iam.secrets import new_id
from opencts.store.tables import domains

PASSWORD = "Revoke-Pass-1"


def member(conn: Connection, domain_id: str, name: str, role: str) -> None:
    user = users.create_user(conn, domain_id=domain_id, name=name, password=PASSWORD)
    group = groups.create_group(conn, domain_id=domain_id, name=f"{name}-group")
    groups.add_member(conn, domain_id=domain_id, group_id=group.id, user_id=user.id)
    groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=role)


def build(conn: Connection, home: str) -> str:
    """A second account with its own Security Administrator; a read-only user in the first."""
    other = new_id()
    conn.execute(insert(domains).values(id=other, name="other-account", created_at=0))
    projects.create_project(conn, domain_id=other, name="r-1")
    member(conn, other, "other-admin", SECURITY_ADMINISTRATOR)
    member(conn, other, "victim", CTS_READ_ONLY)
    member(conn, home, "home-admin", SECURITY_ADMINISTRATOR)
    member(conn, home, "colleague", CTS_READ_ONLY)
    return other


async def token_of(raw: httpx.AsyncClient, name: str, account: str) -> str:
    user = {"name": name, "password": PASSWORD, "domain": {"name": account}}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    resp = await raw.post("/v3/auth/tokens", json=body)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


async def revoke(raw: httpx.AsyncClient, caller: str, subject: str) -> httpx.Response:
    return await raw.delete("/v3/auth/tokens", headers={"X-Auth-Token": caller, "X-Subject-Token": subject})


async def works(raw: httpx.AsyncClient, token: str) -> bool:
    return (await raw.get("/v3/projects", headers={"X-Auth-Token": token})).status_code == 200


async def test_a_security_administrator_cannot_revoke_another_accounts_token(api: Api) -> None:
    services: Services = api.app.state.services
    home = api.creds.domain_id
    await services.db.write(lambda conn: build(conn, home))
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as raw:
        attacker = await token_of(raw, "home-admin", "opencts")
        victim = await token_of(raw, "victim", "other-account")
        other_admin = await token_of(raw, "other-admin", "other-account")

        across = await revoke(raw, attacker, victim)
        assert across.status_code == 404, across.text
        assert across.json()["error_code"] == "CTS.0404"
        assert await works(raw, victim)

        # signed with the first account's admin AK/SK: the same refusal
        signed = await api.client.delete("/v3/auth/tokens", headers={"X-Subject-Token": victim})
        assert signed.status_code == 404, signed.text
        assert await works(raw, victim)

        # indistinguishable from a token that never existed
        ghost = await revoke(raw, attacker, "OC" + "x" * 64)
        assert (ghost.status_code, ghost.json()["error_msg"]) == (404, across.json()["error_msg"])

        # inside its own account revoke-any still works, and a user without it may end only their own
        colleague = await token_of(raw, "colleague", "opencts")
        denied = await revoke(raw, colleague, attacker)
        assert (denied.status_code, denied.json()["error_code"]) == (403, "CTS.0403")
        assert (await revoke(raw, attacker, colleague)).status_code == 204
        assert not await works(raw, colleague)
        assert (await revoke(raw, other_admin, victim)).status_code == 204
        assert not await works(raw, victim)

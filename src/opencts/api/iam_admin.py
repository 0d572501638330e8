"""IAM administration, on Huawei IAM's paths: users, groups, roles, AK/SK credentials, projects.

Everything acts in the caller's account only (``iam.account`` and the modules beside it enforce it); ids of
other accounts are 404.
Route names are the operation names the self-audit records as trace names. Passwords arrive in request
bodies and a secret key leaves in exactly one response (createCredential); neither is logged or echoed in
an error message. Every change that can alter who may do what drops the authenticator's caches, so a
disabled key or a revoked role stops working on this process at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.clock import iso_ms
from opencts.iam import credentials, groups, lockout, projects, users
from opencts.iam.account import check_name
from opencts.iam.lockout import Attempt
from opencts.iam.permissions import ROLES
from opencts.iam.principal import Principal
from opencts.trackers.repository import create_system_tracker

router = APIRouter(tags=["iam"])
MAX_BODY = 64 * 1024
T = TypeVar("T")


def _caller(action: str) -> Any:
    return Depends(require(action))


# The caller, once authorised for the action: handler signatures read as "who may do this".
UsersCreate = Annotated[Principal, _caller("iam:users:create")]
UsersList = Annotated[Principal, _caller("iam:users:list")]
UsersGet = Annotated[Principal, _caller("iam:users:get")]
UsersUpdate = Annotated[Principal, _caller("iam:users:update")]
UsersDelete = Annotated[Principal, _caller("iam:users:delete")]
GroupsCreate = Annotated[Principal, _caller("iam:groups:create")]
GroupsList = Annotated[Principal, _caller("iam:groups:list")]
GroupsUpdate = Annotated[Principal, _caller("iam:groups:update")]
GroupsDelete = Annotated[Principal, _caller("iam:groups:delete")]
RolesList = Annotated[Principal, _caller("iam:roles:list")]
CredentialsCreate = Annotated[Principal, _caller("iam:credentials:create")]
CredentialsList = Annotated[Principal, _caller("iam:credentials:list")]
CredentialsUpdate = Annotated[Principal, _caller("iam:credentials:update")]
CredentialsDelete = Annotated[Principal, _caller("iam:credentials:delete")]
ProjectsCreate = Annotated[Principal, _caller("iam:projects:create")]


class _Loose(BaseModel):
    """Huawei's bodies carry more than we use (email, domain_id, ...): unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore")


class _UserIn(_Loose):
    name: str = Field(max_length=64)
    password: str = Field(max_length=256)
    enabled: bool = True
    description: str = Field("", max_length=255)


class CreateUserBody(_Loose):
    user: _UserIn


class _UserPatch(_Loose):
    enabled: bool | None = None
    password: str | None = Field(None, max_length=256)


class UpdateUserBody(_Loose):
    user: _UserPatch


class _GroupIn(_Loose):
    name: str = Field(max_length=64)
    description: str = Field("", max_length=255)


class CreateGroupBody(_Loose):
    group: _GroupIn


class _CredentialIn(_Loose):
    user_id: str = Field(max_length=64)
    description: str = Field("", max_length=255)


class CreateCredentialBody(_Loose):
    credential: _CredentialIn


class _CredentialPatch(_Loose):
    status: str | None = Field(None, max_length=16)
    description: str | None = Field(None, max_length=255)


class UpdateCredentialBody(_Loose):
    credential: _CredentialPatch


class _ProjectIn(_Loose):
    name: str = Field(max_length=64)
    description: str = Field("", max_length=255)


class CreateProjectBody(_Loose):
    project: _ProjectIn


def _time(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms, "microseconds")


def _user(u: users.User) -> dict[str, Any]:
    return {
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "description": "",
        "create_time": _time(u.created_at),
    }


def _group(g: groups.Group) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "domain_id": g.domain_id,
        "description": g.description,
        "create_time": _time(g.created_at),
    }


def _credential(c: credentials.Credential) -> dict[str, Any]:
    return {
        "access": c.access_key,
        "user_id": c.user_id,
        "user_name": c.user_name,
        "status": c.status,
        "description": c.description,
        "create_time": _time(c.created_at),
        "last_use_time": _time(c.last_used_at),
    }


def _role(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "display_name": name, "actions": list(ROLES.get(name, ()))}


def project_body(p: projects.Project) -> dict[str, Any]:
    """A project as Keystone shows it, in the listing and when it is created."""
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "parent_id": p.domain_id,
        "enabled": True,
        "is_domain": False,
        "description": "",
    }


async def _change(services: ServicesDep, fn: Callable[[Connection], T]) -> T:
    """One write transaction, then forget cached identities: roles, keys or users may have changed."""
    result = await services.db.write(fn)
    services.authenticator.invalidate()
    return result


# -- users --------------------------------------------------------------------------------------------------


@router.post("/v3.0/OS-USER/users", name="createUser", status_code=201, summary="Create a user")
async def create_user(request: Request, services: ServicesDep, caller: UsersCreate) -> Response:
    """``description`` is accepted for compatibility but not kept: the schema has no column for it."""
    req = (await json_body(request, CreateUserBody, limit=MAX_BODY)).user
    check_name("user", req.name)
    hashed = await asyncio.to_thread(users.new_password_hash, req.password)  # slow: not on the writer lane
    user = await _change(
        services,
        lambda conn: users.create_user(
            conn, domain_id=caller.domain_id, name=req.name, password_hash=hashed, enabled=req.enabled
        ),
    )
    return json_response({"user": _user(user)}, 201)


@router.get("/v3/users", name="listUsers", summary="Users of the caller's account (?name= filters)")
async def list_users(request: Request, services: ServicesDep, caller: UsersList) -> Response:
    name = request.query_params.get("name")
    found = await services.db.read(lambda conn: users.list_users(conn, domain_id=caller.domain_id, name=name))
    return json_response({"users": [_user(u) for u in found], "links": {"self": str(request.url)}})


@router.get("/v3/users/{user_id}", name="showUser", summary="One user, with their groups and roles")
async def show_user(user_id: str, services: ServicesDep, caller: UsersGet) -> Response:
    domain_id = caller.domain_id

    def fetch(conn: Connection) -> tuple[users.User, list[groups.Group], list[str]]:
        user = users.get_user(conn, domain_id=domain_id, user_id=user_id)
        member_of = groups.user_groups(conn, domain_id=domain_id, user_id=user_id)
        roles = {
            r for g in member_of for r in groups.list_group_roles(conn, domain_id=domain_id, group_id=g.id)
        }
        return user, member_of, sorted(roles)

    user, member_of, roles = await services.db.read(fetch)
    body = {**_user(user), "groups": [{"id": g.id, "name": g.name} for g in member_of], "roles": roles}
    return json_response({"user": body})


@router.patch("/v3/users/{user_id}", name="updateUser", summary="Enable, disable or set a new password")
async def update_user(user_id: str, request: Request, services: ServicesDep, caller: UsersUpdate) -> Response:
    req = (await json_body(request, UpdateUserBody, limit=MAX_BODY)).user
    hashed = None if req.password is None else await asyncio.to_thread(users.new_password_hash, req.password)
    user = await _change(
        services,
        lambda conn: users.update_user(
            conn, domain_id=caller.domain_id, user_id=user_id, enabled=req.enabled, password_hash=hashed
        ),
    )
    return json_response({"user": _user(user)})


@router.delete(
    "/v3/users/{user_id}/lockout",
    name="unlockUser",
    status_code=204,
    summary="Let a user locked out by wrong passwords log in again now",
)
async def unlock_user(user_id: str, services: ServicesDep, caller: UsersUpdate) -> Response:
    domain_id = caller.domain_id

    def unlock(conn: Connection) -> None:
        user = users.get_user(conn, domain_id=domain_id, user_id=user_id)  # 404 for another account's
        lockout.clear(conn, Attempt.of(domain_id, user.name, None))

    await services.db.write(unlock)
    return Response(status_code=204)


@router.delete("/v3/users/{user_id}", name="deleteUser", status_code=204, summary="Delete a user and keys")
async def delete_user(user_id: str, services: ServicesDep, caller: UsersDelete) -> Response:
    await _change(services, lambda conn: users.delete_user(conn, domain_id=caller.domain_id, user_id=user_id))
    return Response(status_code=204)


# -- groups and roles ---------------------------------------------------------------------------------------


@router.post("/v3/groups", name="createGroup", status_code=201, summary="Create a user group")
async def create_group(request: Request, services: ServicesDep, caller: GroupsCreate) -> Response:
    req = (await json_body(request, CreateGroupBody, limit=MAX_BODY)).group
    group = await _change(
        services,
        lambda conn: groups.create_group(
            conn, domain_id=caller.domain_id, name=req.name, description=req.description
        ),
    )
    return json_response({"group": _group(group)}, 201)


@router.get("/v3/groups", name="listGroups", summary="User groups of the caller's account (?name= filters)")
async def list_groups(request: Request, services: ServicesDep, caller: GroupsList) -> Response:
    name = request.query_params.get("name")
    found = await services.db.read(
        lambda conn: groups.list_groups(conn, domain_id=caller.domain_id, name=name)
    )
    return json_response({"groups": [_group(g) for g in found], "links": {"self": str(request.url)}})


@router.delete("/v3/groups/{group_id}", name="deleteGroup", status_code=204, summary="Delete a user group")
async def delete_group(group_id: str, services: ServicesDep, caller: GroupsDelete) -> Response:
    await _change(
        services, lambda conn: groups.delete_group(conn, domain_id=caller.domain_id, group_id=group_id)
    )
    return Response(status_code=204)


@router.put("/v3/groups/{group_id}/users/{user_id}", name="addUserToGroup", status_code=204)
async def add_user_to_group(
    group_id: str, user_id: str, services: ServicesDep, caller: GroupsUpdate
) -> Response:
    """Add a member (idempotent)."""
    await _change(
        services,
        lambda conn: groups.add_member(conn, domain_id=caller.domain_id, group_id=group_id, user_id=user_id),
    )
    return Response(status_code=204)


@router.delete("/v3/groups/{group_id}/users/{user_id}", name="removeUserFromGroup", status_code=204)
async def remove_user_from_group(
    group_id: str, user_id: str, services: ServicesDep, caller: GroupsUpdate
) -> Response:
    """Remove a member; refused if it would leave the account without a Security Administrator."""
    await _change(
        services,
        lambda conn: groups.remove_member(
            conn, domain_id=caller.domain_id, group_id=group_id, user_id=user_id
        ),
    )
    return Response(status_code=204)


@router.get("/v3/groups/{group_id}/users", name="listGroupUsers", summary="Members of a user group")
async def list_group_users(
    group_id: str, request: Request, services: ServicesDep, caller: GroupsList
) -> Response:
    found = await services.db.read(
        lambda conn: groups.list_members(conn, domain_id=caller.domain_id, group_id=group_id)
    )
    return json_response({"users": [_user(u) for u in found], "links": {"self": str(request.url)}})


@router.put("/v3/groups/{group_id}/roles/{role_name}", name="grantRoleToGroup", status_code=204)
async def grant_role(group_id: str, role_name: str, services: ServicesDep, caller: GroupsUpdate) -> Response:
    """Grant a role (idempotent); the role name is URL-encoded in the path, e.g. ``CTS%20ReadOnlyAccess``."""
    await _change(
        services,
        lambda conn: groups.grant_role(conn, domain_id=caller.domain_id, group_id=group_id, role=role_name),
    )
    return Response(status_code=204)


@router.delete("/v3/groups/{group_id}/roles/{role_name}", name="revokeRoleFromGroup", status_code=204)
async def revoke_role(group_id: str, role_name: str, services: ServicesDep, caller: GroupsUpdate) -> Response:
    """Revoke a role; refused if it would leave the account without a Security Administrator."""
    await _change(
        services,
        lambda conn: groups.revoke_role(conn, domain_id=caller.domain_id, group_id=group_id, role=role_name),
    )
    return Response(status_code=204)


@router.get("/v3/groups/{group_id}/roles", name="listGroupRoles", summary="Roles granted to a group")
async def list_group_roles(group_id: str, services: ServicesDep, caller: GroupsList) -> Response:
    found = await services.db.read(
        lambda conn: groups.list_group_roles(conn, domain_id=caller.domain_id, group_id=group_id)
    )
    return json_response({"roles": [_role(r) for r in found]})


@router.get("/v3/roles", name="listRoles", summary="Every role, with the actions it allows")
async def list_roles(caller: RolesList) -> Response:
    return json_response({"roles": [_role(r) for r in sorted(ROLES)]})


# -- credentials --------------------------------------------------------------------------------------------


@router.post("/v3.0/OS-CREDENTIAL/credentials", name="createCredential", status_code=201)
async def create_credential(request: Request, services: ServicesDep, caller: CredentialsCreate) -> Response:
    """Create an access key (at most two per user). The secret key is in this response and never again."""
    req = (await json_body(request, CreateCredentialBody, limit=MAX_BODY)).credential
    new = await _change(
        services,
        lambda conn: credentials.create_credential(
            conn,
            box=services.box,
            domain_id=caller.domain_id,
            user_id=req.user_id,
            description=req.description,
        ),
    )
    return json_response({"credential": {**_credential(new.credential), "secret": new.secret_key}}, 201)


@router.get("/v3.0/OS-CREDENTIAL/credentials", name="listCredentials")
async def list_credentials(request: Request, services: ServicesDep, caller: CredentialsList) -> Response:
    """Access keys, never their secrets: ``?user_id=`` for one user's, without it every key of the account."""
    user_id = request.query_params.get("user_id") or None
    found = await services.db.read(
        lambda conn: credentials.list_credentials(conn, domain_id=caller.domain_id, user_id=user_id)
    )
    return json_response({"credentials": [_credential(c) for c in found]})


@router.put("/v3.0/OS-CREDENTIAL/credentials/{access_key}", name="updateCredential")
async def update_credential(
    access_key: str, request: Request, services: ServicesDep, caller: CredentialsUpdate
) -> Response:
    """Activate or deactivate an access key (``status``), or change its description."""
    req = (await json_body(request, UpdateCredentialBody, limit=MAX_BODY)).credential
    cred = await _change(
        services,
        lambda conn: credentials.update_credential(
            conn,
            domain_id=caller.domain_id,
            access_key=access_key,
            status=req.status,
            description=req.description,
        ),
    )
    return json_response({"credential": _credential(cred)})


@router.delete("/v3.0/OS-CREDENTIAL/credentials/{access_key}", name="deleteCredential", status_code=204)
async def delete_credential(access_key: str, services: ServicesDep, caller: CredentialsDelete) -> Response:
    """Delete an access key; requests signed with it fail from now on."""
    await _change(
        services,
        lambda conn: credentials.delete_credential(conn, domain_id=caller.domain_id, access_key=access_key),
    )
    return Response(status_code=204)


# -- projects -----------------------------------------------------------------------------------------------


@router.post("/v3/projects", name="createProject", status_code=201, summary="Create a project + tracker")
async def create_project(request: Request, services: ServicesDep, caller: ProjectsCreate) -> Response:
    """The new project gets its management tracker in the same transaction, as enabling CTS would give it,
    so its traces are recorded from the first call. ``description`` is accepted but not kept."""
    req = (await json_body(request, CreateProjectBody, limit=MAX_BODY)).project

    def create(conn: Connection) -> projects.Project:
        project = projects.create_project(conn, domain_id=caller.domain_id, name=req.name)
        create_system_tracker(conn, project_id=project.id, domain_id=caller.domain_id)
        return project

    project = await _change(services, create)
    return json_response({"project": project_body(project)}, 201)

"""IAM v3 (Keystone-shaped) for what clients need to start: password tokens and the project lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.api.iam_admin import project_body
from opencts.clock import iso_ms, now_ms
from opencts.errors import BadRequest, Forbidden, NotFound
from opencts.iam import login, projects
from opencts.iam import tokens as token_store
from opencts.iam.authenticate import load_token
from opencts.iam.principal import Principal
from opencts.iam.tokens import token_hash

router = APIRouter(tags=["iam"])


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Domain(_Loose):
    name: str | None = None
    id: str | None = None


class _User(_Loose):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    domain: _Domain


class _Password(_Loose):
    user: _User


class _Identity(_Loose):
    methods: list[str]
    password: _Password


class _Project(_Loose):
    id: str | None = None
    name: str | None = None


class _Scope(_Loose):
    project: _Project | None = None


class _Auth(_Loose):
    identity: _Identity
    scope: _Scope | None = None


class TokenRequest(_Loose):
    auth: _Auth


def _typed(req: TokenRequest) -> login.Credentials:
    ident = req.auth.identity
    if "password" not in ident.methods:
        raise BadRequest("only the password method is supported")
    user = ident.password.user
    wanted = req.auth.scope.project if req.auth.scope else None
    return login.Credentials(
        user_name=user.name,
        password=user.password,
        domain_id=user.domain.id,
        domain_name=user.domain.name,
        project_id=wanted.id if wanted else None,
        project_name=wanted.name if wanted else None,
    )


@router.post("/v3/auth/tokens", name="login", status_code=201, summary="Log in with a password; get a token")
async def create_token(request: Request, services: ServicesDep) -> Response:
    typed = _typed(await json_body(request, TokenRequest, limit=64 * 1024))
    ip = request.client.host if request.client else None
    done = await login.log_in(
        services.db, typed, ip=ip, policy=login.lockout_policy(services.settings), now=now_ms()
    )
    identity, project = done.identity, done.project
    domain = {"id": identity.domain_id, "name": identity.domain_name}
    user = {"id": identity.user_id, "name": identity.user_name, "domain": domain}
    token = {
        "methods": ["password"],
        "user": user,
        "project": {"id": project.id, "name": project.name, "domain": domain},
        "roles": [{"name": r, "id": r} for r in sorted(identity.roles)],
        "catalog": [],
        "issued_at": iso_ms(done.issued_at, "microseconds"),
        "expires_at": iso_ms(done.expires_at, "microseconds"),
    }
    request.state.login_user = user
    request.state.login_project = project.id
    return json_response({"token": token}, 201, headers={"X-Subject-Token": done.token})


@router.delete("/v3/auth/tokens", name="logout", status_code=204, summary="Log out: revoke a token")
async def delete_token(
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("iam:tokens:delete"))],
) -> Response:
    subject = request.headers.get("x-subject-token") or request.headers.get("x-auth-token")
    if not subject:
        raise BadRequest("X-Subject-Token names the token to revoke")
    hashed = token_hash(subject)
    found = await services.db.read(lambda conn: load_token(conn, hashed))
    owner = found[0] if found else None
    # Another account's token gets the answer a token that never existed gets: not even its existence
    # leaks across accounts, whatever roles the caller holds in their own.
    if owner is None or owner.domain_id != caller.domain_id:
        raise NotFound("the token does not exist")
    if owner.user_id != caller.user_id and not caller.can("iam:tokens:revoke-any"):
        raise Forbidden("you may only revoke your own tokens")
    await services.db.write(lambda conn: token_store.revoke(conn, subject))
    services.authenticator.forget_token(subject)
    return Response(status_code=204)


@router.get(
    "/v3/projects", name="listProjects", summary="Projects of the caller's account (SDK project lookup)"
)
async def list_projects(
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("iam:projects:list"))],
) -> Response:
    name = request.query_params.get("name")
    found = await services.db.read(
        lambda conn: projects.list_projects(conn, domain_id=caller.domain_id, name=name or None)
    )
    listed = [project_body(p) for p in found]
    return json_response({"projects": listed, "links": {"self": str(request.url)}})

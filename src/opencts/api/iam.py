"""IAM v3 (Keystone-shaped) for what clients need to start: password tokens and the project lookup."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, select

from opencts.api.auth import require
from opencts.api.deps import ServicesDep, read_body
from opencts.clock import iso_ms, now_ms
from opencts.config import Settings
from opencts.errors import BadRequest, Forbidden, MalformedJSON, NotFound, TooManyAttempts, Unauthorized
from opencts.iam import lockout
from opencts.iam import tokens as token_store
from opencts.iam.authenticate import load_identity, load_token
from opencts.iam.lockout import Attempt, LockoutPolicy
from opencts.iam.principal import Principal
from opencts.iam.secrets import check_password
from opencts.iam.tokens import token_hash
from opencts.store.tables import domains, projects, users
from opencts.validation import describe

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


def _iso(ms: int) -> str:
    return iso_ms(ms, "microseconds")


class _WrongPassword(Unauthorized):
    """A guess that failed: counted against the user name and the address (``iam.lockout``)."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__("the user name or password is wrong")
        self.attempt = attempt


def lockout_policy(settings: Settings) -> LockoutPolicy:
    minutes = settings.login_lockout_minutes * 60_000
    return LockoutPolicy(
        max_failures=settings.login_max_failures,
        max_failures_per_ip=settings.login_max_failures_per_ip,
        window_ms=minutes,
        lockout_ms=minutes,
    )


def _check_login(
    conn: Connection, req: TokenRequest, *, ip: str | None, policy: LockoutPolicy, now: int
) -> tuple[str, str, dict[str, Any], Attempt]:
    """Who logs in, and into which project: (user id, project id, the token body without times, attempt).

    Runs on a reader: the Argon2 check takes a large fraction of a second and must not hold the writer.
    """
    ident = req.auth.identity
    if "password" not in ident.methods:
        raise BadRequest("only the password method is supported")
    user_req = ident.password.user
    domain_cond = (
        domains.c.id == user_req.domain.id
        if user_req.domain.id
        else domains.c.name == (user_req.domain.name or "")
    )
    account = conn.execute(select(domains.c.id).where(domain_cond)).scalar()
    typed = f"id={user_req.domain.id}" if user_req.domain.id else f"name={user_req.domain.name or ''}"
    attempt = Attempt.of(account or typed, user_req.name, ip)
    wait = lockout.locked_for(conn, attempt, policy, now=now)
    if wait:  # before the password is looked at: while locked, even the right one gets this answer
        raise TooManyAttempts(
            f"too many failed logins; try again in {math.ceil(wait / 60_000)} minute(s)",
            retry_after=math.ceil(wait / 1000),
        )
    row = conn.execute(
        select(users.c.id, users.c.password_hash, domains.c.id.label("domain_id"))
        .join(domains, domains.c.id == users.c.domain_id)
        .where(domain_cond, users.c.name == user_req.name)
    ).first()
    # One answer, in the same time, for unknown user and wrong password, so names cannot be probed: the
    # password is checked (against a decoy hash) even when there is no such user.
    matches = check_password(None if row is None else row.password_hash, user_req.password)
    if row is None or not matches:
        raise _WrongPassword(attempt)
    identity = load_identity(conn, row.id)
    if identity is None or not identity.enabled:
        raise Unauthorized("the user is disabled")
    wanted = req.auth.scope.project if req.auth.scope else None
    project_stmt = select(projects.c.id, projects.c.name).where(projects.c.domain_id == row.domain_id)
    if wanted and wanted.id:
        project_stmt = project_stmt.where(projects.c.id == wanted.id)
    elif wanted and wanted.name:
        project_stmt = project_stmt.where(projects.c.name == wanted.name)
    project = conn.execute(project_stmt.order_by(projects.c.created_at).limit(1)).first()
    if project is None:
        raise Unauthorized("the requested project is not in your account")
    domain = {"id": identity.domain_id, "name": identity.domain_name}
    token = {
        "methods": ["password"],
        "user": {"id": identity.user_id, "name": identity.user_name, "domain": domain},
        "project": {"id": project.id, "name": project.name, "domain": domain},
        "roles": [{"name": r, "id": r} for r in sorted(identity.roles)],
        "catalog": [],
    }
    return row.id, project.id, token, attempt


@router.post("/v3/auth/tokens", name="login", status_code=201, summary="Log in with a password; get a token")
async def create_token(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, 64 * 1024)
    try:
        req = TokenRequest.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise MalformedJSON("request body is not valid JSON") from None
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    policy, now = lockout_policy(services.settings), now_ms()
    ip = request.client.host if request.client else None
    try:
        user_id, project_id, body, attempt = await services.db.read(
            lambda conn: _check_login(conn, req, ip=ip, policy=policy, now=now)
        )
    except _WrongPassword as wrong:
        failed = wrong.attempt
        await services.db.write(lambda conn: lockout.record_failure(conn, failed, policy, now=now))
        raise

    def issue(conn: Connection) -> tuple[str, int]:
        lockout.clear(conn, attempt)
        return token_store.issue(conn, user_id=user_id, project_id=project_id, now=now)

    token, expires = await services.db.write(issue)
    body = {"token": {**body, "issued_at": _iso(now), "expires_at": _iso(expires)}}
    request.state.login_user = body["token"]["user"]
    request.state.login_project = project_id
    return Response(
        orjson.dumps(body), status_code=201, media_type="application/json", headers={"X-Subject-Token": token}
    )


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

    def fetch(conn: Connection) -> list[dict[str, Any]]:
        stmt = select(projects.c.id, projects.c.name, projects.c.domain_id).where(
            projects.c.domain_id == caller.domain_id
        )
        if name:
            stmt = stmt.where(projects.c.name == name)
        return [
            {
                "id": r.id,
                "name": r.name,
                "domain_id": r.domain_id,
                "enabled": True,
                "is_domain": False,
                "description": "",
                "parent_id": r.domain_id,
            }
            for r in conn.execute(stmt.order_by(projects.c.name))
        ]

    found = await services.db.read(fetch)
    return Response(
        orjson.dumps({"projects": found, "links": {"self": str(request.url)}}), media_type="application/json"
    )

"""Who is using the console: logging in (password or AK/SK), the session cookie, CSRF, logging out.

A console session acts as its user in one project, with the user's roles, exactly as a token scoped to
that project would: every page checks the same action names the API routes check. Logins and logouts are
IAM traces with the client's address, and both kinds of login count against the IAM lockout, so the
console is no way round it.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import Connection

from opencts.api.deps import Services
from opencts.clock import MINUTE_MS, now_ms
from opencts.console import sessions
from opencts.errors import TooManyAttempts, Unauthorized
from opencts.iam import lockout, login, projects
from opencts.iam.authenticate import Identity, load_identity
from opencts.iam.lockout import Attempt
from opencts.iam.principal import Principal
from opencts.traces.self_audit import AuditedCall, record

COOKIE = "opencts_console"
#: before login there is no session to hold a CSRF token: the login form's token is also a cookie
LOGIN_CSRF_COOKIE = "opencts_console_login"
#: compared with a typed secret key when the access key is unknown, so both answers take as long
_DECOY_SECRET = secrets.token_urlsafe(30)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The logged-in person as pages see them: their session, and a principal scoped to its project."""

    session: sessions.Session
    principal: Principal
    project: projects.Project

    @property
    def project_id(self) -> str:
        return self.session.project_id


def secure(request: Request) -> bool:
    """Cookies get ``Secure`` behind TLS (directly, or through a trusted proxy's X-Forwarded-Proto)."""
    return request.url.scheme == "https"


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _load(conn: Connection, cookie: str, idle_ms: int, now: int) -> ConsoleUser | None:
    session = sessions.find(conn, cookie)
    if session is None or not sessions.alive(session, idle_ms=idle_ms, now=now):
        return None
    identity = load_identity(conn, session.user_id)
    if identity is None or not identity.enabled:
        return None
    project = projects.first_project(conn, domain_id=identity.domain_id, project_id=session.project_id)
    if project is None:
        return None
    return ConsoleUser(session, _principal(identity, session), project)


def _principal(identity: Identity, session: sessions.Session) -> Principal:
    return Principal(
        user_id=identity.user_id,
        user_name=identity.user_name,
        domain_id=identity.domain_id,
        domain_name=identity.domain_name,
        project_id=session.project_id,
        roles=identity.roles,
        method="aksk" if session.method == "aksk" else "token",
        access_key=session.access_key,
    )


async def current_user(request: Request, services: Services) -> ConsoleUser | None:
    """The session's user, or None (no cookie, unknown, idle too long, user disabled or project gone)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie or len(cookie) > 128:
        return None
    now = now_ms()
    idle_ms = services.settings.console_idle_minutes * MINUTE_MS
    user = await services.db.read(lambda conn: _load(conn, cookie, idle_ms, now))
    if user is None:
        return None
    if now - user.session.last_seen_at >= sessions.TOUCH_MS:
        hashed = user.session.session_hash
        await services.db.write(lambda conn: sessions.touch(conn, hashed, now))
    request.state.principal = user.principal
    return user


def csrf_ok(expected: str | None, given: Any) -> bool:
    """A form's token against the one issued, in constant time; a missing one never matches."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True, slots=True)
class Typed:
    """The login form: a password login (account, user, password) or an AK/SK login; the project is
    optional (by name; the account's first project when empty)."""

    method: str
    account: str = ""
    user_name: str = ""
    password: str = ""
    access_key: str = ""
    secret_key: str = ""
    project_name: str = ""


async def log_in(request: Request, services: Services, typed: Typed) -> tuple[str, sessions.Session]:
    """Check what was typed; open a session; record the login (or the failure) as an IAM trace.

    Raises :class:`Unauthorized` (wrong credentials, disabled user or key, no such project) or
    :class:`TooManyAttempts` (lockout), both with messages a person can act on.
    """
    ip = client_ip(request)
    now = now_ms()
    policy = login.lockout_policy(services.settings)
    user: dict[str, Any] = {"name": typed.user_name or typed.access_key, "domain": {"name": typed.account}}
    try:
        if typed.method == "aksk":
            identity, project, attempt = await _check_aksk(services, typed, ip, policy, now)
        else:
            identity, project, attempt = await _check_password(services, typed, ip, policy, now)
    except (Unauthorized, TooManyAttempts) as refused:
        if typed.method == "aksk":
            user = await _key_owner(services, typed.access_key) or user
        await _audit(request, services, "login", refused.status, user, None)
        raise
    idle_ms = services.settings.console_idle_minutes * MINUTE_MS

    def open_session(conn: Connection) -> tuple[str, sessions.Session]:
        lockout.clear(conn, attempt)
        sessions.purge(conn, idle_ms=idle_ms, now=now)
        return sessions.create(
            conn,
            user_id=identity.user_id,
            project_id=project.id,
            method=typed.method,
            access_key=typed.access_key if typed.method == "aksk" else None,
            source_ip=ip,
            now=now,
        )

    cookie, session = await services.db.write(open_session)
    await _audit(request, services, "login", 200, _user_dict(identity, typed), project.id)
    return cookie, session


async def _check_password(
    services: Services, typed: Typed, ip: str | None, policy: lockout.LockoutPolicy, now: int
) -> tuple[Identity, projects.Project, Attempt]:
    creds = login.Credentials(
        user_name=typed.user_name,
        password=typed.password,
        domain_name=typed.account,
        project_name=typed.project_name or None,
    )
    try:
        return await services.db.read(lambda conn: login.check(conn, creds, ip=ip, policy=policy, now=now))
    except login.WrongPassword as wrong:
        failed = wrong.attempt
        await services.db.write(lambda conn: lockout.record_failure(conn, failed, policy, now=now))
        raise


async def _check_aksk(
    services: Services, typed: Typed, ip: str | None, policy: lockout.LockoutPolicy, now: int
) -> tuple[Identity, projects.Project, Attempt]:
    attempt = Attempt.of("aksk", typed.access_key, ip)
    wait = await services.db.read(lambda conn: lockout.locked_for(conn, attempt, policy, now=now))
    if wait:
        raise TooManyAttempts(
            f"too many failed logins; try again in {math.ceil(wait / MINUTE_MS)} minute(s)",
            retry_after=math.ceil(wait / 1000),
        )
    cred = await services.authenticator.credential(typed.access_key) if typed.access_key else None
    expected = cred.secret_key if cred is not None else _DECOY_SECRET
    if not hmac.compare_digest(expected.encode(), typed.secret_key.encode()) or cred is None:
        await services.db.write(lambda conn: lockout.record_failure(conn, attempt, policy, now=now))
        raise Unauthorized("the access key or secret key is wrong")
    if not cred.active:
        raise Unauthorized("the access key is disabled; enable it or use another")
    identity = cred.identity
    if not identity.enabled:
        raise Unauthorized("the user is disabled")
    project = await services.db.read(
        lambda conn: projects.first_project(
            conn, domain_id=identity.domain_id, project_name=typed.project_name or None
        )
    )
    if project is None:
        raise Unauthorized("the requested project is not in your account")
    return identity, project, attempt


async def _key_owner(services: Services, access_key: str) -> dict[str, Any] | None:
    """Whose key a refused AK/SK login named, so the refusal lands in that account's trail."""
    cred = await services.authenticator.credential(access_key) if access_key else None
    if cred is None:
        return None
    ident = cred.identity
    return {
        "id": ident.user_id,
        "name": ident.user_name,
        "domain": {"id": ident.domain_id, "name": ident.domain_name},
        "access_key_id": access_key,
    }


async def log_out(request: Request, services: Services, user: ConsoleUser) -> None:
    hashed = user.session.session_hash
    await services.db.write(lambda conn: sessions.end(conn, hashed))
    await _audit(request, services, "logout", 200, _principal_dict(user.principal), user.project_id)


def _user_dict(identity: Identity, typed: Typed) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": identity.user_id,
        "name": identity.user_name,
        "domain": {"id": identity.domain_id, "name": identity.domain_name},
        "principal_urn": f"iam::{identity.domain_id}:user:{identity.user_name}",
        "type": "User",
    }
    if typed.method == "aksk":
        user["access_key_id"] = typed.access_key
    return user


def _principal_dict(principal: Principal) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": principal.user_id,
        "name": principal.user_name,
        "domain": {"id": principal.domain_id, "name": principal.domain_name},
        "principal_urn": f"iam::{principal.domain_id}:user:{principal.user_name}",
        "type": "User",
    }
    if principal.access_key:
        user["access_key_id"] = principal.access_key
    return user


async def _audit(
    request: Request,
    services: Services,
    operation: str,
    status: int,
    user: dict[str, Any],
    project_id: str | None,
) -> None:
    """The login or logout as an IAM trace in the project's trail (a failed login in the account's
    first project, as the API's failed logins are). The password is never part of it."""
    if project_id is None:
        name = (user.get("domain") or {}).get("name")
        if not name:
            return
        found = await services.db.read(lambda conn: projects.first_project(conn, domain_name=name))
        if found is None:
            return
        project_id = found.id
    call = AuditedCall(
        operation=operation,
        method="POST",
        path=request.url.path,
        status=status,
        request_body=None,
        response_body=None,
        request_id=str(getattr(request.state, "request_id", "")),
        source_ip=client_ip(request),
        time=now_ms(),
        user=user,
        trace_type="ConsoleAction",
        service_type="IAM",
    )
    await record(services.writer, project_id, call)


async def audit_change(
    request: Request, services: Services, user: ConsoleUser, operation: str, resource_name: str
) -> None:
    """A change made through the console, in the trail as the API's own call would be (same operation
    name), as a ConsoleAction by the session's user."""
    call = AuditedCall(
        operation=operation,
        method="POST",
        path=request.url.path,
        status=200,
        request_body=None,
        response_body=None,
        request_id=str(getattr(request.state, "request_id", "")),
        source_ip=client_ip(request),
        time=now_ms(),
        user=_principal_dict(user.principal),
        resource_name=resource_name,
        trace_type="ConsoleAction",
        service_type="CTS",
    )
    await record(services.writer, user.project_id, call)

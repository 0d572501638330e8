"""Password login: who logs in, into which project, with the lockout counted and a token issued.

The password is checked on a reader: the Argon2 check is slow on purpose and must not hold the writer.
Only the outcome is written (a failure counted, or the count cleared and a token issued).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Connection, select

from opencts.clock import MINUTE_MS
from opencts.config import Settings
from opencts.errors import TooManyAttempts, Unauthorized
from opencts.iam import lockout, projects
from opencts.iam import tokens as token_store
from opencts.iam.authenticate import Identity, load_identity
from opencts.iam.lockout import Attempt, LockoutPolicy
from opencts.iam.secrets import check_password
from opencts.store import Database
from opencts.store.tables import domains, users


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a person typed: the account by id or by name, the user, the password, and the project wanted
    (by id or name; neither means the account's oldest)."""

    user_name: str
    password: str
    domain_id: str | None = None
    domain_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None


@dataclass(frozen=True, slots=True)
class Login:
    identity: Identity
    project: projects.Project
    token: str
    issued_at: int
    expires_at: int


class WrongPassword(Unauthorized):
    """A guess that failed: counted against the user name and the address (``iam.lockout``)."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__("the user name or password is wrong")
        self.attempt = attempt


def lockout_policy(settings: Settings) -> LockoutPolicy:
    window = settings.login_lockout_minutes * MINUTE_MS
    return LockoutPolicy(
        max_failures=settings.login_max_failures,
        max_failures_per_ip=settings.login_max_failures_per_ip,
        window_ms=window,
        lockout_ms=window,
    )


def check(
    conn: Connection, typed: Credentials, *, ip: str | None, policy: LockoutPolicy, now: int
) -> tuple[Identity, projects.Project, Attempt]:
    """Who logs in and into which project, or why not; changes nothing (runs on a reader)."""
    domain_cond = (
        domains.c.id == typed.domain_id if typed.domain_id else domains.c.name == (typed.domain_name or "")
    )
    account = conn.execute(select(domains.c.id).where(domain_cond)).scalar()
    as_typed = f"id={typed.domain_id}" if typed.domain_id else f"name={typed.domain_name or ''}"
    attempt = Attempt.of(account or as_typed, typed.user_name, ip)
    wait = lockout.locked_for(conn, attempt, policy, now=now)
    if wait:  # before the password is looked at: while locked, even the right one gets this answer
        raise TooManyAttempts(
            f"too many failed logins; try again in {math.ceil(wait / MINUTE_MS)} minute(s)",
            retry_after=math.ceil(wait / 1000),
        )
    row = conn.execute(
        select(users.c.id, users.c.password_hash)
        .join(domains, domains.c.id == users.c.domain_id)
        .where(domain_cond, users.c.name == typed.user_name)
    ).first()
    # One answer, in the same time, for unknown user and wrong password, so names cannot be probed: the
    # password is checked (against a decoy hash) even when there is no such user.
    matches = check_password(None if row is None else row.password_hash, typed.password)
    if row is None or not matches:
        raise WrongPassword(attempt)
    identity = load_identity(conn, row.id)
    if identity is None or not identity.enabled:
        raise Unauthorized("the user is disabled")
    project = projects.first_project(
        conn, domain_id=identity.domain_id, project_id=typed.project_id, project_name=typed.project_name
    )
    if project is None:
        raise Unauthorized("the requested project is not in your account")
    return identity, project, attempt


async def log_in(
    db: Database, typed: Credentials, *, ip: str | None, policy: LockoutPolicy, now: int
) -> Login:
    """Check the password and issue a token; a wrong password is counted before :class:`WrongPassword`
    reaches the caller."""
    try:
        identity, project, attempt = await db.read(
            lambda conn: check(conn, typed, ip=ip, policy=policy, now=now)
        )
    except WrongPassword as wrong:
        failed = wrong.attempt
        await db.write(lambda conn: lockout.record_failure(conn, failed, policy, now=now))
        raise

    def issue(conn: Connection) -> tuple[str, int]:
        lockout.clear(conn, attempt)
        return token_store.issue(conn, user_id=identity.user_id, project_id=project.id, now=now)

    token, expires = await db.write(issue)
    return Login(identity, project, token, now, expires)

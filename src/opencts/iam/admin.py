"""Managing an account: users, groups and their roles, AK/SK credentials, projects.

Every function takes the caller's ``domain_id`` and a ``Connection`` (the caller owns the transaction, so a
route does one ``db.write`` and gets all-or-nothing). Nothing here ever reads or changes another account's
rows: an id from another account is answered exactly like an id that does not exist (404), so ids cannot
be probed across accounts.

One invariant is kept across every change: an account that has an enabled user holding
``Security Administrator`` keeps at least one, because only that role can manage IAM and nobody could
repair the account from the API afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable, Row, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from opencts.clock import now_ms
from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.iam.keyring import seal_secret_key
from opencts.iam.permissions import ROLES, SECURITY_ADMINISTRATOR
from opencts.iam.secrets import SecretBox, hash_password, new_access_key, new_id, new_secret_key
from opencts.store.tables import (
    credentials,
    domains,
    group_members,
    group_roles,
    groups,
    projects,
    tokens,
    users,
)

USER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
GROUP_NAME = USER_NAME
PROJECT_NAME = re.compile(r"[a-z0-9_-]{1,64}")
#: what an id or access key can look like; anything else cannot exist and is not sent to the database
#: (PostgreSQL refuses a NUL byte in text with an error, which must not become a 500)
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
#: Huawei IAM allows two access keys per user, so that one can be rotated while the other still works
MAX_CREDENTIALS_PER_USER = 2
CREDENTIAL_STATUSES = ("active", "inactive")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    enabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    domain_id: str
    description: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key as listed: never with its secret."""

    access_key: str
    user_id: str
    user_name: str
    status: str
    description: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A just-created access key: the only moment the secret key leaves the server."""

    credential: Credential
    secret_key: str


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    created_at: int


# -- checks -------------------------------------------------------------------------------------------------


def check_name(kind: str, name: str, pattern: re.Pattern[str] = USER_NAME) -> str:
    if pattern.fullmatch(name) is None:
        allowed = "a-z 0-9 _ -" if pattern is PROJECT_NAME else "A-Z a-z 0-9 _ . -"
        raise BadRequest(f"{kind} name must be 1-64 characters from {allowed}, got {name[:80]!r}")
    return name


def check_password(password: str) -> None:
    """At least 8 characters from at least two classes (lower, upper, digit, other), as Huawei IAM's default
    policy asks. The message never repeats the password."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise BadRequest(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long")
    classes = (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    if sum(any(test(c) for c in password) for test in classes) < 2:
        raise BadRequest("password must mix at least two of: lower-case, upper-case, digits, other")


def _check_description(kind: str, text: str) -> None:
    if len(text) > 255:
        raise BadRequest(f"{kind} description must be at most 255 characters")


def new_password_hash(password: str) -> str:
    """Check the policy, then hash. Argon2 is slow on purpose (about 0.1-0.5 s): API callers run this in a
    worker thread *before* their write transaction, so the single SQLite writer never waits on it."""
    check_password(password)
    return hash_password(password)


def _hashed(password: str | None, password_hash: str | None) -> str:
    if password_hash is not None:
        return password_hash
    if password is None:
        raise TypeError("give password or password_hash")
    return new_password_hash(password)


def _user(r: Row[Any]) -> User:
    return User(r.id, r.name, r.domain_id, bool(r.enabled), int(r.created_at))


def _group(r: Row[Any]) -> Group:
    return Group(r.id, r.name, r.domain_id, r.description or "", int(r.created_at))


def _lock_domain(conn: Connection, domain_id: str) -> None:
    """Serialise changes to one account's users and roles (PostgreSQL; SQLite writes are serial anyway)."""
    conn.execute(select(domains.c.id).where(domains.c.id == domain_id).with_for_update())


def security_admins(conn: Connection, *, domain_id: str) -> int:
    """How many enabled users of the account hold Security Administrator through a group."""
    stmt = (
        select(func.count(func.distinct(users.c.id)))
        .select_from(users)
        .join(group_members, group_members.c.user_id == users.c.id)
        .join(group_roles, group_roles.c.group_id == group_members.c.group_id)
        .where(users.c.domain_id == domain_id, users.c.enabled.is_(True))
        .where(group_roles.c.role == SECURITY_ADMINISTRATOR)
    )
    return int(conn.execute(stmt).scalar_one())


def _run(conn: Connection, stmt: Executable) -> None:
    conn.execute(stmt)


def _keeping_security_admin(conn: Connection, domain_id: str, what: str, change: Callable[[], None]) -> None:
    """Apply ``change``; refuse it (the caller's transaction rolls back) if it removes the last IAM admin."""
    _lock_domain(conn, domain_id)
    before = security_admins(conn, domain_id=domain_id)
    change()
    if before and not security_admins(conn, domain_id=domain_id):
        raise Conflict(
            f"refusing to {what}: it would leave the account without an enabled user holding "
            f"{SECURITY_ADMINISTRATOR}, and nobody could manage users afterwards"
        )


def _insert_unique(conn: Connection, kind: str, name: str, stmt: Executable) -> None:
    """Insert, letting the (domain, name) unique constraint decide duplicates: no check-then-insert race."""
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except IntegrityError:
        raise Conflict(f"a {kind} named {name!r} already exists in this account") from None


# -- users --------------------------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    *,
    domain_id: str,
    name: str,
    password: str | None = None,
    password_hash: str | None = None,
    enabled: bool = True,
) -> User:
    """Give ``password`` (checked and hashed here) or a ``password_hash`` from :func:`new_password_hash`."""
    check_name("user", name)
    hashed = _hashed(password, password_hash)
    user = User(new_id(), name, domain_id, enabled, now_ms())
    _insert_unique(
        conn,
        "user",
        name,
        insert(users).values(
            id=user.id,
            domain_id=domain_id,
            name=name,
            password_hash=hashed,
            enabled=enabled,
            created_at=user.created_at,
        ),
    )
    return user


def list_users(conn: Connection, *, domain_id: str, name: str | None = None) -> list[User]:
    stmt = select(users).where(users.c.domain_id == domain_id)
    if name is not None:
        if USER_NAME.fullmatch(name) is None:
            return []
        stmt = stmt.where(users.c.name == name)
    return [_user(r) for r in conn.execute(stmt.order_by(users.c.name))]


def get_user(conn: Connection, *, domain_id: str, user_id: str) -> User:
    row = None
    if ID.fullmatch(user_id):
        row = conn.execute(select(users).where(users.c.id == user_id, users.c.domain_id == domain_id)).first()
    if row is None:
        raise NotFound(f"user {user_id[:64]!r} does not exist")
    return _user(row)


def user_groups(conn: Connection, *, domain_id: str, user_id: str) -> list[Group]:
    get_user(conn, domain_id=domain_id, user_id=user_id)
    stmt = (
        select(groups)
        .join(group_members, group_members.c.group_id == groups.c.id)
        .where(group_members.c.user_id == user_id, groups.c.domain_id == domain_id)
        .order_by(groups.c.name)
    )
    return [_group(r) for r in conn.execute(stmt)]


def update_user(
    conn: Connection,
    *,
    domain_id: str,
    user_id: str,
    enabled: bool | None = None,
    password: str | None = None,
    password_hash: str | None = None,
) -> User:
    """Enable/disable and/or set a new password (or its :func:`new_password_hash`). A new password revokes
    the user's tokens, as Keystone does: whoever knew the old one must log in again."""
    user = get_user(conn, domain_id=domain_id, user_id=user_id)
    if password is not None or password_hash is not None:
        hashed = _hashed(password, password_hash)
        conn.execute(update(users).where(users.c.id == user_id).values(password_hash=hashed))
        conn.execute(update(tokens).where(tokens.c.user_id == user_id).values(revoked=True))
    if enabled is not None and enabled != user.enabled:
        verb = "enable" if enabled else "disable"
        _keeping_security_admin(
            conn,
            domain_id,
            f"{verb} user {user.name}",
            lambda: _run(conn, update(users).where(users.c.id == user_id).values(enabled=enabled)),
        )
    return get_user(conn, domain_id=domain_id, user_id=user_id)


def delete_user(conn: Connection, *, domain_id: str, user_id: str) -> None:
    """Delete a user with their access keys, tokens and memberships."""
    user = get_user(conn, domain_id=domain_id, user_id=user_id)

    def change() -> None:
        for table in (credentials, tokens, group_members):
            conn.execute(delete(table).where(table.c.user_id == user_id))
        conn.execute(delete(users).where(users.c.id == user_id))

    _keeping_security_admin(conn, domain_id, f"delete user {user.name}", change)


# -- groups -------------------------------------------------------------------------------------------------


def create_group(conn: Connection, *, domain_id: str, name: str, description: str = "") -> Group:
    check_name("group", name, GROUP_NAME)
    _check_description("group", description)
    group = Group(new_id(), name, domain_id, description, now_ms())
    _insert_unique(
        conn,
        "group",
        name,
        insert(groups).values(
            id=group.id,
            domain_id=domain_id,
            name=name,
            description=description,
            created_at=group.created_at,
        ),
    )
    return group


def list_groups(conn: Connection, *, domain_id: str, name: str | None = None) -> list[Group]:
    stmt = select(groups).where(groups.c.domain_id == domain_id)
    if name is not None:
        if GROUP_NAME.fullmatch(name) is None:
            return []
        stmt = stmt.where(groups.c.name == name)
    return [_group(r) for r in conn.execute(stmt.order_by(groups.c.name))]


def get_group(conn: Connection, *, domain_id: str, group_id: str) -> Group:
    row = None
    if ID.fullmatch(group_id):
        stmt = select(groups).where(groups.c.id == group_id, groups.c.domain_id == domain_id)
        row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"group {group_id[:64]!r} does not exist")
    return _group(row)


def delete_group(conn: Connection, *, domain_id: str, group_id: str) -> None:
    group = get_group(conn, domain_id=domain_id, group_id=group_id)

    def change() -> None:
        for table in (group_roles, group_members):
            conn.execute(delete(table).where(table.c.group_id == group_id))
        conn.execute(delete(groups).where(groups.c.id == group_id))

    _keeping_security_admin(conn, domain_id, f"delete group {group.name}", change)


def add_member(conn: Connection, *, domain_id: str, group_id: str, user_id: str) -> None:
    """Idempotent: adding a member twice is not an error (PUT semantics)."""
    get_group(conn, domain_id=domain_id, group_id=group_id)
    get_user(conn, domain_id=domain_id, user_id=user_id)
    where = (group_members.c.group_id == group_id, group_members.c.user_id == user_id)
    if conn.execute(select(group_members).where(*where)).first() is None:
        conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))


def remove_member(conn: Connection, *, domain_id: str, group_id: str, user_id: str) -> None:
    group = get_group(conn, domain_id=domain_id, group_id=group_id)
    user = get_user(conn, domain_id=domain_id, user_id=user_id)
    where = (group_members.c.group_id == group_id, group_members.c.user_id == user_id)
    if conn.execute(select(group_members).where(*where)).first() is None:
        raise NotFound(f"user {user.name} is not a member of group {group.name}")
    _keeping_security_admin(
        conn,
        domain_id,
        f"remove {user.name} from group {group.name}",
        lambda: _run(conn, delete(group_members).where(*where)),
    )


def list_members(conn: Connection, *, domain_id: str, group_id: str) -> list[User]:
    get_group(conn, domain_id=domain_id, group_id=group_id)
    stmt = (
        select(users)
        .join(group_members, group_members.c.user_id == users.c.id)
        .where(group_members.c.group_id == group_id, users.c.domain_id == domain_id)
        .order_by(users.c.name)
    )
    return [_user(r) for r in conn.execute(stmt)]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"unknown role {role[:80]!r}; valid roles: {', '.join(sorted(ROLES))}")
    return role


def grant_role(conn: Connection, *, domain_id: str, group_id: str, role: str) -> None:
    """Idempotent, like adding a member."""
    check_role(role)
    get_group(conn, domain_id=domain_id, group_id=group_id)
    where = (group_roles.c.group_id == group_id, group_roles.c.role == role)
    if conn.execute(select(group_roles).where(*where)).first() is None:
        conn.execute(insert(group_roles).values(group_id=group_id, role=role))


def revoke_role(conn: Connection, *, domain_id: str, group_id: str, role: str) -> None:
    check_role(role)
    group = get_group(conn, domain_id=domain_id, group_id=group_id)
    where = (group_roles.c.group_id == group_id, group_roles.c.role == role)
    if conn.execute(select(group_roles).where(*where)).first() is None:
        raise NotFound(f"group {group.name} does not hold role {role!r}")
    _keeping_security_admin(
        conn,
        domain_id,
        f"revoke {role} from group {group.name}",
        lambda: _run(conn, delete(group_roles).where(*where)),
    )


def list_group_roles(conn: Connection, *, domain_id: str, group_id: str) -> list[str]:
    get_group(conn, domain_id=domain_id, group_id=group_id)
    stmt = select(group_roles.c.role).where(group_roles.c.group_id == group_id).order_by(group_roles.c.role)
    return [str(r) for r in conn.execute(stmt).scalars()]


# -- credentials --------------------------------------------------------------------------------------------


def _credentials_stmt(domain_id: str) -> Select[Any]:
    return (
        select(credentials, users.c.name.label("user_name"))
        .join(users, users.c.id == credentials.c.user_id)
        .where(users.c.domain_id == domain_id)
    )


def _credential(r: Row[Any]) -> Credential:
    last_used = None if r.last_used_at is None else int(r.last_used_at)
    return Credential(
        r.access_key, r.user_id, r.user_name, r.status, r.description or "", int(r.created_at), last_used
    )


def create_credential(
    conn: Connection, *, box: SecretBox, domain_id: str, user_id: str, description: str = ""
) -> NewCredential:
    """A new access key for ``user_id``; the secret key is stored sealed under the master key."""
    _check_description("credential", description)
    user = get_user(conn, domain_id=domain_id, user_id=user_id)
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())  # quota check vs races
    count = conn.execute(select(func.count()).where(credentials.c.user_id == user_id)).scalar_one()
    if count >= MAX_CREDENTIALS_PER_USER:
        raise QuotaExceeded(
            f"user {user.name} already has {MAX_CREDENTIALS_PER_USER} access keys, the most a user may have; "
            "delete one before creating another"
        )
    cred = Credential(new_access_key(), user_id, user.name, "active", description, now_ms(), None)
    secret = new_secret_key()
    conn.execute(
        insert(credentials).values(
            access_key=cred.access_key,
            secret_key=seal_secret_key(box, cred.access_key, secret),
            user_id=user_id,
            status="active",
            description=description,
            created_at=cred.created_at,
        )
    )
    return NewCredential(cred, secret)


def list_credentials(conn: Connection, *, domain_id: str, user_id: str | None = None) -> list[Credential]:
    """The account's access keys, or one user's; never their secrets."""
    stmt = _credentials_stmt(domain_id)
    if user_id is not None:
        get_user(conn, domain_id=domain_id, user_id=user_id)
        stmt = stmt.where(credentials.c.user_id == user_id)
    return [_credential(r) for r in conn.execute(stmt.order_by(users.c.name, credentials.c.created_at))]


def get_credential(conn: Connection, *, domain_id: str, access_key: str) -> Credential:
    row = None
    if ID.fullmatch(access_key):
        row = conn.execute(_credentials_stmt(domain_id).where(credentials.c.access_key == access_key)).first()
    if row is None:
        raise NotFound(f"access key {access_key[:64]!r} does not exist")
    return _credential(row)


def update_credential(
    conn: Connection,
    *,
    domain_id: str,
    access_key: str,
    status: str | None = None,
    description: str | None = None,
) -> Credential:
    get_credential(conn, domain_id=domain_id, access_key=access_key)
    values: dict[str, str] = {}
    if status is not None:
        if status not in CREDENTIAL_STATUSES:
            raise BadRequest(f"status must be active or inactive, got {status[:40]!r}")
        values["status"] = status
    if description is not None:
        _check_description("credential", description)
        values["description"] = description
    if values:
        conn.execute(update(credentials).where(credentials.c.access_key == access_key).values(**values))
    return get_credential(conn, domain_id=domain_id, access_key=access_key)


def delete_credential(conn: Connection, *, domain_id: str, access_key: str) -> None:
    get_credential(conn, domain_id=domain_id, access_key=access_key)
    conn.execute(delete(credentials).where(credentials.c.access_key == access_key))


# -- projects -----------------------------------------------------------------------------------------------


def create_project(conn: Connection, *, domain_id: str, name: str) -> Project:
    """A new project in the account. Its management tracker is the caller's to create, in the same
    transaction (``trackers.repository.create_system_tracker``): IAM does not depend on CTS."""
    check_name("project", name, PROJECT_NAME)
    project = Project(new_id(), name, domain_id, now_ms())
    _insert_unique(
        conn,
        "project",
        name,
        insert(projects).values(id=project.id, domain_id=domain_id, name=name, created_at=project.created_at),
    )
    return project


def list_projects(conn: Connection, *, domain_id: str) -> list[Project]:
    stmt = select(projects).where(projects.c.domain_id == domain_id).order_by(projects.c.name)
    return [Project(r.id, r.name, r.domain_id, int(r.created_at)) for r in conn.execute(stmt)]

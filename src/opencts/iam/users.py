"""An account's users: create, list, change (enable, disable, new password), delete.

Argon2 is slow on purpose: API callers hash with :func:`new_password_hash` in a worker thread *before*
their write transaction and hand the hash in, so the single SQLite writer never waits on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from opencts.clock import now_ms
from opencts.errors import BadRequest, NotFound
from opencts.iam.account import ID, USER_NAME, check_name, insert_unique, keeping_security_admin, run
from opencts.iam.secrets import hash_password, new_id
from opencts.store.tables import credentials, group_members, tokens, users

PASSWORD_MIN, PASSWORD_MAX = 8, 128


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    enabled: bool
    created_at: int


def check_password_policy(password: str) -> None:
    """At least 8 characters from at least two classes (lower, upper, digit, other), as Huawei IAM's default
    policy asks. The message never repeats the password."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise BadRequest(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long")
    classes = (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    if sum(any(test(c) for c in password) for test in classes) < 2:
        raise BadRequest("password must mix at least two of: lower-case, upper-case, digits, other")


def new_password_hash(password: str) -> str:
    """Check the policy, then hash (slow: run it outside the write transaction)."""
    check_password_policy(password)
    return hash_password(password)


def _hashed(password: str | None, password_hash: str | None) -> str:
    if password_hash is not None:
        return password_hash
    if password is None:
        raise TypeError("give password or password_hash")
    return new_password_hash(password)


def user_of(r: Row[Any]) -> User:
    """A ``users`` row as a :class:`User`."""
    return User(r.id, r.name, r.domain_id, bool(r.enabled), int(r.created_at))


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
    insert_unique(
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
    return [user_of(r) for r in conn.execute(stmt.order_by(users.c.name))]


def get_user(conn: Connection, *, domain_id: str, user_id: str) -> User:
    row = None
    if ID.fullmatch(user_id):
        row = conn.execute(select(users).where(users.c.id == user_id, users.c.domain_id == domain_id)).first()
    if row is None:
        raise NotFound(f"user {user_id[:64]!r} does not exist")
    return user_of(row)


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
        keeping_security_admin(
            conn,
            domain_id,
            f"{verb} user {user.name}",
            lambda: run(conn, update(users).where(users.c.id == user_id).values(enabled=enabled)),
        )
    return get_user(conn, domain_id=domain_id, user_id=user_id)


def delete_user(conn: Connection, *, domain_id: str, user_id: str) -> None:
    """Delete a user with their access keys, tokens and memberships."""
    user = get_user(conn, domain_id=domain_id, user_id=user_id)

    def change() -> None:
        for table in (credentials, tokens, group_members):
            conn.execute(delete(table).where(table.c.user_id == user_id))
        conn.execute(delete(users).where(users.c.id == user_id))

    keeping_security_admin(conn, domain_id, f"delete user {user.name}", change)

"""The rules every change to an account keeps, shared by users, groups, credentials and projects.

Every function in those modules takes the caller's ``domain_id`` and a ``Connection`` (the caller owns the
transaction, so a route does one ``db.write`` and gets all-or-nothing). Nothing there ever reads or changes
another account's rows: an id from another account is answered exactly like an id that does not exist
(404), so ids cannot be probed across accounts.

One invariant is kept across every change: an account that has an enabled user holding
``Security Administrator`` keeps at least one, because only that role can manage IAM and nobody could
repair the account from the API afterwards (:func:`keeping_security_admin`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Connection, Executable, func, select
from sqlalchemy.exc import IntegrityError

from opencts.errors import BadRequest, Conflict
from opencts.iam.permissions import SECURITY_ADMINISTRATOR
from opencts.store.tables import domains, group_members, group_roles, users

USER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
GROUP_NAME = USER_NAME
PROJECT_NAME = re.compile(r"[a-z0-9_-]{1,64}")
#: what an id or access key can look like; anything else cannot exist and is not sent to the database
#: (PostgreSQL refuses a NUL byte in text with an error, which must not become a 500)
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(kind: str, name: str, pattern: re.Pattern[str] = USER_NAME) -> str:
    if pattern.fullmatch(name) is None:
        allowed = "a-z 0-9 _ -" if pattern is PROJECT_NAME else "A-Z a-z 0-9 _ . -"
        raise BadRequest(f"{kind} name must be 1-64 characters from {allowed}, got {name[:80]!r}")
    return name


def check_description(kind: str, text: str) -> None:
    if len(text) > 255:
        raise BadRequest(f"{kind} description must be at most 255 characters")


def insert_unique(conn: Connection, kind: str, name: str, stmt: Executable) -> None:
    """Insert, letting the (domain, name) unique constraint decide duplicates: no check-then-insert race."""
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except IntegrityError:
        raise Conflict(f"a {kind} named {name!r} already exists in this account") from None


def run(conn: Connection, stmt: Executable) -> None:
    """``conn.execute`` as a statement, for the ``change`` of :func:`keeping_security_admin`."""
    conn.execute(stmt)


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


def keeping_security_admin(conn: Connection, domain_id: str, what: str, change: Callable[[], None]) -> None:
    """Apply ``change``; refuse it (the caller's transaction rolls back) if it removes the last IAM admin.

    The account's row is locked first (PostgreSQL; SQLite writes are serial anyway), so two concurrent
    changes cannot each see the other admin and both remove one.
    """
    conn.execute(select(domains.c.id).where(domains.c.id == domain_id).with_for_update())
    before = security_admins(conn, domain_id=domain_id)
    change()
    if before and not security_admins(conn, domain_id=domain_id):
        raise Conflict(
            f"refusing to {what}: it would leave the account without an enabled user holding "
            f"{SECURITY_ADMINISTRATOR}, and nobody could manage users afterwards"
        )

"""An account's user groups, their members and the roles granted to them (a user's roles are the union
of their groups' roles, as on Huawei IAM). Adding a member or granting a role is idempotent (PUT
semantics); removals that would leave the account without a Security Administrator are refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Delete, Row, delete, insert, select

from opencts.clock import now_ms
from opencts.errors import BadRequest, NotFound
from opencts.iam.account import (
    GROUP_NAME,
    ID,
    check_description,
    check_name,
    insert_unique,
    keeping_security_admin,
)
from opencts.iam.permissions import ROLES
from opencts.iam.secrets import new_id
from opencts.iam.users import User, get_user, user_of
from opencts.store.tables import group_members, group_roles, groups, users


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    domain_id: str
    description: str
    created_at: int


def _group(r: Row[Any]) -> Group:
    return Group(r.id, r.name, r.domain_id, r.description or "", int(r.created_at))


def create_group(conn: Connection, *, domain_id: str, name: str, description: str = "") -> Group:
    check_name("group", name, GROUP_NAME)
    check_description("group", description)
    group = Group(new_id(), name, domain_id, description, now_ms())
    insert_unique(
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

    keeping_security_admin(conn, domain_id, f"delete group {group.name}", change)


# -- members ------------------------------------------------------------------------------------------------


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
    _unlink(
        conn,
        domain_id,
        delete(group_members).where(group_members.c.group_id == group_id, group_members.c.user_id == user_id),
        missing=f"user {user.name} is not a member of group {group.name}",
        what=f"remove {user.name} from group {group.name}",
    )


def list_members(conn: Connection, *, domain_id: str, group_id: str) -> list[User]:
    get_group(conn, domain_id=domain_id, group_id=group_id)
    stmt = (
        select(users)
        .join(group_members, group_members.c.user_id == users.c.id)
        .where(group_members.c.group_id == group_id, users.c.domain_id == domain_id)
        .order_by(users.c.name)
    )
    return [user_of(r) for r in conn.execute(stmt)]


def user_groups(conn: Connection, *, domain_id: str, user_id: str) -> list[Group]:
    get_user(conn, domain_id=domain_id, user_id=user_id)
    stmt = (
        select(groups)
        .join(group_members, group_members.c.group_id == groups.c.id)
        .where(group_members.c.user_id == user_id, groups.c.domain_id == domain_id)
        .order_by(groups.c.name)
    )
    return [_group(r) for r in conn.execute(stmt)]


# -- roles --------------------------------------------------------------------------------------------------


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
    _unlink(
        conn,
        domain_id,
        delete(group_roles).where(group_roles.c.group_id == group_id, group_roles.c.role == role),
        missing=f"group {group.name} does not hold role {role!r}",
        what=f"revoke {role} from group {group.name}",
    )


def list_group_roles(conn: Connection, *, domain_id: str, group_id: str) -> list[str]:
    get_group(conn, domain_id=domain_id, group_id=group_id)
    stmt = select(group_roles.c.role).where(group_roles.c.group_id == group_id).order_by(group_roles.c.role)
    return [str(r) for r in conn.execute(stmt).scalars()]


def _unlink(conn: Connection, domain_id: str, stmt: Delete, *, missing: str, what: str) -> None:
    """Delete a membership or a grant: 404 (``missing``) if there is none, refused if it removes the
    account's last Security Administrator."""

    def change() -> None:
        if conn.execute(stmt).rowcount == 0:
            raise NotFound(missing)

    keeping_security_admin(conn, domain_id, what, change)

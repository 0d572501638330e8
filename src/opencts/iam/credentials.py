"""An account's AK/SK access keys: at most two per user, listed without their secrets, the secret key
shown once at creation and stored sealed under the master key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, func, insert, select, update

from opencts.clock import now_ms
from opencts.errors import BadRequest, NotFound, QuotaExceeded
from opencts.iam.account import ID, check_description
from opencts.iam.keyring import seal_secret_key
from opencts.iam.secrets import SecretBox, new_access_key, new_secret_key
from opencts.iam.users import get_user
from opencts.store.tables import credentials, users

#: Huawei IAM allows two access keys per user, so that one can be rotated while the other still works
MAX_CREDENTIALS_PER_USER = 2
CREDENTIAL_STATUSES = ("active", "inactive")


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
    check_description("credential", description)
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
        check_description("credential", description)
        values["description"] = description
    if values:
        conn.execute(update(credentials).where(credentials.c.access_key == access_key).values(**values))
    return get_credential(conn, domain_id=domain_id, access_key=access_key)


def delete_credential(conn: Connection, *, domain_id: str, access_key: str) -> None:
    get_credential(conn, domain_id=domain_id, access_key=access_key)
    conn.execute(delete(credentials).where(credentials.c.access_key == access_key))

"""Temporary credentials: what a function's agency hands its handler, valid in one project for minutes.

One issue makes two ways in, as FunctionGraph's context offers them: an AK/SK that is accepted only with
its ``X-Security-Token`` header (which the SDK signs when given ``with_security_token``), and an
``X-Auth-Token``. Both carry the agency's roles, act in the function's project only (never in another, never
on domain routes) and stop at ``expires_at``. The secret key is sealed under the master key like a
permanent one; the security token and the X-Auth-Token are kept only as SHA-256 hashes. Expired rows are
deleted as new ones are issued.

The agency is the function's ``xrole``. OpenCTS has no agency objects: an agency grants what the seeds'
best practice gives its ``serverless_trust`` agency, Tenant Administrator, i.e. every cloud service API
of the project (CTS, SMN, FunctionGraph) and nothing of IAM.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, delete, insert, select

from opencts.iam.keyring import open_secret_key, seal_secret_key
from opencts.iam.permissions import TENANT_ADMINISTRATOR
from opencts.iam.secrets import SealedValueError, SecretBox, new_access_key, new_secret_key
from opencts.store.tables import domains, projects, temporary_credentials

AGENCY_ROLES: tuple[str, ...] = (TENANT_ADMINISTRATOR,)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    """What the handler gets; shown once, never stored in the clear, never logged."""

    access_key: str
    secret_key: str
    security_token: str
    auth_token: str
    expires_at_ms: int

    def __repr__(self) -> str:
        return f"Issued(access_key={self.access_key!r}, expires_at_ms={self.expires_at_ms})"


@dataclass(frozen=True, slots=True)
class Temporary:
    """A stored temporary credential as the authenticator needs it."""

    access_key: str
    secret_key: str
    security_token_hash: str
    project_id: str
    domain_id: str
    domain_name: str
    func_id: str
    agency: str
    roles: frozenset[str]
    expires_at: int

    def token_matches(self, security_token: str | None) -> bool:
        return security_token is not None and secrets.compare_digest(
            _hash(security_token), self.security_token_hash
        )


def issue(
    conn: Connection, *, box: SecretBox, project_id: str, func_id: str, agency: str, now: int, ttl_ms: int
) -> Issued:
    """New temporary credentials valid until ``now + ttl_ms``; expired ones go in the same transaction."""
    conn.execute(delete(temporary_credentials).where(temporary_credentials.c.expires_at <= now))
    access_key = new_access_key()
    secret_key = new_secret_key()
    security_token = "OCST" + secrets.token_urlsafe(64)
    auth_token = "OCF" + secrets.token_urlsafe(48)
    expires = now + ttl_ms
    conn.execute(
        insert(temporary_credentials).values(
            access_key=access_key,
            secret_key=seal_secret_key(box, access_key, secret_key),
            security_token_hash=_hash(security_token),
            token_hash=_hash(auth_token),
            project_id=project_id,
            func_id=func_id,
            agency=agency,
            roles=orjson.dumps(list(AGENCY_ROLES)).decode(),
            created_at=now,
            expires_at=expires,
        )
    )
    return Issued(access_key, secret_key, security_token, auth_token, expires)


def _load(conn: Connection, where: object, box: SecretBox) -> Temporary | None:
    row = conn.execute(
        select(temporary_credentials, domains.c.id.label("domain_id"), domains.c.name.label("domain_name"))
        .join(projects, projects.c.id == temporary_credentials.c.project_id)
        .join(domains, domains.c.id == projects.c.domain_id)
        .where(where)  # type: ignore[arg-type]
    ).first()
    if row is None:
        return None
    try:
        secret_key = open_secret_key(box, row.access_key, row.secret_key)
    except SealedValueError:
        return None
    return Temporary(
        access_key=row.access_key,
        secret_key=secret_key,
        security_token_hash=row.security_token_hash,
        project_id=row.project_id,
        domain_id=row.domain_id,
        domain_name=row.domain_name,
        func_id=row.func_id,
        agency=row.agency,
        roles=frozenset(orjson.loads(row.roles)),
        expires_at=int(row.expires_at),
    )


def by_access_key(conn: Connection, access_key: str, box: SecretBox) -> Temporary | None:
    return _load(conn, temporary_credentials.c.access_key == access_key, box)


def by_token(conn: Connection, token: str, box: SecretBox) -> Temporary | None:
    return _load(conn, temporary_credentials.c.token_hash == _hash(token), box)

"""Source tokens: how a producer that cannot sign requests ingests.

A Kubernetes API server's audit webhook and an S3 bucket-notification target send a fixed
``Authorization: Bearer TOKEN`` header and nothing else: they cannot make SDK-HMAC signatures, and a password
token expires in a day. A source token is the narrowest credential that fits: it ingests into one project,
from one named source, and may call nothing else (:meth:`opencts.iam.principal.Principal.can`): a
``kubernetes`` or ``s3`` token only its webhook, a ``generic`` one only the ingest API (CTS-format traces
from a script or a log shipper's HTTP output). Like every token and
secret here it is shown once, at creation, and only its SHA-256 is stored; revoking it is immediate on this
process and within the authenticator's cache time on others.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from opencts.errors import BadRequest, Conflict, NotFound
from opencts.iam.permissions import SOURCE_ACTIONS
from opencts.iam.tokens import token_hash
from opencts.store.tables import domains, projects, source_tokens

SOURCES = tuple(SOURCE_ACTIONS)
#: the prefix makes a leaked token recognisable to secret scanners and to people
PREFIX = "ocst_"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOKEN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class SourceToken:
    """A source token as listed: never the token itself."""

    id: str
    project_id: str
    name: str
    source: str
    created_by: str
    created_at: int
    revoked_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "source": self.source,
            "status": "active" if self.revoked_at is None else "revoked",
            "created_by": self.created_by,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class Holder:
    """What authenticating a source token yields: the token and the account its project belongs to."""

    token: SourceToken
    domain_id: str
    domain_name: str


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise BadRequest(f"source must be one of {', '.join(SOURCES)}, not {source[:40]!r}")
    return source


def _token(row: Row[Any]) -> SourceToken:
    revoked = None if row.revoked_at is None else int(row.revoked_at)
    return SourceToken(
        row.id, row.project_id, row.name, row.source, row.created_by, int(row.created_at), revoked
    )


def create(
    conn: Connection, *, project_id: str, name: str, source: str, created_by: str, now: int
) -> tuple[SourceToken, str]:
    """A new token and its one showing. Names are unique among a project's working tokens."""
    if NAME.fullmatch(name) is None:
        raise BadRequest(
            f"source token name must be 1-64 characters from A-Z a-z 0-9 _ . -, got {name[:80]!r}"
        )
    check_source(source)
    taken = conn.execute(
        select(source_tokens.c.id).where(
            source_tokens.c.project_id == project_id,
            source_tokens.c.name == name,
            source_tokens.c.revoked_at.is_(None),
        )
    ).first()
    if taken is not None:
        raise Conflict(f"a source token named {name!r} already works in this project; revoke it first")
    token = PREFIX + secrets.token_urlsafe(32)
    made = SourceToken(uuid.uuid4().hex, project_id, name, source, created_by, now, None)
    conn.execute(
        insert(source_tokens).values(
            id=made.id,
            token_hash=token_hash(token),
            project_id=project_id,
            name=name,
            source=source,
            created_by=created_by,
            created_at=now,
        )
    )
    return made, token


def list_tokens(conn: Connection, *, project_id: str) -> list[SourceToken]:
    """A project's source tokens, working and revoked, oldest first."""
    rows = conn.execute(
        select(source_tokens)
        .where(source_tokens.c.project_id == project_id)
        .order_by(source_tokens.c.created_at, source_tokens.c.id)
    )
    return [_token(r) for r in rows]


def revoke(conn: Connection, *, project_id: str, token_id: str, now: int) -> SourceToken:
    """Revoke a token of the project (revoking it again changes nothing); 404 for any other id."""
    missing = NotFound(f"source token {token_id[:64]!r} does not exist in project {project_id}")
    if _TOKEN_ID.fullmatch(token_id) is None:
        raise missing
    where = (source_tokens.c.id == token_id, source_tokens.c.project_id == project_id)
    row = conn.execute(select(source_tokens).where(*where)).first()
    if row is None:
        raise missing
    if row.revoked_at is None:
        conn.execute(update(source_tokens).where(*where).values(revoked_at=now))
        row = conn.execute(select(source_tokens).where(*where)).one()
    return _token(row)


def lookup(conn: Connection, hashed: str) -> Holder | None:
    """The token with this hash and its project's account, revoked or not (the caller decides)."""
    row = conn.execute(
        select(source_tokens, domains.c.id.label("domain_id"), domains.c.name.label("domain_name"))
        .join(projects, projects.c.id == source_tokens.c.project_id)
        .join(domains, domains.c.id == projects.c.domain_id)
        .where(source_tokens.c.token_hash == hashed)
    ).first()
    return None if row is None else Holder(_token(row), row.domain_id, row.domain_name)

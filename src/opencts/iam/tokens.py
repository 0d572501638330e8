"""Keystone-style tokens: issued for a password login, scoped to one project, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Connection, insert, update

from opencts.store.tables import tokens

TOKEN_TTL_MS = 24 * 3_600_000  # Huawei IAM tokens live 24 hours


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    conn: Connection, *, user_id: str, project_id: str | None, now: int, ttl_ms: int = TOKEN_TTL_MS
) -> tuple[str, int]:
    """A new token and its expiry (ms). The token is shown once; only its SHA-256 is kept."""
    token = "OC" + secrets.token_urlsafe(48)
    expires = now + ttl_ms
    conn.execute(
        insert(tokens).values(
            token_hash=token_hash(token),
            user_id=user_id,
            project_id=project_id,
            issued_at=now,
            expires_at=expires,
            revoked=False,
        )
    )
    return token, expires


def revoke(conn: Connection, token: str) -> bool:
    result = conn.execute(update(tokens).where(tokens.c.token_hash == token_hash(token)).values(revoked=True))
    return bool(result.rowcount)

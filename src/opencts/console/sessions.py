"""Console sessions, kept in the database so every process of a deployment sees a logout at once.

The cookie holds 32 random bytes; the table holds only their SHA-256, so a copy of the database opens no
session. Each session carries its own CSRF token, which every form posts back. A session ends at logout,
after ``console_idle_minutes`` without a page load, or after :data:`MAX_AGE_MS` whatever its use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from opencts.clock import HOUR_MS
from opencts.store.tables import console_sessions

#: a session lasts at most this long, however busy: a stolen cookie does not live for ever
MAX_AGE_MS = 12 * HOUR_MS
#: ``last_seen_at`` is written at most this often: one write a minute per person, not one per page
TOUCH_MS = 60_000


@dataclass(frozen=True, slots=True)
class Session:
    session_hash: str
    user_id: str
    project_id: str
    csrf_token: str
    method: str
    access_key: str | None
    created_at: int
    last_seen_at: int


def hash_of(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def create(
    conn: Connection,
    *,
    user_id: str,
    project_id: str,
    method: str,
    access_key: str | None,
    source_ip: str | None,
    now: int,
) -> tuple[str, Session]:
    """A new session; returns the cookie value (shown to the browser once, never stored) and the row."""
    cookie = secrets.token_urlsafe(32)
    session = Session(
        session_hash=hash_of(cookie),
        user_id=user_id,
        project_id=project_id,
        csrf_token=secrets.token_urlsafe(32),
        method=method,
        access_key=access_key,
        created_at=now,
        last_seen_at=now,
    )
    conn.execute(insert(console_sessions).values(source_ip=source_ip, **_values(session)))
    return cookie, session


def _values(session: Session) -> dict[str, object]:
    return {name: getattr(session, name) for name in Session.__slots__}


def find(conn: Connection, cookie: str) -> Session | None:
    row = conn.execute(
        select(*(console_sessions.c[name] for name in Session.__slots__)).where(
            console_sessions.c.session_hash == hash_of(cookie)
        )
    ).first()
    return None if row is None else Session(*row)


def alive(session: Session, *, idle_ms: int, now: int) -> bool:
    return now - session.last_seen_at < idle_ms and now - session.created_at < MAX_AGE_MS


def touch(conn: Connection, session_hash: str, now: int) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.session_hash == session_hash, console_sessions.c.last_seen_at < now)
        .values(last_seen_at=now)
    )


def end(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.session_hash == session_hash))


def purge(conn: Connection, *, idle_ms: int, now: int) -> int:
    """Drop sessions that can no longer be used; called at each login, so the table stays small."""
    gone = console_sessions.c.last_seen_at < now - idle_ms
    old = console_sessions.c.created_at < now - MAX_AGE_MS
    return int(conn.execute(delete(console_sessions).where(gone | old)).rowcount)

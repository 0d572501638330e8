"""What keeps a signed write from being served twice, by any process of a deployment.

A signature is valid for the 15 minutes of the date check. Within them, a captured ``DELETE`` or ``PUT``
could be sent again; each process remembered the signatures it had served, so a replay sent to another
process of a PostgreSQL deployment (or a second server on the same SQLite file) went through. The
signatures are now claimed in the database, in a table every process shares, and forgotten once the
date check would refuse them anyway. Reads and ingest are not claimed: replaying them changes nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, text

from opencts.store.tables import used_signatures

_CLAIM = text(
    "INSERT INTO used_signatures (signature, expires_at) VALUES (:signature, :expires_at)"
    " ON CONFLICT (signature) DO NOTHING"
)


def claim(conn: Connection, signature: str, *, expires_at: int, now: int) -> bool:
    """True the first time ``signature`` is claimed; False for a replay. Forgets expired claims."""
    first = conn.execute(_CLAIM, {"signature": signature, "expires_at": expires_at}).rowcount == 1
    conn.execute(delete(used_signatures).where(used_signatures.c.expires_at < now))
    return bool(first)

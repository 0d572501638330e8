"""What keeps a signed write that asks for it from being served twice, by any process of a deployment.

A signature is valid for the 15 minutes of the date check, and the SDK's has one-second resolution: the
same write sent twice within a second carries the same signature, so signatures alone cannot tell a
replay from a client repeating itself. Writes that sign a random ``X-Request-Nonce`` (the OpenCTS CLI's
do) have unique signatures; those are claimed here, in a table every process shares, and forgotten once
the date check would refuse them anyway. Other requests are bounded by the date window only.
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

"""Claimed signatures, on both backends: the first claim wins, expired claims are forgotten."""

from __future__ import annotations

from sqlalchemy import func, select

from opencts.iam import replays
from opencts.store import Database
from opencts.store.tables import used_signatures


def test_a_signature_is_claimed_once_until_it_expires(database: Database) -> None:
    def claim(signature: str, now: int) -> bool:
        return database.write_sync(lambda c: replays.claim(c, signature, expires_at=now + 900_000, now=now))

    assert claim("a" * 64, 1_000) is True
    assert claim("a" * 64, 2_000) is False  # a replay, from whichever process
    assert claim("b" * 64, 3_000) is True
    assert claim("c" * 64, 902_000) is True  # by now "a"'s claim (until 901,000) has expired and gone
    kept = database.read_sync(lambda c: set(c.execute(select(used_signatures.c.signature)).scalars()))
    assert kept == {"b" * 64, "c" * 64}
    total = database.read_sync(
        lambda c: c.execute(select(func.count()).select_from(used_signatures)).scalar()
    )
    assert total == 2

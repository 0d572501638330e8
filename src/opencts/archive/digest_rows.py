"""The digests' rows: each tracker's chains, and one claimed-then-written row per (tracker, hour).

Exactly once across crashes and nodes: a digest is decided by inserting its (tracker, hour) row with its
exact bytes and signature (insert-if-absent: of two nodes one wins), then PUT, then marked written under
the claim that PUT it. A claim whose lease ran out (its writer died) is taken over and the same bytes are
PUT again. Opening a chain is one insert guarded by a partial unique index (one open chain per tracker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select, update

from opencts.clock import HOUR_MS
from opencts.store.tables import digest_chains, digests, trackers
from opencts.store.upsert import insert_ignore

CLAIMED = "claimed"
WRITTEN = "written"


@dataclass(frozen=True, slots=True)
class Watched:
    """A tracker that validates now: it has a bucket and ``is_support_validate``, and is not disabled."""

    tracker_id: str
    project_id: str
    name: str
    bucket: str
    prefix: str | None


@dataclass(frozen=True, slots=True)
class Chain:
    tracker_id: str
    start_ms: int
    project_id: str
    tracker_name: str
    bucket: str
    prefix: str | None
    start_size: int
    #: the hour of the final digest; None while the tracker validates
    end_ms: int | None


@dataclass(frozen=True, slots=True)
class Row:
    """A digest row as the next hour of its chain needs it."""

    hour_ms: int
    bucket: str
    object_key: str
    sha256: str
    signature: str
    tree_size: int | None
    status: str
    lease_until: int


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def _watched(row: Any) -> Watched | None:
    config = orjson.loads(row.config)
    bucket = (config.get("obs_info") or {}).get("bucket_name")
    if not bucket or not config.get("is_support_validate") or row.status == "disabled":
        return None
    prefix = (config.get("obs_info") or {}).get("file_prefix_name") or None
    return Watched(row.id, row.project_id, row.name, bucket, prefix)


def watched(conn: Connection) -> dict[str, Watched]:
    t = trackers.c
    rows = conn.execute(select(t.id, t.project_id, t.name, t.status, t.config))
    return {w.tracker_id: w for w in map(_watched, rows) if w is not None}


def _chain(r: Any) -> Chain:
    return Chain(
        r.tracker_id, r.start_ms, r.project_id, r.tracker_name, r.bucket, r.prefix, r.start_size, r.end_ms
    )


def active_chains(conn: Connection) -> list[Chain]:
    """Chains whose final digest is not written yet (open ones included)."""
    rows = conn.execute(
        select(digest_chains).where(digest_chains.c.done == 0).order_by(digest_chains.c.start_ms)
    )
    return [_chain(r) for r in rows]


def close_chain(conn: Connection, chain: Chain, now: int) -> None:
    """Validation stopped (turned off, tracker disabled or deleted, bucket changed): the current hour's
    digest is the chain's final one."""
    c = digest_chains.c
    conn.execute(
        update(digest_chains)
        .where(c.tracker_id == chain.tracker_id, c.start_ms == chain.start_ms, c.end_ms.is_(None))
        .values(end_ms=max(chain.start_ms, hour_of(now)))
    )


def open_chain(conn: Connection, w: Watched, now: int, start_size: int) -> None:
    """Validation started: a chain from this hour, or from the hour after the tracker's last final digest
    (two digests never share an hour's name). Raises IntegrityError when another node opened one first."""
    c = digest_chains.c
    last_end = conn.execute(select(func.max(c.end_ms)).where(c.tracker_id == w.tracker_id)).scalar()
    start = hour_of(now) if last_end is None else max(hour_of(now), int(last_end) + HOUR_MS)
    conn.execute(
        insert(digest_chains).values(
            tracker_id=w.tracker_id,
            start_ms=start,
            project_id=w.project_id,
            tracker_name=w.name,
            bucket=w.bucket,
            prefix=w.prefix,
            start_size=start_size,
            end_ms=None,
            done=0,
            created_at=now,
        )
    )


def finish_chain(conn: Connection, chain: Chain) -> None:
    c = digest_chains.c
    conn.execute(
        update(digest_chains)
        .where(c.tracker_id == chain.tracker_id, c.start_ms == chain.start_ms)
        .values(done=1)
    )


def last_row(conn: Connection, chain: Chain) -> Row | None:
    """The chain's latest digest row (claimed or written)."""
    d = digests.c
    r = conn.execute(
        select(d.hour_ms, d.bucket, d.object_key, d.sha256, d.signature, d.tree_size, d.status, d.lease_until)
        .where(d.tracker_id == chain.tracker_id, d.chain_start == chain.start_ms)
        .order_by(d.hour_ms.desc())
        .limit(1)
    ).first()
    return Row(**r._mapping) if r is not None else None


def claim_new(conn: Connection, values: dict[str, Any]) -> bool:
    """Decide a digest: insert its row unless one for (tracker, hour) exists; True when this call did."""
    return insert_ignore(conn, digests, values, key=["tracker_id", "hour_ms"])


def take_over(conn: Connection, tracker_id: str, hour_ms: int, claim: str, *, now: int, lease_ms: int) -> Any:
    """Take a claimed row whose lease ran out; the row (bytes to PUT again) or None while another holds it."""
    d = digests.c
    return conn.execute(
        update(digests)
        .where(d.tracker_id == tracker_id, d.hour_ms == hour_ms, d.status == CLAIMED, d.lease_until <= now)
        .values(claim=claim, lease_until=now + lease_ms)
        .returning(*digests.c)
    ).first()


def mark_written(conn: Connection, *, tracker_id: str, hour_ms: int, claim: str, now: int) -> bool:
    d = digests.c
    done = conn.execute(
        update(digests)
        .where(d.tracker_id == tracker_id, d.hour_ms == hour_ms, d.claim == claim, d.status == CLAIMED)
        .values(status=WRITTEN, claim=None, written_at=now)
        .returning(d.hour_ms)
    ).first()
    return done is not None


def written(conn: Connection, tracker_id: str) -> list[Any]:
    """A tracker's written digest rows in hour order (tests, the CLI)."""
    d = digests.c
    return list(
        conn.execute(
            select(d.hour_ms, d.bucket, d.object_key, d.sha256, d.fingerprint, d.digest_end)
            .where(d.tracker_id == tracker_id, d.status == WRITTEN)
            .order_by(d.hour_ms)
        )
    )

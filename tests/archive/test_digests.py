"""Hourly digests on both backends, with hours passed on an injected clock.

A few hours of files written by the real transfer, then the digest writer: the chain, signatures checked
against the published keys (across a rotation), an empty hour, the starting and the final digest, two
writers on one database, and a writer that died between its claim and its PUT.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from archive.archive_world import PROJECT
from cts_helpers import trace_row
from opencts.archive import digest_format as fmt
from opencts.archive import digest_rows, layout, signing_keys
from opencts.archive.digests import DigestWriter
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.ledger import hashing
from opencts.store import Database, trace_log
from opencts.store.tables import digest_chains, digests, traces
from opencts.trackers import repository
from opencts.trackers.model import UpdateTrackerRequestBody

H0 = 1_780_002_000_000 // HOUR_MS * HOUR_MS
BUCKET = "audit"


@dataclass(frozen=True)
class Cp:
    size: int
    root: bytes
    note: str
    last_seq: int


class LogLedger:
    """The ledger computed straight from the log with its RFC 9162 hashing (no tiles, no consumer), and a
    checkpoint per call of the whole log: tests of the digests need leaves, not the ledger's storage."""

    def _seqs_leaves(self, conn: Connection, project_id: str) -> list[tuple[int, bytes]]:
        rows = conn.execute(
            select(traces.c.seq, traces.c.body)
            .where(traces.c.project_id == project_id)
            .order_by(traces.c.seq)
        )
        return [(int(s), hashing.leaf_hash(bytes(b))) for s, b in rows]

    def latest_checkpoint(self, conn: Connection, project_id: str) -> Cp | None:
        rows = self._seqs_leaves(conn, project_id)
        if not rows:
            return None
        root = hashing.root([leaf for _, leaf in rows])
        return Cp(len(rows), root, f"test/{project_id}\n{len(rows)}\n{root.hex()}\n", rows[-1][0])

    def checkpoint_covering(self, conn: Connection, project_id: str, seq: int) -> Cp | None:
        cp = self.latest_checkpoint(conn, project_id)
        return cp if cp is not None and cp.last_seq >= seq else None

    def leaf_hashes(self, conn: Connection, project_id: str, start: int, end: int) -> list[bytes]:
        return [leaf for _, leaf in self._seqs_leaves(conn, project_id)[start:end]]

    def leaf_hashes_of(self, db: Database, start: int, end: int) -> list[bytes]:
        return db.read_sync(lambda c: self.leaf_hashes(c, PROJECT, start, end))

    def compact_range(self, conn: Connection, project_id: str, size: int) -> list[bytes]:
        return hashing.compact_range(self.leaf_hashes(conn, project_id, 0, size), size)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store(store: LocalStore) -> LocalStore:
    store.create_bucket(BUCKET)
    return store


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


def validate(db: Database, on: bool, bucket: str = BUCKET) -> None:
    body = UpdateTrackerRequestBody.model_validate(
        {
            "tracker_type": "system",
            "tracker_name": "system",
            "obs_info": {"bucket_name": bucket},
            "is_support_validate": on,
        }
    )
    db.write_sync(lambda c: repository.update_tracker(c, project_id=PROJECT, body=body))


def append(db: Database, at: int, count: int, tag: str) -> None:
    rows = [
        trace_row(f"{tag}-{i}", project_id=PROJECT, time=at + i, record_time=at + i) for i in range(count)
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))


def writer(db: Database, store: LocalStore, box: SecretBox, clock: Clock) -> DigestWriter:
    def keys(conn: Connection, now: int) -> signing_keys.SigningKey:
        return signing_keys.current_key(conn, box, now, 30)

    return DigestWriter(db, store, region="r1", keys=keys, ledger=LogLedger(), clock=clock)


async def transfer_at(db: Database, store: LocalStore, tmp_path: Path, at: int) -> None:
    settings = Settings(data_dir=tmp_path / "data", transfer_interval=1)
    await Transfer(db, store, settings, clock=lambda: at).drain()


def chain_of(db: Database, store: LocalStore) -> list[tuple[fmt.Digest, fmt.Signature, bytes]]:
    """Every digest in the bucket, oldest first, with its signature; each signature checked."""
    published = signing_keys.parse_published({"keys": db.read_sync(signing_keys.published_keys)})

    def verify(fingerprint: str, data: bytes, sig: bytes) -> bool:
        return signing_keys.verify_signature(published, fingerprint, data, sig)

    found = []
    for info in store.list(BUCKET, f"{layout.ROOT}/"):
        key = layout.parse_key(info.key)
        assert key is not None, info.key
        if key.kind != "digest":
            continue
        blob = store.get(BUCKET, info.key)
        sig = fmt.decode_signature(store.get(BUCKET, layout.signature_key(info.key)))
        found.append((fmt.check_signature(blob, sig, verify), sig, blob))
    return sorted(found, key=lambda d: d[0].start_ms)


def assert_chained(chain: list[tuple[fmt.Digest, fmt.Signature, bytes]]) -> None:
    for (prev, prev_sig, prev_blob), (d, _, _) in zip(chain, chain[1:], strict=False):
        if d.is_start:
            continue
        assert d.start_ms == prev.end_ms
        assert (d.previous_digest_bucket, d.previous_digest_object) == (
            prev.digest_bucket,
            prev.digest_object,
        )
        assert d.previous_digest_hash_value == fmt.sha256_hex(prev_blob)
        assert d.previous_digest_signature == prev_sig.signature


async def test_hours_of_files_make_a_signed_chain_with_empty_start_and_final_digests(
    db: Database, store: LocalStore, box: SecretBox, tmp_path: Path
) -> None:
    clock = Clock(H0 + 10 * MINUTE_MS)
    w = writer(db, store, box, clock)
    validate(db, True)
    assert await w.run_once() == 0  # the chain starts this hour; nothing is over yet
    append(db, H0 + 15 * MINUTE_MS, 3, "a")
    await transfer_at(db, store, tmp_path, H0 + 20 * MINUTE_MS)
    append(db, H0 + 2 * HOUR_MS + MINUTE_MS, 2, "b")  # hour 1 stays empty
    await transfer_at(db, store, tmp_path, H0 + 2 * HOUR_MS + 5 * MINUTE_MS)
    clock.now = H0 + 3 * HOUR_MS + MINUTE_MS
    assert await w.run_once() == 3
    chain = chain_of(db, store)
    assert [d.start_ms for d, _, _ in chain] == [H0, H0 + HOUR_MS, H0 + 2 * HOUR_MS]
    start, empty, third = (d for d, _, _ in chain)
    assert start.is_start and start.previous_digest_signature is None and start.tree_compact_range == ()
    assert [f.trace_count for f in start.log_files] and sum(f.trace_count for f in start.log_files) == 3
    assert empty.log_files == () and empty.oldest_event_time is None
    assert sum(f.trace_count for f in third.log_files) == 2
    assert third.oldest_event_time == H0 + 2 * HOUR_MS + MINUTE_MS
    for d in (start, third):
        for f in d.log_files:
            assert f.log_hash_value == fmt.sha256_hex(store.get(f.bucket, f.object))
    # the leaves: from the chain's start size to each checkpoint, each hour's after the previous one's
    ranges = [(d.tree_leaves.first_index, d.tree_leaves.count) for d, _, _ in chain if d.tree_leaves]
    assert ranges[0][0] == 0 and sum(count for _, count in ranges) == 5
    assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
    assert start.tree_leaves is not None
    blob = store.get(BUCKET, start.tree_leaves.object)
    assert fmt.sha256_hex(blob) == start.tree_leaves.hash_value
    assert fmt.decode_leaves(blob) == LogLedger().leaf_hashes_of(db, 0, 5)
    root = bytes.fromhex((start.checkpoint or "").split("\n")[2])
    assert hashing.extend_range([], 0, fmt.decode_leaves(blob)) == root
    assert_chained(chain)

    # a rotation: the next digest names the new key, the old ones still verify
    old_fp = start.digest_public_key_fingerprint
    db.write_sync(lambda c: signing_keys.rotate(c, box, clock.now))
    clock.now = H0 + 4 * HOUR_MS + MINUTE_MS
    assert await w.run_once() == 1
    chain = chain_of(db, store)
    assert chain[-1][0].digest_public_key_fingerprint != old_fp
    assert_chained(chain)

    # validation turned off: a final digest for that hour once it is over, then nothing more
    clock.now = H0 + 4 * HOUR_MS + 30 * MINUTE_MS
    validate(db, False)
    assert await w.run_once() == 0
    clock.now = H0 + 6 * HOUR_MS
    assert await w.run_once() == 1
    assert await w.run_once() == 0
    chain = chain_of(db, store)
    assert chain[-1][0].digest_end and chain[-1][0].start_ms == H0 + 4 * HOUR_MS
    assert not any(d.digest_end for d, _, _ in chain[:-1])

    # re-enabled: a new starting digest, in an hour of its own
    validate(db, True)
    await w.run_once()
    clock.now = H0 + 7 * HOUR_MS + MINUTE_MS
    assert await w.run_once() == 1
    restart = chain_of(db, store)[-1][0]
    assert restart.is_start and restart.start_ms == H0 + 6 * HOUR_MS
    # the restart carries the compact range at its first index: with its leaves, its checkpoint's root
    assert restart.tree_leaves is not None and restart.tree_compact_range is not None
    assert restart.tree_leaves.first_index == 5
    leaves = fmt.decode_leaves(store.get(BUCKET, restart.tree_leaves.object))
    compact = [bytes.fromhex(h) for h in restart.tree_compact_range]
    root = bytes.fromhex((restart.checkpoint or "").split("\n")[2])
    assert hashing.extend_range(compact, 5, leaves) == root


async def test_an_hour_waits_for_its_unwritten_files(
    db: Database, store: LocalStore, box: SecretBox, tmp_path: Path
) -> None:
    clock = Clock(H0)
    w = writer(db, store, box, clock)
    validate(db, True)
    await w.run_once()
    append(db, H0 + MINUTE_MS, 2, "a")
    settings = Settings(data_dir=tmp_path / "data", transfer_interval=1)
    transfer = Transfer(db, store, settings, clock=lambda: H0 + 2 * MINUTE_MS)
    await transfer.plan()  # planned, not written
    clock.now = H0 + 2 * HOUR_MS + MINUTE_MS
    assert await w.run_once() == 0
    await transfer.worker.drain()
    assert await w.run_once() == 2
    assert sum(f.trace_count for f in chain_of(db, store)[0][0].log_files) == 2


class CountingStore(LocalStore):
    """The local store, counting writes per key (no work done twice, not only the same result)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts: Counter[str] = Counter()

    def create(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
        self.puts[key] += 1
        return super().create(bucket, key, data, metadata)


async def test_two_nodes_write_each_hour_once(db: Database, tmp_path: Path, box: SecretBox) -> None:
    (tmp_path / "buckets").mkdir()
    store = CountingStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    clock = Clock(H0 + MINUTE_MS)
    validate(db, True)
    node2 = Database(db.url)  # a second node: its own engines on the same database
    try:
        one, two = writer(db, store, box, clock), writer(node2, store, box, clock)
        await asyncio.gather(one.run_once(), two.run_once())
        clock.now = H0 + 5 * HOUR_MS + MINUTE_MS
        counts = await asyncio.gather(one.run_once(), two.run_once(), one.run_once(), two.run_once())
        assert sum(counts) == 5
    finally:
        node2.close()
    hours = db.read_sync(
        lambda c: list(c.execute(select(digests.c.hour_ms).order_by(digests.c.hour_ms)).scalars())
    )
    assert hours == [H0 + i * HOUR_MS for i in range(5)]
    assert len(chain_of(db, store)) == 5
    assert_chained(chain_of(db, store))
    opened = db.read_sync(lambda c: c.execute(select(func.count()).select_from(digest_chains)).scalar())
    assert opened == 1
    assert len(store.puts) == 10 and set(store.puts.values()) == {1}  # a digest and its .sig per hour


async def test_a_claim_left_by_a_crash_is_written_with_the_same_bytes(
    db: Database, store: LocalStore, box: SecretBox
) -> None:
    clock = Clock(H0 + MINUTE_MS)
    validate(db, True)
    w = writer(db, store, box, clock)
    await w.run_once()
    clock.now = H0 + HOUR_MS + MINUTE_MS
    chain = db.read_sync(digest_rows.active_chains)[0]
    # the writer "dies" after its claim: the row holds the bytes, nothing is in the bucket
    claimed = db.write_sync(lambda c: w._next(c, chain=chain, claim="dead", now=clock.now))
    assert claimed is not None and chain_of(db, store) == []
    db.write_sync(lambda c: signing_keys.rotate(c, box, clock.now))  # a new key must not change the claim
    assert await w.run_once() == 0  # its lease still runs
    clock.now += w.lease_ms
    other = writer(db, store, box, clock)
    assert await other.run_once() == 1
    ((digest, sig, blob),) = chain_of(db, store)
    assert blob == claimed.body and sig.signature == claimed.signature

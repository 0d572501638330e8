"""Hourly digest files: each validating tracker's signed chain of what its bucket holds, hour by hour.

For every tracker with ``is_support_validate`` and a bucket, one digest per UTC hour (spec §2.5, in the
format of :mod:`opencts.archive.digest_format`): the hour's trace files with their SHA-256, the ledger
checkpoint covering them, the Merkle leaves added since the previous digest (a leaves object beside it),
and the previous digest's object, hash and signature. An hour without files still gets a digest, so a
missing hour is provable. A chain starts (previous null, with the tree's compact range) in the hour
validation is turned on and ends with a final digest (``digest_end: true``) for the hour it is turned off,
the tracker disabled or deleted.

An hour's digest is written once the hour is over (plus :attr:`DigestWriter.settle_ms`, so a plan stamped
just before the hour's end has committed) and no file of that hour is unwritten. Exactly once across
crashes and nodes: see :mod:`opencts.archive.digest_rows`. The signature is Ed25519 by the installation's
current signing key, so after a rotation new digests name the new key and old ones still verify.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from opencts.archive import digest_format as fmt
from opencts.archive import digest_rows as rows
from opencts.archive import files, layout, signing_keys
from opencts.archive.digest_rows import Chain, Row
from opencts.archive.storage import ObjectStore, StorageError
from opencts.clock import HOUR_MS, MINUTE_MS, SECOND_MS, now_ms
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.ledger import repository as ledger_repository
from opencts.ledger import tiles
from opencts.ledger.repository import NoteSigner
from opencts.store import Database

log = logging.getLogger(__name__)


class SigningKey(Protocol):
    """What the digests need of ``signing_keys.SigningKey``."""

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class Checkpoint(Protocol):
    """What the digests need of ``ledger``'s checkpoint."""

    @property
    def size(self) -> int: ...

    @property
    def note(self) -> str: ...


class Ledger(Protocol):
    """The Merkle ledger's database side, as the digests read it (:class:`LedgerReader` in the app)."""

    def latest_checkpoint(self, conn: Connection, project_id: str) -> Checkpoint | None: ...

    def checkpoint_covering(self, conn: Connection, project_id: str, seq: int) -> Checkpoint | None:
        """A checkpoint whose tree holds every trace of the project up to ``seq``; None to wait."""
        ...

    def leaf_hashes(self, conn: Connection, project_id: str, start: int, end: int) -> Sequence[bytes]: ...

    def compact_range(self, conn: Connection, project_id: str, size: int) -> Sequence[bytes]: ...


#: the current signing key at ``now`` (creating or rotating it as due), in the caller's transaction
KeySource = Callable[[Connection, int], SigningKey]


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed digest to PUT: its bytes and signature are fixed in its row."""

    tracker_id: str
    hour_ms: int
    claim: str
    project_id: str
    bucket: str
    object_key: str
    body: bytes
    signature: str
    fingerprint: str
    leaves_key: str | None
    leaves_first: int
    leaves_count: int


def _pending(r: Any, claim: str) -> Pending:
    return Pending(
        r.tracker_id,
        r.hour_ms,
        claim,
        r.project_id,
        r.bucket,
        r.object_key,
        bytes(r.body),
        r.signature,
        r.fingerprint,
        r.leaves_key,
        int(r.leaves_first or 0),
        int(r.leaves_count or 0),
    )


@dataclass(frozen=True, slots=True)
class _Tree:
    """The ledger part of one digest: checkpoint, leaves range and hashes, compact range."""

    note: str | None = None
    size: int | None = None
    first: int = 0
    hashes: tuple[bytes, ...] = ()
    compact: tuple[str, ...] | None = None


def interval_seconds(transfer_interval: float) -> float:
    """How often the writer looks: a minute, or the transfer interval when that is shorter."""
    return min(60.0, transfer_interval)


class DigestWriter:
    """Writes every due digest of every chain; safe to run on several nodes at once."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        region: str,
        keys: KeySource,
        ledger: Ledger | None,
        interval: float = 60.0,
        clock: Callable[[], int] = now_ms,
        lease_ms: int = 2 * MINUTE_MS,
        settle_ms: int = 5 * SECOND_MS,
    ) -> None:
        self.db = db
        self.store = store
        self.region = region
        self.keys = keys
        self.ledger = ledger
        self.interval = interval
        self.clock = clock
        self.lease_ms = lease_ms
        self.settle_ms = settle_ms
        self._task: asyncio.Task[None] | None = None

    # -- one pass ------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Open and close chains as trackers changed, then write every due digest; how many were written."""
        try:
            await self.db.write(partial(self._reconcile, now=self.clock()))
        except IntegrityError:
            pass  # another node opened the same chain first
        count = 0
        for chain in await self.db.read(rows.active_chains):
            count += await self._advance(chain)
        return count

    def _reconcile(self, conn: Connection, *, now: int) -> None:
        watched = rows.watched(conn)
        open_ids: set[str] = set()
        for chain in rows.active_chains(conn):
            if chain.end_ms is not None:
                continue
            w = watched.get(chain.tracker_id)
            if w is None or (w.bucket, w.prefix) != (chain.bucket, chain.prefix):
                rows.close_chain(conn, chain, now)
            else:
                open_ids.add(chain.tracker_id)
        for w in watched.values():
            if w.tracker_id not in open_ids:
                rows.open_chain(conn, w, now, self._tree_size(conn, w.project_id))

    def _tree_size(self, conn: Connection, project_id: str) -> int:
        cp = self.ledger.latest_checkpoint(conn, project_id) if self.ledger else None
        return cp.size if cp is not None else 0

    async def _advance(self, chain: Chain) -> int:
        count = 0
        while True:
            claim = uuid.uuid4().hex
            pending = await self.db.write(partial(self._next, chain=chain, claim=claim, now=self.clock()))
            if pending is None:
                return count
            try:
                await self._put(pending)
            except StorageError as exc:
                log.warning("digest %s not written yet: %s", pending.object_key, exc)
                return count  # the claim stays; its lease runs out and a later pass PUTs the same bytes
            mark = partial(rows.mark_written, tracker_id=pending.tracker_id, hour_ms=pending.hour_ms)
            if await self.db.write(partial(mark, claim=pending.claim, now=self.clock())):
                count += 1

    def _next(self, conn: Connection, *, chain: Chain, claim: str, now: int) -> Pending | None:
        """The chain's next digest to PUT (claimed now), or None when nothing is due."""
        last = rows.last_row(conn, chain)
        if last is not None and last.status == rows.CLAIMED:
            taken = rows.take_over(
                conn, chain.tracker_id, last.hour_ms, claim, now=now, lease_ms=self.lease_ms
            )
            return _pending(taken, claim) if taken is not None else None
        hour = chain.start_ms if last is None else last.hour_ms + HOUR_MS
        if chain.end_ms is not None and hour > chain.end_ms:
            rows.finish_chain(conn, chain)
            return None
        if hour + HOUR_MS + self.settle_ms > now or files.unwritten_before(
            conn, chain.tracker_id, hour + HOUR_MS
        ):
            return None
        values = self._build(conn, chain, last, hour, claim=claim, now=now)
        if values is None or not rows.claim_new(conn, values):
            return None
        return _pending(_Values(values), claim)

    # -- the digest's content ------------------------------------------------------------------------------

    def _tree(self, conn: Connection, chain: Chain, last: Row | None, need_seq: int) -> _Tree | None:
        """The checkpoint covering ``need_seq`` and the leaves since the previous digest's; None to wait."""
        if self.ledger is None:
            return _Tree()
        if need_seq:
            cp = self.ledger.checkpoint_covering(conn, chain.project_id, need_seq)
            if cp is None:
                return None  # the ledger has not reached this hour's traces yet
        else:
            cp = self.ledger.latest_checkpoint(conn, chain.project_id)
            if cp is None:
                return _Tree()
        previous = last.tree_size if last is not None and last.tree_size is not None else chain.start_size
        first = min(previous, cp.size)
        hashes = tuple(self.ledger.leaf_hashes(conn, chain.project_id, first, cp.size))
        compact = None
        if last is None:
            compact = tuple(h.hex() for h in self.ledger.compact_range(conn, chain.project_id, first))
        return _Tree(cp.note, cp.size, first, hashes, compact)

    def _build(
        self, conn: Connection, chain: Chain, last: Row | None, hour: int, *, claim: str, now: int
    ) -> dict[str, Any] | None:
        found = files.written_files(conn, chain.tracker_id, hour, hour + HOUR_MS)
        tree = self._tree(conn, chain, last, max((f.last_seq for f in found), default=0))
        if tree is None:
            return None
        where = {"region": self.region, "project_id": chain.project_id, "tracker": chain.tracker_name}
        key = layout.digest_key(**where, prefix=chain.prefix, hour_start_ms=hour)
        leaves_key = None
        leaves = None
        if tree.size is not None:
            leaves_key = layout.leaves_key(**where, prefix=chain.prefix, hour_start_ms=hour)
            blob = fmt.encode_leaves(list(tree.hashes))
            leaves = fmt.TreeLeaves(
                chain.bucket, leaves_key, fmt.sha256_hex(blob), tree.first, len(tree.hashes)
            )
        signing = self.keys(conn, now)
        digest = fmt.Digest(
            project_id=chain.project_id,
            tracker_name=chain.tracker_name,
            region=self.region,
            digest_start_time=fmt.hour_text(hour),
            digest_end_time=fmt.hour_text(hour + HOUR_MS),
            digest_bucket=chain.bucket,
            digest_object=key,
            digest_public_key_fingerprint=signing.fingerprint,
            digest_end=chain.end_ms == hour,
            previous_digest_bucket=last.bucket if last else None,
            previous_digest_object=last.object_key if last else None,
            previous_digest_hash_value=last.sha256 if last else None,
            previous_digest_signature=last.signature if last else None,
            previous_digest_hash_algorithm=fmt.HASH_ALGORITHM if last else None,
            oldest_event_time=min((f.oldest_time for f in found), default=None),
            newest_event_time=max((f.newest_time for f in found), default=None),
            log_files=tuple(_log_file(f) for f in found),
            checkpoint=tree.note,
            tree_leaves=leaves,
            tree_compact_range=tree.compact,
        )
        body = fmt.encode(digest)
        sha = fmt.sha256_hex(body)
        return {
            "tracker_id": chain.tracker_id,
            "hour_ms": hour,
            "chain_start": chain.start_ms,
            "project_id": chain.project_id,
            "bucket": chain.bucket,
            "object_key": key,
            "body": body,
            "sha256": sha,
            "signature": signing.sign(fmt.string_to_sign(digest, sha)).hex(),
            "fingerprint": signing.fingerprint,
            "tree_size": tree.size,
            "leaves_key": leaves_key,
            "leaves_first": tree.first,
            "leaves_count": len(tree.hashes),
            "digest_end": int(digest.digest_end),
            "status": rows.CLAIMED,
            "claim": claim,
            "lease_until": now + self.lease_ms,
            "created_at": now,
        }

    # -- the objects ---------------------------------------------------------------------------------------

    async def _put(self, p: Pending) -> None:
        """PUT the leaves object, the digest, then its signature: a ``.sig`` names only a complete digest."""
        if p.leaves_key is not None:
            ledger = self.ledger
            assert ledger is not None  # a leaves key is only claimed with a ledger
            end = p.leaves_first + p.leaves_count
            hashes = await self.db.read(lambda c: ledger.leaf_hashes(c, p.project_id, p.leaves_first, end))
            await asyncio.to_thread(self._create, p.bucket, p.leaves_key, fmt.encode_leaves(list(hashes)))
        sig = fmt.Signature(p.signature, p.fingerprint)
        await asyncio.to_thread(self._create, p.bucket, p.object_key, p.body, fmt.signature_metadata(sig))
        await asyncio.to_thread(
            self._create, p.bucket, layout.signature_key(p.object_key), fmt.encode_signature(sig)
        )

    def _create(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Create-only, like the trace files: a repeat (a crash after the PUT, a claim taken over) finds
        the same bytes, fixed in the digest's row, and moves on. Different bytes under the key are never
        replaced: the verifier names them."""
        if self.store.create(bucket, key, data, metadata):
            return
        if self.store.get(bucket, key) != data:
            log.error("%s in bucket %s holds other bytes than this digest's: left as found", key, bucket)

    # -- the periodic task ---------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing digests failed; retrying in %.1fs", self.interval)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="digests")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class _Values:
    """Attribute access over a row's values (a fresh claim reads like a taken-over row)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _log_file(f: files.FileRecord) -> fmt.LogFile:
    return fmt.LogFile(
        bucket=f.bucket,
        object=f.object_key,
        log_hash_value=f.sha256,
        trace_count=f.trace_count,
        first_seq=f.first_seq,
        last_seq=f.last_seq,
        oldest_event_time=f.oldest_time,
        newest_event_time=f.newest_time,
    )


class LedgerReader:
    """The ledger (:mod:`opencts.ledger`) as the digests read it; signs a checkpoint when none covers an
    hour's files yet but the tree does."""

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer

    def latest_checkpoint(self, conn: Connection, project_id: str) -> Checkpoint | None:
        return ledger_repository.latest_checkpoint(conn, project_id)

    def checkpoint_covering(self, conn: Connection, project_id: str, seq: int) -> Checkpoint | None:
        return ledger_repository.checkpoint_covering(conn, project_id, seq, signer=self.signer)

    def leaf_hashes(self, conn: Connection, project_id: str, start: int, end: int) -> Sequence[bytes]:
        return tiles.leaf_hashes(conn, project_id, start, end)

    def compact_range(self, conn: Connection, project_id: str, size: int) -> Sequence[bytes]:
        return tiles.stored_compact_range(conn, project_id, size)


def settings_keys(box: SecretBox, settings: Settings) -> KeySource:
    """The installation's current signing key (``signing_keys``), rotated after ``signing_key_days``."""
    name = signing_keys.key_name_for(settings.ledger_origin, settings.region)

    def current(conn: Connection, now: int) -> SigningKey:
        return signing_keys.current_key(conn, box, now, settings.signing_key_days, name=name)

    return current


def open_writer(db: Database, store: ObjectStore, settings: Settings, box: SecretBox) -> DigestWriter:
    """The digest writer of this node, looking every minute (or every transfer interval when shorter)."""
    return DigestWriter(
        db,
        store,
        region=settings.region,
        keys=settings_keys(box, settings),
        ledger=LedgerReader(NoteSigner.from_settings(settings, box)),
        interval=interval_seconds(settings.transfer_interval),
    )

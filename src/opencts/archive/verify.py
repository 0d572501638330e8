"""The offline verifier: does an archive (a bucket, a copy of one, a tarball) hold exactly what its signed
digests say, and (``proofs``) is every archived trace a leaf of the signed Merkle tree?

It reads through the storage interface only and trusts nothing but the published keys: digest signatures
against them, the chain (each digest names its predecessor's object, hash and signature, so deleting,
reordering or re-signing digests shows), every trace file's SHA-256 against the digest that lists it, and
the files no digest lists. A deleted file is ``not found``; a file at another key with the hash of a
listed one ``has been moved`` (another folder or hour) or ``has been renamed`` (same folder); a file no
digest names ``not in any digest`` — unless it is newer than the last digest (``not yet covered``, not a
failure: its digest is not due yet) or older than the chain's first digest (written before validation).
Encrypted files must open through the key service. With ``proofs``, the leaves objects along each chain
(starting from the starting digest's compact range) must rebuild every checkpoint's root, every note must
carry a published note key's signature, and every trace (split from its file with ``raw_decode``, so its
bytes are the stored ones) must hash to one of those leaves. An older checkpoint (``checkpoint_note``)
must be a prefix of the archive's tree.

Work is spread over a thread pool (object reads and hashing release the GIL) and, with ``proofs``, a process
pool that parses and hashes every trace (``archive.verify_leaves``: that work holds the GIL);
``on_total``/``on_done`` report progress to whoever draws it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from opencts.archive.digest_format import (
    Digest,
    DigestFormatError,
    LogFile,
    check_signature,
    decode,
    decode_leaves,
    decode_signature,
    hour_text,
    sha256_hex,
)
from opencts.archive.envelope import EnvelopeError, EnvelopeHeader, is_envelope, open_envelope
from opencts.archive.layout import ArchiveKey, parse_key, signature_key
from opencts.archive.storage import NoSuchObject, StorageError
from opencts.archive.verify_leaves import MIN_FILES, LeafPool, split_traces
from opencts.archive.verify_source import PublishedKeys, Source
from opencts.archive.verify_tree import CheckpointError, append_leaf, range_root, verify_checkpoint
from opencts.clock import HOUR_MS

#: turns an envelope's header into its data key for a project (``KeyService.unwrap``)
Unwrap = Callable[[str, EnvelopeHeader], bytes]
ChainId = tuple[str, str, str, str | None]  # region, project, tracker, file prefix


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that did not verify (or, ``failure`` False, a note such as a file not yet covered)."""

    problem: str
    key: str | None = None
    hour: str | None = None
    trace_id: str | None = None
    detail: str = ""
    failure: bool = True


@dataclass(slots=True)
class Result:
    findings: list[Finding] = field(default_factory=list)
    digests: int = 0
    files: int = 0
    traces: int = 0
    leaves: int = 0

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.failure]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "digests": self.digests,
            "files": self.files,
            "traces": self.traces,
            "leaves": self.leaves,
            "failures": [asdict(f) for f in self.failures],
            "notes": [asdict(f) for f in self.findings if not f.failure],
        }


@dataclass(frozen=True, slots=True)
class Options:
    proofs: bool = False
    #: an older checkpoint note the archive's tree must extend
    checkpoint_note: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    workers: int = 4
    #: processes hashing traces with ``proofs``: None picks the CPU count (serial for a few files), 0 serial
    processes: int | None = None
    #: opens the key service on the first encrypted file (None: encrypted files cannot be read)
    key_service: Callable[[], Unwrap] | None = None
    #: only this project's chains: a bucket can hold other projects' trackers of the same name, whose
    #: files are neither this project's to see nor its failures
    project_id: str | None = None
    #: only this tracker's chains
    tracker: str | None = None


def _noop(_: int) -> None:
    return None


@dataclass(slots=True)
class _DigestRead:
    key: ArchiveKey
    blob: bytes
    digest: Digest | None
    signature: str | None


@dataclass(slots=True)
class _FileRead:
    key: ArchiveKey
    sha256: str | None
    #: (trace id, leaf hash) of every trace, with ``proofs``
    traces: list[tuple[str | None, bytes]] | None = None


@dataclass(slots=True)
class _Chain:
    digests: list[_DigestRead] = field(default_factory=list)
    files: list[ArchiveKey] = field(default_factory=list)
    leaves: set[bytes] = field(default_factory=set)


def _hour_of(ms: int) -> str:
    return hour_text(ms - ms % HOUR_MS)


class Verification:
    """One run over one source; :meth:`run` returns the :class:`Result`."""

    def __init__(
        self,
        source: Source,
        keys: PublishedKeys,
        options: Options,
        *,
        on_total: Callable[[int], None] = _noop,
        on_done: Callable[[int], None] = _noop,
    ) -> None:
        self.source = source
        self.keys = keys
        self.options = options
        self.on_total = on_total
        self.on_done = on_done
        self.result = Result()
        self._lock = threading.Lock()
        self._unwrap: Unwrap | None = None
        self._unwrap_error: str | None = None
        self.chains: dict[ChainId, _Chain] = defaultdict(_Chain)
        #: origin -> (start compact range, first index, leaves in order) of each rebuilt tree
        self.trees: dict[str, tuple[list[bytes], int, list[bytes]]] = {}
        self._leaves = LeafPool(0)

    def fail(self, problem: str, key: str | None = None, hour: str | None = None, **more: Any) -> None:
        with self._lock:
            self.result.findings.append(Finding(problem, key, hour, **more))

    # -- the run ----------------------------------------------------------------------------------------

    def run(self) -> Result:
        self._list()
        total = sum(len(c.digests) + len(c.files) for c in self.chains.values())
        self.on_total(total)
        processes = self._processes()
        with (
            LeafPool(processes) as self._leaves,
            # a reading thread waits on each process's file: at least as many threads as processes
            ThreadPoolExecutor(max_workers=max(1, self.options.workers, processes)) as pool,
        ):
            self._read_digests(pool)
            files = self._read_files(pool)
        for chain_id, chain in self.chains.items():
            self._check_chain(chain_id, chain)
            self._check_tail(chain)
            self._check_files(chain, files)
            if self.options.proofs or self.options.checkpoint_note:
                self._rebuild_tree(chain)
            if self.options.proofs:
                self._check_inclusion(chain, files)
        if self.options.checkpoint_note:
            self._check_old_checkpoint(self.options.checkpoint_note)
        self.result.findings.sort(key=lambda f: (not f.failure, f.hour or "", f.key or "", f.problem))
        return self.result

    def _processes(self) -> int:
        """How many processes hash the traces: parsing and hashing each trace holds the GIL, so with
        ``proofs`` the work goes to a process pool, unless there are too few files to pay for starting it."""
        if not self.options.proofs:
            return 0
        if self.options.processes is not None:
            return self.options.processes
        files = sum(len(c.files) for c in self.chains.values())
        return (os.cpu_count() or 1) if files >= MIN_FILES else 0

    def _in_range(self, start_ms: int, end_ms: int) -> bool:
        lo, hi = self.options.start_ms, self.options.end_ms
        return (lo is None or end_ms > lo) and (hi is None or start_ms < hi)

    def _list(self) -> None:
        src = self.source
        for info in src.store.list(src.bucket, src.prefix):
            key = parse_key(info.key)
            if key is None or key.kind in ("signature", "leaves") or not self._wanted(key):
                continue
            chain = self.chains[(key.region, key.project_id, key.tracker, key.prefix)]
            if key.kind == "digest" and self._in_range(key.stamp_ms - HOUR_MS, key.stamp_ms):
                chain.digests.append(_DigestRead(key, b"", None, None))
            elif key.kind == "trace" and self._in_range(key.stamp_ms, key.stamp_ms + 1):
                chain.files.append(key)

    def _wanted(self, key: ArchiveKey) -> bool:
        project, tracker = self.options.project_id, self.options.tracker
        return (project is None or key.project_id == project) and (tracker is None or key.tracker == tracker)

    def _get(self, key: str) -> bytes | None:
        try:
            return self.source.store.get(self.source.bucket, key)
        except NoSuchObject:
            return None

    # -- digests and their signatures -------------------------------------------------------------------

    def _read_digests(self, pool: ThreadPoolExecutor) -> None:
        reads = [d for chain in self.chains.values() for d in chain.digests]
        for _ in pool.map(self._read_digest, reads):
            self.on_done(1)
        self.result.digests = len(reads)
        for chain in self.chains.values():
            chain.digests.sort(key=lambda d: d.key.stamp_ms)

    def _read_digest(self, read: _DigestRead) -> None:
        key = read.key.key
        hour = _hour_of(read.key.stamp_ms - HOUR_MS)
        blob = self._get(key)
        if blob is None:  # listed, then gone
            self.fail("not found", key, hour)
            return
        read.blob = blob
        try:
            read.digest = decode(blob)
        except DigestFormatError as exc:
            self.fail("not a digest", key, hour, detail=str(exc))
            return
        self._check_digest_place(read)
        sig_blob = self._get(signature_key(key))
        if sig_blob is None:
            self.fail("signature not found", key, hour)
            return
        try:
            signature = decode_signature(sig_blob)
        except DigestFormatError as exc:
            self.fail("signature verification failed", key, hour, detail=str(exc))
            return
        read.signature = signature.signature
        if signature.public_key_fingerprint not in self.keys.fingerprints:
            self.fail("signed by an unpublished key", key, hour, detail=signature.public_key_fingerprint)
            return
        try:
            check_signature(blob, signature, self.keys.verifier())
        except DigestFormatError as exc:
            self.fail("signature verification failed", key, hour, detail=str(exc))

    def _check_digest_place(self, read: _DigestRead) -> None:
        digest = read.digest
        assert digest is not None
        key = read.key
        hour = digest.digest_start_time
        if digest.digest_object != key.key or digest.end_ms != key.stamp_ms:
            self.fail("has been moved", key.key, hour, detail=f"the digest says it is {digest.digest_object}")
        elif (key.year, key.month, key.day) != _ymd(digest.start_ms):
            self.fail("has been moved", key.key, hour, detail="folder date is not the hour's start")

    # -- the chain --------------------------------------------------------------------------------------

    def _check_chain(self, chain_id: ChainId, chain: _Chain) -> None:
        previous: _DigestRead | None = None
        for read in chain.digests:
            digest = read.digest
            if digest is None:
                continue
            if previous is None or previous.digest is None:
                self._check_first_link(read, digest)
            else:
                self._check_link(previous, previous.digest, read, digest)
            previous = read

    def _check_first_link(self, read: _DigestRead, digest: Digest) -> None:
        """The earliest digest in view: a starting one, or its predecessor (outside the range) matches."""
        if digest.is_start:
            return
        assert digest.previous_digest_object is not None
        before = self._get(digest.previous_digest_object)
        if before is None:
            self.fail(
                "chain broken",
                read.key.key,
                digest.digest_start_time,
                detail=f"previous digest {digest.previous_digest_object} not found",
            )
            self.fail(
                f"gap: no digest for hour {_hour_of(digest.start_ms - HOUR_MS)}",
                None,
                _hour_of(digest.start_ms - HOUR_MS),
            )
        elif sha256_hex(before) != digest.previous_digest_hash_value:
            self.fail(
                "chain broken",
                read.key.key,
                digest.digest_start_time,
                detail="previous digest's hash value doesn't match",
            )

    def _check_link(self, prev: _DigestRead, before: Digest, read: _DigestRead, digest: Digest) -> None:
        key, hour = read.key.key, digest.digest_start_time
        if digest.is_start and before.digest_end:
            return  # validation was off between the two chains
        for ms in range(before.end_ms, digest.start_ms, HOUR_MS):
            self.fail(f"gap: no digest for hour {_hour_of(ms)}", None, _hour_of(ms))
        if digest.is_start:
            self.fail("chain broken", key, hour, detail="a new chain starts but the previous did not end")
            return
        if digest.previous_digest_object != prev.key.key:
            self.fail(
                "chain broken", key, hour, detail=f"previous digest {digest.previous_digest_object} not found"
            )
        elif digest.previous_digest_hash_value != sha256_hex(prev.blob):
            self.fail("chain broken", key, hour, detail="previous digest's hash value doesn't match")
        elif digest.previous_digest_signature != prev.signature:
            self.fail("chain broken", key, hour, detail="previous digest's signature doesn't match")

    def _check_tail(self, chain: _Chain) -> None:
        """With an end (``--until``), every hour after the chain's last digest that is over by then is a
        gap, unless that digest ended the chain. Between two digests a gap shows in the chain; after the
        last one there is nothing to compare with, so deleting the newest digests would go unseen."""
        end = self.options.end_ms
        digests = [d.digest for d in chain.digests if d.digest is not None]
        if end is None or not digests or digests[-1].digest_end:
            return
        for ms in range(digests[-1].end_ms, end - HOUR_MS + 1, HOUR_MS):
            self.fail(f"gap: no digest for hour {_hour_of(ms)}", None, _hour_of(ms))

    # -- trace files ------------------------------------------------------------------------------------

    def _read_files(self, pool: ThreadPoolExecutor) -> dict[str, _FileRead]:
        keys = [k for chain in self.chains.values() for k in chain.files]
        reads: dict[str, _FileRead] = {}
        for read in pool.map(self._read_file, keys):
            reads[read.key.key] = read
            self.on_done(1)
        self.result.files = len(keys)
        return reads

    def _read_file(self, key: ArchiveKey) -> _FileRead:
        blob = self._get(key.key)
        if blob is None:
            return _FileRead(key, None)
        read = _FileRead(key, hashlib.sha256(blob).hexdigest())
        if not (key.encrypted or is_envelope(blob)) and not self.options.proofs:
            return read
        if not self.options.proofs:
            self._content(key, blob)  # it must open
            return read
        opened = self._decrypt(key, blob)
        if opened is None:
            return read
        found = self._leaves.leaves(opened, key.compress == "gzip")
        if found.problem is not None:
            self.fail(found.problem, key.key, _hour_of(key.stamp_ms), detail=found.detail)
        else:
            read.traces = found.pairs()
        return read

    def _decrypt(self, key: ArchiveKey, blob: bytes) -> bytes | None:
        """The file's bytes out of its envelope (as they are when it is not encrypted)."""
        hour = _hour_of(key.stamp_ms)
        if key.encrypted or is_envelope(blob):
            try:
                blob = open_envelope(blob, lambda header: self._unwrapper()(key.project_id, header))
            except (EnvelopeError, LookupError, ValueError, OSError) as exc:
                self.fail("cannot decrypt", key.key, hour, detail=str(exc))
                return None
            except Exception as exc:  # the key service's own errors (KeyNotFound: a domain error)
                self.fail("cannot decrypt", key.key, hour, detail=str(exc) or type(exc).__name__)
                return None
        return blob

    def _content(self, key: ArchiveKey, blob: bytes) -> bytes | None:
        """The file's content: decrypted and gunzipped (None, and a finding, when either fails)."""
        opened = self._decrypt(key, blob)
        if opened is None or key.compress != "gzip":
            return opened
        try:
            return gzip.decompress(opened)
        except (OSError, EOFError, zlib.error) as exc:
            self.fail("not gzip", key.key, _hour_of(key.stamp_ms), detail=str(exc))
            return None

    def _unwrapper(self) -> Unwrap:
        with self._lock:
            if self._unwrap is None:
                if self.options.key_service is None:
                    raise LookupError("no key service to decrypt with")
                self._unwrap = self.options.key_service()
            return self._unwrap

    def _check_files(self, chain: _Chain, reads: dict[str, _FileRead]) -> None:
        listed = self._listed(chain)
        present = {k.key: reads[k.key] for k in chain.files if reads[k.key].sha256 is not None}
        by_hash: dict[str, list[str]] = defaultdict(list)
        for key, read in present.items():
            if key not in listed:
                by_hash[read.sha256 or ""].append(key)
        claimed: set[str] = set()
        for key, (log, hour) in listed.items():
            found = present.get(key)
            if found is not None:
                self._check_listed(found, log, hour)
                continue
            elsewhere = [k for k in by_hash.get(log.log_hash_value, []) if k not in claimed]
            if elsewhere:
                claimed.add(elsewhere[0])
                problem = "has been renamed" if _same_place(key, elsewhere[0]) else "has been moved"
                self.fail(problem, key, hour, detail=f"now at {elsewhere[0]}")
            else:
                self.fail("not found", key, hour)
        self._check_unlisted(chain, [k for k in present if k not in listed and k not in claimed])

    def _listed(self, chain: _Chain) -> dict[str, tuple[LogFile, str]]:
        listed: dict[str, tuple[LogFile, str]] = {}
        for read in chain.digests:
            if read.digest is not None:
                for log in read.digest.log_files:
                    listed[log.object] = (log, read.digest.digest_start_time)
                    self.result.traces += log.trace_count if not self.options.proofs else 0
        return listed

    def _check_listed(self, read: _FileRead, log: LogFile, hour: str) -> None:
        key = read.key
        if read.sha256 != log.log_hash_value:
            self.fail("hash value doesn't match", key.key, hour)
        elif _hour_of(key.stamp_ms) != hour or (key.year, key.month, key.day) != _ymd(key.stamp_ms):
            self.fail("has been moved", key.key, hour, detail="its folder or stamp is not the digest's hour")
        if read.traces is not None and len(read.traces) != log.trace_count:
            self.fail(
                "trace count doesn't match",
                key.key,
                hour,
                detail=f"{len(read.traces)} traces, the digest says {log.trace_count}",
            )

    def _check_unlisted(self, chain: _Chain, keys: Iterable[str]) -> None:
        digests = [d.digest for d in chain.digests if d.digest is not None]
        first = digests[0].start_ms if digests else None
        last = digests[-1] if digests else None
        for key in keys:
            at = parse_key(key)
            assert at is not None
            hour = _hour_of(at.stamp_ms)
            if last is not None and at.stamp_ms >= last.end_ms and not last.digest_end:
                self.fail("not yet covered", key, hour, failure=False)
            elif first is None:
                self.fail("no digest for this tracker", key, hour, failure=False)
            elif at.stamp_ms < first:
                self.fail("before validation", key, hour, failure=False)
            else:
                self.fail("not in any digest", key, hour)

    # -- proofs -----------------------------------------------------------------------------------------

    def _rebuild_tree(self, chain: _Chain) -> None:
        """Rebuild each chain's tree from its starting digest's compact range and its leaves objects."""
        compact: list[bytes] | None = None
        size = 0
        start: tuple[list[bytes], int, list[bytes]] = ([], 0, [])
        for read in chain.digests:
            digest = read.digest
            if digest is None or digest.tree_leaves is None:
                continue
            if digest.is_start or compact is None:
                compact = self._starting_range(read, digest)
                if compact is None:
                    continue
                size = digest.tree_leaves.first_index
                start = (list(compact), size, [])
            ok, size = self._add_leaves(read, digest, compact, size, chain, start[2])
            if not ok:
                compact = None
                continue
            self._check_checkpoint(read, digest, compact, size, start)

    def _starting_range(self, read: _DigestRead, digest: Digest) -> list[bytes] | None:
        """Where a rebuild can start: a digest's compact range, or the empty tree when its leaves start at
        index 0 (a chain whose starting digest came before the project's first checkpoint)."""
        assert digest.tree_leaves is not None
        if digest.tree_compact_range is not None:
            return [bytes.fromhex(h) for h in digest.tree_compact_range]
        if digest.tree_leaves.first_index == 0:
            return []
        self.fail(
            "tree not rebuilt", read.key.key, digest.digest_start_time, failure=False,
            detail="no compact range to start from after the break above",
        )  # fmt: skip
        return None

    def _add_leaves(
        self,
        read: _DigestRead,
        digest: Digest,
        compact: list[bytes],
        size: int,
        chain: _Chain,
        order: list[bytes],
    ) -> tuple[bool, int]:
        tree = digest.tree_leaves
        assert tree is not None
        hour = digest.digest_start_time
        blob = self._get(tree.object)
        if blob is None:
            self.fail("not found", tree.object, hour, detail="leaves object")
            return False, size
        if sha256_hex(blob) != tree.hash_value:
            self.fail("hash value doesn't match", tree.object, hour, detail="leaves object")
            return False, size
        leaves = decode_leaves(blob)
        if tree.first_index != size or tree.count != len(leaves):
            self.fail(
                "chain broken", read.key.key, hour, detail=f"leaves start at {tree.first_index}, not {size}"
            )
            return False, size
        for leaf in leaves:
            append_leaf(compact, size, leaf)
            size += 1
        chain.leaves.update(leaves)
        order.extend(leaves)
        self.result.leaves += len(leaves)
        return True, size

    def _check_checkpoint(
        self,
        read: _DigestRead,
        digest: Digest,
        compact: list[bytes],
        size: int,
        start: tuple[list[bytes], int, list[bytes]],
    ) -> None:
        hour = digest.digest_start_time
        if digest.checkpoint is None:
            self.fail("checkpoint missing", read.key.key, hour)
            return
        try:
            point = verify_checkpoint(digest.checkpoint, self.keys.notes)
        except CheckpointError as exc:
            self.fail("checkpoint signature verification failed", read.key.key, hour, detail=str(exc))
            return
        if point.size != size or point.root != range_root(compact):
            self.fail(
                "checkpoint root doesn't match the leaves",
                read.key.key,
                hour,
                detail=f"tree size {point.size}, leaves rebuild {size}",
            )
            return
        self.trees[point.origin] = start

    def _check_inclusion(self, chain: _Chain, reads: dict[str, _FileRead]) -> None:
        for key in chain.files:
            read = reads[key.key]
            if read.traces is None:
                continue
            self.result.traces += len(read.traces)
            for trace_id, leaf in read.traces:
                if leaf not in chain.leaves:
                    self.fail("trace not in the ledger", key.key, _hour_of(key.stamp_ms), trace_id=trace_id)

    def _check_old_checkpoint(self, note: str) -> None:
        try:
            old = verify_checkpoint(note, self.keys.notes)
        except CheckpointError as exc:
            self.fail("checkpoint signature verification failed", None, None, detail=f"--checkpoint: {exc}")
            return
        tree = self.trees.get(old.origin)
        if tree is None:
            self.fail("checkpoint inconsistent", None, None, detail=f"no tree of origin {old.origin} here")
            return
        compact, first, leaves = tree
        if old.size < first:
            self.fail(
                "checkpoint older than the archive",
                None,
                None,
                failure=False,
                detail=f"size {old.size}: the archive's tree starts at {first}",
            )
            return
        if old.size > first + len(leaves):
            self.fail(
                "checkpoint inconsistent",
                None,
                None,
                detail=f"size {old.size} but the archive's tree has {first + len(leaves)} leaves",
            )
            return
        rebuilt = list(compact)
        for i, leaf in enumerate(leaves[: old.size - first]):
            append_leaf(rebuilt, first + i, leaf)
        if range_root(rebuilt) != old.root:
            self.fail(
                "checkpoint inconsistent",
                None,
                None,
                detail=f"the archive's tree at size {old.size} has another root",
            )


def _same_place(listed: str, found: str) -> bool:
    """A renamed file kept its folder and its hour; a moved one changed either."""
    a, b = parse_key(listed), parse_key(found)
    same_folder = listed.rsplit("/", 1)[0] == found.rsplit("/", 1)[0]
    return same_folder and a is not None and b is not None and _hour_of(a.stamp_ms) == _hour_of(b.stamp_ms)


def _ymd(ms: int) -> tuple[int, int, int]:
    text = hour_text(ms)
    return int(text[0:4]), int(text[5:7]), int(text[8:10])


def verify_source(
    source: Source,
    keys: PublishedKeys,
    options: Options,
    *,
    on_total: Callable[[int], None] = _noop,
    on_done: Callable[[int], None] = _noop,
) -> Result:
    """Verify ``source`` against ``keys``; StorageError passes through when the store cannot be read."""
    return Verification(source, keys, options, on_total=on_total, on_done=on_done).run()


__all__ = ["Finding", "Options", "Result", "StorageError", "split_traces", "verify_source"]

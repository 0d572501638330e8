"""A small signed archive written straight in the archive's formats, for the verifier's tests and benchmark.

It uses the same pure writers the service does (``layout`` names, ``digest_format`` digests, signatures
and leaves objects, RFC 9162 hashing, C2SP notes) without a database or a running transfer, so a test can
build hours of archive in milliseconds and then tamper with exactly one thing. Tests of the real pipeline
(transfer, ledger, digests) drive the service instead.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from opencts.archive import digest_format as fmt
from opencts.archive import layout
from opencts.archive.signing_keys import note_key_id, verifier_key
from opencts.archive.verify_tree import append_leaf, leaf_hash, range_root
from opencts.clock import HOUR_MS

REGION = "cn-north-4"
PROJECT = "0123456789abcdef0123456789abcdef"
TRACKER = "system"
BUCKET = "b1"


@dataclass(slots=True)
class SignKey:
    private: Ed25519PrivateKey
    name: str = f"opencts.{REGION}"

    @classmethod
    def new(cls) -> SignKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fmt.fingerprint(self.public)

    @property
    def vkey(self) -> str:
        return verifier_key(self.name, self.public)

    def published(self) -> dict[str, object]:
        """One entry of the signing-keys API's list."""
        return {
            "fingerprint": self.fingerprint,
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(self.public).decode(),
            "note_verifier_key": self.vkey,
            "valid_from": 0,
            "valid_to": None,
        }

    def note(self, origin: str, size: int, root: bytes) -> str:
        body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = note_key_id(self.name, self.public) + self.private.sign(body.encode())
        return f"{body}\n\u2014 {self.name} {base64.b64encode(sig).decode()}\n"


def trace_body(n: int, at_ms: int) -> bytes:
    """A trace's stored bytes (what the ledger hashes and the file holds)."""
    doc = {"trace_id": f"trace-{n:08d}", "trace_name": "createServer", "time": at_ms, "service_type": "ECS"}
    return json.dumps(doc, separators=(",", ":")).encode()


def file_content(bodies: list[bytes]) -> bytes:
    return b"[" + b",\n".join(bodies) + b"]"


@dataclass(slots=True)
class ArchiveBuilder:
    """Writes hour after hour of one tracker's files and digests into ``root/BUCKET``."""

    root: Path
    key: SignKey = field(default_factory=SignKey.new)
    origin: str = f"opencts.{REGION}/{PROJECT}"
    seq: int = 0
    size: int = 0
    compact: list[bytes] = field(default_factory=list)
    previous: tuple[str, bytes, str] | None = None  # key, stored bytes, signature
    notes: list[str] = field(default_factory=list)
    #: the stored bytes of trace number ``n`` at ``at_ms``
    body: Callable[[int, int], bytes] = trace_body
    #: encrypts a file's bytes (an envelope under a KMS key); None writes them in clear
    seal: Callable[[bytes], bytes] | None = None

    @property
    def bucket(self) -> Path:
        return self.root / BUCKET

    def keys_file(self, *extra: SignKey) -> Path:
        path = self.root / "keys.json"
        path.write_text(json.dumps({"keys": [k.published() for k in (self.key, *extra)]}))
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self.bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def hour(
        self, start_ms: int, files: int = 2, traces: int = 3, *, exported: dict[int, bytes] | None = None
    ) -> str:
        """Archive one hour: ``files`` files of ``traces`` traces, their leaves, a signed digest (its key).

        ``exported`` replaces the bodies of some traces (by number) in the files only, as if the database
        had been changed behind the tree before the transfer read it.
        """
        logs: list[fmt.LogFile] = []
        leaves: list[bytes] = []
        for i in range(files):
            at = start_ms + (i + 1) * 60_000
            numbers = list(range(self.seq + 1, self.seq + traces + 1))
            self.seq += traces
            bodies = [self.body(n, at) for n in numbers]
            leaves += [leaf_hash(b) for b in bodies]
            stored = [(exported or {}).get(n, b) for n, b in zip(numbers, bodies, strict=True)]
            logs.append(self._write_file(at, numbers, stored))
        return self._digest(start_ms, logs, leaves)

    def _write_file(self, at: int, numbers: list[int], bodies: list[bytes]) -> fmt.LogFile:
        random16 = layout.file_random("tr1", None, numbers[0], numbers[-1])
        key = layout.trace_file_key(
            region=REGION,
            project_id=PROJECT,
            tracker=TRACKER,
            service=None,
            prefix=None,
            at_ms=at,
            random16=random16,
            encrypted=self.seal is not None,
        )
        blob = gzip.compress(file_content(bodies), 6, mtime=0)
        if self.seal is not None:
            blob = self.seal(blob)
        self.put(key, blob)
        return fmt.LogFile(BUCKET, key, fmt.sha256_hex(blob), len(bodies), numbers[0], numbers[-1], at, at)

    def _digest(self, start_ms: int, logs: list[fmt.LogFile], leaves: list[bytes]) -> str:
        first_index, start_range = self.size, [h.hex() for h in self.compact]
        for leaf in leaves:
            append_leaf(self.compact, self.size, leaf)
            self.size += 1
        note = self.key.note(self.origin, self.size, range_root(self.compact))
        self.notes.append(note)
        leaves_key = layout.leaves_key(
            region=REGION, project_id=PROJECT, tracker=TRACKER, prefix=None, hour_start_ms=start_ms
        )
        leaves_blob = fmt.encode_leaves(leaves)
        self.put(leaves_key, leaves_blob)
        key = layout.digest_key(
            region=REGION, project_id=PROJECT, tracker=TRACKER, prefix=None, hour_start_ms=start_ms
        )
        prev = self.previous
        digest = fmt.Digest(
            project_id=PROJECT,
            tracker_name=TRACKER,
            region=REGION,
            digest_start_time=fmt.hour_text(start_ms),
            digest_end_time=fmt.hour_text(start_ms + HOUR_MS),
            digest_bucket=BUCKET,
            digest_object=key,
            digest_public_key_fingerprint=self.key.fingerprint,
            digest_end=False,
            previous_digest_bucket=BUCKET if prev else None,
            previous_digest_object=prev[0] if prev else None,
            previous_digest_hash_value=fmt.sha256_hex(prev[1]) if prev else None,
            previous_digest_signature=prev[2] if prev else None,
            oldest_event_time=min((f.oldest_event_time for f in logs), default=None),
            newest_event_time=max((f.newest_event_time for f in logs), default=None),
            log_files=tuple(logs),
            checkpoint=note,
            tree_leaves=fmt.TreeLeaves(
                BUCKET, leaves_key, fmt.sha256_hex(leaves_blob), first_index, len(leaves)
            ),
            tree_compact_range=tuple(start_range) if prev is None else None,
        )
        blob = fmt.encode(digest)
        signature = self.sign(key, blob, self.key)
        self.previous = (key, blob, signature)
        return key

    def sign(self, key: str, blob: bytes, signer: SignKey) -> str:
        """(Re-)sign the digest ``blob`` at ``key`` with ``signer``; writes both, returns the signature."""
        digest = fmt.decode(blob)
        if digest.digest_public_key_fingerprint != signer.fingerprint:
            blob = fmt.encode(replace(digest, digest_public_key_fingerprint=signer.fingerprint))
            digest = fmt.decode(blob)
        signature = signer.private.sign(fmt.string_to_sign(digest, fmt.sha256_hex(blob))).hex()
        self.put(key, blob)
        self.put(
            layout.signature_key(key), fmt.encode_signature(fmt.Signature(signature, signer.fingerprint))
        )
        return signature

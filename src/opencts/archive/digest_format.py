"""The digest file's bytes, its signature sibling and its leaves object: built, read back and checked.

Pure (no database, no store): the writer (:mod:`opencts.archive.digests`) builds with it and the offline
verifier reads with it, so both agree byte for byte on what was signed.

A digest is gzip (``mtime=0``, so a rewrite after a crash gives the same bytes) of one JSON object in the
CTS field names (spec §2.5), with SHA-256 and Ed25519 instead of MD5 and one static key. Its signature
covers the digest's stored bytes and the previous digest's signature, which is what chains the hours::

    f"{digest_end_time}\\n{bucket}/{object}\\n{sha256hex(stored bytes)}\\n{previous signature or 'null'}"

The leaves object is gzip of the 32-byte Merkle leaf hashes the digest's checkpoint added since the
previous digest's checkpoint, in log order.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from opencts.archive.layout import parse_stamp, stamp

HASH_ALGORITHM = "SHA-256"
SIGNATURE_ALGORITHM = "Ed25519"
LEAF_SIZE = 32


class DigestFormatError(ValueError):
    """The bytes are not a digest (or signature, or leaves object) this format writes."""


@dataclass(frozen=True, slots=True)
class LogFile:
    """One trace file as its digest lists it."""

    bucket: str
    object: str
    log_hash_value: str
    trace_count: int
    first_seq: int
    last_seq: int
    oldest_event_time: int
    newest_event_time: int
    log_hash_algorithm: str = HASH_ALGORITHM


@dataclass(frozen=True, slots=True)
class TreeLeaves:
    """Where the leaf hashes since the previous digest's checkpoint are, and which tree indexes they have."""

    bucket: str
    object: str
    hash_value: str
    first_index: int
    count: int


@dataclass(frozen=True, slots=True)
class Digest:
    project_id: str
    tracker_name: str
    region: str
    digest_start_time: str
    digest_end_time: str
    digest_bucket: str
    digest_object: str
    digest_public_key_fingerprint: str
    digest_end: bool
    previous_digest_bucket: str | None
    previous_digest_object: str | None
    previous_digest_hash_value: str | None
    previous_digest_signature: str | None
    oldest_event_time: int | None
    newest_event_time: int | None
    log_files: tuple[LogFile, ...]
    checkpoint: str | None
    tree_leaves: TreeLeaves | None
    tree_compact_range: tuple[str, ...] | None
    digest_signature_algorithm: str = SIGNATURE_ALGORITHM
    previous_digest_hash_algorithm: str | None = HASH_ALGORITHM

    @property
    def is_start(self) -> bool:
        """A starting digest: the first of a chain (validation enabled or re-enabled)."""
        return self.previous_digest_object is None

    @property
    def start_ms(self) -> int:
        return parse_stamp(self.digest_start_time)

    @property
    def end_ms(self) -> int:
        return parse_stamp(self.digest_end_time)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["log_files"] = [asdict(f) for f in self.log_files]
        doc["tree_leaves"] = asdict(self.tree_leaves) if self.tree_leaves else None
        doc["tree_compact_range"] = (
            list(self.tree_compact_range) if self.tree_compact_range is not None else None
        )
        if self.is_start:
            doc["previous_digest_hash_algorithm"] = None
        return doc


@dataclass(frozen=True, slots=True)
class Signature:
    """The ``<digest>.sig`` sibling: who signed and the signature."""

    signature: str
    public_key_fingerprint: str
    signature_algorithm: str = SIGNATURE_ALGORITHM


def hour_text(ms: int) -> str:
    """``2026-12-05T09-00-00Z``: a digest's start or end time (the same text as the object names' stamp)."""
    return stamp(ms)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, 6, mtime=0)


def _gunzip(blob: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        raise DigestFormatError(f"{what} is not gzip: {exc}") from None


def encode(digest: Digest) -> bytes:
    """The digest's stored bytes: deterministic for the same digest (sorted keys, gzip mtime 0)."""
    return _gzip(orjson.dumps(digest.to_json(), option=orjson.OPT_SORT_KEYS))


def decode(blob: bytes) -> Digest:
    """A digest read back from its stored bytes; :class:`DigestFormatError` when it is not one."""
    raw = _gunzip(blob, "digest")
    try:
        doc = orjson.loads(raw)
        files = tuple(LogFile(**f) for f in doc.pop("log_files"))
        leaves = doc.pop("tree_leaves")
        compact = doc.pop("tree_compact_range")
        digest = Digest(
            **doc,
            log_files=files,
            tree_leaves=TreeLeaves(**leaves) if leaves is not None else None,
            tree_compact_range=tuple(compact) if compact is not None else None,
        )
        parse_stamp(digest.digest_start_time), parse_stamp(digest.digest_end_time)  # the times must parse
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DigestFormatError(f"not a digest: {exc}") from None
    return digest


def string_to_sign(digest: Digest, stored_sha256: str) -> bytes:
    """What the key signs: the hour, where the digest is, its stored bytes' hash, the previous signature."""
    previous = digest.previous_digest_signature or "null"
    where = f"{digest.digest_bucket}/{digest.digest_object}"
    return f"{digest.digest_end_time}\n{where}\n{stored_sha256}\n{previous}".encode()


def encode_signature(signature: Signature) -> bytes:
    return orjson.dumps(asdict(signature), option=orjson.OPT_SORT_KEYS)


def signature_metadata(signature: Signature) -> dict[str, str]:
    """The digest object's metadata on S3 (CTS puts the signature there; the sibling is what copies keep)."""
    return {"signature": signature.signature, "signature-algorithm": signature.signature_algorithm}


def decode_signature(blob: bytes) -> Signature:
    try:
        doc = orjson.loads(blob)
        sig = Signature(
            signature=str(doc["signature"]),
            public_key_fingerprint=str(doc["public_key_fingerprint"]),
            signature_algorithm=str(doc["signature_algorithm"]),
        )
        bytes.fromhex(sig.signature)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DigestFormatError(f"not a digest signature: {exc}") from None
    return sig


#: checks ``signature`` over ``data`` with the published key of ``fingerprint`` (``verify_signature`` of
#: ``signing_keys`` with the published list bound); False for an unknown key or a bad signature
Verifier = Callable[[str, bytes, bytes], bool]


def check_signature(blob: bytes, signature: Signature, verify: Verifier) -> Digest:
    """The digest in ``blob`` when ``signature`` is a good one over it; :class:`DigestFormatError` otherwise.

    Also checks that the digest and its signature name the same key, so a digest cannot claim one key while
    another signed it.
    """
    digest = decode(blob)
    if signature.signature_algorithm != SIGNATURE_ALGORITHM:
        raise DigestFormatError(f"unknown signature algorithm {signature.signature_algorithm!r}")
    if signature.public_key_fingerprint != digest.digest_public_key_fingerprint:
        raise DigestFormatError("the signature and the digest name different keys")
    data = string_to_sign(digest, sha256_hex(blob))
    if not verify(signature.public_key_fingerprint, data, bytes.fromhex(signature.signature)):
        raise DigestFormatError("signature verification failed")
    return digest


def ed25519_verifier(public_keys: dict[str, bytes]) -> Verifier:
    """A :data:`Verifier` over raw 32-byte Ed25519 public keys by fingerprint (hex SHA-256 of the raw key)."""

    def verify(fingerprint: str, data: bytes, signature: bytes) -> bool:
        raw = public_keys.get(fingerprint)
        if raw is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify


def fingerprint(public_key: bytes) -> str:
    """A key's fingerprint: hex SHA-256 of its 32 raw public key bytes."""
    return sha256_hex(public_key)


def encode_leaves(hashes: list[bytes]) -> bytes:
    """The leaves object: the 32-byte leaf hashes back to back, gzip (mtime 0)."""
    if any(len(h) != LEAF_SIZE for h in hashes):
        raise ValueError("a leaf hash is 32 bytes")
    return _gzip(b"".join(hashes))


def decode_leaves(blob: bytes) -> list[bytes]:
    raw = _gunzip(blob, "leaves object")
    if len(raw) % LEAF_SIZE:
        raise DigestFormatError("leaves object is not a whole number of 32-byte hashes")
    return [raw[i : i + LEAF_SIZE] for i in range(0, len(raw), LEAF_SIZE)]

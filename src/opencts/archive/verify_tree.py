"""What the verifier needs of the Merkle tree and its checkpoints, pure: RFC 9162 hashes, compact ranges,
C2SP signed notes checked against verifier keys.

The ledger (``opencts.ledger.hashing`` and ``checkpoint``) builds the same tree and signs the notes; this
module only reads them back, so it holds nothing the verifier would have to trust the service for. The
hashing is RFC 9162's: leaf ``SHA-256(0x00 || body)``, node ``SHA-256(0x01 || left || right)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "


class NoteError(ValueError):
    """Not a checkpoint note, or no known key signed it."""


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def append_leaf(compact: list[bytes], size: int, leaf: bytes) -> None:
    """Add ``leaf`` to the compact range of a tree of ``size`` leaves (the roots of its perfect subtrees,
    largest first), in place: equal-sized neighbours merge as in a binary counter."""
    merged = leaf
    while size & 1:
        merged = node_hash(compact.pop(), merged)
        size >>= 1
    compact.append(merged)


def range_root(compact: list[bytes]) -> bytes:
    """The tree's root (RFC 9162 MTH) from its compact range: the subtrees folded right to left."""
    if not compact:
        return hashlib.sha256(b"").digest()
    root = compact[-1]
    for left in reversed(compact[:-1]):
        root = node_hash(left, root)
    return root


def range_size_ok(compact: list[bytes], size: int) -> bool:
    """A compact range of ``size`` has one hash per set bit of ``size``."""
    return len(compact) == bin(size).count("1")


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A C2SP note verifier key: ``name+hhhhhhhh+base64(0x01 || raw Ed25519 public key)``."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> NoteKey:
        try:
            name, key_id, material = vkey.split("+", 2)
            raw = base64.b64decode(material, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError(f"not a note verifier key: {vkey!r}") from None
        if raw[:1] != _ED25519 or len(raw) != 33:
            raise NoteError(f"not an Ed25519 note verifier key: {vkey!r}")
        key = cls(name, bytes.fromhex(key_id), raw[1:])
        if key.key_id != note_key_id(name, raw[1:]):
            raise NoteError(f"the key id of {vkey!r} does not match its key")
        return key


def note_key_id(name: str, public_key: bytes) -> bytes:
    """C2SP key id: the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key)."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """The checkpoint body and its signature lines ``(key name, keyid || signature)``; unverified."""
    body, sep, signatures = note.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) < 3:
        raise NoteError("not a checkpoint note")
    try:
        point = Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True), body + "\n")
    except (ValueError, binascii.Error):
        raise NoteError("checkpoint size or root does not parse") from None
    sigs: list[tuple[str, bytes]] = []
    for line in signatures.splitlines():
        if line.startswith(_SIG_PREFIX):
            name, _, blob = line.removeprefix(_SIG_PREFIX).rpartition(" ")
            try:
                sigs.append((name, base64.b64decode(blob, validate=True)))
            except (ValueError, binascii.Error):
                continue
    return point, sigs


def verify_note(note: str, keys: list[NoteKey]) -> Checkpoint:
    """The checkpoint of ``note`` when one of ``keys`` signed it; :class:`NoteError` otherwise."""
    point, sigs = parse_checkpoint(note)
    for name, blob in sigs:
        for key in keys:
            if key.name != name or blob[:4] != key.key_id:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key.public_key).verify(blob[4:], point.text.encode())
            except (InvalidSignature, ValueError):
                continue
            return point
    raise NoteError("no published note key signed the checkpoint")

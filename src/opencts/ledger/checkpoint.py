"""Checkpoints as C2SP ``tlog-checkpoint`` signed notes: pure, no database (the verifier uses it).

A note (C2SP ``signed-note``) is the checkpoint body, a blank line, then signature lines::

    opencts.REGION/PROJECT_ID          origin: the log's identity
    1234                               tree size, decimal
    <base64 of the 32-byte root>       RFC 9162 root hash
                                       blank line
    — KEY_NAME <base64(key id || Ed25519 signature)>

The signature covers the body's bytes, final newline included (not the blank line). The key id is the
first 4 bytes of SHA-256(KEY_NAME || 0x0A || 0x01 || public key) (:func:`signing_keys.note_key_id`), so
a witness holding the verifier key ``KEY_NAME+hhhhhhhh+base64(0x01||key)`` can check it with any
signed-note library (golang.org/x/mod/sumdb/note, transparency-dev/formats). The time of a checkpoint is
not in the note (no extension line, so every witness accepts it); the database keeps it beside the note.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from opencts.archive.signing_keys import NOTE_KEY_TYPE, SigningKey, note_key_id
from opencts.ledger.hashing import HASH_SIZE

SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space


class CheckpointError(ValueError):
    """A note that is malformed, or whose signature does not verify under the given key."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head. ``time_ms`` and ``last_seq`` are known only to the database that made it."""

    origin: str
    size: int
    root: bytes
    note: str
    time_ms: int | None = None
    last_seq: int | None = None


def origin_for(key_name: str, project_id: str) -> str:
    """A project's log origin: ``settings.ledger_origin or 'opencts.' + region``, then ``/PROJECT_ID``."""
    return f"{key_name}/{project_id}"


def body_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(origin: str, size: int, root: bytes, key: SigningKey) -> str:
    """The signed note of a tree head, signed by ``key`` under its note key name."""
    body = body_text(origin, size, root)
    signature = key.key_id + key.sign(body.encode())
    return f"{body}\n{SIGNATURE_PREFIX}{key.key_name} {base64.b64encode(signature).decode()}\n"


def _split(text: str) -> tuple[str, list[str]]:
    body, sep, signatures = text.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise CheckpointError("not a signed note: no blank line before the signatures, or no final newline")
    return body + "\n", signatures[:-1].split("\n")


def parse_note(text: str) -> Checkpoint:
    """The checkpoint a note states, signatures unchecked (see :func:`verify_note`)."""
    body, _ = _split(text)
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise CheckpointError("a checkpoint has an origin, a tree size and a root hash")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"the tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != HASH_SIZE:
        raise CheckpointError("the root hash is not 32 bytes in base64")
    return Checkpoint(origin=origin, size=int(size_text), root=root, note=text)


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """``(name, key id, raw Ed25519 public key)`` of a verifier key ``name+hhhhhhhh+base64(0x01||key)``."""
    try:
        name, key_id_hex, encoded = vkey.strip().split("+", 2)
        key_id = bytes.fromhex(key_id_hex)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError(f"not a signed-note verifier key: {vkey!r}") from None
    if raw[:1] != NOTE_KEY_TYPE or len(raw) != 33 or note_key_id(name, raw[1:]) != key_id:
        raise CheckpointError(f"not an Ed25519 signed-note verifier key: {vkey!r}")
    return name, key_id, raw[1:]


def verify_note(text: str, vkey: str) -> Checkpoint:
    """The checkpoint of ``text`` if a signature line by ``vkey`` verifies, else :class:`CheckpointError`."""
    verify_signed_note(text, vkey)
    return parse_note(text)


def verify_signed_note(text: str, vkey: str) -> str:
    """The body of any C2SP signed note if a signature line by ``vkey`` verifies over it."""
    name, key_id, public = parse_vkey(vkey)
    body, lines = _split(text)
    key = Ed25519PublicKey.from_public_bytes(public)
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"a signature line must start with an em dash: {line!r}")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if signer != name or raw[:4] != key_id:
            continue
        try:
            key.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError(f"the signature by {name} does not verify") from None
        return body
    raise CheckpointError(f"the note carries no signature by {name}+{key_id.hex()}")

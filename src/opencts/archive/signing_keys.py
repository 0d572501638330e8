"""The installation's Ed25519 signing keys: they sign ledger checkpoints and digest files.

One key is current at a time. It signs for ``settings.signing_key_days`` days; the first signature asked
for after that (or ``opencts archive keys rotate``) creates its successor, and the old key gets a
``valid_to`` but stays published, because everything it signed must go on verifying for years. The keys
are global to the installation (not per project), like CloudTrail's regional digest keys, so an auditor
holds one short list.

Each private key is a 32-byte Ed25519 seed sealed under the master key (:class:`SecretBox`), with the
key's fingerprint as associated data. Keys carry ``generation`` 1, 2, ... (unique): two nodes sharing a
PostgreSQL that both decide to rotate both insert the next generation, one insert wins, and the other
node adopts the winner's key, so there is never more than one current key.

Published form (``GET /v3/{project_id}/archive/signing-keys``, ``opencts archive keys``)::

    {"fingerprint": hex SHA-256 of the raw public key, "algorithm": "Ed25519",
     "public_key": base64 of the raw 32 bytes, "public_key_pem": SubjectPublicKeyInfo PEM,
     "note_verifier_key": "NAME+hhhhhhhh+base64(0x01 || public key)"   (C2SP signed-note verifier key),
     "valid_from": ms, "valid_to": ms | null}

The verifier key's ``hhhhhhhh`` is the note key id: the first 4 bytes of
SHA-256(name || 0x0A || 0x01 || public key), as C2SP signed-note defines it for Ed25519 (type 0x01).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, select, update

from opencts.clock import DAY_MS
from opencts.iam.secrets import MasterKeyError, SealedValueError, SecretBox
from opencts.store.tables import signing_keys
from opencts.store.upsert import insert_ignore

ALGORITHM = "Ed25519"
#: the signed-note signature type of Ed25519 (C2SP signed-note)
NOTE_KEY_TYPE = b"\x01"
#: the key name when none is given: ``settings.ledger_origin or f"opencts.{region}"`` is what the server uses
DEFAULT_KEY_NAME = "opencts"


def key_name_for(ledger_origin: str | None, region: str) -> str:
    """The note key name (and checkpoint origin prefix) of an installation's settings."""
    return ledger_origin or f"opencts.{region}"


def fingerprint_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def note_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of a C2SP signed-note Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + NOTE_KEY_TYPE + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The C2SP verifier key text ``name+hhhhhhhh+base64(0x01 || key)``."""
    encoded = base64.b64encode(NOTE_KEY_TYPE + public_key).decode()
    return f"{name}+{note_key_id(name, public_key).hex()}+{encoded}"


def _context(fingerprint: str) -> str:
    return f"signing_keys:{fingerprint}"


@dataclass(frozen=True)
class SigningKey:
    """A loaded key that can sign; what :func:`current_key` returns."""

    fingerprint: str
    key_name: str
    public_key: bytes
    valid_from: int
    private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.private.sign(data)

    @property
    def vkey(self) -> str:
        return verifier_key(self.key_name, self.public_key)

    @property
    def key_id(self) -> bytes:
        return note_key_id(self.key_name, self.public_key)


@dataclass(frozen=True)
class PublishedKey:
    """A public key as published (read back from the JSON by :func:`load_published`)."""

    fingerprint: str
    algorithm: str
    public_key: bytes
    note_verifier_key: str
    valid_from: int
    valid_to: int | None

    def valid_at(self, ms: int) -> bool:
        return self.valid_from <= ms and (self.valid_to is None or ms < self.valid_to)


def current_key(
    conn: Connection, box: SecretBox, now_ms: int, days: int, *, name: str | None = None
) -> SigningKey:
    """The key that signs now; creates the first one, or a successor once it is ``days`` old.

    ``name`` is the note key name a new key signs as (default: the current key's, else
    :data:`DEFAULT_KEY_NAME`); when the current key has another name, a new key takes over, since the
    name is part of a note key's identity. Call it in a write transaction.
    """
    row = _current_row(conn)
    if row is not None and now_ms < row.valid_from + days * DAY_MS and (name is None or name == row.key_name):
        return _load(box, row)
    generation = 1 if row is None else row.generation + 1
    key_name = name or (row.key_name if row is not None else DEFAULT_KEY_NAME)
    _insert_generation(conn, box, generation, key_name, now_ms)
    # the winner of the insert (this node or another) is the current key now
    new = _current_row(conn)
    assert new is not None and new.generation >= generation
    return _load(box, new)


def rotate(conn: Connection, box: SecretBox, now_ms: int, *, name: str | None = None) -> SigningKey:
    """Retire the current key now and start a new one (``opencts archive keys rotate``)."""
    row = _current_row(conn)
    generation = 1 if row is None else row.generation + 1
    key_name = name or (row.key_name if row is not None else DEFAULT_KEY_NAME)
    _insert_generation(conn, box, generation, key_name, now_ms)
    new = _current_row(conn)
    assert new is not None
    return _load(box, new)


def _current_row(conn: Connection) -> Any:
    return conn.execute(select(signing_keys).order_by(signing_keys.c.generation.desc()).limit(1)).first()


def _insert_generation(conn: Connection, box: SecretBox, generation: int, name: str, now_ms: int) -> None:
    """Insert key ``generation`` unless another node did; the one that inserts retires the predecessor."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = _raw_public(private.public_key())
    fingerprint = fingerprint_of(public)
    values = {
        "fingerprint": fingerprint,
        "generation": generation,
        "algorithm": ALGORITHM,
        "key_name": name,
        "public_key": public,
        "private_key": box.seal(seed, context=_context(fingerprint)),
        "valid_from": now_ms,
        "valid_to": None,
    }
    if insert_ignore(conn, signing_keys, values, key=["generation"]):
        conn.execute(
            update(signing_keys)
            .where(signing_keys.c.generation < generation, signing_keys.c.valid_to.is_(None))
            .values(valid_to=now_ms)
        )


def _load(box: SecretBox, row: Any) -> SigningKey:
    try:
        seed = box.open(row.private_key, context=_context(row.fingerprint))
    except SealedValueError as exc:
        raise MasterKeyError(f"the archive signing key cannot be read: {exc}") from None
    return SigningKey(
        fingerprint=row.fingerprint,
        key_name=row.key_name,
        public_key=bytes(row.public_key),
        valid_from=int(row.valid_from),
        private=Ed25519PrivateKey.from_private_bytes(seed),
    )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def published_keys(conn: Connection) -> list[dict[str, Any]]:
    """Every key, oldest first, in the published form (see the module docstring); no private part."""
    rows = conn.execute(select(signing_keys).order_by(signing_keys.c.generation)).all()
    return [_published(row) for row in rows]


def _published(row: Any) -> dict[str, Any]:
    public = bytes(row.public_key)
    pem = Ed25519PublicKey.from_public_bytes(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "fingerprint": row.fingerprint,
        "algorithm": row.algorithm,
        "public_key": base64.b64encode(public).decode(),
        "public_key_pem": pem.decode(),
        "note_verifier_key": verifier_key(row.key_name, public),
        "valid_from": int(row.valid_from),
        "valid_to": None if row.valid_to is None else int(row.valid_to),
    }


def parse_published(doc: Any) -> list[PublishedKey]:
    """Published keys from the API's JSON (``{"keys": [...]}``) or a bare list; ValueError if malformed."""
    items = doc.get("keys") if isinstance(doc, Mapping) else doc
    if not isinstance(items, list):
        raise ValueError('published keys: expected {"keys": [...]} or a list')
    keys = []
    for item in items:
        try:
            public = base64.b64decode(item["public_key"], validate=True)
            key = PublishedKey(
                fingerprint=str(item["fingerprint"]).lower(),
                algorithm=str(item.get("algorithm", ALGORITHM)),
                public_key=public,
                note_verifier_key=str(item.get("note_verifier_key", "")),
                valid_from=int(item.get("valid_from", 0)),
                valid_to=None if item.get("valid_to") is None else int(item["valid_to"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"published keys: a malformed key entry ({exc})") from None
        if len(public) != 32 or fingerprint_of(public) != key.fingerprint:
            raise ValueError(f"published keys: key {key.fingerprint} does not match its fingerprint")
        keys.append(key)
    return keys


def load_published(path: Path) -> list[PublishedKey]:
    """The keys of a file written by ``opencts archive keys --output FILE`` (the verifier's ``--keys``)."""
    return parse_published(json.loads(path.read_text()))


def verify_signature(
    published: list[PublishedKey],
    fingerprint: str,
    data: bytes,
    signature: bytes,
    *,
    at_ms: int | None = None,
) -> bool:
    """Whether ``signature`` over ``data`` is by the published key ``fingerprint``.

    False when no published key has that fingerprint (signed by an unpublished key) or, with ``at_ms``,
    when the key was not valid at that time.
    """
    for key in published:
        if key.fingerprint != fingerprint.lower() or key.algorithm != ALGORITHM:
            continue
        if at_ms is not None and not key.valid_at(at_ms):
            return False
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True
    return False

"""The envelope of an encrypted trace file: AES-256-GCM under a one-file data key, wrapped by a KMS key.

::

    blob   = b"OCTSENC1" || len(header) (4 bytes, big-endian) || header
             || AESGCM(data_key).encrypt(nonce, content, aad)
    header = JSON {"alg": "AES-256-GCM", "kms_id": str, "key_version": int, "wrapped_key": b64, "nonce": b64}
    aad    = b"OCTSENC1" || len(header) || header

The header travels in clear so a reader knows which key version to ask the key service for, and it is the
associated data of the content's encryption: changing one byte of it (another key version, another
nonce) makes the file fail to open, like changing the ciphertext does. ``wrapped_key`` is a 12-byte nonce
followed by AES-GCM of the data key under the KMS key version's material, with the ``kms_id`` as
associated data, so a wrapped key copied into a header naming another key does not unwrap either.

Every file gets a fresh random data key (:class:`DataKey`, from ``KeyService.data_key``); the key service
keeps only the versions' material, so reading a file needs that service (or its database and master key)
and nothing else. Crypto comes from ``cryptography``; nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"OCTSENC1"
ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
_LEN_BYTES = 4
_MAX_HEADER = 64 * 1024


class EnvelopeError(ValueError):
    """The blob is not an envelope, or does not open: damaged, tampered with, or under another key."""


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The clear part of an envelope: which key version wrapped the data key, and the wrapped key."""

    kms_id: str
    key_version: int
    wrapped_key: bytes
    nonce: bytes
    alg: str = ALGORITHM

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "alg": self.alg,
                "kms_id": self.kms_id,
                "key_version": self.key_version,
                "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
                "nonce": base64.b64encode(self.nonce).decode(),
            },
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key in clear (``key``) and the header fields that let its owner unwrap it later."""

    key: bytes
    kms_id: str
    key_version: int
    wrapped_key: bytes

    def __repr__(self) -> str:  # never print the key itself
        return f"DataKey(kms_id={self.kms_id!r}, key_version={self.key_version})"


def wrap_data_key(material: bytes, kms_id: str, data_key: bytes) -> bytes:
    """``nonce || AESGCM(material).encrypt(nonce, data_key, kms_id)``: the ``wrapped_key`` of a header."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(material).encrypt(nonce, data_key, kms_id.encode())


def unwrap_data_key(material: bytes, header: EnvelopeHeader) -> bytes:
    """The data key of ``header`` under a key version's ``material``; :class:`EnvelopeError` if not."""
    wrapped = header.wrapped_key
    try:
        key = AESGCM(material).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], header.kms_id.encode())
    except (InvalidTag, ValueError):
        raise EnvelopeError(
            f"the data key does not unwrap under key {header.kms_id} version {header.key_version}"
        ) from None
    if len(key) != KEY_BYTES:
        raise EnvelopeError("the unwrapped data key is not 32 bytes")
    return key


def new_data_key(material: bytes, kms_id: str, key_version: int) -> DataKey:
    """A random 256-bit data key, wrapped under one key version's ``material``."""
    key = AESGCM.generate_key(bit_length=256)
    return DataKey(key, kms_id, key_version, wrap_data_key(material, kms_id, key))


def is_envelope(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def _split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """(aad, header JSON, ciphertext) of ``blob``."""
    if not is_envelope(blob):
        raise EnvelopeError("not an encrypted trace file (no OCTSENC1 magic)")
    start = len(MAGIC) + _LEN_BYTES
    size = int.from_bytes(blob[len(MAGIC) : start], "big")
    if size > _MAX_HEADER or len(blob) < start + size:
        raise EnvelopeError("the envelope header is truncated")
    return blob[: start + size], blob[start : start + size], blob[start + size :]


def _parse_header(raw: bytes) -> EnvelopeHeader:
    try:
        doc = json.loads(raw)
        header = EnvelopeHeader(
            kms_id=str(doc["kms_id"]),
            key_version=int(doc["key_version"]),
            wrapped_key=base64.b64decode(doc["wrapped_key"], validate=True),
            nonce=base64.b64decode(doc["nonce"], validate=True),
            alg=str(doc["alg"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise EnvelopeError("the envelope header is not valid JSON of the expected shape") from None
    if header.alg != ALGORITHM:
        raise EnvelopeError(f"unknown envelope algorithm {header.alg!r}")
    if len(header.nonce) != NONCE_BYTES:
        raise EnvelopeError("the envelope nonce is not 12 bytes")
    return header


def read_header(blob: bytes) -> EnvelopeHeader:
    """The header of ``blob`` (which key, which version), without decrypting anything."""
    return _parse_header(_split(blob)[1])


def seal(content: bytes, data_key: DataKey) -> bytes:
    """``content`` encrypted under ``data_key``, in the envelope format above."""
    nonce = os.urandom(NONCE_BYTES)
    header = EnvelopeHeader(
        kms_id=data_key.kms_id,
        key_version=data_key.key_version,
        wrapped_key=data_key.wrapped_key,
        nonce=nonce,
    ).to_json()
    aad = MAGIC + len(header).to_bytes(_LEN_BYTES, "big") + header
    return aad + AESGCM(data_key.key).encrypt(nonce, content, aad)


def open_envelope(blob: bytes, unwrap: Callable[[EnvelopeHeader], bytes]) -> bytes:
    """The content of ``blob``; ``unwrap`` turns its header into the data key (``KeyService.unwrap``).

    Raises :class:`EnvelopeError` when the blob is damaged or was changed anywhere (header or
    ciphertext); whatever ``unwrap`` raises (a key the service does not know) passes through.
    """
    aad, raw, ciphertext = _split(blob)
    header = _parse_header(raw)
    key = unwrap(header)
    try:
        return AESGCM(key).decrypt(header.nonce, ciphertext, aad)
    except (InvalidTag, ValueError):
        raise EnvelopeError(
            f"the encrypted content does not authenticate (key {header.kms_id} version {header.key_version}):"
            " the file was changed or damaged"
        ) from None

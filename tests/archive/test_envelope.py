"""The envelope of encrypted trace files: it round-trips, and any change to header or ciphertext is caught."""

from __future__ import annotations

import json
import os

import pytest

from opencts.archive.envelope import (
    MAGIC,
    EnvelopeError,
    EnvelopeHeader,
    is_envelope,
    new_data_key,
    open_envelope,
    read_header,
    seal,
    unwrap_data_key,
)

MATERIAL = os.urandom(32)


def unwrap(header: EnvelopeHeader) -> bytes:
    return unwrap_data_key(MATERIAL, header)


def _rewrite_header(blob: bytes, change: dict[str, object]) -> bytes:
    size = int.from_bytes(blob[8:12], "big")
    header = json.loads(blob[12 : 12 + size])
    header.update(change)
    raw = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + len(raw).to_bytes(4, "big") + raw + blob[12 + size :]


def test_round_trip_and_header() -> None:
    key = new_data_key(MATERIAL, "kms-1", 3)
    content = b'[{"trace_id":"a"},\n{"trace_id":"b"}]'
    blob = seal(content, key)
    assert is_envelope(blob) and not is_envelope(content)
    header = read_header(blob)
    assert (header.kms_id, header.key_version, header.alg) == ("kms-1", 3, "AES-256-GCM")
    assert header.wrapped_key == key.wrapped_key and len(header.nonce) == 12
    assert open_envelope(blob, unwrap) == content
    assert content not in blob
    assert seal(content, key) != blob  # a fresh nonce every time
    assert "key=" not in repr(key) and repr(key.key) not in repr(key)


def test_a_changed_ciphertext_byte_is_caught() -> None:
    blob = bytearray(seal(b"x" * 100, new_data_key(MATERIAL, "kms-1", 1)))
    blob[-20] ^= 1
    with pytest.raises(EnvelopeError, match="does not authenticate"):
        open_envelope(bytes(blob), unwrap)


def test_a_changed_header_is_caught() -> None:
    """The header is associated data: even a field the key unwrap does not use (the version) counts."""
    blob = seal(b"content", new_data_key(MATERIAL, "kms-1", 1))
    with pytest.raises(EnvelopeError, match="does not authenticate"):
        open_envelope(_rewrite_header(blob, {"key_version": 2}), unwrap)
    with pytest.raises(EnvelopeError, match="does not unwrap"):  # the wrapped key is bound to its key id
        open_envelope(_rewrite_header(blob, {"kms_id": "kms-2"}), unwrap)
    with pytest.raises(EnvelopeError, match="algorithm"):
        open_envelope(_rewrite_header(blob, {"alg": "AES-128-CBC"}), unwrap)


def test_another_key_does_not_open_it() -> None:
    blob = seal(b"content", new_data_key(os.urandom(32), "kms-1", 1))
    with pytest.raises(EnvelopeError, match="does not unwrap"):
        open_envelope(blob, unwrap)


@pytest.mark.parametrize(
    "blob", [b"", b"OCTSENC1", b"OCTSENC1\x00\x00\x00\x10{}", b"OCTSENC1\x00\x00\x00\x02{}x"]
)
def test_damaged_envelopes_are_refused(blob: bytes) -> None:
    with pytest.raises(EnvelopeError):
        open_envelope(blob, unwrap)

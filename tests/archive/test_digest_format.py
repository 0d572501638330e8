"""The digest format on its own: bytes that read back the same, a signature that checks, tampering refused."""

from __future__ import annotations

import gzip
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from opencts.archive import digest_format as fmt

HOUR = 1_780_002_000_000 // 3_600_000 * 3_600_000


def digest(**changes: object) -> fmt.Digest:
    base = fmt.Digest(
        project_id="p" * 32,
        tracker_name="system",
        region="r1",
        digest_start_time=fmt.hour_text(HOUR),
        digest_end_time=fmt.hour_text(HOUR + 3_600_000),
        digest_bucket="b1",
        digest_object="CloudTraces/x/Digest/d.json.gz",
        digest_public_key_fingerprint="00" * 32,
        digest_end=False,
        previous_digest_bucket="b1",
        previous_digest_object="CloudTraces/x/Digest/c.json.gz",
        previous_digest_hash_value="11" * 32,
        previous_digest_signature="22" * 64,
        oldest_event_time=HOUR + 5,
        newest_event_time=HOUR + 9,
        log_files=(fmt.LogFile("b1", "CloudTraces/x/f.json.gz", "33" * 32, 2, 1, 2, HOUR + 5, HOUR + 9),),
        checkpoint="origin\n2\nAAAA\n\n— k sig\n",
        tree_leaves=fmt.TreeLeaves("b1", "CloudTraces/x/Digest/l.bin.gz", "44" * 32, 0, 2),
        tree_compact_range=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def signer() -> tuple[Ed25519PrivateKey, str, fmt.Verifier]:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, fmt.fingerprint(raw), fmt.ed25519_verifier({fmt.fingerprint(raw): raw})


def test_bytes_are_deterministic_and_read_back() -> None:
    d = digest()
    blob = fmt.encode(d)
    assert blob == fmt.encode(digest())
    assert gzip.decompress(blob).startswith(b"{")
    assert fmt.decode(blob) == d
    start = digest(
        previous_digest_bucket=None,
        previous_digest_object=None,
        previous_digest_hash_value=None,
        previous_digest_signature=None,
        previous_digest_hash_algorithm=None,
        tree_compact_range=("55" * 32,),
    )
    assert start.is_start and fmt.decode(fmt.encode(start)) == start


def test_signature_checks_and_tampering_fails() -> None:
    key, fp, verify = signer()
    d = digest(digest_public_key_fingerprint=fp)
    blob = fmt.encode(d)
    sig = fmt.Signature(key.sign(fmt.string_to_sign(d, fmt.sha256_hex(blob))).hex(), fp)
    assert fmt.check_signature(blob, fmt.decode_signature(fmt.encode_signature(sig)), verify) == d
    other = fmt.encode(replace(d, newest_event_time=HOUR + 10))
    with pytest.raises(fmt.DigestFormatError, match="signature verification failed"):
        fmt.check_signature(other, sig, verify)
    _, stranger, _ = signer()
    with pytest.raises(fmt.DigestFormatError, match="different keys"):
        fmt.check_signature(blob, replace(sig, public_key_fingerprint=stranger), verify)


def test_strangers_are_refused() -> None:
    for blob in (b"junk", gzip.compress(b"[1]"), gzip.compress(b'{"project_id": "x"}')):
        with pytest.raises(fmt.DigestFormatError):
            fmt.decode(blob)
    with pytest.raises(fmt.DigestFormatError):
        fmt.decode_signature(b'{"signature": "zz"}')
    with pytest.raises(fmt.DigestFormatError):
        fmt.decode_leaves(gzip.compress(b"x" * 33))


def test_leaves_round_trip() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    assert fmt.decode_leaves(fmt.encode_leaves(hashes)) == hashes
    assert fmt.encode_leaves(hashes) == fmt.encode_leaves(list(hashes))

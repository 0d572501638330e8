"""Checkpoints as C2SP signed notes: the exact text, verification, and what is refused."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opencts.archive.signing_keys import SigningKey, fingerprint_of
from opencts.ledger.checkpoint import (
    CheckpointError,
    parse_note,
    parse_vkey,
    sign_note,
    verify_note,
    verify_signed_note,
)
from opencts.ledger.hashing import leaf_hash


def make_key(name: str = "opencts.eu-west-0", seed: bytes | None = None) -> SigningKey:
    private = Ed25519PrivateKey.from_private_bytes(seed or os.urandom(32))
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(fingerprint_of(public), name, public, 0, private)


def test_the_note_is_the_c2sp_checkpoint_text_and_verifies() -> None:
    key = make_key()
    root = leaf_hash(b"x")
    note = sign_note("opencts.eu-west-0/p1", 42, root, key)
    body, signature_line = note.split("\n\n")
    assert body == f"opencts.eu-west-0/p1\n42\n{base64.b64encode(root).decode()}"
    assert signature_line.startswith("\u2014 opencts.eu-west-0 ") and signature_line.endswith("\n")
    raw = base64.b64decode(signature_line.split(" ")[2])
    assert raw[:4] == key.key_id and len(raw) == 68
    checkpoint = verify_note(note, key.vkey)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == ("opencts.eu-west-0/p1", 42, root)
    assert parse_vkey(key.vkey)[2] == key.public_key


def test_a_golang_signed_note_example_verifies() -> None:
    # golang.org/x/mod/sumdb/note's documented example: the note text and the verifier key
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        "\u2014 PeterNeumann "
        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert verify_signed_note(text, vkey).startswith("If you think")
    with pytest.raises(CheckpointError, match="tree size"):  # a signed note, but not a checkpoint
        verify_note(text, vkey)


def test_forgeries_and_damage_are_refused() -> None:
    key, other = make_key(), make_key()
    note = sign_note("o/p", 3, leaf_hash(b"r"), key)
    with pytest.raises(CheckpointError, match="no signature by"):
        verify_note(note, other.vkey)
    forged = note.replace("\n3\n", "\n4\n")
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(forged, key.vkey)
    with pytest.raises(CheckpointError, match="signed note"):
        parse_note("o/p\n3\n")
    with pytest.raises(CheckpointError, match="root hash"):
        parse_note("o/p\n3\nAAAA\n\n\u2014 k AAAA\n")
    with pytest.raises(CheckpointError, match="verifier key"):
        parse_vkey("name+00000000+AAAA")

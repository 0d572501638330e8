"""The archive's signing keys: creation, rotation, publication, and checking signatures against the list."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from opencts.archive import signing_keys
from opencts.archive.signing_keys import (
    SigningKey,
    current_key,
    load_published,
    note_key_id,
    parse_published,
    published_keys,
    rotate,
    verifier_key,
    verify_signature,
)
from opencts.clock import DAY_MS
from opencts.iam.secrets import MasterKeyError, SecretBox
from opencts.store import Database

T0 = 1_790_000_000_000


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


def test_the_verifier_key_matches_the_c2sp_signed_note_example() -> None:
    # golang.org/x/mod/sumdb/note's documented example key pair (note_test.go, "PeterNeumann")
    private = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    public = (
        Ed25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert (
        verifier_key("PeterNeumann", public)
        == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    )
    assert note_key_id("PeterNeumann", public).hex() == "c74f20a3"


def test_one_key_signs_until_it_is_days_old_then_a_successor_takes_over(
    database: Database, box: SecretBox
) -> None:
    first = database.write_sync(lambda conn: current_key(conn, box, T0, 90, name="opencts.r1"))
    again = database.write_sync(lambda conn: current_key(conn, box, T0 + 89 * DAY_MS, 90))
    assert again.fingerprint == first.fingerprint and again.key_name == "opencts.r1"
    second = database.write_sync(lambda conn: current_key(conn, box, T0 + 90 * DAY_MS, 90))
    assert second.fingerprint != first.fingerprint and second.key_name == "opencts.r1"
    keys = database.read_sync(published_keys)
    assert [k["fingerprint"] for k in keys] == [first.fingerprint, second.fingerprint]
    assert keys[0]["valid_to"] == T0 + 90 * DAY_MS == keys[1]["valid_from"] and keys[1]["valid_to"] is None
    assert keys[1]["note_verifier_key"] == second.vkey and keys[1]["algorithm"] == "Ed25519"
    assert "private" not in json.dumps(keys).lower()


def test_rotation_on_demand_and_a_new_key_name_start_new_keys(database: Database, box: SecretBox) -> None:
    first = database.write_sync(lambda conn: current_key(conn, box, T0, 90))
    rotated = database.write_sync(lambda conn: rotate(conn, box, T0 + 5))
    assert rotated.fingerprint != first.fingerprint and rotated.valid_from == T0 + 5
    renamed = database.write_sync(lambda conn: current_key(conn, box, T0 + 6, 90, name="other.origin"))
    assert renamed.key_name == "other.origin" and renamed.fingerprint != rotated.fingerprint
    assert [k["valid_to"] for k in database.read_sync(published_keys)] == [T0 + 5, T0 + 6, None]


def test_a_node_that_loses_the_race_to_rotate_adopts_the_winners_key(
    database: Database, box: SecretBox
) -> None:
    database.write_sync(lambda conn: current_key(conn, box, T0, 1))
    later = T0 + 2 * DAY_MS
    winner = database.write_sync(lambda conn: rotate(conn, box, later))  # the other node rotated first

    def losing_node(conn: Connection) -> SigningKey:
        # this node still saw generation 1 as current: its insert of generation 2 changes nothing
        signing_keys._insert_generation(conn, box, 2, "opencts", later + 1)
        return current_key(conn, box, later + 1, 1)

    adopted = database.write_sync(losing_node)
    assert adopted.fingerprint == winner.fingerprint
    assert len(database.read_sync(published_keys)) == 2


def test_published_keys_verify_signatures_and_refuse_strangers(
    database: Database, box: SecretBox, tmp_path: Path
) -> None:
    key = database.write_sync(lambda conn: current_key(conn, box, T0, 90))
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": database.read_sync(published_keys)}))
    published = load_published(path)
    signature = key.sign(b"digest")
    assert verify_signature(published, key.fingerprint, b"digest", signature)
    assert verify_signature(published, key.fingerprint.upper(), b"digest", signature, at_ms=T0 + 1)
    assert not verify_signature(published, key.fingerprint, b"digest", signature, at_ms=T0 - 1)
    assert not verify_signature(published, key.fingerprint, b"digest!", signature)
    stranger = Ed25519PrivateKey.generate()
    assert not verify_signature(published, "ab" * 32, b"digest", stranger.sign(b"digest"))


def test_a_tampered_published_list_is_refused() -> None:
    public = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ValueError, match="does not match its fingerprint"):
        parse_published({"keys": [{"fingerprint": "00" * 32, "public_key": public}]})
    with pytest.raises(ValueError, match="expected"):
        parse_published({"nokeys": 1})


def test_a_key_sealed_under_another_master_key_is_refused(database: Database, box: SecretBox) -> None:
    database.write_sync(lambda conn: current_key(conn, box, T0, 90))
    with pytest.raises(MasterKeyError, match="signing key"):
        database.write_sync(lambda conn: current_key(conn, SecretBox(os.urandom(32)), T0, 90))

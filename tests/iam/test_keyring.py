"""Where the master key comes from, and when it is refused, on both backends."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from opencts.iam.keyring import unlock
from opencts.iam.secrets import MasterKeyError, SealedValueError, SecretBox, new_master_key, parse_master_key
from opencts.store import Database


def test_first_start_generates_a_private_key_file_that_later_starts_reuse(
    database: Database, tmp_path: Path
) -> None:
    box = database.write_sync(lambda conn: unlock(conn, master_key=None, key_file=None, data_dir=tmp_path))
    key_file = tmp_path / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = box.seal(b"s", context="c")
    again = database.write_sync(lambda conn: unlock(conn, master_key=None, key_file=None, data_dir=tmp_path))
    assert again.open(sealed, context="c") == b"s"
    # another node: the same key given in the environment, no file of its own
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    text = key_file.read_text()
    joined = database.write_sync(
        lambda conn: unlock(conn, master_key=text, key_file=None, data_dir=other_dir)
    )
    assert joined.open(sealed, context="c") == b"s" and not (other_dir / "master.key").exists()


def test_missing_or_wrong_keys_are_refused_once_secrets_are_sealed(
    database: Database, tmp_path: Path
) -> None:
    database.write_sync(lambda conn: unlock(conn, master_key=None, key_file=None, data_dir=tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MasterKeyError, match="none was given"):
        database.write_sync(lambda conn: unlock(conn, master_key=None, key_file=None, data_dir=empty))
    assert not (empty / "master.key").exists()  # a new key could open nothing: never generated here
    with pytest.raises(MasterKeyError, match="OPENCTS_MASTER_KEY is not the master key"):
        database.write_sync(
            lambda conn: unlock(conn, master_key=new_master_key(), key_file=None, data_dir=empty)
        )
    with pytest.raises(MasterKeyError, match="does not exist"):
        database.write_sync(
            lambda conn: unlock(conn, master_key=None, key_file=empty / "nope.key", data_dir=empty)
        )


def test_master_key_forms() -> None:
    raw = os.urandom(32)
    assert parse_master_key(base64.b64encode(raw).decode(), source="x") == raw
    assert parse_master_key(base64.urlsafe_b64encode(raw).decode() + "\n", source="x") == raw
    for bad in ("", "hunter2", base64.b64encode(os.urandom(16)).decode(), "é" * 44):
        with pytest.raises(MasterKeyError, match="x is not a master key"):
            parse_master_key(bad, source="x")


def test_a_sealed_value_opens_only_under_its_key_and_context() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal(b"secret", context="credentials:AK1")
    assert box.open(sealed, context="credentials:AK1") == b"secret"
    with pytest.raises(SealedValueError):
        box.open(sealed, context="credentials:AK2")  # copied onto another row
    with pytest.raises(SealedValueError):
        SecretBox(os.urandom(32)).open(sealed, context="credentials:AK1")
    with pytest.raises(SealedValueError):
        box.open(sealed[:-4] + "AAAA", context="credentials:AK1")

"""Migration 0012 (the ``server_keys`` table) on both backends, up, down and up again."""

from __future__ import annotations

from sqlalchemy import inspect

from opencts.iam.keyring import get_key, put_key_once
from opencts.store import Database, migrate


def test_server_keys_migrate_down_and_up(database: Database) -> None:
    assert "server_keys" in inspect(database.write_engine).get_table_names()
    assert database.write_sync(lambda conn: put_key_once(conn, "k", "first")) == "first"
    # a second writer of the same name adopts the stored value, and its transaction stays usable
    assert database.write_sync(lambda conn: (put_key_once(conn, "k", "second"), get_key(conn, "k"))) == (
        "first",
        "first",
    )
    migrate.downgrade(database, "0011")
    assert "server_keys" not in inspect(database.write_engine).get_table_names()
    migrate.upgrade(database)
    assert database.read_sync(lambda conn: get_key(conn, "k")) is None

"""The deployment's master key, and the secrets kept sealed under it in the database.

Where the key comes from, first match wins: ``OPENCTS_MASTER_KEY``; the file ``OPENCTS_MASTER_KEY_FILE``
names; ``master.key`` in the data dir. When none exists and the database holds no sealed secret yet (a
first start), ``master.key`` is generated (mode 0600). A node joining a database that already holds sealed
secrets must be given the deployment's key: it is never generated then, because a new key could not open
anything.

The database keeps a check value sealed under the key (``server_keys`` row ``master_key_check``), so a
wrong key is refused at start with a message instead of failing one request at a time later. Each start
also seals any secret key still stored in plain text (a database from before sealing).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, insert, not_, select, update
from sqlalchemy.exc import IntegrityError

from opencts.clock import now_ms
from opencts.iam.secrets import (
    SEALED_PREFIX,
    MasterKeyError,
    SealedValueError,
    SecretBox,
    credential_context,
    new_master_key,
    parse_master_key,
)
from opencts.store.database import erasing_overwrites
from opencts.store.files import open_private, tighten_file
from opencts.store.tables import credentials, server_keys

log = logging.getLogger(__name__)

KEY_FILE = "master.key"
CHECK = "master_key_check"
_CHECK_PLAINTEXT = b"OpenCTS master key check"


def get_key(conn: Connection, name: str) -> str | None:
    value: str | None = conn.execute(select(server_keys.c.value).where(server_keys.c.name == name)).scalar()
    return value


def put_key_once(conn: Connection, name: str, value: str) -> str:
    """Store ``value`` under ``name`` unless a row is there; returns the stored value, whoever wrote it.

    Two nodes starting together both try; the savepoint keeps the loser's transaction usable, and the
    loser adopts the winner's value.
    """
    try:
        with conn.begin_nested():
            conn.execute(insert(server_keys).values(name=name, value=value, created_at=now_ms()))
    except IntegrityError:
        stored = get_key(conn, name)
        if stored is None:
            raise
        return stored
    return value


def set_key(conn: Connection, name: str, value: str) -> None:
    conn.execute(update(server_keys).where(server_keys.c.name == name).values(value=value))


def unlock(conn: Connection, *, master_key: str | None, key_file: Path | None, data_dir: Path) -> SecretBox:
    """Find the master key, check it against the database, seal plain-text secrets; see the module doc.

    Raises :class:`MasterKeyError` with what to do when the key is missing, malformed or wrong.
    """
    check = get_key(conn, CHECK)
    if master_key is not None:
        source = "OPENCTS_MASTER_KEY"
        key = parse_master_key(master_key, source=source)
    else:
        path = key_file or data_dir / KEY_FILE
        source = str(path)
        if not path.exists():
            if key_file is not None:
                raise MasterKeyError(f"OPENCTS_MASTER_KEY_FILE names {path}, which does not exist")
            if check is not None:
                raise MasterKeyError(
                    "this database's secrets are sealed under a master key and none was given: set "
                    "OPENCTS_MASTER_KEY to the deployment's key (the first node keeps it in master.key "
                    "in its data dir) or OPENCTS_MASTER_KEY_FILE to a file holding it"
                )
            _create_key_file(path)
        tighten_file(path)
        key = parse_master_key(path.read_text(), source=source)
    box = SecretBox(key)
    if check is None:
        check = put_key_once(conn, CHECK, box.seal(_CHECK_PLAINTEXT, context=CHECK))
    try:
        box.open(check, context=CHECK)
    except SealedValueError:
        raise MasterKeyError(
            f"{source} is not the master key this database's secrets are sealed under; start with the "
            "deployment's key (OPENCTS_MASTER_KEY, OPENCTS_MASTER_KEY_FILE or master.key in the data dir)"
        ) from None
    sealed = seal_plain_credentials(conn, box)
    if sealed:
        log.info("sealed %d secret keys stored in plain text under the master key", sealed)
    return box


def _create_key_file(path: Path) -> None:
    try:
        with open_private(path, exclusive=True) as fh:
            fh.write(f"{new_master_key()}\n".encode())
    except FileExistsError:  # another process of this data dir made it first: use that one
        return
    log.warning(
        "generated the master key %s: keep a copy apart from the database (every sealed secret is lost "
        "without it), and give it to other nodes as OPENCTS_MASTER_KEY",
        path,
    )


def seal_plain_credentials(conn: Connection, box: SecretBox) -> int:
    """Seal every secret key stored in plain text; returns how many there were."""
    rows = conn.execute(
        select(credentials.c.access_key, credentials.c.secret_key).where(
            not_(credentials.c.secret_key.startswith(SEALED_PREFIX, autoescape=True))
        )
    ).all()
    with erasing_overwrites(conn):
        for row in rows:
            conn.execute(
                update(credentials)
                .where(credentials.c.access_key == row.access_key)
                .values(secret_key=seal_secret_key(box, row.access_key, row.secret_key))
            )
    return len(rows)


def seal_secret_key(box: SecretBox, access_key: str, secret_key: str) -> str:
    return box.seal(secret_key.encode(), context=credential_context(access_key))


def open_secret_key(box: SecretBox, access_key: str, stored: str) -> str:
    return box.open(stored, context=credential_context(access_key)).decode()

"""The KMS master key: the key that seals every key version's material in the database.

Where it comes from, first match wins:

1. ``OPENCTS_KMS_MASTER_KEY`` (32 bytes in base64), or the file ``OPENCTS_KMS_MASTER_KEY_FILE`` names.
   Given this way the key is never written to the database: trace-file keys are then kept apart from
   the deployment's master key (a copy of the database and ``master.key`` open no trace file).
2. By default, ``kms-master.key`` in the data dir, generated (mode 0600) on the first start. So that
   every node of a shared PostgreSQL (each with its own data dir and only ``OPENCTS_MASTER_KEY``) uses
   the same key, the generated key is also kept in the database sealed under the deployment's master
   key (``server_keys`` row ``kms_master_key``); a node without the file adopts it and writes its copy.

A check value sealed under the key (``server_keys`` row ``kms_master_key_check``) refuses a wrong key at
start instead of failing each file later; a key is never generated over keys sealed under another one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection

from opencts.config import Settings
from opencts.iam.keyring import KEY_FILE as DEPLOYMENT_KEY_FILE
from opencts.iam.keyring import get_key, put_key_once
from opencts.iam.secrets import MasterKeyError, SealedValueError, SecretBox, new_master_key, parse_master_key
from opencts.store.files import open_private, tighten_file

log = logging.getLogger(__name__)

KEY_FILE = "kms-master.key"
CHECK = "kms_master_key_check"
#: the default (generated) KMS master key, sealed under the deployment's master key for other nodes
SHARED = "kms_master_key"
_CHECK_PLAINTEXT = b"OpenCTS KMS master key check"


def _write_file(path: Path, text: str) -> None:
    with open_private(path) as fh:
        fh.write(f"{text.strip()}\n".encode())


def _default_key(conn: Connection, path: Path, deployment: SecretBox | None, checked: bool) -> bytes:
    """The key of ``kms-master.key``: read, adopted from the database, or generated (see the module doc)."""
    shared = get_key(conn, SHARED)
    if path.exists():
        tighten_file(path)
        text = path.read_text()
    elif shared is not None and deployment is not None:
        text = deployment.open(shared, context=SHARED).decode()
        _write_file(path, text)
        return parse_master_key(text, source=str(path))
    elif checked:
        raise MasterKeyError(
            "this database's KMS keys are sealed under a KMS master key and none was given: set "
            "OPENCTS_KMS_MASTER_KEY or OPENCTS_KMS_MASTER_KEY_FILE (the first node keeps it in "
            f"{KEY_FILE} in its data dir), or give this node the deployment's master key"
        )
    else:
        text = new_master_key()
        _write_file(path, text)
        log.warning("generated the KMS master key %s: keep a copy apart from the database", path)
    if shared is None and deployment is not None:
        stored = put_key_once(conn, SHARED, deployment.seal(text.strip().encode(), context=SHARED))
        winner = deployment.open(stored, context=SHARED).decode()
        if winner.strip() != text.strip():  # another node generated one at the same moment: adopt it
            _write_file(path, winner)
            text = winner
    return parse_master_key(text, source=str(path))


def deployment_box(settings: Settings) -> SecretBox | None:
    """The deployment's master key as this node has it, without generating one (tools without a server)."""
    if settings.master_key is not None:
        return SecretBox(
            parse_master_key(settings.master_key.get_secret_value(), source="OPENCTS_MASTER_KEY")
        )
    path = settings.master_key_file or settings.data_dir / DEPLOYMENT_KEY_FILE
    if not path.exists():
        return None
    return SecretBox(parse_master_key(path.read_text(), source=str(path)))


def unlock_kms(conn: Connection, settings: Settings, deployment: SecretBox | None) -> SecretBox:
    """The box of the KMS master key, checked against the database; :class:`MasterKeyError` if wrong.

    ``deployment`` is the deployment's master key box (shares a generated KMS key between nodes).
    """
    check = get_key(conn, CHECK)
    if settings.kms_master_key is not None:
        source = "OPENCTS_KMS_MASTER_KEY"
        key = parse_master_key(settings.kms_master_key.get_secret_value(), source=source)
    elif settings.kms_master_key_file is not None:
        source = str(settings.kms_master_key_file)
        if not settings.kms_master_key_file.exists():
            raise MasterKeyError(f"OPENCTS_KMS_MASTER_KEY_FILE names {source}, which does not exist")
        key = parse_master_key(settings.kms_master_key_file.read_text(), source=source)
    else:
        path = settings.data_dir / KEY_FILE
        source = str(path)
        key = _default_key(conn, path, deployment, check is not None)
    box = SecretBox(key)
    if check is None:
        check = put_key_once(conn, CHECK, box.seal(_CHECK_PLAINTEXT, context=CHECK))
    try:
        box.open(check, context=CHECK)
    except SealedValueError:
        raise MasterKeyError(
            f"{source} is not the KMS master key this database's keys are sealed under"
        ) from None
    return box

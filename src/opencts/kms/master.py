"""The KMS master key: the key that seals every key version's material in the database.

It is separate from the deployment's master key (``OPENCTS_MASTER_KEY``, which seals credentials), so
the keys that encrypt trace files can be kept, rotated and backed up apart from the login secrets.
Where it comes from, first match wins: ``OPENCTS_KMS_MASTER_KEY``; the file ``OPENCTS_KMS_MASTER_KEY_FILE``
names; ``kms-master.key`` in the data dir, generated (mode 0600) when it does not exist and the database
has never seen a KMS master key. A check value sealed under it (``server_keys`` row ``kms_master_key_check``)
refuses a wrong key at start instead of failing each file later.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection

from opencts.config import Settings
from opencts.iam.keyring import get_key, put_key_once
from opencts.iam.secrets import MasterKeyError, SealedValueError, SecretBox, new_master_key, parse_master_key
from opencts.store.files import open_private, tighten_file

log = logging.getLogger(__name__)

KEY_FILE = "kms-master.key"
CHECK = "kms_master_key_check"
_CHECK_PLAINTEXT = b"OpenCTS KMS master key check"


def _from_file(path: Path, *, named: bool, checked: bool) -> bytes:
    if not path.exists():
        if named:
            raise MasterKeyError(f"OPENCTS_KMS_MASTER_KEY_FILE names {path}, which does not exist")
        if checked:
            raise MasterKeyError(
                "this database's KMS keys are sealed under a KMS master key and none was given: set "
                "OPENCTS_KMS_MASTER_KEY or OPENCTS_KMS_MASTER_KEY_FILE (the first node keeps it in "
                f"{KEY_FILE} in its data dir)"
            )
        try:
            with open_private(path, exclusive=True) as fh:
                fh.write(f"{new_master_key()}\n".encode())
            log.warning("generated the KMS master key %s: keep a copy apart from the database", path)
        except FileExistsError:  # another process of this data dir made it first
            pass
    tighten_file(path)
    return parse_master_key(path.read_text(), source=str(path))


def unlock_kms(conn: Connection, settings: Settings) -> SecretBox:
    """The box of the KMS master key, checked against the database; :class:`MasterKeyError` if wrong."""
    check = get_key(conn, CHECK)
    if settings.kms_master_key is not None:
        source = "OPENCTS_KMS_MASTER_KEY"
        key = parse_master_key(settings.kms_master_key.get_secret_value(), source=source)
    else:
        path = settings.kms_master_key_file or settings.data_dir / KEY_FILE
        source = str(path)
        key = _from_file(path, named=settings.kms_master_key_file is not None, checked=check is not None)
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

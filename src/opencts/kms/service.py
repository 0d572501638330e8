"""``KeyService``: data keys for new encrypted files, and the data keys of files already written.

The transfer asks :meth:`KeyService.data_key` once per file: a fresh AES-256 key wrapped under the
key's current version, refused with :class:`KeyDisabled` while the key is disabled (a disabled key stops
new files). Readers (the verifier, archive queries) hand an envelope's header to :meth:`KeyService.unwrap`,
which works whatever the key's state, for any version it ever had: old files stay readable after a
rotation or a disable. Both check the project, so one project can never use another's key.

Version material never changes once written, so it is cached in memory after the first use; the key's
state is read on every ``data_key`` call, so a disable takes effect on the next file, on every node.
:func:`open_key_service` opens the database and the KMS master key with no server running.
"""

from __future__ import annotations

import threading
from types import TracebackType

from sqlalchemy import Connection

from opencts.archive.envelope import DataKey, EnvelopeHeader, new_data_key, unwrap_data_key
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.kms import keys
from opencts.kms.errors import KeyDisabled
from opencts.kms.master import deployment_box, unlock_kms
from opencts.store import Database, open_database


class KeyService:
    """Data keys under a project's KMS keys; thread-safe, synchronous (callers use threads)."""

    def __init__(self, db: Database, box: SecretBox, *, owns_db: bool = False) -> None:
        self.db = db
        self.box = box
        self._owns_db = owns_db
        self._materials: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    def _material(self, conn: Connection, key_id: str, version: int) -> bytes:
        with self._lock:
            cached = self._materials.get((key_id, version))
        if cached is None:
            cached = keys.material(conn, self.box, key_id, version)
            with self._lock:
                self._materials[(key_id, version)] = cached
        return cached

    def data_key_in(self, conn: Connection, project_id: str, kms_id: str) -> DataKey:
        """:meth:`data_key` on a connection the caller holds (inside its own transaction)."""
        row = keys.get(conn, project_id, kms_id)
        if row.key_state != keys.ENABLED:
            raise KeyDisabled(f"key {kms_id} is disabled: no new file can be encrypted under it")
        version = int(row.current_version)
        return new_data_key(self._material(conn, kms_id, version), kms_id, version)

    def data_key(self, project_id: str, kms_id: str) -> DataKey:
        """A fresh data key wrapped under ``kms_id``'s current version; KeyNotFound / KeyDisabled."""
        return self.db.read_sync(lambda conn: self.data_key_in(conn, project_id, kms_id))

    def unwrap_in(self, conn: Connection, project_id: str, header: EnvelopeHeader) -> bytes:
        keys.get(conn, project_id, header.kms_id)  # the project's own key, whatever its state
        return unwrap_data_key(self._material(conn, header.kms_id, header.key_version), header)

    def unwrap(self, project_id: str, header: EnvelopeHeader) -> bytes:
        """The data key of an envelope's header (``EnvelopeError`` if it does not unwrap)."""
        return self.db.read_sync(lambda conn: self.unwrap_in(conn, project_id, header))

    def close(self) -> None:
        """Close the database if this service opened it (:func:`open_key_service`)."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> KeyService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_box(db: Database, settings: Settings, deployment: SecretBox | None = None) -> SecretBox:
    """The KMS master key's box for ``db`` (``MasterKeyError`` when missing or wrong); ``deployment`` is
    the deployment's master key box, read from the settings when not given."""
    found = deployment or deployment_box(settings)
    return db.write_sync(lambda conn: unlock_kms(conn, settings, found))


def open_key_service(settings: Settings) -> KeyService:
    """The key service over the settings' database, for tools that run without a server (verify, query).

    Close it (or use it as a context manager) to close the database it opened.
    """
    db = open_database(settings)
    try:
        return KeyService(db, open_box(db, settings), owns_db=True)
    except BaseException:
        db.close()
        raise

"""``open_store(settings)``: everything a server, the CLI or a benchmark needs before the first request.

It sits above ``store``, ``iam``, ``trackers`` and ``smn`` because it ties them together: the database
(:func:`opencts.store.open_database`), the master key, the first account with its project's management
tracker, and SMN's signing key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection

from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, bootstrap, write_credentials
from opencts.iam.keyring import unlock
from opencts.iam.secrets import SecretBox
from opencts.smn import signing, subscriptions
from opencts.store import Database, open_database
from opencts.trackers.repository import create_system_tracker

log = logging.getLogger("opencts")


@dataclass(frozen=True)
class Opened:
    """What :func:`open_store` opened: the database, the master key's box and the SMN signing key."""

    db: Database
    box: SecretBox
    signer: signing.Signer


def open_store(settings: Settings) -> Opened:
    """Open and migrate the database, unlock it and bootstrap it; raises ``MasterKeyError`` on a bad key.

    Bootstrap runs only on an empty database: a node joining one that another node set up (a shared
    PostgreSQL) takes the account, the master key check and the signing key from it.
    """
    db = open_database(settings)
    try:
        master = settings.master_key.get_secret_value() if settings.master_key else None
        box = db.write_sync(
            lambda conn: unlock(
                conn, master_key=master, key_file=settings.master_key_file, data_dir=settings.data_dir
            )
        )
        password = settings.admin_password.get_secret_value() if settings.admin_password else None

        def first_start(conn: Connection) -> BootstrapCredentials | None:
            creds = bootstrap(conn, box=box, region=settings.region, password=password)
            if creds is not None:  # the first project's traces are recorded from the first call
                create_system_tracker(conn, project_id=creds.project_id, domain_id=creds.domain_id)
            return creds

        creds = db.write_sync(first_start)
        if creds is not None:
            write_credentials(settings.credentials_path, creds)
            log.info("first start: credentials written to %s", settings.credentials_path)
        signer = db.write_sync(lambda conn: signing.load_or_create(conn, box, settings.data_dir))
        if db.write_sync(lambda conn: subscriptions.seal_plain_headers(conn, box)):
            log.info("sealed the custom webhook headers stored in plain text under the master key")
        signing.remove_legacy_files(settings.data_dir, signer)
    except BaseException:
        db.close()
        raise
    return Opened(db, box, signer)

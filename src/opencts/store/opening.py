"""``open_database(settings)``: the database of a data dir, private and migrated to the current schema."""

from __future__ import annotations

from opencts.config import Settings
from opencts.store import migrate
from opencts.store.database import Database
from opencts.store.files import tighten_dir


def open_database(settings: Settings) -> Database:
    """Open the database ``settings`` name and bring its schema to head.

    The data dir is made private first (0700, files 0600), so nothing written afterwards is ever readable
    by others. Accounts, keys and signing come on top of this (:func:`opencts.opening.open_store`).
    """
    tighten_dir(settings.data_dir)
    db = Database(settings.resolved_database_url, data_dir=settings.data_dir)
    try:
        migrate.upgrade(db)
    except BaseException:
        db.close()
        raise
    return db

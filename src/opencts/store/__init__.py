"""Persistence: SQLAlchemy Core tables, the database handle and migrations.

Only this package knows SQL dialects. Everything above it calls functions that take a ``Connection``.
"""

from opencts.store.database import Database
from opencts.store.opening import open_database

__all__ = ["Database", "open_database"]

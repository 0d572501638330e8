"""Persistence: SQLAlchemy Core tables, the database handle and migrations.

Only this package knows SQL dialects. Everything above it calls functions that take a ``Connection``.
"""

from opencts.store.database import Database

__all__ = ["Database"]

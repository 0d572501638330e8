"""Apply Alembic migrations programmatically, so the service upgrades its own schema on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from opencts.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


#: a PostgreSQL advisory lock id: nodes starting together on one database migrate one after the other
MIGRATION_LOCK = 0x0C75_0001


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config()
    with db.write_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # held until this transaction ends; the next node then finds the schema at head
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        # an unknown revision (a newer OpenCTS's) or a downgrade ends here with a sentence, not in Alembic
        from opencts.store.revisions import pending

        pending(conn, revision)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    """Step the schema back to ``revision`` (tests of migrations; an operator's way back)."""
    cfg = alembic_config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

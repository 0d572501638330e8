"""Trace ids are kept unique by a 16-byte key instead of a B-tree over (project_id, trace_id).

Trace ids are random (UUID 4 as a rule), so every append dirties a leaf page of the uniqueness index
wherever its id falls: that page goes to the WAL at commit and back to the database at the checkpoint.
With 32-character project ids and 36-character trace ids an entry took about 75 bytes. The key (SHA-256
of the pair, truncated to 16 bytes: see ``opencts.store.trace_log.trace_key``) packs three times as many
entries into a page, so a commit dirties about a third as many pages; on SQLite this raised the plain
append rate from about 35,000 to 53,000 rows/s at 1,000 rows a commit (200,000 rows).

SQLite cannot drop a table's constraint in place: the table is rebuilt, keeping every seq. The rows are
copied in seq order into a table without it, and the unique index is built afterwards, by sorting: built
row by row, a random-key index over ten million rows had not finished after nine minutes.

Revision ID: 0007
Revises: 0006
"""

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: the columns of ``traces`` after 0005, in order (frozen here, as a migration must be)
COLUMNS = (
    "seq INTEGER NOT NULL",
    "project_id VARCHAR(64) NOT NULL",
    "trace_id VARCHAR(64) NOT NULL",
    "kind VARCHAR(8) NOT NULL",
    "time BIGINT NOT NULL",
    "record_time BIGINT NOT NULL",
    "trace_name VARCHAR(64) NOT NULL",
    "trace_rating VARCHAR(16) NOT NULL",
    "trace_type VARCHAR(16) NOT NULL",
    "service_type VARCHAR(64) NOT NULL",
    "resource_type VARCHAR(128)",
    "resource_id VARCHAR(350)",
    "resource_name VARCHAR(256)",
    "user_name VARCHAR(256)",
    "access_key_id VARCHAR(64)",
    "tracker_name VARCHAR(64) NOT NULL",
    "enterprise_project_id VARCHAR(64)",
    "body BLOB NOT NULL",
    "source_ip VARCHAR(64)",
    "code VARCHAR(256)",
    "request_id VARCHAR(256)",
)
NAMES = ", ".join(column.split()[0] for column in COLUMNS)


def trace_key(project_id: str, trace_id: str) -> bytes:
    """``opencts.store.trace_log.trace_key`` as of this revision."""
    return hashlib.sha256(f"{len(project_id)}:{project_id}{trace_id}".encode()).digest()[:16]


#: the same key computed by PostgreSQL (length() counts characters, as Python's len does)
PG_TRACE_KEY = (
    "substring(sha256(convert_to(length(project_id) || ':' || project_id || trace_id, 'UTF8')) from 1 for 16)"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(bind, key=True)
        return
    op.add_column("traces", sa.Column("trace_key", sa.LargeBinary(16)))
    op.execute(f"UPDATE traces SET trace_key = {PG_TRACE_KEY}")
    op.alter_column("traces", "trace_key", nullable=False)
    op.create_index("uq_traces_trace_key", "traces", ["trace_key"], unique=True)
    op.drop_constraint("uq_traces_project_trace_id", "traces", type_="unique")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(bind, key=False)
        return
    op.create_unique_constraint("uq_traces_project_trace_id", "traces", ["project_id", "trace_id"])
    op.drop_index("uq_traces_trace_key", table_name="traces")
    op.drop_column("traces", "trace_key")


def _rebuild_sqlite(bind: sa.Connection, *, key: bool) -> None:
    """Copy ``traces`` in seq order into a table without a uniqueness index, swap the two, then build the
    wanted unique index (``trace_key``, or ``(project_id, trace_id)`` going back) in one sort."""
    raw: Any = bind.connection.driver_connection
    raw.create_function("opencts_trace_key", 2, trace_key, deterministic=True)
    extra = ", trace_key BLOB NOT NULL" if key else ""
    op.execute(f"CREATE TABLE traces_new ({', '.join(COLUMNS)}{extra}, PRIMARY KEY (seq))")
    if key:
        op.execute(
            f"INSERT INTO traces_new ({NAMES}, trace_key) "
            f"SELECT {NAMES}, opencts_trace_key(project_id, trace_id) FROM traces ORDER BY seq"
        )
    else:
        op.execute(f"INSERT INTO traces_new ({NAMES}) SELECT {NAMES} FROM traces ORDER BY seq")
    op.execute("DROP TABLE traces")
    op.execute("ALTER TABLE traces_new RENAME TO traces")
    if key:
        op.create_index("uq_traces_trace_key", "traces", ["trace_key"], unique=True)
    else:
        op.create_index("uq_traces_project_trace_id", "traces", ["project_id", "trace_id"], unique=True)
    op.create_index("ix_traces_time", "traces", ["project_id", "kind", "time", "seq"])

"""SQLite answers the ListTraces filters from the term index: the B-tree per filter column goes.

Each of these indexes cost every append a B-tree insert, and SQLite used only one of them per query. The
term index (``opencts.store.term_index``, bitmaps in memory, rebuilt from the log) replaces them on SQLite.
PostgreSQL keeps them: it combines B-trees itself (BitmapAnd) and serves several processes.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: the filter columns the term index answers on SQLite (opencts.store.term_index.TERM_COLUMNS, frozen here)
#: ix_traces_time (time-only listings) and the unique (project_id, trace_id) stay.
TERM_COLUMNS = (
    "tracker_name",
    "service_type",
    "user_name",
    "resource_type",
    "trace_name",
    "trace_rating",
    "access_key_id",
    "enterprise_project_id",
    "resource_id",
    "resource_name",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for col in TERM_COLUMNS:
        op.drop_index(f"ix_traces_{col}", table_name="traces")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for col in TERM_COLUMNS:
        op.create_index(f"ix_traces_{col}", "traces", ["project_id", "kind", col, "time", "seq"])

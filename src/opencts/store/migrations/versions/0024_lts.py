"""LTS: log groups and streams fed by trackers with ``is_lts_enabled``, and their records.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lts_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ttl_in_days", sa.Integer, nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_lts_groups_name"),
    )
    op.create_table(
        "lts_streams",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("group_id", "name", name="uq_lts_streams_name"),
    )
    op.create_table(
        "lts_records",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("record_time", sa.BigInteger, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("uq_lts_records_trace", "lts_records", ["stream_id", "trace_id"], unique=True)
    op.create_index("ix_lts_records_time", "lts_records", ["stream_id", "record_time", "id"])


def downgrade() -> None:
    op.drop_table("lts_records")
    op.drop_table("lts_streams")
    op.drop_table("lts_groups")

"""LTS sinks: forwarding a log stream's records to syslog, OTLP/HTTP or HTTP NDJSON receivers.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lts_sinks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("stream_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("sink_type", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("secrets", sa.Text, nullable=True),
        sa.Column("filter", sa.Text, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", sa.BigInteger, nullable=True),
        sa.Column("last_delivered_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("stream_id", "name", name="uq_lts_sinks_name"),
    )
    op.create_index("ix_lts_sinks_project", "lts_sinks", ["project_id", "stream_id"])
    # a sink reads its stream after its cursor: (stream, id) finds the next batch and counts the lag
    op.create_index("ix_lts_records_stream_id", "lts_records", ["stream_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_lts_records_stream_id", table_name="lts_records")
    op.drop_table("lts_sinks")

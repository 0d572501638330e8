"""Trace files: the transfer's planned and written files and each tracker's transfer state.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "trace_files",
        sa.Column("id", seq, primary_key=True, autoincrement=True),
        sa.Column("tracker_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tracker_name", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64)),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False, unique=True),
        sa.Column("compress", sa.String(8), nullable=False),
        sa.Column("kms_id", sa.String(128)),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("trace_count", sa.Integer, nullable=False),
        sa.Column("oldest_time", sa.BigInteger, nullable=False),
        sa.Column("newest_time", sa.BigInteger, nullable=False),
        sa.Column("stamp_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.BigInteger),
        sa.Column("written_at", sa.BigInteger),
    )
    op.create_index("ix_trace_files_due", "trace_files", ["status", "next_attempt_at"])
    op.create_index("ix_trace_files_tracker_stamp", "trace_files", ["tracker_id", "stamp_ms"])
    op.create_table(
        "transfer_state",
        sa.Column("tracker_id", sa.String(36), primary_key=True),
        sa.Column("detail", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.Column("error_since", sa.BigInteger),
        sa.Column("last_success", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transfer_state")
    op.drop_table("trace_files")

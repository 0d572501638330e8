"""Hourly digests: the chain of each tracker's signed digest files.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_chains",
        sa.Column("tracker_id", sa.String(36), primary_key=True),
        sa.Column("start_ms", sa.BigInteger, primary_key=True),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("tracker_name", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(64)),
        sa.Column("start_size", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ux_digest_chains_open",
        "digest_chains",
        ["tracker_id"],
        unique=True,
        sqlite_where=sa.text("end_ms IS NULL"),
        postgresql_where=sa.text("end_ms IS NULL"),
    )
    op.create_table(
        "digests",
        sa.Column("tracker_id", sa.String(36), primary_key=True),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        sa.Column("chain_start", sa.BigInteger, nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("tree_size", sa.BigInteger),
        sa.Column("leaves_key", sa.String(1024)),
        sa.Column("leaves_first", sa.BigInteger),
        sa.Column("leaves_count", sa.BigInteger),
        sa.Column("digest_end", sa.Integer, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("lease_until", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("written_at", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("digests")
    op.drop_index("ux_digest_chains_open", table_name="digest_chains")
    op.drop_table("digest_chains")

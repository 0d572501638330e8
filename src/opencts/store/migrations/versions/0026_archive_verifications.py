"""Archive verifications run by the server: queued, leased and kept with their result.

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_verifications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("tracker_id", sa.String(36), nullable=False),
        sa.Column("tracker_name", sa.String(64), nullable=False),
        sa.Column("bucket_name", sa.String(64), nullable=False),
        sa.Column("proofs", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("digests", sa.BigInteger, nullable=True),
        sa.Column("files", sa.BigInteger, nullable=True),
        sa.Column("traces", sa.BigInteger, nullable=True),
        sa.Column("leaves", sa.BigInteger, nullable=True),
        sa.Column("failure_count", sa.BigInteger, nullable=True),
        sa.Column("note_count", sa.BigInteger, nullable=True),
        sa.Column("findings", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_archive_verifications_tracker",
        "archive_verifications",
        ["project_id", "tracker_id", "created_at"],
    )
    op.create_index("ix_archive_verifications_due", "archive_verifications", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("archive_verifications")

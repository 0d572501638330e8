"""Retention held by the archive: ``retention_state``, what retention deleted after the hold ran out.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_state",
        sa.Column("tracker_id", sa.String(36), primary_key=True),
        sa.Column("expired_from", sa.BigInteger, nullable=False),
        sa.Column("expired_through", sa.BigInteger, nullable=False),
        sa.Column("expired_at", sa.BigInteger, nullable=False),
        sa.Column("cleared_at", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("retention_state")

"""Temporary credentials: the short-lived AK/SK, security token and X-Auth-Token of a function's agency.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "temporary_credentials",
        sa.Column("access_key", sa.String(64), primary_key=True),
        sa.Column("secret_key", sa.Text, nullable=False),
        sa.Column("security_token_hash", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "func_id", sa.String(36), sa.ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_temporary_credentials_expires", "temporary_credentials", ["expires_at"])


def downgrade() -> None:
    op.drop_table("temporary_credentials")

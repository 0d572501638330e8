"""Failed password logins per user name and per source address, for the login lockout.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("subject", sa.String(600), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_at", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_failures_last_at", "login_failures", ["last_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_last_at", table_name="login_failures")
    op.drop_table("login_failures")

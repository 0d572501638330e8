"""Keys every node of a deployment shares: the master key's check value and the SMN signing key.

Revision ID: 0012
Revises: 0011

The secret keys of ``credentials`` are sealed in place when the service next starts (it needs the master
key, which a migration does not have). Downgrading drops this table; secret keys stay sealed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_keys")

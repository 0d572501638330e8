"""Source IP, code and request id as plain columns, so exports never parse the stored JSON.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite only rewrites the schema, so this is instant on any size.
    op.add_column("traces", sa.Column("source_ip", sa.String(64)))
    op.add_column("traces", sa.Column("code", sa.String(256)))
    op.add_column("traces", sa.Column("request_id", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("request_id")
        batch.drop_column("code")
        batch.drop_column("source_ip")

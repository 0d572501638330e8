"""Who submitted each trace, as a plain column beside the ``submitter`` field of its stored JSON.

Traces appended before this revision have no submitter (NULL, and no field in their JSON): nobody
recorded it then, and nothing in the trace itself can say it reliably.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite only rewrites the schema, so this is instant on any size.
    op.add_column("traces", sa.Column("submitter", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("submitter")

"""An index on ``smn_messages.created_at``: the outbox is pruned oldest first, a batch at a time.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_smn_messages_created", "smn_messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_smn_messages_created", table_name="smn_messages")

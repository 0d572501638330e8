"""CTS key-event notifications and their alarm (de-duplication) records.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("operation_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("notification_type", sa.String(8), nullable=False),
        sa.Column("topic_id", sa.String(512)),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_notifications_project_name"),
    )
    op.create_table(
        "notification_alarms",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(32)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_notification_alarms_created", "notification_alarms", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_alarms_created", table_name="notification_alarms")
    op.drop_table("notification_alarms")
    op.drop_table("notifications")

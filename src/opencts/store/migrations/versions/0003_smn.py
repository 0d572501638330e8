"""SMN v2: topics, subscriptions, messages and the delivery outbox.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "smn_topics",
        sa.Column("topic_urn", sa.String(512), primary_key=True),
        sa.Column("topic_id", sa.String(32), nullable=False, unique=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(192), nullable=False),
        sa.Column("push_policy", sa.Integer, nullable=False),
        sa.Column("enterprise_project_id", sa.String(64), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_smn_topics_project_name"),
    )
    op.create_table(
        "smn_subscriptions",
        sa.Column("subscription_urn", sa.String(560), primary_key=True),
        sa.Column(
            "topic_urn",
            sa.String(512),
            sa.ForeignKey("smn_topics.topic_urn", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("remark", sa.String(128), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("extension", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("topic_urn", "protocol", "endpoint", name="uq_smn_subscriptions_endpoint"),
    )
    op.create_index("ix_smn_subscriptions_project", "smn_subscriptions", ["project_id", "created_at"])
    op.create_table(
        "smn_messages",
        sa.Column("message_id", sa.String(32), primary_key=True),
        sa.Column(
            "topic_urn",
            sa.String(512),
            sa.ForeignKey("smn_topics.topic_urn", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("message_structure", sa.Text),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "smn_deliveries",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
        sa.Column(
            "message_id",
            sa.String(32),
            sa.ForeignKey("smn_messages.message_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "subscription_urn",
            sa.String(560),
            sa.ForeignKey("smn_subscriptions.subscription_urn", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.UniqueConstraint("message_id", "subscription_urn", name="uq_smn_deliveries_message_subscription"),
    )
    op.create_index("ix_smn_deliveries_due", "smn_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_smn_deliveries_project", "smn_deliveries", ["project_id", "status", "id"])


def downgrade() -> None:
    for table in ("smn_deliveries", "smn_messages", "smn_subscriptions", "smn_topics"):
        op.drop_table(table)

"""Tokens, trackers, resource tags and the trace catalogue.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE")),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "trackers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("tracker_type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_trackers_project_name"),
    )
    op.create_table(
        "resource_tags",
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "trace_resources",
        sa.Column("project_id", sa.String(32), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(128), primary_key=True),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "trace_users",
        sa.Column("project_id", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(256), primary_key=True),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("trace_users", "trace_resources", "resource_tags", "trackers", "tokens"):
        op.drop_table(table)

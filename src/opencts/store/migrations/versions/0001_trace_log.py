"""The trace log, consumer cursors and the IAM core.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FILTER_COLUMNS = (
    "tracker_name",
    "service_type",
    "user_name",
    "resource_id",
    "resource_name",
    "resource_type",
    "trace_name",
    "trace_rating",
    "access_key_id",
    "enterprise_project_id",
)


def upgrade() -> None:
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "traces",
        sa.Column("seq", seq, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("record_time", sa.BigInteger, nullable=False),
        sa.Column("trace_name", sa.String(64), nullable=False),
        sa.Column("trace_rating", sa.String(16), nullable=False),
        sa.Column("trace_type", sa.String(16), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(128)),
        sa.Column("resource_id", sa.String(350)),
        sa.Column("resource_name", sa.String(256)),
        sa.Column("user_name", sa.String(256)),
        sa.Column("access_key_id", sa.String(64)),
        sa.Column("tracker_name", sa.String(64), nullable=False),
        sa.Column("enterprise_project_id", sa.String(64)),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("project_id", "trace_id", name="uq_traces_project_trace_id"),
    )
    op.create_index("ix_traces_time", "traces", ["project_id", "kind", "time", "seq"])
    for col in FILTER_COLUMNS:
        op.create_index(f"ix_traces_{col}", "traces", ["project_id", "kind", col, "time", "seq"])

    op.create_table(
        "consumer_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "domains",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id", sa.String(32), sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "group_roles",
        sa.Column(
            "group_id", sa.String(32), sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("role", sa.String(64), primary_key=True),
    )
    op.create_table(
        "credentials",
        sa.Column("access_key", sa.String(64), primary_key=True),
        sa.Column("secret_key", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("credentials", "group_roles", "group_members", "groups", "users", "projects", "domains"):
        op.drop_table(table)
    op.drop_table("consumer_cursors")
    op.drop_table("traces")

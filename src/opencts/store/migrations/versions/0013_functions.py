"""FunctionGraph functions, their triggers (CTS triggers included) and invocations.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("func_id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("package", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("func_urn", sa.String(256), nullable=False, unique=True),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("handler", sa.String(128), nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("memory_size", sa.Integer, nullable=False),
        sa.Column("code_type", sa.String(16), nullable=False),
        sa.Column("code_filename", sa.String(256)),
        sa.Column("code", sa.LargeBinary, nullable=False),
        sa.Column("code_digest", sa.String(128), nullable=False),
        sa.Column("code_size", sa.Integer, nullable=False),
        sa.Column("user_data", sa.Text, nullable=False),
        sa.Column("encrypted_user_data", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("xrole", sa.String(64)),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_modified", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "package", "name", name="uq_functions_project_package_name"),
    )
    op.create_table(
        "function_triggers",
        sa.Column("trigger_id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "func_id", sa.String(36), sa.ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("trigger_type_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_type_code", sa.String(64)),
        sa.Column("event_data", sa.Text, nullable=False),
        sa.Column("notification_id", sa.String(36)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_function_triggers_func", "function_triggers", ["func_id"])
    op.create_table(
        "function_invocations",
        sa.Column("id", SeqType, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False, unique=True),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column(
            "func_id", sa.String(36), sa.ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("event", sa.LargeBinary),
        sa.Column("trigger_id", sa.String(36)),
        sa.Column("trace_id", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("result", sa.Text),
        sa.Column("log", sa.Text),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.BigInteger),
        sa.Column("end_time", sa.BigInteger),
    )
    op.create_index("ix_function_invocations_due", "function_invocations", ["status", "next_attempt_at"])
    op.create_index("ix_function_invocations_func", "function_invocations", ["func_id", "created_at"])


def downgrade() -> None:
    op.drop_table("function_invocations")
    op.drop_table("function_triggers")
    op.drop_table("functions")

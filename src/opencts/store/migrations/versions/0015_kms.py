"""The key service's keys (KMS): key material sealed under the KMS master key, versions for rotation.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kms_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("domain_id", sa.String(32), nullable=False),
        sa.Column("key_alias", sa.String(255), nullable=False),
        sa.Column("key_description", sa.Text, nullable=False),
        sa.Column("key_state", sa.String(1), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ux_kms_keys_alias", "kms_keys", ["project_id", "key_alias"], unique=True)
    op.create_table(
        "kms_key_versions",
        sa.Column(
            "key_id",
            sa.String(36),
            sa.ForeignKey("kms_keys.key_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("material", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kms_key_versions")
    op.drop_table("kms_keys")

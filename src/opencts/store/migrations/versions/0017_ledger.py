"""The Merkle ledger: each project's tree (tiles of leaf and node hashes), signed checkpoints, signing keys.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False, unique=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("key_name", sa.String(256), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_to", sa.BigInteger),
    )
    op.create_table(
        "ledger_trees",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_tiles",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("tile_index", sa.BigInteger, primary_key=True),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
        sa.Column("first_seq", sa.BigInteger),
        sa.Column("seqs", sa.LargeBinary),
    )
    op.create_index("ix_ledger_tiles_seq", "ledger_tiles", ["project_id", "level", "first_seq"])
    op.create_table(
        "ledger_checkpoints",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_tiles")
    op.drop_table("ledger_trees")
    op.drop_table("signing_keys")

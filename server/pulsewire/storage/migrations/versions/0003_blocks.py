"""Compact blocks and rollups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Readings already stored stay where they are, in the hot table, and the compactor packs them into
blocks (and rollups) in the background, a window at a time, as it does new ones; until then they
are read from the hot table as before. So the upgrade is quick however large the database.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocks",
        sa.Column("series_id", sa.Integer, primary_key=True),
        sa.Column("res", sa.Integer, primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True),
        sa.Column("first_ts", sa.BigInteger, nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_blocks_res_start", "blocks", ["res", "start", "size"])


def downgrade() -> None:
    op.drop_index("ix_blocks_res_start", "blocks")
    op.drop_table("blocks")

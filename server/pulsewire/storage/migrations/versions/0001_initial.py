"""Devices, series and readings.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=True),
        sa.Column("fw", sa.String(64), nullable=True),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=True),
        sa.Column("last_value", sa.Double, nullable=True),
        sa.Column("last_is_bool", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("device_id", "metric", name="uq_series_device_metric"),
    )
    op.create_table(
        "readings",
        sa.Column("series_id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("is_bool", sa.Boolean, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("readings")
    op.drop_table("series")
    op.drop_table("devices")

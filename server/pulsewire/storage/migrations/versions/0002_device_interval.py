"""Per-device sampling interval (set_interval).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing devices keep following the server's sample_interval_ms.
    op.add_column("devices", sa.Column("interval_ms", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("interval_ms")

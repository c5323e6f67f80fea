"""Alert states, alert history and the notification outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Three new tables; nothing existing changes, so the upgrade is instant however large the database.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("silenced_until", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.Column("acked_at", sa.BigInteger, nullable=True),
        sa.Column("announced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_index("ix_alerts_device_since", "alerts", ["device_id", "since"])
    op.create_index("ix_alerts_since", "alerts", ["since"])
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("first_attempt_ms", sa.BigInteger, nullable=True),
        sa.Column("next_at_ms", sa.BigInteger, nullable=False),
        sa.Column("done_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.UniqueConstraint("key", "channel_id", name="uq_alert_notifications_key_channel"),
    )
    op.create_index("ix_alert_notifications_due", "alert_notifications", ["status", "next_at_ms"])
    op.create_index("ix_alert_notifications_alert", "alert_notifications", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_notifications")
    op.drop_table("alerts")
    op.drop_table("alert_states")

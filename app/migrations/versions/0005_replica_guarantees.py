"""Replicas: one open incident per group (partial unique index), fenced outbox claims, and the
shared rate-limit ledger of channels.

Open duplicates left by earlier versions (two replicas opening the same group) are resolved
first, keeping the newest, so that the unique index can be built.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status != 'resolved'"


def upgrade() -> None:
    op.execute(
        "UPDATE alert_escalations SET due_at = NULL WHERE incident_id IN ("
        "SELECT id FROM alert_incidents WHERE status != 'resolved' AND id NOT IN "
        "(SELECT MAX(id) FROM alert_incidents WHERE status != 'resolved' GROUP BY group_key))"
    )
    op.execute(
        "UPDATE alert_incidents SET status = 'resolved', resolved_at = updated_at, "
        "resolved_by = 'migration 0005 (duplicate)' WHERE status != 'resolved' AND id NOT IN "
        "(SELECT MAX(id) FROM alert_incidents WHERE status != 'resolved' GROUP BY group_key)"
    )
    op.create_index(
        "uq_alert_incidents_open_group",
        "alert_incidents",
        ["group_key"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    op.add_column("alert_outbox", sa.Column("claim_token", sa.String(length=32), nullable=True))
    op.create_table(
        "alert_channel_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_channel_attempts")),
    )
    op.create_index("ix_alert_channel_attempts_channel_at", "alert_channel_attempts", ["channel", "at"])


def downgrade() -> None:
    op.drop_index("ix_alert_channel_attempts_channel_at", table_name="alert_channel_attempts")
    op.drop_table("alert_channel_attempts")
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("claim_token")
    op.drop_index("uq_alert_incidents_open_group", table_name="alert_incidents")

"""On-call history: indexes for the daily rollup's reads of one day's incidents, pages and
escalation entries (opened, acknowledged, resolved, written, delivered that day).

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_alert_incidents_created_at", "alert_incidents", ["created_at"]),
    ("ix_alert_incidents_acknowledged_at", "alert_incidents", ["acknowledged_at"]),
    ("ix_alert_incidents_resolved_at", "alert_incidents", ["resolved_at"]),
    ("ix_alert_outbox_created_at", "alert_outbox", ["created_at"]),
    ("ix_alert_outbox_delivered_at", "alert_outbox", ["delivered_at"]),
    ("ix_alert_timeline_kind_at", "alert_timeline", ["kind", "at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

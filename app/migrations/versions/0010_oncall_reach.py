"""On-call reach: people's own paging rules as they run, shift swaps, announced hand-overs (once,
by a unique key), calendar feed generations (revocation), and the outbox's link to a person's rule.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("alert_outbox", sa.Column("page_id", sa.Integer(), nullable=True))
    op.add_column("alert_outbox", sa.Column("page_step", sa.Integer(), nullable=True))
    op.create_table(
        "alert_personal_pages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("escalation", sa.String(length=255), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("due_at", Time, nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_personal_pages_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_personal_pages")),
        sa.UniqueConstraint("incident_id", "user", name=op.f("uq_alert_personal_pages_incident_id")),
    )
    op.create_index(op.f("ix_alert_personal_pages_due_at"), "alert_personal_pages", ["due_at"])
    op.create_table(
        "alert_swaps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=255), nullable=False),
        sa.Column("offered_by", sa.String(length=255), nullable=False),
        sa.Column("start", Time, nullable=False),
        sa.Column("end", Time, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("taken_by", sa.String(length=255), nullable=True),
        sa.Column("taken_at", Time, nullable=True),
        sa.Column("override_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_swaps")),
    )
    op.create_index(op.f("ix_alert_swaps_schedule"), "alert_swaps", ["schedule"])
    op.create_table(
        "alert_handovers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=255), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("incoming", sa.String(length=255), nullable=True),
        sa.Column("outgoing", sa.String(length=255), nullable=True),
        sa.Column("announced_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_handovers")),
        sa.UniqueConstraint("schedule", "at", name=op.f("uq_alert_handovers_schedule")),
    )
    op.create_table(
        "alert_calendar_feeds",
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("revoked_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_alert_calendar_feeds")),
    )


def downgrade() -> None:
    op.drop_table("alert_calendar_feeds")
    op.drop_table("alert_handovers")
    op.drop_index(op.f("ix_alert_swaps_schedule"), table_name="alert_swaps")
    op.drop_table("alert_swaps")
    op.drop_index(op.f("ix_alert_personal_pages_due_at"), table_name="alert_personal_pages")
    op.drop_table("alert_personal_pages")
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("page_step")
        batch.drop_column("page_id")

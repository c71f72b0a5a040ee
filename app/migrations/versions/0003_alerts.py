"""Alerting: incidents, their alerts and timeline, escalations, the outbox, overrides,
maintenance windows, heartbeats and stored secrets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_heartbeats",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_alert_heartbeats")),
    )
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("receiver", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=64), nullable=True),
        sa.Column("services", sa.Text(), nullable=False),
        sa.Column("group_labels", sa.Text(), nullable=False),
        sa.Column("common_labels", sa.Text(), nullable=False),
        sa.Column("common_annotations", sa.Text(), nullable=False),
        sa.Column("external_url", sa.Text(), nullable=True),
        sa.Column("muted", sa.Text(), nullable=True),
        sa.Column("heartbeat", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=255), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_incidents")),
    )
    op.create_index("ix_alert_incidents_group_status", "alert_incidents", ["group_key", "status"])
    op.create_index("ix_alert_incidents_status_created", "alert_incidents", ["status", "created_at"])

    op.create_table(
        "alert_maintenance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_maintenance")),
    )
    op.create_index(op.f("ix_alert_maintenance_end"), "alert_maintenance", ["end"])

    op.create_table(
        "alert_schedule_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=255), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_schedule_overrides")),
    )
    op.create_index(op.f("ix_alert_schedule_overrides_schedule"), "alert_schedule_overrides", ["schedule"])

    op.create_table(
        "stored_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stored_secrets")),
    )
    op.create_table(
        "alert_escalations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("escalation", sa.String(length=255), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_escalations_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_escalations")),
    )
    op.create_index(op.f("ix_alert_escalations_due_at"), "alert_escalations", ["due_at"])
    op.create_index(op.f("ix_alert_escalations_incident_id"), "alert_escalations", ["incident_id"])

    op.create_table(
        "alert_incident_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generator_url", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_incident_alerts_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_incident_alerts")),
        sa.UniqueConstraint("incident_id", "fingerprint", name=op.f("uq_alert_incident_alerts_incident_id")),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("digest_of", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_outbox_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
    )
    op.create_index("ix_alert_outbox_channel_delivered", "alert_outbox", ["channel", "delivered_at"])
    op.create_index(op.f("ix_alert_outbox_incident_id"), "alert_outbox", ["incident_id"])
    op.create_index("ix_alert_outbox_status_due", "alert_outbox", ["status", "due_at"])

    op.create_table(
        "alert_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_timeline_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_timeline")),
    )
    op.create_index(op.f("ix_alert_timeline_incident_id"), "alert_timeline", ["incident_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_timeline_incident_id"), table_name="alert_timeline")

    op.drop_table("alert_timeline")
    op.drop_index("ix_alert_outbox_status_due", table_name="alert_outbox")
    op.drop_index(op.f("ix_alert_outbox_incident_id"), table_name="alert_outbox")
    op.drop_index("ix_alert_outbox_channel_delivered", table_name="alert_outbox")

    op.drop_table("alert_outbox")
    op.drop_table("alert_incident_alerts")
    op.drop_index(op.f("ix_alert_escalations_incident_id"), table_name="alert_escalations")
    op.drop_index(op.f("ix_alert_escalations_due_at"), table_name="alert_escalations")

    op.drop_table("alert_escalations")
    op.drop_table("stored_secrets")
    op.drop_index(op.f("ix_alert_schedule_overrides_schedule"), table_name="alert_schedule_overrides")

    op.drop_table("alert_schedule_overrides")
    op.drop_index(op.f("ix_alert_maintenance_end"), table_name="alert_maintenance")

    op.drop_table("alert_maintenance")
    op.drop_index("ix_alert_incidents_status_created", table_name="alert_incidents")
    op.drop_index("ix_alert_incidents_group_status", table_name="alert_incidents")

    op.drop_table("alert_incidents")
    op.drop_table("alert_heartbeats")

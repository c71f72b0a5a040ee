"""Rollups: the daily values and the history of runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollup_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("entities", sa.Integer(), nullable=True),
        sa.Column("values", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_runs")),
    )
    op.create_index(op.f("ix_rollup_runs_day"), "rollup_runs", ["day"])
    op.create_index(op.f("ix_rollup_runs_started_at"), "rollup_runs", ["started_at"])
    op.create_table(
        "rollup_values",
        sa.Column("entity_kind", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=512), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("total", sa.Float(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("peak", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("buckets", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("entity_kind", "entity", "family", "day", name=op.f("pk_rollup_values")),
    )
    op.create_index("ix_rollup_values_day_kind", "rollup_values", ["day", "entity_kind"])


def downgrade() -> None:
    op.drop_index("ix_rollup_values_day_kind", table_name="rollup_values")
    op.drop_table("rollup_values")
    op.drop_index(op.f("ix_rollup_runs_started_at"), table_name="rollup_runs")
    op.drop_index(op.f("ix_rollup_runs_day"), table_name="rollup_runs")
    op.drop_table("rollup_runs")

"""Rollups: a run records whether Prometheus was queried for its day.

Without a Prometheus (``make run`` on a laptop, before ``backends.prometheus`` is set), a day is
rolled up from the on-call history alone and finishes ``ok``. Once Prometheus is configured, the
catch-up must compute those days again (Prometheus still holds about two weeks of them) instead of
taking them for done. Runs recorded before this column read as queried (NULL): nothing is redone
on upgrade.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rollup_runs", sa.Column("prometheus", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE rollup_runs DROP COLUMN prometheus")

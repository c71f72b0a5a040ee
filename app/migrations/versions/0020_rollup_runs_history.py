"""Rollups: a run records whether it stored the day's on-call history.

The on-call history of a day waits for the alert journal (``rollups/oncall.py``); the day's
Prometheus figures do not. A run that finds the journal still holding a webhook received before
the day ended now stores the Prometheus figures and records its history ``pending``; the
catch-up stores the history alone once the journal has moved, in a run recorded ``completed``,
without querying Prometheus again. Runs recorded before this column (NULL) stored both parts or
failed whole: they read as ``stored``, and nothing is redone on upgrade.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rollup_runs", sa.Column("history", sa.String(16), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE rollup_runs DROP COLUMN history")

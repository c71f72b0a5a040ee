"""Rollups: each figure's daily values per entity and month, already computed
(``rollup_figure_months``; ``app/rollups/figure_months.py`` says why), written by the writers of
the month rows beside their daily report rows. The table starts empty: every month row's report
rows are marked due (``render_key`` emptied), so that the rollup catch-up job
(``service.render_stale``) writes them again and the figure rows with them; until then a cold
report or series is computed live, as before 0017.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "rollup_figure_months",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("figure", sa.String(128), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("render_key", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["rollup_entities.id"],
            name=op.f("fk_rollup_figure_months_entity_id_rollup_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "figure", "month", name=op.f("pk_rollup_figure_months")),
        **({"sqlite_with_rowid": False} if sqlite else {}),
    )
    # Retention deletes the months before its cut, and rewrites the cut month's rows.
    op.create_index("ix_rollup_figure_months_month", "rollup_figure_months", ["month"])
    op.execute("UPDATE rollup_day_packs SET render_key = NULL WHERE render_key IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_rollup_figure_months_month", table_name="rollup_figure_months")
    op.drop_table("rollup_figure_months")

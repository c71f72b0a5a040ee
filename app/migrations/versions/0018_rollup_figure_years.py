"""Rollups: each figure's daily values per entity and calendar year, already computed
(``rollup_figure_years``; ``app/rollups/figure_years.py`` says why), written by the writers of
the month rows beside their daily report rows. The table starts empty: every month row's report
rows are marked due (``render_key`` emptied), so that the rollup catch-up job
(``service.render_stale``) writes them again and fills the year rows on the way; until then a
cold report or series is answered live, as before 0017.

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
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "rollup_figure_years",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("figure", sa.String(128), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("render_key", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["rollup_entities.id"],
            name=op.f("fk_rollup_figure_years_entity_id_rollup_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "figure", "year", name=op.f("pk_rollup_figure_years")),
        **({"sqlite_with_rowid": False} if sqlite else {}),
    )
    if op.get_bind().dialect.name == "postgresql":
        # 3 KB of float64 that do not compress: kept in the row, not out of line in TOAST (a
        # TOAST probe per row is what a cold series paid reading month rows).
        op.execute("ALTER TABLE rollup_figure_years ALTER COLUMN data SET STORAGE PLAIN")
    op.execute("UPDATE rollup_day_packs SET render_key = NULL WHERE render_key IS NOT NULL")


def downgrade() -> None:
    op.drop_table("rollup_figure_years")

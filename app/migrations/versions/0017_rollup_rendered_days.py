"""Rollups: each month row of stored days also keeps the daily report's rows of that month,
already written as JSON (``app/rollups/rendered.py`` says why), and the key they were written
with. Both columns start empty: a month without them is answered live, as before, until its
next write (a night's rollup, retention) or the rollup catch-up job writes them
(``service.render_stale``, a few hundred month rows per transaction).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rollup_day_packs", sa.Column("render_key", sa.BigInteger(), nullable=True))
    op.add_column("rollup_day_packs", sa.Column("rendered", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Already compressed (zstd): out of line, and PostgreSQL does not try to compress it again.
        op.execute("ALTER TABLE rollup_day_packs ALTER COLUMN rendered SET STORAGE EXTERNAL")
    # The rollup catch-up looks for months whose rows are due here, without reading their numbers.
    op.create_index("ix_rollup_day_packs_render_key", "rollup_day_packs", ["render_key"])


def downgrade() -> None:
    op.drop_index("ix_rollup_day_packs_render_key", table_name="rollup_day_packs")
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): the table keeps WITHOUT ROWID and its index.
    op.execute("ALTER TABLE rollup_day_packs DROP COLUMN rendered")
    op.execute("ALTER TABLE rollup_day_packs DROP COLUMN render_key")

"""Rollups: one row per entity and calendar month holding each stored day, in place of a row per day.

``rollup_days`` (entity, day number, layout, vector) becomes ``rollup_day_packs`` (entity,
month's day number, day mask, packed days: see ``app/rollups/layouts.py``, "a month of days in
one row"). A three-year daily report of one entity then reads 37 rows instead of 1,096, which on
PostgreSQL were 1,096 heap pages. The packing is written out here, not imported, so that this
migration keeps making what it made. Every vector is carried over byte for byte, and back on
downgrade.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
_EPOCH = date(1970, 1, 1).toordinal()

_days = sa.table(
    "rollup_days",
    sa.column("entity_id", sa.Integer),
    sa.column("day", sa.Integer),
    sa.column("layout_id", sa.BigInteger),
    sa.column("data", sa.LargeBinary),
)
_packs = sa.table(
    "rollup_day_packs",
    sa.column("entity_id", sa.Integer),
    sa.column("month", sa.Integer),
    sa.column("day_mask", sa.BigInteger),
    sa.column("data", sa.LargeBinary),
)


def _sqlite_options() -> dict[str, Any]:
    return {"sqlite_with_rowid": False} if op.get_bind().dialect.name == "sqlite" else {}


def _pages(connection: sa.Connection, table: Any, key: Sequence[str]) -> Iterator[Any]:
    """Every row of ``table`` in ``key`` order, a page at a time (keyset pagination: no cursor
    stays open, which PostgreSQL would not let the table be dropped under)."""
    columns = [table.c[name] for name in key]
    statement = sa.select(table).order_by(*columns).limit(BATCH)
    after: tuple[Any, ...] | None = None
    while True:
        page = statement if after is None else statement.where(sa.tuple_(*columns) > sa.tuple_(*after))
        rows = connection.execute(page).all()
        yield from rows
        if len(rows) < BATCH:
            return
        after = tuple(getattr(rows[-1], name) for name in key)


def _month_of(number: int) -> int:
    return date.fromordinal(number + _EPOCH).replace(day=1).toordinal() - _EPOCH


def _pack(entity_id: int, month: int, days: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    """n × int64 layout id | n × uint32 end of each vector (in float64s) | the vectors, little-endian."""
    ends = np.cumsum([len(data) // 8 for _, _, data in days], dtype=np.int64)
    data = (
        np.asarray([layout for _, layout, _ in days], dtype="<i8").tobytes()
        + ends.astype("<u4").tobytes()
        + b"".join(data for _, _, data in days)
    )
    mask = sum(1 << (number - month) for number, _, _ in days)
    return {"entity_id": entity_id, "month": month, "day_mask": mask, "data": data}


def _create_days() -> None:
    op.create_table(
        "rollup_days",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("layout_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["rollup_entities.id"],
            name=op.f("fk_rollup_days_entity_id_rollup_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["layout_id"], ["rollup_layouts.id"], name=op.f("fk_rollup_days_layout_id_rollup_layouts")
        ),
        sa.PrimaryKeyConstraint("entity_id", "day", name=op.f("pk_rollup_days")),
        **_sqlite_options(),
    )
    op.create_index("ix_rollup_days_day", "rollup_days", ["day"])


def upgrade() -> None:
    op.create_table(
        "rollup_day_packs",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day_mask", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["rollup_entities.id"],
            name=op.f("fk_rollup_day_packs_entity_id_rollup_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "month", name=op.f("pk_rollup_day_packs")),
        **_sqlite_options(),
    )
    op.create_index("ix_rollup_day_packs_month", "rollup_day_packs", ["month"])
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        # Out of line but not compressed: every stored day rewrites its month's value, and pglz
        # compressing it each time cost 1,000 services' nightly write ~150 ms more (425–575 ms
        # against 265–360), for no faster read (0.87 against 0.89 ms a three-year series).
        op.execute("ALTER TABLE rollup_day_packs ALTER COLUMN data SET STORAGE EXTERNAL")
    key: tuple[int, int] | None = None
    days: list[tuple[int, int, bytes]] = []
    pending: list[dict[str, Any]] = []
    for row in _pages(connection, _days, ("entity_id", "day")):
        here = (row.entity_id, _month_of(row.day))
        if here != key:
            if key is not None:
                pending.append(_pack(*key, days))
            key, days = here, []
        days.append((row.day, row.layout_id, bytes(row.data)))
        if len(pending) >= BATCH:
            connection.execute(sa.insert(_packs), pending)
            pending = []
    if key is not None:
        pending.append(_pack(*key, days))
    if pending:
        connection.execute(sa.insert(_packs), pending)
    op.drop_index("ix_rollup_days_day", table_name="rollup_days")
    op.drop_table("rollup_days")


def downgrade() -> None:
    _create_days()
    connection = op.get_bind()
    pending: list[dict[str, Any]] = []
    for row in _pages(connection, _packs, ("entity_id", "month")):
        data = bytes(row.data)
        numbers = [row.month + d for d in range(31) if row.day_mask >> d & 1]
        count = len(numbers)
        layouts = np.frombuffer(data, dtype="<i8", count=count).tolist()
        ends = np.frombuffer(data, dtype="<u4", count=count, offset=8 * count).tolist()
        start = 12 * count
        for number, layout, end in zip(numbers, layouts, ends, strict=True):
            stop = 12 * count + 8 * end
            pending.append(
                {"entity_id": row.entity_id, "day": number, "layout_id": layout, "data": data[start:stop]}
            )
            start = stop
        if len(pending) >= BATCH:
            connection.execute(sa.insert(_days), pending)
            pending = []
    if pending:
        connection.execute(sa.insert(_days), pending)
    op.drop_index("ix_rollup_day_packs_month", table_name="rollup_day_packs")
    op.drop_table("rollup_day_packs")

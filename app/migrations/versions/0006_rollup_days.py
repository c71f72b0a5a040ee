"""Rollups: one row per entity and day, every family in one float64 vector (app/rollups/layouts.py).

``rollup_values`` (one row per entity, family and day, buckets as JSON) becomes
``rollup_entities`` (names, once), ``rollup_layouts`` (what a vector's positions mean) and
``rollup_days`` (entity, day number, layout, vector), with ``rollup_months`` (each entity's
month sums, kept by every later write of a day) and ``rollup_state`` (a counter of those
writes). Every stored number is carried over bit for bit, and back on downgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import json
import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from app.rollups import frames
from app.rollups.config import FamilyKind
from app.rollups.layouts import (
    GAUGE_FIELDS,
    EncodedDay,
    Layout,
    day_number,
    day_of,
    decode,
    encode_day,
    parse_layout,
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
"""Entity days written per statement while converting."""

_values = sa.table(
    "rollup_values",
    sa.column("entity_kind", sa.String),
    sa.column("entity", sa.String),
    sa.column("family", sa.String),
    sa.column("day", sa.Date),
    sa.column("total", sa.Float),
    sa.column("samples", sa.Integer),
    sa.column("peak", sa.Float),
    sa.column("low", sa.Float),
    sa.column("buckets", sa.Text),
)
_entities = sa.table("rollup_entities", sa.column("id", sa.Integer), sa.column("kind"), sa.column("name"))
_layouts = sa.table("rollup_layouts", sa.column("id", sa.BigInteger), sa.column("spec", sa.Text))
_months = sa.table(
    "rollup_months",
    sa.column("entity_id", sa.Integer),
    sa.column("month", sa.Integer),
    sa.column("layout_id", sa.BigInteger),
    sa.column("day_mask", sa.BigInteger),
    sa.column("data", sa.LargeBinary),
)
_days = sa.table(
    "rollup_days",
    sa.column("entity_id", sa.Integer),
    sa.column("day", sa.Integer),
    sa.column("layout_id", sa.BigInteger),
    sa.column("data", sa.LargeBinary),
)


def _sqlite_options() -> dict[str, Any]:
    return {"sqlite_with_rowid": False} if op.get_bind().dialect.name == "sqlite" else {}


def _create_days_tables() -> None:
    op.create_table(
        "rollup_entities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_entities")),
        sa.UniqueConstraint("kind", "name", name="uq_rollup_entities_kind_name"),
    )
    op.create_table(
        "rollup_layouts",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_layouts")),
    )
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
    op.create_table(
        "rollup_months",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("layout_id", sa.BigInteger(), nullable=False),
        sa.Column("day_mask", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["rollup_entities.id"],
            name=op.f("fk_rollup_months_entity_id_rollup_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["layout_id"], ["rollup_layouts.id"], name=op.f("fk_rollup_months_layout_id_rollup_layouts")
        ),
        sa.PrimaryKeyConstraint("entity_id", "month", name=op.f("pk_rollup_months")),
        **_sqlite_options(),
    )
    op.create_index("ix_rollup_months_month", "rollup_months", ["month"])
    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_state")),
    )
    # A random start: a store made again (a new database, a downgrade and upgrade) never shows a
    # generation an old one had, so nothing computed from the old one can pass for current.
    op.get_bind().execute(
        sa.text("INSERT INTO rollup_state (id, generation) VALUES (1, :start)"),
        {"start": secrets.randbits(62)},
    )


def _create_values_table() -> None:
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
        **_sqlite_options(),
    )
    op.create_index("ix_rollup_values_day_kind", "rollup_values", ["day", "entity_kind"])


@dataclass(frozen=True)
class _Value:
    """One row of ``rollup_values`` as ``layouts.encode_day`` reads it."""

    entity_kind: str
    entity: str
    family: str
    total: float | None
    samples: int | None
    peak: float | None
    low: float | None
    buckets: dict[float, float] | None


def _buckets(raw: str | None) -> dict[float, float] | None:
    if raw is None:
        return None
    return {math.inf if le == "+Inf" else float(le): float(count) for le, count in json.loads(raw)}


def _pages(connection: sa.Connection, table: Any, key: Sequence[str]) -> Iterator[Any]:
    """Every row of ``table`` in ``key`` order, read a page at a time (keyset pagination: no
    server-side cursor stays open, which PostgreSQL would not let the table be dropped under)."""
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


def _entity_days(connection: sa.Connection) -> Iterator[tuple[str, str, date, list[_Value]]]:
    """The stored values, grouped by entity and day, in primary-key order."""
    key: tuple[str, str, date] | None = None
    group: list[_Value] = []
    for row in _pages(connection, _values, ("entity_kind", "entity", "day", "family")):
        here = (row.entity_kind, row.entity, row.day)
        if here != key:
            if key is not None:
                yield (*key, group)
            key, group = here, []
        buckets = _buckets(row.buckets)
        group.append(
            _Value(
                row.entity_kind, row.entity, row.family, row.total, row.samples, row.peak, row.low, buckets
            )
        )
    if key is not None:
        yield (*key, group)


class _Writer:
    """Entity days written a batch at a time, and each entity's month sums as its months end."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.known: set[int] = set()
        self.days: list[dict[str, Any]] = []
        self.months: list[dict[str, Any]] = []
        self.month: tuple[int, int] | None = None
        self.in_month: list[tuple[int, EncodedDay]] = []

    def layout(self, layout: Layout) -> None:
        if layout.id not in self.known:
            self.connection.execute(sa.insert(_layouts), [{"id": layout.id, "spec": layout.spec}])
            self.known.add(layout.id)

    def add(self, entity_id: int, day: date, encoded: EncodedDay) -> None:
        self.layout(encoded.layout)
        month = (entity_id, day_number(day.replace(day=1)))
        if month != self.month:
            self.end_month()
            self.month = month
        self.in_month.append((day.day, encoded))
        self.days.append(
            {
                "entity_id": entity_id,
                "day": day_number(day),
                "layout_id": encoded.layout.id,
                "data": encoded.data,
            }
        )
        if len(self.days) >= BATCH:
            self.flush()

    def end_month(self) -> None:
        """The month sum exactly as rollups keep it (``frames.reduce`` over the month's days)."""
        if self.month is None or not self.in_month:
            return
        layouts = [encoded.layout for _, encoded in self.in_month]
        blobs = [encoded.data for _, encoded in self.in_month]
        summed = frames.reduce(frames.frame_of(layouts, blobs), np.zeros(1, dtype=np.int64))
        self.layout(summed.layout)
        entity_id, month = self.month
        mask = sum(1 << (d - 1) for d, _ in self.in_month)
        self.months.append(
            {
                "entity_id": entity_id,
                "month": month,
                "layout_id": summed.layout.id,
                "day_mask": mask,
                "data": summed.matrix[0].tobytes(),
            }
        )
        self.in_month = []

    def flush(self) -> None:
        if self.days:
            self.connection.execute(sa.insert(_days), self.days)
            self.days = []
        if self.months:
            self.connection.execute(sa.insert(_months), self.months)
            self.months = []


def upgrade() -> None:
    _create_days_tables()
    connection = op.get_bind()
    names = connection.execute(sa.select(_values.c.entity_kind, _values.c.entity).distinct()).all()
    if names:
        connection.execute(sa.insert(_entities), [{"kind": kind, "name": name} for kind, name in names])
    ids = {(kind, name): entity_id for entity_id, kind, name in connection.execute(sa.select(_entities))}
    writer = _Writer(connection)
    for kind, entity, day, group in _entity_days(connection):
        writer.add(ids[(kind, entity)], day, encode_day(kind, entity, group))
    writer.end_month()
    writer.flush()
    op.drop_index("ix_rollup_values_day_kind", table_name="rollup_values")
    op.drop_table("rollup_values")


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def _family_rows(named: tuple[str, str], layout: Layout, number: int, data: bytes) -> list[dict[str, Any]]:
    """One stored day as the ``rollup_values`` rows it was made of."""
    kind, entity = named
    numbers = decode(layout, data).tolist()
    rows = []
    for slot in layout.slots:
        part = numbers[slot.offset : slot.offset + slot.width]
        value: dict[str, Any] = dict.fromkeys(("total", "samples", "peak", "low", "buckets"))
        if slot.kind is FamilyKind.COUNTER:
            value["total"] = _optional(part[0])
        elif slot.kind is FamilyKind.GAUGE:
            value.update({name: _optional(v) for name, v in zip(GAUGE_FIELDS, part, strict=True)})
            if value["samples"] is not None:
                value["samples"] = int(value["samples"])
        else:
            pairs = [["+Inf" if math.isinf(b) else b, c] for b, c in zip(slot.bounds, part, strict=True)]
            value["buckets"] = json.dumps(pairs)
        rows.append(
            {"entity_kind": kind, "entity": entity, "family": slot.family, "day": day_of(number), **value}
        )
    return rows


def downgrade() -> None:
    _create_values_table()
    connection = op.get_bind()
    layouts = {layout_id: parse_layout(spec) for layout_id, spec in connection.execute(sa.select(_layouts))}
    names = {entity_id: (kind, name) for entity_id, kind, name in connection.execute(sa.select(_entities))}
    pending: list[dict[str, Any]] = []
    for row in _pages(connection, _days, ("entity_id", "day")):
        pending.extend(_family_rows(names[row.entity_id], layouts[row.layout_id], row.day, row.data))
        if len(pending) >= BATCH:
            connection.execute(sa.insert(_values), pending)
            pending = []
    if pending:
        connection.execute(sa.insert(_values), pending)
    op.drop_table("rollup_state")
    op.drop_index("ix_rollup_months_month", table_name="rollup_months")
    op.drop_table("rollup_months")
    op.drop_index("ix_rollup_days_day", table_name="rollup_days")
    op.drop_table("rollup_days")
    op.drop_table("rollup_layouts")
    op.drop_table("rollup_entities")

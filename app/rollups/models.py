"""Tables of the rollups feature: entities, the stored days of each, their layouts, and the runs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class RollupEntity(Base):
    """An entity of some kind (a service, a namespace, a user-defined kind) that has stored days.

    Days refer to it by ``id``: the name is stored once, not on each of its 1,096 days.
    """

    __tablename__ = "rollup_entities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))

    __table_args__ = (UniqueConstraint("kind", "name", name="uq_rollup_entities_kind_name"),)


class RollupLayout(Base):
    """What the positions of a stored day's numbers mean (``layouts.py``); never changed once stored.

    ``id`` is a hash of ``spec``, the same in every database.
    """

    __tablename__ = "rollup_layouts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    spec: Mapped[str] = mapped_column(Text)


class RollupDayPack(Base):
    """One entity's stored days of one calendar month, each its additive figures in one float64
    vector: what a report reads, one row per entity and month.

    ``month`` is the day number (days since 1970-01-01) of the month's first local day;
    ``day_mask`` has bit ``d - 1`` set for each stored day ``d``; ``data`` packs each stored
    day's layout id and vector (``layouts.pack_month``: a 12-byte header a day, then the vectors,
    bit for bit). A three-year daily report of one entity reads 37 rows of one primary-key range
    instead of 1,096 day rows, which on PostgreSQL sat on 1,096 heap pages: rollups write a day
    for every entity at once, so one entity's day rows were scattered. The night's day is first
    stored on a row of its own (``part``), and the month's row is written again with it right
    after, with its report rows (``repository.replace_day`` and ``render_months`` say why);
    writes of a month's rows are under the month's lock (``repository._lock_month``): two
    replicas writing two days of one month both keep theirs.
    Measured (``repository`` has the runs): the read of a cold three-year series 0.9–1.2 ms
    instead of 2.0–2.7, on SQLite and PostgreSQL; the store 49.9 B per family value (51.1 before).
    """

    __tablename__ = "rollup_day_packs"

    entity_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("rollup_entities.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    # 0: the month's row, its days packed. A night's day is stored on a row of its own, ``part``
    # its day of the month, until the month's row is written again with it (``render_months``,
    # right after the day): storing the day then writes one small row per entity instead of
    # rewriting each entity's month (``repository.replace_day`` says why). Every stored day is
    # in exactly one row; readers read every row of a month, in (month, part) order.
    part: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0, server_default="0")
    day_mask: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # The month's rows of the daily report, already written as JSON (``rendered.py`` says why),
    # and the key of the figure definitions and timezone they were written with; NULL when the
    # writer did not write them (the report then reads the month's numbers and computes them).
    render_key: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rendered: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    # On SQLite the rows are stored in primary-key order (WITHOUT ROWID): one entity's months are
    # neighbours on disk, and a three-year report reads them in one sweep of one index range.
    __table_args__ = (
        Index("ix_rollup_day_packs_month", "month"),
        Index("ix_rollup_day_packs_render_key", "render_key"),  # months whose rows are due
        {"sqlite_with_rowid": False},
    )


class RollupFigureMonth(Base):
    """One figure's daily values of one entity's month, already computed: what a cold daily
    series of one figure reads (37 rows of ~260 bytes for three years: ``figure_months.py`` says
    why and how ``data`` is laid out). Written by every writer of a month's days beside the
    month's report rows, in the same transaction, under the month's lock, with the same
    ``render_key``: another configuration reads live.
    """

    __tablename__ = "rollup_figure_months"

    entity_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("rollup_entities.id", ondelete="CASCADE"), primary_key=True
    )
    figure: Mapped[str] = mapped_column(String(128), primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    render_key: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    # One entity's months of one figure are neighbours on SQLite (WITHOUT ROWID); on PostgreSQL
    # each row is small enough to stay in the table's pages (no TOAST probe per row).
    __table_args__ = (Index("ix_rollup_figure_months_month", "month"), {"sqlite_with_rowid": False})


class RollupMonth(Base):
    """One entity's stored days of one calendar month, summed as reports sum them (``frames.reduce``).

    Kept by every write of a day, in the same transaction, so that a report over years reads
    one row per whole month instead of one per day (36 instead of 1,096 per entity over three
    years). ``month`` is the day number of the month's first day; ``day_mask`` has bit ``d - 1``
    set for each stored day ``d`` of the month (a report counts them, and the length of each).
    """

    __tablename__ = "rollup_months"

    entity_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("rollup_entities.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    layout_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("rollup_layouts.id"))
    day_mask: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_rollup_months_month", "month"), {"sqlite_with_rowid": False})


class RollupState(Base):
    """One row: a counter every write of stored days or month sums increments (same transaction).

    A process may keep what it computed from the store for as long as the counter has not moved
    (``service.series_rows``): several replicas see each other's writes through it.
    """

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


class RollupRun(Base):
    """One attempt at rolling up a day; the newest attempt tells the day's state."""

    __tablename__ = "rollup_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    entities: Mapped[int | None] = mapped_column(Integer)
    values: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str] = mapped_column(String(128))
    prometheus: Mapped[bool | None] = mapped_column(Boolean)
    """Whether Prometheus was queried (False: the on-call history alone); NULL before 0018: queried.
    A ``completed`` run carries the pending run's: the day's Prometheus figures are that run's."""
    history: Mapped[str | None] = mapped_column(String(16))
    """The day's on-call history (``repository.History``): ``stored`` with the Prometheus figures,
    ``pending`` (not stored: the alert journal had not moved past the day), ``completed`` (stored
    alone by a later run, completing a pending day); NULL before 0020: ``stored``. A ``running``
    run that stores a pending history alone is marked ``pending`` (``repository.claim_history``):
    killed, it is claimed again for the history alone once its lease has run out."""

"""Tables of the rollups feature: the stored daily values and the history of runs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class RollupValue(Base):
    """One family's additive figures for one entity on one local day.

    Counters keep the day's increase in ``total``; gauges the sum, count, max and
    min of their samples; histograms the day's increase of every bucket, as JSON
    ``[[le, count], ...]`` (``"+Inf"`` for the last bound).
    """

    __tablename__ = "rollup_values"

    entity_kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(512), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    total: Mapped[float | None] = mapped_column(Float)
    samples: Mapped[int | None] = mapped_column(Integer)
    peak: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    buckets: Mapped[str | None] = mapped_column(Text)

    # On SQLite the rows are stored in primary-key order (WITHOUT ROWID), so one entity's days
    # are neighbours on disk and a three-year report reads them in one sweep.
    __table_args__ = (Index("ix_rollup_values_day_kind", "day", "entity_kind"), {"sqlite_with_rowid": False})


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

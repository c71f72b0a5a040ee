"""From a Grafana range to the rolled-up periods a panel shows, and the stamps of their points.

A range is read as the finished local days it covers: never past yesterday (today is
not rolled up yet) and cut to the latest three years (the rollups' retention and report
limit). A time series then widens it to whole days, ISO weeks, months or years of the
configured time zone; when that makes more periods than the panel's ``maxDataPoints``,
the next coarser granularity is used (day → week → month → year): points are never
dropped. Each point is stamped with the epoch milliseconds of its period's first local
midnight.

The calendar arithmetic itself (period starts, ends, counts) is ``app.rollups.days``;
this module only applies it to Grafana's ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from app import times
from app.config import Settings
from app.grafana.errors import InvalidQuery
from app.grafana.schemas import TimeRange
from app.rollups import service as rollups
from app.rollups.days import (
    Granularity,
    day_window,
    local_today,
    next_period,
    period_count,
    period_last_day,
    period_start,
)
from app.rollups.layouts import day_of

COARSENING = (Granularity.DAY, Granularity.WEEK, Granularity.MONTH, Granularity.YEAR)


@dataclass(frozen=True)
class Days:
    """Local days ``first``..``last`` (inclusive); ``latest`` is yesterday, the newest rolled-up day."""

    first: date
    last: date
    latest: date


def range_bounds(time_range: TimeRange, settings: Settings) -> tuple[datetime, datetime]:
    """The range's ``from`` and ``to`` as aware UTC instants; a reversed range is refused.

    Grafana sends UTC; a bound without an offset is a wall time of the configured zone, as
    everywhere else (``app.times``, the one time grammar, reads it).
    """
    start, end = (
        times.localize(time_range.start, settings.tzinfo),
        times.localize(time_range.end, settings.tzinfo),
    )
    if end < start:
        raise InvalidQuery(f"range: 'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})")
    return start, end


def days_of(time_range: TimeRange, settings: Settings, now: datetime | None = None) -> Days | None:
    """The finished local days a Grafana range covers (the latest three years of it); None if none."""
    start, end = range_bounds(time_range, settings)
    tz = settings.tzinfo
    first = times.local_day(start, tz)
    last = times.local_day(end, tz, end=True) if end > start else first
    latest = local_today(tz, now) - timedelta(days=1)
    last = min(last, latest)
    first = max(first, last - timedelta(days=rollups.MAX_PERIOD_DAYS - 1))
    return Days(first, last, latest) if first <= last else None


def choose_granularity(requested: Granularity, days: Days, max_points: int | None) -> Granularity:
    """The asked granularity, or the first coarser one with at most ``max_points`` periods."""
    if not max_points or max_points <= 0:
        return requested
    for granularity in COARSENING[COARSENING.index(requested) :]:
        if period_count(days.first, days.last, granularity) <= max_points:
            return granularity
    return Granularity.YEAR


def whole_periods(days: Days, granularity: Granularity) -> Days:
    """``days`` widened to whole periods (not past ``latest``), within three years."""
    first = period_start(days.first, granularity)
    last = min(period_last_day(period_start(days.last, granularity), granularity), days.latest)
    earliest = last - timedelta(days=rollups.MAX_PERIOD_DAYS - 1)
    if first < earliest:
        first = period_start(earliest, granularity)
        if first < earliest:
            first = next_period(first, granularity)
    return Days(first, last, days.latest)


@lru_cache(maxsize=16384)
def period_ms(start: date, tz: ZoneInfo) -> int:
    """Epoch milliseconds of the local midnight that starts ``start``."""
    return int(day_window(start, tz).start.timestamp() * 1000)


@lru_cache(maxsize=65536)
def midnight_ms(number: int, tz: ZoneInfo) -> int:
    """Epoch milliseconds of the local midnight that starts day ``number`` (``layouts.day_number``)."""
    return period_ms(day_of(number), tz)

"""Local days: their bounds in UTC, DST included, and the periods reports group them into.

The one home of calendar arithmetic (where a period starts and ends, how many a range touches):
whatever needs it imports it from here rather than keeping a copy of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DayWindow:
    """One local day: ``(start, end]`` in UTC. 23, 24 or 25 hours long."""

    day: date
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


@lru_cache(maxsize=16384)
def day_window(day: date, tz: ZoneInfo) -> DayWindow:
    """Local midnight to the next local midnight, as UTC instants."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return DayWindow(day, start, end)


def local_today(tz: ZoneInfo, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(tz).date()


def days_between(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last``, both included."""
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def period_start(day: date, granularity: Granularity) -> date:
    """The first day of the period ``day`` falls in (ISO weeks start on Monday)."""
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def period_label(start: date, granularity: Granularity) -> str:
    """``2026-11-23``, ``2026-W48``, ``2026-11`` or ``2026``."""
    if granularity is Granularity.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity is Granularity.MONTH:
        return f"{start.year}-{start.month:02d}"
    if granularity is Granularity.YEAR:
        return str(start.year)
    return start.isoformat()


def next_period(start: date, granularity: Granularity) -> date:
    """The first day of the period after the one that starts on ``start``."""
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    if granularity is Granularity.MONTH:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


def period_last_day(start: date, granularity: Granularity) -> date:
    """The last day of the period that starts on ``start``."""
    return next_period(start, granularity) - timedelta(days=1)


def period_count(first: date, last: date, granularity: Granularity) -> int:
    """How many periods of ``granularity`` the days ``first``..``last`` touch."""
    if granularity is Granularity.DAY:
        return (last - first).days + 1
    if granularity is Granularity.WEEK:
        return (period_start(last, granularity) - period_start(first, granularity)).days // 7 + 1
    if granularity is Granularity.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def period_starts(first: date, last: date, granularity: Granularity) -> Iterator[date]:
    """The first day of every period the days ``first``..``last`` touch, in order."""
    start = period_start(first, granularity)
    while start <= last:
        yield start
        start = next_period(start, granularity)


def per_period(days: Iterable[date], granularity: Granularity) -> dict[str, int]:
    """How many of ``days`` fall in each period, by the period's first day (``YYYY-MM-DD``):
    a CSV report's ``partial_days`` column counts its partial days so."""
    return dict(Counter(period_start(day, granularity).isoformat() for day in days))

"""Time windows of the correlation endpoints and the daily indices a window covers.

The ``from``/``to`` text is read by :mod:`app.times` (the one time grammar), never here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.times import Clock, parse_range

MAX_LISTED_DAYS = 31
"""Past this many UTC days, a search names the index pattern instead of every daily index
(Elasticsearch still skips the shards outside the time range)."""


@dataclass(frozen=True)
class Window:
    """A closed time window in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a window needs aware datetimes")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def widened(self, by: timedelta) -> Window:
        return Window(self.start - by, self.end + by)

    def contains(self, other: Window) -> bool:
        return self.start <= other.start and other.end <= self.end

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def resolve_window(start: str | None, end: str | None, *, default: timedelta, clock: Clock) -> Window:
    """The window ``[from, to]`` read by :func:`app.times.parse_range`: ``to`` defaults to now,
    ``from`` to ``default`` before ``to``; a bad value raises :class:`app.times.InvalidTime`."""
    return Window(*parse_range(start, end, clock, default=default))


def daily_indices(window: Window, index_format: str, pattern: str) -> str:
    """The comma list of the daily indices (UTC days) ``window`` touches, or ``pattern`` past
    :data:`MAX_LISTED_DAYS` days. Missing indices are the search's to ignore."""
    first, last = window.start.astimezone(UTC).date(), window.end.astimezone(UTC).date()
    days = (last - first).days + 1
    if days > MAX_LISTED_DAYS:
        return pattern
    names = [
        datetime(d.year, d.month, d.day, tzinfo=UTC).strftime(index_format)
        for d in (first + timedelta(days=k) for k in range(days))
    ]
    return ",".join(dict.fromkeys(names))


def iso(moment: datetime, *, round_up: bool = False) -> str:
    """UTC ISO 8601 with milliseconds, the form Elasticsearch's date fields read: 2024-05-01T10:00:00.000Z.

    ``round_up`` rounds a sub-millisecond remainder up instead of down (for a window's end).
    """
    utc = moment.astimezone(UTC)
    if round_up and utc.microsecond % 1000:
        utc += timedelta(microseconds=1000 - utc.microsecond % 1000)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

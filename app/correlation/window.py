"""Time windows of the correlation endpoints: `from`/`to` parameters, the daily indices a window covers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.config_types import parse_duration

MAX_LISTED_DAYS = 31
"""Past this many UTC days, a search names the index pattern instead of every daily index
(Elasticsearch still skips the shards outside the time range)."""

_EPOCH_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_RELATIVE = re.compile(r"^now\s*(?:-\s*(\S+))?$", re.IGNORECASE)
_EPOCH_MS_ABOVE = 100_000_000_000  # epoch seconds reach this in the year 5138; milliseconds did in 1973
TIME_FORMS = "an ISO 8601 time with a zone (2024-05-01T10:00:00Z), epoch seconds or milliseconds, or now-15m"


class TimeParamError(ValueError):
    """A time parameter cannot be read; the message names the parameter."""


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


def parse_time(value: str, name: str, now: datetime) -> datetime:
    """A ``from``/``to`` value as an aware UTC datetime; TimeParamError naming ``name`` otherwise."""
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        if relative.group(1) is None:
            return now
        try:
            return now - parse_duration(relative.group(1))
        except ValueError:
            raise TimeParamError(f"{name}: {value!r} is not a time; use {TIME_FORMS}") from None
    if _EPOCH_NUMBER.match(text):
        number = float(text)
        seconds = number / 1000 if number >= _EPOCH_MS_ABOVE else number
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TimeParamError(f"{name}: {value!r} is out of range") from None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise TimeParamError(f"{name}: {value!r} is not a time; use {TIME_FORMS}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimeParamError(f"{name}: {value!r} has no time zone; add Z or an offset such as +08:00")
    return moment.astimezone(UTC)


def resolve_window(start: str | None, end: str | None, *, default: timedelta, now: datetime) -> Window:
    """The window ``[from, to]``: ``to`` defaults to now, ``from`` to ``default`` before ``to``."""
    until = parse_time(end, "to", now) if end else now
    since = parse_time(start, "from", now) if start else until - default
    if since >= until:
        raise TimeParamError(
            f"from: {since.isoformat()} is not before to ({until.isoformat()}); give from earlier than to"
        )
    return Window(since, until)


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

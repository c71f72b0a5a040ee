"""Alertmanager's time intervals (``time_intervals``, used by ``mute_time_intervals``), read as it reads them.

A block copied from ``alertmanager.yml`` means the same here:

- ``times``: ``HH:MM`` ranges, start inclusive and end exclusive; ``24:00`` is the end of the day. A range
  may not wrap past midnight (Alertmanager rejects ``22:00``-``06:00``): write two ranges.
- ``weekdays``: names, any case; ranges are inclusive and run sunday … saturday, so ``saturday:sunday`` is
  rejected as by Alertmanager: write ``[saturday, sunday]``.
- ``days_of_month``: 1 … 31, or -1 … -31 counting back from the month's last day (-1). Ranges are
  inclusive and cut to the month: ``1:31`` is all of February, ``30`` never matches in February.
- ``months``: names or 1 … 12; ``years``: numbers; both inclusive ranges.
- ``location``: the IANA zone every field is read in (default UTC); near a DST change the fields follow
  the wall clock, so ``02:00``-``03:00`` matches twice on the autumn day and never on the spring day.

An interval matches when each field it sets matches; an empty field matches everything.

Where this differs from Alertmanager 0.25, it is stricter about nonsense and looser about sense: a month
13 or a year 0 is rejected (Alertmanager accepts them and never matches), ``9:00`` is accepted as
``09:00``, and a day range is rejected only if it matches in no month at all (Alertmanager also rejects
``28:-1`` and ``29:-1``, which match the end of longer months).
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from app.alerts.config import TimeInterval

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
"""Alertmanager's order: the week starts on Sunday (0)."""
MONTHS = (
    "",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MINUTES_PER_DAY = 24 * 60

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class InclusiveRange:
    begin: int
    end: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.begin <= value <= self.end


def parse_clock(text: str) -> int:
    """``"HH:MM"`` → minutes since midnight, from 0 (``00:00``) to 1440 (``24:00``)."""
    match = _CLOCK.match(text.strip())
    if match:
        hours, minutes = int(match[1]), int(match[2])
        if minutes < 60 and (hours < 24 or (hours, minutes) == (24, 0)):
            return hours * 60 + minutes
    raise ValueError(f"{text!r} is not a time of day; write HH:MM, from 00:00 to 24:00")


def parse_time_range(start: str, end: str) -> tuple[int, int]:
    """A ``times`` entry → (start, end) minutes since midnight, end exclusive."""
    begin, finish = parse_clock(start), parse_clock(end)
    if finish < begin:
        raise ValueError(
            f"end_time {end} is before start_time {start}; a range cannot wrap past midnight, "
            f"write two: {start}-24:00 and 00:00-{end}"
        )
    if finish == begin:
        raise ValueError(f"start_time and end_time are both {start}: the range is empty")
    return begin, finish


def parse_weekday_range(text: str) -> InclusiveRange:
    """``"monday:friday"`` or ``"saturday"`` → 1..5 or 6..6 (0 is Sunday)."""
    begin, end = (_named(part, WEEKDAYS, "weekday") for part in _split(text))
    if begin > end:
        first = _join(WEEKDAYS, begin, len(WEEKDAYS) - 1)
        second = _join(WEEKDAYS, 0, end)
        raise ValueError(
            f"{text!r} runs backwards: weekday ranges run sunday to saturday (as in Alertmanager); "
            f"write two entries: {first!r} and {second!r}"
        )
    return InclusiveRange(begin, end)


def parse_day_of_month_range(text: str) -> InclusiveRange:
    """``"1:5"``, ``"-1"`` (the last day) or ``"-3:-1"`` (the last three days), as written."""
    begin, end = (_integer(part, "day of the month") for part in _split(text))
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a day of the month: use 1 to 31, or -1 (the last day) to -31")
    if begin < 0 < end:
        raise ValueError(
            f"{text!r}: a range that starts counting from the month's end must end so too, e.g. -7:-1"
        )
    longest = days_in_month(InclusiveRange(begin, end), 31)
    if longest.begin > longest.end:
        hint = f"; across the month's end write two entries: '{begin}:-1' and '1:{end}'" if end > 0 else ""
        raise ValueError(f"{text!r} never matches: its end comes before its start in every month{hint}")
    return InclusiveRange(begin, end)


def parse_month_range(text: str) -> InclusiveRange:
    """``"january:march"``, ``"12"`` or ``"5:august"`` → 1..3, 12..12, 5..8."""
    begin, end = (_month(part) for part in _split(text))
    if begin > end:
        first, second = _join(MONTHS, begin, 12), _join(MONTHS, 1, end)
        raise ValueError(f"{text!r} runs backwards: write two entries, {first!r} and {second!r}")
    return InclusiveRange(begin, end)


def parse_year_range(text: str) -> InclusiveRange:
    """``"2026:2027"`` or ``"2026"``."""
    begin, end = (_integer(part, "year") for part in _split(text))
    for year in (begin, end):
        if not 1 <= year <= 9999:
            raise ValueError(f"{year} is not a year from 1 to 9999")
    if begin > end:
        raise ValueError(f"{text!r} runs backwards: the end year {end} is before the start year {begin}")
    return InclusiveRange(begin, end)


def days_in_month(days: InclusiveRange, length: int) -> InclusiveRange:
    """A day-of-month range made absolute for a month of ``length`` days (-1 → ``length``)."""

    def absolute(day: int) -> int:
        return day if day > 0 else length + day + 1

    return InclusiveRange(absolute(days.begin), absolute(days.end))


def in_interval(interval: TimeInterval, at: datetime) -> bool:
    """Whether the instant ``at`` (timezone-aware) falls in ``interval``, read in its ``location``."""
    _require_aware(at)
    local = at.astimezone(ZoneInfo(interval.location))
    minute = local.hour * 60 + local.minute
    weekday = (local.weekday() + 1) % 7
    month_length = monthrange(local.year, local.month)[1]
    times = (parse_time_range(t.start_time, t.end_time) for t in interval.times)
    return (
        (not interval.times or any(start <= minute < end for start, end in times))
        and (not interval.weekdays or any(weekday in parse_weekday_range(w) for w in interval.weekdays))
        and (
            not interval.days_of_month
            or any(
                local.day in days_in_month(parse_day_of_month_range(d), month_length)
                for d in interval.days_of_month
            )
        )
        and (not interval.months or any(local.month in parse_month_range(m) for m in interval.months))
        and (not interval.years or any(local.year in parse_year_range(y) for y in interval.years))
    )


def in_any(intervals: Sequence[TimeInterval], at: datetime) -> bool:
    """Whether ``at`` falls in at least one of ``intervals`` (none given: False, nothing is muted)."""
    _require_aware(at)
    return any(in_interval(interval, at) for interval in intervals)


def _split(text: str) -> tuple[str, str]:
    parts = text.strip().lower().split(":")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0].strip(), parts[1].strip()
    raise ValueError(f"{text!r} is not a range; write one value or start:end")


def _named(name: str, names: tuple[str, ...], what: str) -> int:
    if name and name in names:
        return names.index(name)
    raise ValueError(f"{name!r} is not a {what}; use one of {', '.join(n for n in names if n)}")


def _month(part: str) -> int:
    if _INTEGER.match(part):
        number = int(part)
        if 1 <= number <= 12:
            return number
        raise ValueError(f"{number} is not a month; use 1 to 12 or a name such as january")
    return _named(part, MONTHS, "month")


def _integer(part: str, what: str) -> int:
    if not _INTEGER.match(part):
        raise ValueError(f"{part!r} is not a {what}")
    return int(part)


def _join(names: tuple[str, ...], begin: int, end: int) -> str:
    return names[begin] if begin == end else f"{names[begin]}:{names[end]}"


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; pass a timezone-aware datetime")

"""Panorama's one time grammar: every time, day and range a person or Grafana writes is read here.

Why one module: before it, each feature read times its own way (reports took plain dates only,
``/graph`` refused a time without a zone, incidents refused ``now-1h``, schedules demanded an
offset), so a value that worked on one endpoint failed on the next. Every API parameter, CLI
option and page filter that names a time now goes through :func:`parse_time`, :func:`parse_day`
or :func:`parse_range`, and the README documents the grammar once ("Times").

The forms, all read in the configured time zone (``timezone``) where they need one:

- RFC 3339 / ISO 8601 ``2026-12-06T09:30:00+08:00`` or ``…Z``; without an offset the time is a
  wall time of the configured zone (``2026-12-06T09:30``, a space instead of ``T`` works too);
- a plain date ``2026-12-06``: the local day. As a time, its local midnight; as the end of a
  range (``round_up``), the day's last millisecond, so ``to=2026-12-06`` includes that day;
- epoch seconds or milliseconds (``1764988200``, ``1764988200000``; numbers from 10^11 up are
  milliseconds), as Grafana's ``${__from}``/``${__to}`` give them;
- Grafana's relative times: ``now``, then any number of ``+N<unit>``/``-N<unit>``/``/<unit>``
  with units ``y M w d h m s`` (``now-7d``, ``now-1h``, ``now+5m``, ``now/d``, ``now-1d/d``).
  ``d``, ``w``, ``M``, ``y`` step and round on the local calendar (a DST day is 23 or 25 hours);
  ``h``, ``m``, ``s`` are exact durations. Rounding goes to the start of the unit, or, for the
  end of a range, to its last millisecond (Grafana's ``datemath.parse(text, roundUp)``); a week
  starts on Monday, as the rollups' weeks do.

It must never know about HTTP: a bad value raises :class:`InvalidTime`, an ``InvalidInput``
whose message names the parameter and lists the accepted forms, and which ``main.py`` already
answers as 400 ``{"error": "invalid_request", "message": ..., "parameter": ...}``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from app.errors import InvalidInput, Phrase

FORMS = (
    "an RFC 3339 time (2026-12-06T09:30:00+08:00; without an offset, the configured time zone), "
    "a date (2026-12-06), epoch seconds or milliseconds, or a relative time "
    "(now, now-7d, now-1h, now+5m, now/d, now-1d/d)"
)
"""The accepted forms, as every error message and parameter description states them."""
FORMS_PHRASE = Phrase("problem.time.forms")
"""The same, as pages say it in their language (:mod:`app.web.catalogue`)."""

_EPOCH = re.compile(r"^\d+(?:\.\d+)?$")
_EPOCH_MS_FROM = 100_000_000_000  # epoch seconds reach this in the year 5138; milliseconds did in 1973
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELATIVE = re.compile(r"^now(?P<math>.*)$", re.IGNORECASE)
_STEP = re.compile(r"\s*(?:(?P<sign>[-+ ])\s*(?P<count>\d*)|(?P<round>/))\s*(?P<unit>[yMwdhms])")
# A '+' written unencoded in a URL arrives as a space: "…T09:30:00 08:00" is read as "+08:00".
_SPACED_OFFSET = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (?P<offset>\d{2}:?\d{2})$"
)
_EXACT = {"h": timedelta(hours=1), "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_LAST = timedelta(milliseconds=1)


class InvalidTime(InvalidInput):
    """A time, day or range that cannot be read; the message names the parameter and the forms.
    ``said``: the problem as a page says it (a :class:`Phrase`), wrapped here with the name."""

    def __init__(
        self, name: str, problem: str, *, source: str = "query parameter", said: Phrase | None = None
    ) -> None:
        where = f"{source} {name!r}" if source else name
        parameter = name.lstrip("-")
        phrase = Phrase("problem.parameter", name=parameter, problem=said) if said else None
        super().__init__(f"{where}: {problem}", phrase=phrase, parameter=parameter)
        self.name = name


@dataclass(frozen=True)
class Clock:
    """What a time needs besides its text: the moment ``now`` means and the configured zone."""

    now: datetime
    zone: tzinfo

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("Clock.now must be an aware datetime")

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def today(self) -> date:
        return self.local(self.now).date()


def parse_time(
    value: str,
    name: str,
    clock: Clock,
    *,
    round_up: bool = False,
    open_end: bool = False,
    source: str = "query parameter",
) -> datetime:
    """``value`` as an aware UTC datetime. ``round_up`` reads it as the end of a range: a date
    means its last millisecond and ``/unit`` rounds to the unit's last millisecond; with
    ``open_end`` (a range that excludes its end, like shifts) to the next unit's start instead."""
    last = timedelta(0) if open_end else _LAST
    text = value.strip()
    if not text:
        raise InvalidTime(
            name,
            f"is empty; use {FORMS}",
            source=source,
            said=Phrase("problem.time.empty", forms=FORMS_PHRASE),
        )
    try:
        relative = _RELATIVE.match(text)
        if relative:
            return _relative(relative.group("math"), clock, round_up=round_up, last=last)
        if _EPOCH.match(text):
            number = float(text)
            seconds = number / 1000 if number >= _EPOCH_MS_FROM else number
            return datetime.fromtimestamp(seconds, tz=UTC)
        if _DATE.match(text):
            day = date.fromisoformat(text)
            return (
                _midnight(day + timedelta(days=1), clock.zone) - last
                if round_up
                else _midnight(day, clock.zone)
            )
        spaced = _SPACED_OFFSET.match(text)
        if spaced:
            text = f"{spaced.group('time')}+{spaced.group('offset')}"
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        return localize(moment, clock.zone)
    except _Unreadable as exc:
        said = Phrase("problem.time.unreadable", value=value, detail=exc.said, forms=FORMS_PHRASE)
        raise InvalidTime(name, f"{value!r}: {exc}; use {FORMS}", source=source, said=said) from None
    except (ValueError, OverflowError, OSError):
        said = Phrase("problem.time.not_a_time", value=value, forms=FORMS_PHRASE)
        raise InvalidTime(name, f"{value!r} is not a time; use {FORMS}", source=source, said=said) from None


def parse_day(
    value: str, name: str, clock: Clock, *, end: bool = False, source: str = "query parameter"
) -> date:
    """The local day ``value`` names: a date is itself; a time is the day it falls on, except
    that as the ``end`` of a range an instant closes the day before it (a local midnight, like
    Grafana's ``${__to}`` of a whole-day range, ends the previous day)."""
    text = value.strip()
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            said = Phrase("problem.time.not_a_date", value=value, forms=FORMS_PHRASE)
            raise InvalidTime(
                name, f"{value!r} is not a date; use {FORMS}", source=source, said=said
            ) from None
    return local_day(parse_time(value, name, clock, round_up=end, source=source), clock.zone, end=end)


def local_day(moment: datetime, zone: tzinfo, *, end: bool = False) -> date:
    """The day of ``zone`` an aware instant falls on; as the ``end`` of a range, the day before a
    local midnight (for instants another parser already read, such as Grafana's ``range``)."""
    return (moment - _LAST if end else moment).astimezone(zone).date()


def parse_range(
    start: str | None,
    end: str | None,
    clock: Clock,
    *,
    default: timedelta,
    default_end: str = "now",
    names: tuple[str, str] = ("from", "to"),
    source: str = "query parameter",
) -> tuple[datetime, datetime]:
    """``[from, to]`` in UTC: ``to`` defaults to ``default_end``, ``from`` to ``default`` before ``to``.
    ``to`` is read as the end of a range (see :func:`parse_time`); ``from`` must come first."""
    first_name, last_name = names
    until = parse_time(end or default_end, last_name, clock, round_up=True, source=source)
    since = parse_time(start, first_name, clock, source=source) if start else until - default
    if since >= until:
        raise InvalidTime(
            first_name,
            f"{since.isoformat()} is not before {last_name} ({until.isoformat()}); give {first_name} "
            f"earlier than {last_name}",
            source=source,
            said=Phrase(
                "problem.time.not_before",
                first=first_name,
                last=last_name,
                since=since.isoformat(),
                until=until.isoformat(),
            ),
        )
    return since, until


def names_a_day(value: str) -> bool:
    """Whether ``value`` is a plain date (a whole local day) rather than a time."""
    return bool(_DATE.match(value.strip()))


def localize(moment: datetime, zone: tzinfo) -> datetime:
    """An aware ``moment`` unchanged (in UTC); a naive one read as a wall time of ``zone``.
    For values a JSON body already parsed (Pydantic reads the RFC 3339 and epoch forms)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# --- relative times -------------------------------------------------------------------------


class _Unreadable(ValueError):
    """A relative time that does not follow the grammar; the message says where (``said``: as a
    page says it)."""

    def __init__(self, message: str, said: Phrase) -> None:
        super().__init__(message)
        self.said = said


def _relative(math: str, clock: Clock, *, round_up: bool, last: timedelta) -> datetime:
    moment = clock.now.astimezone(UTC)
    position = 0
    while position < len(math):
        step = _STEP.match(math, position)
        if step is None:
            rest = math[position:].strip()
            if not rest:
                break
            raise _Unreadable(
                f"cannot read {rest!r} after now (steps are like -7d, +5m, /d)",
                Phrase("problem.time.after_now", rest=rest),
            )
        unit = step.group("unit")
        if step.group("round"):
            moment = _round(moment, unit, clock.zone, up=round_up, last=last)
        else:
            count = int(step.group("count") or 1)
            moment = _add(moment, -count if step.group("sign") == "-" else count, unit, clock.zone)
        position = step.end()
    return moment


def _add(moment: datetime, count: int, unit: str, zone: tzinfo) -> datetime:
    if unit in _EXACT:
        return moment + count * _EXACT[unit]
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if unit == "d":
        wall += timedelta(days=count)
    elif unit == "w":
        wall += timedelta(weeks=count)
    else:
        months = wall.month - 1 + count * (12 if unit == "y" else 1)
        year, month = wall.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            raise _Unreadable(
                f"{count}{unit} goes past the year 9999",
                Phrase("problem.time.past_9999", step=f"{count}{unit}"),
            )
        wall = wall.replace(year=year, month=month, day=min(wall.day, calendar.monthrange(year, month)[1]))
    return wall.replace(tzinfo=zone, fold=local.fold).astimezone(UTC)


def _round(moment: datetime, unit: str, zone: tzinfo, *, up: bool, last: timedelta) -> datetime:
    """The start of ``unit`` holding ``moment`` in ``zone``, or with ``up`` the next unit's start
    less ``last`` (one millisecond: the unit's last; zero for a range that excludes its end)."""
    local = moment.astimezone(zone)
    if unit in _EXACT:
        start = local.replace(microsecond=0)
        if unit in "hm":
            start = start.replace(second=0)
        if unit == "h":
            start = start.replace(minute=0)
        begin = start.astimezone(UTC)
        return begin + _EXACT[unit] - last if up else begin
    day = local.date()
    if unit == "w":
        day -= timedelta(days=day.weekday())
    elif unit == "M":
        day = day.replace(day=1)
    elif unit == "y":
        day = day.replace(month=1, day=1)
    if not up:
        return _midnight(day, zone)
    if unit == "d":
        following = day + timedelta(days=1)
    elif unit == "w":
        following = day + timedelta(weeks=1)
    elif unit == "M":
        following = (day + timedelta(days=31)).replace(day=1)
    else:
        following = day.replace(year=day.year + 1)
    return _midnight(following, zone) - last


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)

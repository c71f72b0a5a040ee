"""Who is on call: rotation layers, their active hours and overrides, at an instant or over a range.

Pure functions of the configured :class:`~app.alerts.config.Schedule` and the overrides from the database.
Local times are wall-clock times in the schedule's zone; the rules an SRE needs to predict a handoff:

- A layer hands off at ``start + k × length`` (k = 0, 1, …) counted on the wall clock, whatever the
  length. A weekly Monday 09:00 handoff stays at 09:00 across a DST change; so do the 09:00 and 21:00
  handoffs of a 12h rotation, and the shift that spans the change is an hour shorter (spring) or longer
  (autumn) than ``length``. Before ``start`` the layer is inactive.
- A handoff happens at the first instant the wall clock reads its time or later. A time that occurs twice
  (autumn) is taken at its first occurrence, in summer time; a time that never occurs (spring) is taken
  when the clocks jump over it: a 02:30 handoff on Berlin's spring-forward day happens at 03:00 CEST. So
  handoffs never run out of order, even for shifts shorter than the jump.
- ``active`` windows ("09:00-18:00", "22:00-06:00" wrapping midnight) follow the wall clock at each
  instant: the repeated autumn hour is inside "02:00-03:00" twice, the skipped spring hour never. A
  window only masks a layer; whom the layer has on call inside it is still decided by its handoffs.
- The last layer active at an instant wins. An override covering the instant, ``[start, end)``, wins over
  every layer; among overlapping overrides the most recently created one wins (one without
  ``created_at`` counts as older than any with it; then the larger id, then the later in the sequence).

Every instant is handled in UTC internally: Python compares and subtracts two datetimes that share a
``tzinfo`` by wall time, ignoring ``fold``, and never finds one inside a repeated hour ``==`` to one in
another zone (PEP 495). The same holds for callers: measure a :class:`Shift` as
``end.astimezone(UTC) - start.astimezone(UTC)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from app.alerts.timeintervals import MINUTES_PER_DAY, parse_clock

if TYPE_CHECKING:
    from app.alerts.config import Rotation, Schedule

Source = Literal["rotation", "override"]

_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True)
class Override:
    """Someone covers ``[start, end)`` (timezone-aware), whatever the layers say."""

    user: str
    start: datetime
    end: datetime
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(start=self.start, end=self.end)
        if self.created_at is not None:
            _require_aware(created_at=self.created_at)
        if self.end.astimezone(UTC) <= self.start.astimezone(UTC):
            raise ValueError(f"an override must end after it starts ({self.start} - {self.end})")


@dataclass(frozen=True)
class Shift:
    """A stretch of ``[start, end)`` in the schedule's zone with one person on call, and why."""

    user: str
    start: datetime
    end: datetime
    source: Source
    layer: int | None
    """Index of the rotation in ``schedule.rotations`` (``None`` for an override)."""
    override_id: int | None = None


@dataclass(frozen=True)
class _Cover:
    user: str
    source: Source
    layer: int | None = None
    override_id: int | None = None


def parse_window(text: str) -> tuple[int, int]:
    """``"09:00-18:00"`` → minutes since midnight (540, 1080).

    ``"22:00-06:00"`` wraps past midnight; ``"00:00-24:00"`` is all day.
    """
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window of hours; write it like 09:00-18:00")
    start, end = parse_clock(match[1]), parse_clock(match[2])
    if start == MINUTES_PER_DAY:
        raise ValueError(f"{text!r}: a window starts at 23:59 at the latest; write 00:00 for midnight")
    if start == end:
        raise ValueError(f"{text!r} is empty; for all day write 00:00-24:00 or leave active out")
    return start, end


def on_call(schedule: Schedule, at: datetime, overrides: Sequence[Override] = ()) -> str | None:
    """Who is on call at the instant ``at`` (timezone-aware); ``None`` when nobody is."""
    _require_aware(at=at)
    cover = _cover(schedule, ZoneInfo(schedule.timezone), at.astimezone(UTC), _utc(overrides))
    return None if cover is None else cover.user


def shifts(
    schedule: Schedule, first: datetime, last: datetime, overrides: Sequence[Override] = ()
) -> list[Shift]:
    """Who is on call over ``[first, last)``, as contiguous shifts clipped to that range.

    Neighbouring stretches with the same person for the same reason (same layer, or same override) are
    one shift; a stretch of another layer or another override starts a new one, so a calendar can show
    why and an override can be found by its id. Time between shifts is time nobody is on call.
    """
    _require_aware(first=first, last=last)
    begin, finish = first.astimezone(UTC), last.astimezone(UTC)
    if finish < begin:
        raise ValueError(f"the range ends ({last.isoformat()}) before it starts ({first.isoformat()})")
    if finish == begin:
        return []
    zone = ZoneInfo(schedule.timezone)
    covering = [o for o in _utc(overrides) if o.start < finish and o.end > begin]

    # Who is on call can only change at these instants; in between, nothing does.
    edges = {begin}
    for override in covering:
        edges.update((override.start, override.end))
    for rotation in schedule.rotations:
        edges.update(_handoffs(rotation, zone, begin, finish))
        if rotation.active:
            edges.update(_window_edges(rotation.active, zone, begin, finish))
    points = sorted(edge for edge in edges if begin <= edge < finish)

    result: list[Shift] = []
    joined_until: datetime | None = None  # the end of result[-1], in UTC
    for start, end in zip(points, [*points[1:], finish], strict=True):
        cover = _cover(schedule, zone, start, covering)
        if cover is None:
            continue
        if joined_until == start and _origin(result[-1]) == cover:
            result[-1] = replace(result[-1], end=end.astimezone(zone))
        else:
            local = start.astimezone(zone), end.astimezone(zone)
            result.append(Shift(cover.user, *local, cover.source, cover.layer, cover.override_id))
        joined_until = end
    return result


def _cover(schedule: Schedule, zone: ZoneInfo, at: datetime, overrides: Sequence[Override]) -> _Cover | None:
    """Who covers ``at`` (UTC) and why; ``overrides`` hold UTC datetimes."""
    covering = [(i, o) for i, o in enumerate(overrides) if o.start <= at < o.end]
    if covering:
        _, chosen = max(covering, key=_recency)
        return _Cover(chosen.user, "override", None, chosen.id)
    minute = _minute_of_day(at, zone)
    for layer in reversed(range(len(schedule.rotations))):
        rotation = schedule.rotations[layer]
        if rotation.active and not any(_in_window(parse_window(w), minute) for w in rotation.active):
            continue
        index = _shift_index(rotation, zone, at)
        if index is not None:
            return _Cover(rotation.users[index % len(rotation.users)], "rotation", layer)
    return None


def _recency(item: tuple[int, Override]) -> tuple[datetime, int, int]:
    position, override = item
    created = override.created_at or datetime.min.replace(tzinfo=UTC)
    return created, -1 if override.id is None else override.id, position


def _origin(shift: Shift) -> _Cover:
    return _Cover(shift.user, shift.source, shift.layer, shift.override_id)


def _shift_index(rotation: Rotation, zone: ZoneInfo, at: datetime) -> int | None:
    """k such that handoff k ≤ ``at`` < handoff k+1; ``None`` before the first handoff."""
    if at < _handoff(rotation, zone, 0):
        return None
    wall = at.astimezone(zone).replace(tzinfo=None)
    index = max(0, (wall - rotation.start) // rotation.length)
    # The wall clock and the instants disagree by at most a DST jump: step to the exact shift.
    while _handoff(rotation, zone, index + 1) <= at:
        index += 1
    while index > 0 and _handoff(rotation, zone, index) > at:
        index -= 1
    return index


def _handoff(rotation: Rotation, zone: ZoneInfo, index: int) -> datetime:
    return _crossings(rotation.start + index * rotation.length, zone)[0]


def _handoffs(rotation: Rotation, zone: ZoneInfo, begin: datetime, finish: datetime) -> Iterator[datetime]:
    """The handoff instants in ``(begin, finish)``, and the layer's first one if it falls there."""
    current = _shift_index(rotation, zone, begin)
    index = 0 if current is None else current + 1
    while (instant := _handoff(rotation, zone, index)) < finish:
        yield instant
        index += 1


def _window_edges(
    active: Sequence[str], zone: ZoneInfo, begin: datetime, finish: datetime
) -> Iterator[datetime]:
    """Every instant a window of ``active`` may open or close from ``begin`` to ``finish``, and a few more."""
    windows = [parse_window(w) for w in active]
    day = begin.astimezone(zone).date() - timedelta(days=1)
    while day <= finish.astimezone(zone).date():
        midnight = datetime.combine(day, time())
        for start, end in windows:
            for minute in (start, end):
                yield from _crossings(midnight + timedelta(minutes=minute), zone)
        day += timedelta(days=1)


def _crossings(local: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants (UTC) at which the wall clock passes the naive ``local``, earliest first.

    Once on an ordinary day. A time that occurs twice is passed at both occurrences and also when the
    clocks are set back over it; a time that never occurs is passed when the clocks jump over it.
    """
    early = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return [early]
    if early < late:  # repeated: fold=0 is the first occurrence
        return [early, _transition(early, late, zone), late]
    return [_transition(late, early, zone)]  # skipped: fold=0 reads it with the offset before the jump


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in ``(before, after]`` already at ``after``'s UTC offset (tz data is in seconds)."""
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    offset = after.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _minute_of_day(at: datetime, zone: ZoneInfo) -> int:
    local = at.astimezone(zone)
    return local.hour * 60 + local.minute


def _in_window(window: tuple[int, int], minute: int) -> bool:
    start, end = window
    return start <= minute < end if start < end else minute >= start or minute < end


def _utc(overrides: Sequence[Override]) -> list[Override]:
    return [
        Override(
            o.user,
            o.start.astimezone(UTC),
            o.end.astimezone(UTC),
            o.id,
            o.created_at.astimezone(UTC) if o.created_at is not None else None,
        )
        for o in overrides
    ]


def _require_aware(**values: datetime) -> None:
    for name, value in values.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} ({value.isoformat()}) has no time zone; pass a timezone-aware datetime")

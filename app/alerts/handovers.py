"""Shift notices at hand-over: the incoming person is told they are on call (and what is still
open), the outgoing one gets a short summary of their shift.

Each worker pass looks at the last :data:`LOOKBACK` of every schedule that has ``notices``
channels and finds its hand-overs (the instants its on-call person changes, or a shift starts or
ends with nobody before or after). A hand-over is announced in the transaction that records it
in ``alert_handovers``, whose unique key (schedule, instant) lets exactly one replica do so, even
when several look at the same instant. A hand-over older than the look-back (Panorama was down)
is not announced late.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import notices, oncall, outbox, repository
from app.alerts.config import Schedule
from app.alerts.models import ScheduleOverride
from app.config import Settings

LOOKBACK = timedelta(minutes=15)
SHIFT_SEARCH = timedelta(days=31)  # how far back the outgoing person's shift start is looked for


def _overrides(rows: list[ScheduleOverride]) -> list[oncall.Override]:
    return [oncall.Override(o.user, o.start, o.end, o.id, o.created_at) for o in rows]


def handovers(
    schedule: Schedule, overrides: list[oncall.Override], first: datetime, last: datetime
) -> list[tuple[datetime, str | None, str | None]]:
    """``(instant, incoming, outgoing)`` of each change of the on-call person in ``(first, last]``."""
    found = oncall.shifts(schedule, first - timedelta(minutes=1), last + timedelta(minutes=1), overrides)
    people: list[tuple[datetime, datetime, str]] = []
    for shift in found:  # shifts of one person back to back (two layers, an override) are one
        start, end = shift.start, shift.end
        if people and people[-1][2] == shift.user and people[-1][1] == start:
            people[-1] = (people[-1][0], end, shift.user)
        else:
            people.append((start, end, shift.user))
    changes: dict[datetime, tuple[str | None, str | None]] = {}
    for index, (start, end, user) in enumerate(people):
        before = people[index - 1] if index > 0 else None
        after = people[index + 1] if index + 1 < len(people) else None
        changes[start] = (user, before[2] if before is not None and before[1] == start else None)
        if after is None or after[0] != end:
            changes[end] = (None, user)
    return [(at, i, o) for at, (i, o) in sorted(changes.items()) if first < at <= last]


async def announce_due(session: AsyncSession, settings: Settings, now: datetime, key: bytes) -> int:
    """Announces every hand-over of the last :data:`LOOKBACK` not announced yet; returns how many.
    ``key`` signs the notices' view links (they open without a sign-in: :mod:`app.alerts.notices`)."""
    announced = 0
    for schedule in settings.schedules:
        if not schedule.notices:
            continue
        first, last = now - SHIFT_SEARCH, now + SHIFT_SEARCH  # the shifts on both sides of a hand-over
        rows = list(await repository.overrides(session, schedule.name, first=first, last=last))
        overrides = _overrides(rows)
        for at, incoming, outgoing in handovers(schedule, overrides, now - LOOKBACK, now):
            if not await repository.claim_handover(session, schedule.name, at, incoming, outgoing, now):
                continue
            announced += 1
            if incoming is not None:
                ahead = oncall.shifts(schedule, at, at + SHIFT_SEARCH, overrides)
                end = _run_end(ahead, incoming)
                still_open = await repository.open_incidents(session)
                notice = notices.shift_start(
                    settings,
                    schedule.name,
                    schedule.timezone,
                    incoming,
                    at,
                    end,
                    still_open,
                    key=key,
                    now=now,
                )
                outbox.enqueue(session, settings, None, schedule.notices, notice, now)
            if outgoing is not None:
                behind = oncall.shifts(schedule, at - SHIFT_SEARCH, at, overrides)
                start = _run_start(behind, outgoing)
                during = await repository.incidents_created_between(session, start or at - SHIFT_SEARCH, at)
                notice = notices.shift_end(
                    settings, schedule.name, schedule.timezone, outgoing, start, at, during, key=key, now=now
                )
                outbox.enqueue(session, settings, None, schedule.notices, notice, now)
    return announced


def _run_end(ahead: list[oncall.Shift], user: str) -> datetime | None:
    """When the run of ``user``'s shifts that starts ``ahead`` ends (None: beyond the search)."""
    end = None
    for shift in ahead:
        if shift.user != user or (end is not None and shift.start != end):
            return end
        end = shift.end
    return None


def _run_start(behind: list[oncall.Shift], user: str) -> datetime | None:
    start = None
    for shift in reversed(behind):
        if shift.user != user or (start is not None and shift.end != start):
            return start
        start = shift.start
    return None

"""What people do with schedules besides reading them: subscribe to them in a calendar, and swap
shifts.

**Calendar feeds** (RFC 5545, built with ``icalendar``): a schedule's shifts, or one person's
across every schedule, from a day ago to :data:`FEED_DAYS` ahead, overrides and swaps included;
times carry ``TZID`` with a matching ``VTIMEZONE``. Each event is a whole shift
(:func:`whole_shifts`, as ``/shifts`` and the on-call page): the one under way a day ago keeps its
real start (cut at "a day ago", its start and UID would move with every fetch, and calendar apps
would replace the event each time), and the last one its real end (cut at the 90 days, it would
show a hand-over that never happens, moving on with every fetch). Calendar apps send no headers, so the URL
carries a token signed by the one signer (purpose ``feed``) naming the feed and its *generation*;
revoking the feed moves the generation on in the database, and every URL made before stops
working (tokens are never stored). The ``.ics`` also takes a bearer token.

**Swaps**: the person on call offers a stretch of their shift (all of it or a part); someone
else takes it, and it becomes an override in the taker's name. Taking is one locked update of
an open swap, so two takers at once cannot both get it. The schedule's ``notices`` channels
tell both people. An operator may offer and take in one request (a swap on someone's behalf).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import signing
from app.alerts import notices, oncall, outbox, repository
from app.alerts.config import Schedule
from app.alerts.errors import (
    FeedExpired,
    FeedRefused,
    SwapClosed,
    UnknownSwap,
    UnknownUser,
)
from app.alerts.models import ScheduleOverride, Swap
from app.alerts.schemas import CalendarLink, SwapOut, SwapRequest
from app.config import Settings
from app.errors import InvalidInput, Phrase

Sessions = async_sessionmaker[AsyncSession]
FEED_DAYS = 90
FEED_PAST = timedelta(days=1)
SHIFTS_LOOKBACK = timedelta(days=35)
"""How far before a range's first day its shifts are computed, at least (or a whole shift of the
schedule's longest rotation and a day, if that is longer; from an override's own start if one
covering the range's start began earlier), so the one under way then starts where it really
started, not at a midnight that moves once a day."""
SHIFT_END_LOOKAHEAD = timedelta(weeks=4)
"""How far past a range's end the end of its last shift is looked for (or a whole shift of the
schedule's longest rotation and a day, if that is longer): a shift still under way there, e.g. a
cover of months or the schedule's only person, *runs on* and is said to."""
DST_SLACK = timedelta(days=1)  # a rotation's shift that spans a DST change is an hour longer
PRODID = "-//Panorama//On-call schedules//EN"
WORDS = {
    "zh-CN": {
        "summary": "值班：{user}（{schedule}）",
        "override": "代班",
        "calendar": "{name} 值班表",
        "runs_on": "{time} 后仍在值班（结束时间未再往后查）",
    },
    "en": {
        "summary": "On call: {user} ({schedule})",
        "override": "cover",
        "calendar": "{name} on call",
        "runs_on": "still on after {time} (its end was not looked for further)",
    },
}


# --- calendar feeds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    kind: str  # "schedule" or "user"
    name: str

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.name}"


def feed_path(feed: Feed) -> str:
    return f"/api/v1/{feed.kind}s/{feed.name}/calendar.ics"


async def feed_link(
    session: AsyncSession, settings: Settings, key: bytes, feed: Feed, now: datetime
) -> CalendarLink:
    _check_feed(settings, feed)
    generation = await repository.feed_generation(session, feed.subject)
    expires = now + settings.alerts.calendar_feed_ttl
    token = signing.sign(key, signing.Purpose.FEED, f"{feed.subject}:{generation}", expires)
    url = f"{settings.alerts.public_url}{feed_path(feed)}?token={token}"
    return CalendarLink(
        feed=feed.subject,
        url=url,
        webcal_url="webcal://" + url.split("://", 1)[1],
        expires=expires,
        generation=generation,
    )


async def check_feed_token(session: AsyncSession, key: bytes, feed: Feed, token: str, now: datetime) -> None:
    """Raises FeedRefused (forged, another feed's, revoked) or FeedExpired."""
    try:
        claim = signing.verify(key, signing.Purpose.FEED, token, now)
    except signing.InvalidToken as exc:
        if exc.expired:
            raise FeedExpired("this calendar feed URL has expired: ask Panorama for a new one") from None
        raise FeedRefused("this is not a valid calendar feed URL") from None
    subject, _, generation = claim.subject.rpartition(":")
    if subject != feed.subject:
        raise FeedRefused("this URL is for another calendar feed")
    if generation != str(await repository.feed_generation(session, feed.subject)):
        raise FeedRefused("this calendar feed URL was revoked: ask Panorama for a new one")


async def revoke_feed(sessions: Sessions, settings: Settings, feed: Feed, now: datetime) -> int:
    _check_feed(settings, feed)
    async with sessions.begin() as session:
        return await repository.bump_feed_generation(session, feed.subject, now)


def _check_feed(settings: Settings, feed: Feed) -> None:
    if feed.kind == "schedule":
        from app.alerts.service import schedule_named

        schedule_named(settings, feed.name)
    elif feed.name not in {u.name for u in settings.users}:
        raise UnknownUser(f"no user {feed.name!r}", user=feed.name)


async def calendar(
    session: AsyncSession, settings: Settings, feed: Feed, now: datetime, key: bytes | None = None
) -> bytes:
    """The feed as an iCalendar document; with the signing key, each shift's link to its on-call
    page is a view link (calendar apps open it on a phone that holds no token)."""
    _check_feed(settings, feed)
    first, last = now - FEED_PAST, now + timedelta(days=FEED_DAYS)
    # A person's feed looks at every schedule: an override can put anyone on any of them.
    schedules = [s for s in settings.schedules if feed.kind == "user" or s.name == feed.name]
    found: list[tuple[Schedule, WholeShifts]] = []
    for schedule in schedules:
        whole = await whole_shifts(session, schedule, first, last)
        if feed.kind == "user":
            whole = replace(whole, shifts=[s for s in whole.shifts if s.user == feed.name])
        if whole.shifts:
            found.append((schedule, whole))
    return build_calendar(settings, feed, found, now, key)


@dataclass(frozen=True)
class WholeShifts:
    """The shifts that start in a range, each from its real start to its real end, and how far
    that end was looked for: the last one may still be under way there (:meth:`runs_on`)."""

    shifts: list[oncall.Shift]
    looked_until: datetime  # UTC

    def runs_on(self, shift: oncall.Shift) -> bool:
        """Whether ``shift`` is still under way where its end was looked for: its ``end`` is
        :attr:`looked_until`, not a hand-over."""
        return shift.end.astimezone(UTC) >= self.looked_until


def looked_until(schedule: Schedule, last: datetime) -> datetime:
    """How far past ``last`` the end of the shift under way there is looked for (UTC)."""
    longest = max(r.length for r in schedule.rotations)
    return last.astimezone(UTC) + max(SHIFT_END_LOOKAHEAD, longest + DST_SLACK)


async def whole_shifts(
    session: AsyncSession, schedule: Schedule, first: datetime, last: datetime
) -> WholeShifts:
    """The shifts that start in ``[first, last)`` and the one under way at ``first``, overrides
    included, each whole: from its real start (computed from :data:`SHIFTS_LOOKBACK` before
    ``first``, or further back: see there) to its real end (looked for up to :func:`looked_until`;
    one that starts exactly at ``last`` is not listed). Computed off the event loop. ``/shifts``,
    calendar feeds, the on-call page and the wall screen all list these."""
    longest = max(r.length for r in schedule.rotations)
    back = max(SHIFTS_LOOKBACK, longest + DST_SLACK)
    since = datetime.combine((first.astimezone(UTC) - back).date(), time(), UTC)
    until = looked_until(schedule, last)
    rows = await repository.overrides(session, schedule.name, first=since, last=until)
    overrides = [oncall.Override(o.user, o.start, o.end, o.id, o.created_at) for o in rows]
    # a cover under way since before the look back (one of months) starts where it started
    since = min([since, *(o.start.astimezone(UTC) for o in overrides)])
    shifts = await asyncio.to_thread(oncall.shifts, schedule, since, until, overrides)
    begin, end = first.astimezone(UTC), last.astimezone(UTC)
    # over before the range, or starting at its end or later: left out
    listed = [s for s in shifts if s.end.astimezone(UTC) > begin and s.start.astimezone(UTC) < end]
    return WholeShifts(listed, until)


def build_calendar(
    settings: Settings,
    feed: Feed,
    found: Sequence[tuple[Schedule, WholeShifts]],
    now: datetime,
    key: bytes | None = None,
) -> bytes:
    words = WORDS[settings.alerts.locale]
    document = Calendar()
    document.add("prodid", PRODID)
    document.add("version", "2.0")
    document.add("calscale", "GREGORIAN")
    document.add("method", "PUBLISH")
    document.add("x-wr-calname", words["calendar"].format(name=feed.name))
    if feed.kind == "schedule" and found:
        document.add("x-wr-timezone", found[0][0].timezone)
    for schedule, whole in found:
        zone = ZoneInfo(schedule.timezone)
        for shift in whole.shifts:
            event = Event()
            start_utc = shift.start.astimezone(UTC)
            event.add("uid", f"{schedule.name}-{shift.user}-{start_utc:%Y%m%dT%H%M%SZ}@panorama")
            event.add("dtstamp", now.astimezone(UTC))
            event.add("dtstart", shift.start.astimezone(zone))
            event.add("dtend", shift.end.astimezone(zone))
            summary = words["summary"].format(user=shift.user, schedule=schedule.name)
            if shift.source == "override":
                summary += f" · {words['override']}"
            event.add("summary", summary)
            if whole.runs_on(shift):  # its end is where the look stopped, not a hand-over
                at = f"{shift.end.astimezone(zone):%Y-%m-%d %H:%M}"
                event.add("description", words["runs_on"].format(time=at))
            event.add("categories", [schedule.name])
            event.add("transp", "TRANSPARENT")
            # Read-only until the shift is over (at most notices.LINK_LONGEST: apps fetch the
            # feed again long before, and each fetch mints the links anew).
            expires = notices.link_expiry(now, shift.end)
            event.add("url", notices.oncall_url(settings, schedule.name, key, expires))
            document.add_component(event)
    document.add_missing_timezones()
    return bytes(document.to_ical())


# --- swaps ----------------------------------------------------------------------------------


def swap_out(row: Swap) -> SwapOut:
    return SwapOut(
        id=row.id,
        schedule=row.schedule,
        user=row.offered_by,
        start=row.start,
        end=row.end,
        note=row.note,
        status=row.status,
        created_by=row.created_by,
        taken_by=row.taken_by,
        taken_at=row.taken_at,
        override_id=row.override_id,
    )


def _invalid(field: str, problem: str, said: Phrase) -> InvalidInput:
    """A swap form's field that cannot be: ``body 'end': …`` for the API, ``said`` for a page."""
    phrase = Phrase("problem.parameter", name=field, problem=said)
    return InvalidInput(f"body {field!r}: {problem}", phrase=phrase, parameter=field)


def _known_user(settings: Settings, name: str, field: str) -> None:
    if name not in {u.name for u in settings.users}:
        raise _invalid(field, f"unknown user {name!r}", Phrase("problem.swap.unknown_user", name=name))


async def offer(
    sessions: Sessions,
    settings: Settings,
    schedule: Schedule,
    request: SwapRequest,
    now: datetime,
    *,
    actor: str,
    key: bytes,
) -> SwapOut:
    """Offers ``request.user``'s shift from ``start`` to ``end`` (theirs for the whole of it); with
    ``taken_by``, takes it at once. ``key`` signs the notice's view link."""
    _known_user(settings, request.user, "user")
    if request.taken_by is not None:
        _known_user(settings, request.taken_by, "taken_by")
        if request.taken_by == request.user:
            raise _invalid("taken_by", "a swap needs someone else", Phrase("problem.swap.someone_else"))
    if request.end <= now:
        raise _invalid("end", "the stretch offered is over already", Phrase("problem.swap.over"))
    if request.end - request.start > timedelta(days=FEED_DAYS):
        raise _invalid(
            "end", f"a swap covers at most {FEED_DAYS} days", Phrase("problem.swap.too_long", days=FEED_DAYS)
        )
    async with sessions.begin() as session:
        rows = await repository.overrides(session, schedule.name, first=request.start, last=request.end)
        overrides = [oncall.Override(o.user, o.start, o.end, o.id, o.created_at) for o in rows]
        covered = oncall.shifts(schedule, request.start, request.end, overrides)
        if not _held_by(covered, request.user, request.start, request.end):
            raise _invalid(
                "user",
                f"{request.user} is not on call for the whole of {request.start.isoformat()} "
                f"to {request.end.isoformat()} in {schedule.name} (see its shifts)",
                Phrase("problem.swap.not_on_call", user=request.user, schedule=schedule.name),
            )
        row = Swap(
            schedule=schedule.name,
            offered_by=request.user,
            start=request.start,
            end=request.end,
            note=request.note,
            status="open",
            created_at=now,
            created_by=actor,
        )
        repository.add_swap(session, row)
        await repository.write_pending(session)  # its id, for the notice and the answer
        if request.taken_by is not None:
            await _take(session, settings, schedule, row, request.taken_by, now, actor=actor, key=key)
        else:
            notice = notices.swap(
                settings,
                schedule.name,
                schedule.timezone,
                user=row.offered_by,
                taker=None,
                start=row.start,
                end=row.end,
                note=row.note,
                key=key,
                now=now,
            )
            outbox.enqueue(session, settings, None, schedule.notices, notice, now)
        return swap_out(row)


def _held_by(shifts: Sequence[oncall.Shift], user: str, start: datetime, end: datetime) -> bool:
    """Whether ``shifts`` cover ``[start, end)`` without a gap, all of them ``user``'s."""
    reached = start.astimezone(UTC)
    for shift in shifts:
        if shift.user != user or shift.start.astimezone(UTC) != reached:
            return False
        reached = shift.end.astimezone(UTC)
    return reached == end.astimezone(UTC)


async def take(
    sessions: Sessions,
    settings: Settings,
    schedule: Schedule,
    swap_id: int,
    taker: str,
    now: datetime,
    *,
    actor: str,
    key: bytes,
) -> SwapOut:
    _known_user(settings, taker, "user")
    async with sessions.begin() as session:
        row = await repository.lock_open_swap(session, schedule.name, swap_id)
        if row is None:
            if await repository.swap(session, schedule.name, swap_id) is None:
                raise UnknownSwap(
                    f"schedule {schedule.name!r} has no swap {swap_id}",
                    phrase=Phrase("problem.no_swap", schedule=schedule.name, id=swap_id),
                )
            raise SwapClosed(f"swap {swap_id} was taken or cancelled already")
        if row.offered_by == taker:
            raise _invalid(
                "user", "the person who offered the shift cannot take it", Phrase("problem.swap.own_offer")
            )
        await _take(session, settings, schedule, row, taker, now, actor=actor, key=key)
        return swap_out(row)


async def _take(
    session: AsyncSession,
    settings: Settings,
    schedule: Schedule,
    row: Swap,
    taker: str,
    now: datetime,
    *,
    actor: str,
    key: bytes,
) -> None:
    override = ScheduleOverride(
        schedule=schedule.name,
        user=taker,
        start=row.start,
        end=row.end,
        created_at=now,
        created_by=f"swap {row.id} ({actor})",
    )
    repository.add_override(session, override)
    await repository.write_pending(session)  # the override's id, which the swap records
    repository.mark_swap_taken(row, taker, now, override.id)
    notice = notices.swap(
        settings,
        schedule.name,
        schedule.timezone,
        user=row.offered_by,
        taker=taker,
        start=row.start,
        end=row.end,
        note=row.note,
        key=key,
        now=now,
    )
    outbox.enqueue(session, settings, None, schedule.notices, notice, now)


async def cancel(sessions: Sessions, schedule: Schedule, swap_id: int) -> SwapOut:
    async with sessions.begin() as session:
        row = await repository.lock_open_swap(session, schedule.name, swap_id)
        if row is None:
            if await repository.swap(session, schedule.name, swap_id) is None:
                raise UnknownSwap(
                    f"schedule {schedule.name!r} has no swap {swap_id}",
                    phrase=Phrase("problem.no_swap", schedule=schedule.name, id=swap_id),
                )
            raise SwapClosed(f"swap {swap_id} was taken or cancelled already")
        repository.mark_swap_cancelled(row)
        return swap_out(row)


async def list_swaps(session: AsyncSession, schedule: Schedule, status: str | None) -> list[SwapOut]:
    return [swap_out(row) for row in await repository.swaps(session, schedule.name, status)]

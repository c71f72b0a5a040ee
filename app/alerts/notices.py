"""The words of the notices that are not pages: a hand-over (you are on call now; your shift is
over) and a swap (offered, taken), in zh-CN and en. Built here, laid out by each channel
(:mod:`app.alerts.channels.notices`).

Their links open without signing in: the people told read them in a chat on a phone that holds
no token. Each carries a view link (:mod:`app.web.auth`, the mechanism of the incidents' and the
digest's links): the schedule's on-call page with ``oncall:<schedule>``, the open incidents with
``incidents``; read-only, and valid for about as long as what the notice is about (:func:`link_expiry`):
the incoming person's shift, the length of the shift just over, the stretch a swap covers. Built
without a signing key (a calendar's event link), a link is plain and asks for a sign-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from app.alerts import messages
from app.alerts.channels.base import Notice
from app.alerts.channels.views import format_time
from app.alerts.models import Incident
from app.config import Settings
from app.web import auth as web_auth

WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "on_call": "{user}，你现在是 {schedule} 的值班人",
        "until": "值班时间：{start} 至 {end}",
        "open": "当前未恢复的事件：{n} 个",
        "open_none": "当前没有未恢复的事件",
        "over": "{user}，你在 {schedule} 的值班已结束",
        "shift": "本班：{start} 至 {end}",
        "summary": "本班新事件 {n} 个，已恢复 {resolved} 个，仍未恢复 {open} 个",
        "offered": "{user} 想换出 {schedule} 的一段值班",
        "taken": "{taker} 接替了 {user} 在 {schedule} 的值班",
        "range": "时间：{start} 至 {end}",
        "note": "说明：{note}",
        "oncall_page": "值班表",
        "incidents_page": "未恢复的事件",
    },
    "en": {
        "on_call": "{user}, you are on call for {schedule} now",
        "until": "Shift: {start} to {end}",
        "open": "Incidents still open: {n}",
        "open_none": "No incident is open",
        "over": "{user}, your shift on {schedule} is over",
        "shift": "Shift: {start} to {end}",
        "summary": "{n} new incidents in your shift, {resolved} resolved, {open} still open",
        "offered": "{user} offers part of their {schedule} shift",
        "taken": "{taker} takes over {user}'s {schedule} shift",
        "range": "When: {start} to {end}",
        "note": "Note: {note}",
        "oncall_page": "On call",
        "incidents_page": "Open incidents",
    },
}
MAX_LISTED = 5
# A notice's view links open until what it is about is over, and a while after (a hand-over read
# late, a swap's last hour), never longer than this from when it was sent.
LINK_GRACE = timedelta(hours=1)
LINK_LONGEST = timedelta(days=31)


def _words(settings: Settings) -> dict[str, str]:
    return WORDS[settings.alerts.locale]


def _when(moment: datetime | None, zone: str) -> str:
    return "—" if moment is None else format_time(moment, ZoneInfo(zone))


def link_expiry(now: datetime, until: datetime) -> datetime:
    """When a notice's view links stop opening: ``until`` (the end of what it is about) plus
    :data:`LINK_GRACE`, at most :data:`LINK_LONGEST` after ``now``."""
    return min(max(until, now) + LINK_GRACE, now + LINK_LONGEST)


def oncall_url(
    settings: Settings, schedule: str, key: bytes | None = None, expires: datetime | None = None
) -> str:
    """The schedule's on-call page; with a key, a view link for it until ``expires``."""
    path = "/oncall?" + urlencode({"schedule": schedule})
    if key is None or expires is None:
        return settings.alerts.public_url + path
    return web_auth.view_url(settings.alerts.public_url, path, key, web_auth.oncall_scope(schedule), expires)


def open_incidents_url(settings: Settings, key: bytes | None, expires: datetime) -> str:
    """The incidents page (open ones first); with a key, a view link for the list until ``expires``."""
    return web_auth.view_url(
        settings.alerts.public_url, "/incidents", key, web_auth.incidents_scope(), expires
    )


def shift_start(
    settings: Settings,
    schedule: str,
    zone: str,
    user: str,
    start: datetime,
    end: datetime | None,
    still_open: Sequence[Incident],
    *,
    key: bytes | None,
    now: datetime,
) -> Notice:
    """You are on call now; links valid through the shift (``end``; None: beyond the search)."""
    w = _words(settings)
    lines = [w["until"].format(start=_when(start, zone), end=_when(end, zone))]
    lines.append(w["open"].format(n=len(still_open)) if still_open else w["open_none"])
    lines += [f"#{i.id} [{i.severity or '-'}] {i.title}" for i in still_open[:MAX_LISTED]]
    expires = link_expiry(now, end or now + LINK_LONGEST)
    links = [(w["oncall_page"], oncall_url(settings, schedule, key, expires))]
    if still_open:
        links.append((w["incidents_page"], open_incidents_url(settings, key, expires)))
    return Notice(
        kind="shift_start",
        title=w["on_call"].format(user=user, schedule=schedule),
        lines=lines,
        mentions=messages.people(settings, [user]),
        links=links,
        locale=settings.alerts.locale,
        timezone=zone,
    )


def shift_end(
    settings: Settings,
    schedule: str,
    zone: str,
    user: str,
    start: datetime | None,
    end: datetime,
    during: Sequence[Incident],
    *,
    key: bytes | None,
    now: datetime,
) -> Notice:
    """Your shift is over; the link valid for as long again as the shift was (a day when unknown)."""
    w = _words(settings)
    expires = link_expiry(now, now + (end - start if start is not None else timedelta(days=1)))
    resolved = sum(1 for i in during if i.status == "resolved")
    lines = [
        w["shift"].format(start=_when(start, zone), end=_when(end, zone)),
        w["summary"].format(n=len(during), resolved=resolved, open=len(during) - resolved),
        *(f"#{i.id} [{i.status}] {i.title}" for i in during[:MAX_LISTED]),
    ]
    return Notice(
        kind="shift_end",
        title=w["over"].format(user=user, schedule=schedule),
        lines=lines,
        mentions=messages.people(settings, [user]),
        links=[(w["oncall_page"], oncall_url(settings, schedule, key, expires))],
        locale=settings.alerts.locale,
        timezone=zone,
    )


def swap(
    settings: Settings,
    schedule: str,
    zone: str,
    *,
    user: str,
    taker: str | None,
    start: datetime,
    end: datetime,
    note: str,
    key: bytes | None,
    now: datetime,
) -> Notice:
    """A swap offered or taken; the link valid until the stretch it covers is over."""
    w = _words(settings)
    lines = [w["range"].format(start=_when(start, zone), end=_when(end, zone))]
    if note:
        lines.append(w["note"].format(note=note))
    if taker is None:
        title = w["offered"].format(user=user, schedule=schedule)
    else:
        title = w["taken"].format(user=user, taker=taker, schedule=schedule)
    return Notice(
        kind="swap_offered" if taker is None else "swap_taken",
        title=title,
        lines=lines,
        mentions=messages.people(settings, [user] + ([taker] if taker else [])),
        links=[(w["oncall_page"], oncall_url(settings, schedule, key, link_expiry(now, end)))],
        locale=settings.alerts.locale,
        timezone=zone,
    )

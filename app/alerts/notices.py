"""The words of the notices that are not pages: a hand-over (you are on call now; your shift is
over) and a swap (offered, taken), in zh-CN and en. Built here, laid out by each channel
(:mod:`app.alerts.channels.notices`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from app.alerts import messages
from app.alerts.channels.base import Notice
from app.alerts.channels.views import format_time
from app.alerts.models import Incident
from app.config import Settings

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


def _words(settings: Settings) -> dict[str, str]:
    return WORDS[settings.alerts.locale]


def _when(moment: datetime | None, zone: str) -> str:
    return "—" if moment is None else format_time(moment, ZoneInfo(zone))


def oncall_url(settings: Settings, schedule: str) -> str:
    return f"{settings.alerts.public_url}/oncall?schedule={schedule}"


def shift_start(
    settings: Settings,
    schedule: str,
    zone: str,
    user: str,
    start: datetime,
    end: datetime | None,
    still_open: Sequence[Incident],
) -> Notice:
    w = _words(settings)
    lines = [w["until"].format(start=_when(start, zone), end=_when(end, zone))]
    lines.append(w["open"].format(n=len(still_open)) if still_open else w["open_none"])
    lines += [f"#{i.id} [{i.severity or '-'}] {i.title}" for i in still_open[:MAX_LISTED]]
    links = [(w["oncall_page"], oncall_url(settings, schedule))]
    if still_open:
        links.append((w["incidents_page"], f"{settings.alerts.public_url}/incidents"))
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
) -> Notice:
    w = _words(settings)
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
        links=[(w["oncall_page"], oncall_url(settings, schedule))],
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
) -> Notice:
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
        links=[(w["oncall_page"], oncall_url(settings, schedule))],
        locale=settings.alerts.locale,
        timezone=zone,
    )

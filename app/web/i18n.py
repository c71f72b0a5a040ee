"""The language of a page, and the words, times and numbers it shows in that language.

zh-CN is the default (``alerts.locale`` may make it English for the whole team); ``?lang=en``
or ``?lang=zh-CN`` on any page switches and is remembered in a cookie. Accept-Language is
deliberately not used: a team shares one language between its notifications, its pages and
its wall screen, whatever each phone is set to.

Every word comes from :mod:`app.web.catalogue` (one catalogue for pages and screen). This
module never does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo

from app.alerts import failures, reasons
from app.alerts.actors import actor_label
from app.errors import PanoramaError, Phrase
from app.web.catalogue import LOCALES, MESSAGES

Locale = Literal["zh-CN", "en"]
DEFAULT_LOCALE: Locale = "zh-CN"
LANG_COOKIE = "panorama_lang"
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})
_ALIASES = {"zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "cn": "zh-CN", "en": "en", "en-us": "en"}


def parse_locale(value: str | None) -> Locale | None:
    """``en``, ``zh-CN``, ``zh`` (any case) → a supported locale; anything else → None."""
    if not value:
        return None
    found = _ALIASES.get(value.strip().lower())
    return cast(Locale, found) if found in LOCALES else None


def negotiate(query: str | None, cookie: str | None, default: str) -> Locale:
    """``?lang=`` wins, then the remembered choice, then the configured default."""
    return parse_locale(query) or parse_locale(cookie) or parse_locale(default) or DEFAULT_LOCALE


@dataclass(frozen=True)
class Translator:
    """The words and formats of one locale, for templates (``_("key")``) and code alike."""

    locale: Locale
    tz: ZoneInfo

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.locale == "zh-CN" else "en"

    def __call__(self, key: str, **values: object) -> str:
        if values.get("n") == 1 and f"{key}.one" in MESSAGES:
            key = f"{key}.one"  # "1 alert received", not "1 alerts"
        entry = MESSAGES.get(key)
        if entry is None:
            return key  # visible in the page, and caught by the catalogue test
        text = entry[LOCALES.index(self.locale)]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in MESSAGES

    def say(self, phrase: Phrase) -> str:
        """A :class:`~app.errors.Phrase` in this language: its parts that are phrases said too, a
        list joined, a time shown as :meth:`time` shows it; anything else as it is."""
        return self(phrase.key, **{name: self._part(value) for name, value in phrase.values.items()})

    def _part(self, value: object) -> object:
        if isinstance(value, Phrase):
            return self.say(value)
        if isinstance(value, datetime):
            return self.time(value)
        if isinstance(value, list | tuple):
            return self("list.separator").join(str(self._part(v)) for v in value)
        return value

    def error(self, error: BaseException) -> str:
        """What went wrong, for a page: the error's phrase in this language (backend failures,
        unknown things, bad parameters: the API's English ``message`` stays machine-stable). An
        error no phrase was given to shows its English message; anything else is internal."""
        phrase = getattr(error, "phrase", None)
        if isinstance(phrase, Phrase):
            return self.say(phrase)
        if isinstance(error, PanoramaError):
            return error.message
        return self("error.internal")

    def actor(self, name: str | None) -> str:
        """Who acknowledged, snoozed or resolved: "确认链接" for a group's ack link, "电话（…）" for an
        unnamed call, else the person's or token's name ("—" for none)."""
        if not name:
            return "—"
        call = self("actor.phone_call", number="{number}")
        return actor_label(name, link=self("actor.ack_link"), call=call)

    def muted(self, reason: str | None) -> str:
        """Why an incident pages nobody, as stored (app.alerts.reasons), in this language."""
        if not reason:
            return "—"
        found = reasons.parse(reason)
        if found.kind == "no_route":
            return self("muted.no_route")
        if found.kind == "interval":
            return self("muted.interval", name=found.name)
        if found.kind == "maintenance" and found.until is not None:
            until = self.time(found.until, seconds=False)
            if found.comment:
                return self("muted.maintenance_comment", until=until, comment=found.comment)
            return self("muted.maintenance", until=until)
        return found.comment

    def delivery_failure(self, stored: object) -> str | None:
        """Why a delivery failed, as its timeline entry keeps it (``failure``, app.alerts.failures),
        in this language: Panorama's words only (the far end's, ``said``, are shown apart, as they
        came). None for an entry recorded before failures were kept: its English ``error`` is shown."""
        found = failures.parse(stored)
        return None if found is None else self.say(found.phrase())

    def gave_up(self, why: object, attempts: object) -> str | None:
        """Why a dead letter was given up (``gave_up``) after ``attempts``, in this language; None
        for an entry recorded before (its English ``reason`` is shown)."""
        phrase = failures.gave_up_phrase(why, attempts)
        return None if phrase is None else self.say(phrase)

    # --- times -------------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def time(self, moment: datetime | None, *, seconds: bool = True) -> str:
        """``2026-11-20 18:03:05`` in the configured time zone ("—" for none)."""
        if moment is None:
            return "—"
        return self.local(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def time_text(self, value: object) -> str:
        """An ISO 8601 time stored as text (e.g. in a timeline entry), shown like :meth:`time`."""
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        return self.time(moment, seconds=False) if moment.tzinfo else str(value)

    def clock(self, moment: datetime | None) -> str:
        """``18:03:05.120``: a time within one trace or one incident's day."""
        if moment is None:
            return "—"
        local = self.local(moment)
        return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"

    def within(self, zone: ZoneInfo) -> Translator:
        """The same words, with times shown in ``zone`` (a schedule's own, say)."""
        return self if zone.key == self.tz.key else replace(self, tz=zone)

    def offset(self, moment: datetime) -> str:
        """``+08:00``: the zone's offset from UTC at ``moment`` (it changes with daylight saving)."""
        delta = self.local(moment).utcoffset() or timedelta(0)
        minutes = int(delta.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

    def other_offset(self, moment: datetime, now: datetime) -> str | None:
        """``+02:00`` where ``moment`` is at another offset than ``now`` (across a daylight saving
        change: the page names the zone's offset now, a time past the change carries its own)."""
        shown = self.offset(moment)
        return shown if shown != self.offset(now) else None

    def zone(self, moment: datetime) -> str:
        """``UTC+08:00``: the offset alone."""
        return f"UTC{self.offset(moment)}"

    def zone_name(self, moment: datetime) -> str:
        """``Asia/Shanghai (UTC+08:00)``: what the times on the page are in, by name and offset at
        ``moment`` (``UTC`` alone for UTC)."""
        return self.zone_form().replace("{offset}", self.offset(moment))

    def zone_form(self) -> str:
        """``Asia/Shanghai (UTC{offset})``: how :meth:`zone_name` names the zone, its offset left
        to fill. The wall's clock runs in the browser and fills it, every second, with the offset
        its own time is shown at (so the name follows a daylight saving change with the clock)."""
        name = self.tz.key
        return "UTC" if name in _UTC_NAMES else f"{name} (UTC{{offset}})"

    def ago(self, moment: datetime | None, now: datetime) -> str:
        """``5 分钟前`` / ``5 min ago``."""
        if moment is None:
            return "—"
        return self("time.ago", span=self.span(now - moment))

    def minutes(self, count: int) -> str:
        return self.span(timedelta(minutes=count))

    def span(self, length: timedelta) -> str:
        """A rounded length of time: ``45 秒``, ``12 分钟``, ``3 小时 5 分钟``, ``2 天 4 小时``."""
        seconds = max(0, int(length.total_seconds()))
        if seconds < 60:
            return self("time.seconds", n=seconds)
        minutes = seconds // 60
        if minutes < 60:
            return self("time.minutes", n=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return self("time.hours", n=hours) + (f" {self('time.minutes', n=minutes)}" if minutes else "")
        days, hours = divmod(hours, 24)
        return self("time.days", n=days) + (f" {self('time.hours', n=hours)}" if hours else "")

    # --- numbers -----------------------------------------------------------------------

    @staticmethod
    def ms(value: float | None) -> str:
        """A duration in milliseconds, readable: ``0.42 ms``, ``87 ms``, ``1.25 s``, ``2 min 5 s``."""
        if value is None or not math.isfinite(value):
            return "—"
        if value < 1:
            return f"{value:.2f} ms"
        if value < 1000:
            return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
        if value < 60_000:
            return f"{value / 1000:.2f} s"
        minutes, seconds = divmod(round(value / 1000), 60)
        return f"{minutes} min {seconds} s"

    @staticmethod
    def percent(value: float | None, digits: int = 2) -> str:
        if value is None or not math.isfinite(value):
            return "—"
        return f"{value * 100:.{digits}f}%"

    @staticmethod
    def number(value: float | None, digits: int = 2) -> str:
        """Grouped thousands, at most ``digits`` decimals, trailing zeros dropped."""
        if value is None or not math.isfinite(value):
            return "—"
        if abs(value) >= 1000 or float(value).is_integer():
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".")

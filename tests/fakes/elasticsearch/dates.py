"""Dates: the built-in and ``yyyy-MM-dd``-style formats, date math (``now-15m/m``) and time zones."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tests.fakes.elasticsearch.errors import illegal_argument, parsing_error
from tests.fakes.elasticsearch.values import as_number

DEFAULT_DATE_FORMATS = ("strict_date_optional_time", "epoch_millis")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ISO_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?)?)?"
    r"(?P<z>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DYNAMIC_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T[\d:.,]+(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")
_ISO_FORMATS = frozenset(
    {
        "strict_date_optional_time",
        "date_optional_time",
        "strict_date_optional_time_nanos",
        "strict_date_time",
        "date_time",
    }
)
_JAVA_TOKENS = (
    ("yyyy", r"(?P<y>\d{4})"),
    ("uuuu", r"(?P<y>\d{4})"),
    ("MM", r"(?P<mo>\d{2})"),
    ("dd", r"(?P<d>\d{2})"),
    ("HH", r"(?P<h>\d{2})"),
    ("mm", r"(?P<mi>\d{2})"),
    ("ss", r"(?P<s>\d{2})"),
    ("SSSSSSSSS", r"(?P<f>\d{9})"),
    ("SSSSSS", r"(?P<f>\d{6})"),
    ("SSS", r"(?P<f>\d{3})"),
    ("XXX", r"(?P<z>Z|[+-]\d{2}:\d{2})"),
    ("Z", r"(?P<z>Z|[+-]\d{4})"),
)
_MATH_RE = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")


def now_millis() -> int:
    return millis(datetime.now(UTC))


def millis(moment: datetime) -> int:
    return (moment - EPOCH) // _ONE_MS


def looks_like_date(value: str) -> bool:
    """What dynamic mapping's ``date_detection`` takes for a date (before it tries to parse it)."""
    return _DYNAMIC_DATE_RE.match(value) is not None


def parse_date(value: Any, formats: Sequence[str], tz: tzinfo = UTC) -> int:
    """Epoch milliseconds of ``value`` in the first of ``formats`` that reads it; ValueError otherwise."""
    for fmt in formats:
        try:
            return _parse_one(value, fmt, tz)
        except (ValueError, TypeError, OverflowError):
            continue
    raise ValueError(f"failed to parse date field [{value}] with format [{'||'.join(formats)}]")


def format_date(epoch_ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_date_math(value: Any, formats: Sequence[str], tz: tzinfo, *, round_up: bool, now_ms: int) -> int:
    """A date or date-math expression (``now-15m/m``, ``2024-01-01||+1d``) in epoch milliseconds.

    ``round_up`` rounds to the last millisecond of the unit, as ``gt`` and ``lte`` do.
    """
    if not isinstance(value, str) or not (value.startswith("now") or "||" in value):
        return parse_date(value, formats, tz)
    if value.startswith("now"):
        base, expression = now_ms, value[3:]
    else:
        anchor, expression = value.split("||", 1)
        base = parse_date(anchor, formats, tz)
    moment = EPOCH + timedelta(milliseconds=base)
    position = 0
    while position < len(expression):
        match = _MATH_RE.match(expression, position)
        if match is None:
            raise ValueError(f"operator not supported for date math [{expression}]")
        if match.group(1):
            amount = int(match.group(2)) * (1 if match.group(1) == "+" else -1)
            moment = _add_units(moment, amount, match.group(3), tz)
        else:
            unit = match.group(4)
            moment = _round_down(moment, unit, tz)
            if round_up:
                moment = _add_units(moment, 1, unit, tz) - _ONE_MS
        position = match.end()
    return millis(moment)


def time_zone(name: Any) -> tzinfo:
    """A ``time_zone`` option: ``Z``, an offset (``+02:00``) or a region id (``Europe/Paris``)."""
    if not isinstance(name, str):
        raise parsing_error("[range] time_zone must be a string")
    if name == "Z" or re.fullmatch(r"[+-]\d{2}(:?\d{2})?", name):
        return _zone(name, UTC)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise illegal_argument(f"Unknown time-zone ID: {name}") from None


def _parse_one(value: Any, fmt: str, tz: tzinfo) -> int:
    if fmt in ("epoch_millis", "epoch_second"):
        number = as_number(value)
        return int(number * 1000) if fmt == "epoch_second" else int(number)
    if not isinstance(value, str):
        raise ValueError("not a string")
    if fmt in _ISO_FORMATS:
        match = _ISO_RE.match(value)
    else:
        try:
            match = _java_pattern(fmt).match(value)
        except ValueError:
            raise illegal_argument(f"date format [{fmt}] is not implemented by FakeElasticsearch") from None
    if not match:
        raise ValueError(value)
    return _from_groups(match.groupdict(), tz)


def _zone(text: str | None, default: tzinfo) -> tzinfo:
    if not text:
        return default
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _from_groups(groups: Mapping[str, str | None], tz: tzinfo) -> int:
    fraction = (groups.get("f") or "0").ljust(9, "0")
    moment = datetime(
        int(groups["y"] or 0),
        int(groups.get("mo") or 1),
        int(groups.get("d") or 1),
        int(groups.get("h") or 0),
        int(groups.get("mi") or 0),
        int(groups.get("s") or 0),
        int(fraction[:6]),
        tzinfo=_zone(groups.get("z"), tz),
    )
    return millis(moment)


@functools.lru_cache(maxsize=64)
def _java_pattern(pattern: str) -> re.Pattern[str]:
    out, position = "", 0
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            end = pattern.index("'", position + 1)
            out += re.escape(pattern[position + 1 : end])
            position = end + 1
            continue
        for token, regex in _JAVA_TOKENS:
            if pattern.startswith(token, position):
                out += regex
                position += len(token)
                break
        else:
            if char.isalpha():
                raise ValueError(f"date pattern letter [{char}] in [{pattern}]")
            out += re.escape(char)
            position += 1
    return re.compile(f"^{out}$")


def _add_units(moment: datetime, amount: int, unit: str, tz: tzinfo) -> datetime:
    if unit in "hHms":
        seconds = {"h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
        return moment + timedelta(seconds=amount * seconds)
    local = moment.astimezone(tz)
    if unit in "dw":
        local = local.replace(tzinfo=None) + timedelta(days=amount * (7 if unit == "w" else 1))
        return local.replace(tzinfo=tz).astimezone(UTC)
    months = local.year * 12 + local.month - 1 + (amount * 12 if unit == "y" else amount)
    year, month = divmod(months, 12)
    day = min(local.day, _days_in_month(year, month + 1))
    return local.replace(year=year, month=month + 1, day=day).astimezone(UTC)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _round_down(moment: datetime, unit: str, tz: tzinfo) -> datetime:
    local = moment.astimezone(tz).replace(tzinfo=None)
    if unit == "y":
        local = datetime(local.year, 1, 1)
    elif unit == "M":
        local = datetime(local.year, local.month, 1)
    elif unit == "w":
        local = datetime(local.year, local.month, local.day) - timedelta(days=local.weekday())
    elif unit == "d":
        local = datetime(local.year, local.month, local.day)
    elif unit in "hH":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif unit == "m":
        local = local.replace(second=0, microsecond=0)
    else:
        local = local.replace(microsecond=0)
    return local.replace(tzinfo=tz).astimezone(UTC)

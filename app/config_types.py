"""Building blocks of configuration sections, shared by ``app/config.py`` and each feature's ``config.py``.

Kept apart from ``app/config.py`` so that a feature can define its own section
without importing the module that assembles all sections.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_NAMES_LISTED = 8


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """What a dangling cross-reference is told: ``unknown escalation 'oncal'; did you mean
    'oncall'?`` — or, when no name is close, the names that are configured (a few of them)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"unknown {kind} {name!r}; did you mean {close[0]!r}?"
    if not names:
        return f"unknown {kind} {name!r}: none is configured"
    shown = ", ".join(repr(n) for n in names[:MAX_NAMES_LISTED])
    more = f" and {len(names) - MAX_NAMES_LISTED} more" if len(names) > MAX_NAMES_LISTED else ""
    return f"unknown {kind} {name!r} (configured: {shown}{more})"


class Model(BaseModel):
    """Base of every configuration section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``5m``, ``1h30m``, ``1d``, ``1w`` (or a number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is written like 30s, 5m, 1h, 1d or 1w")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a duration is written like 30s, 5m, 1h, 1d or 1w")
    text = value.strip()
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 1h, 1d or 1w")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest of ``1w``, ``1d``, ``1h``, ``1m``, ``1s``, ``1ms`` units that writes ``value`` exactly."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A configuration duration: accepts ``30s``/``5m``/``1h``/``1d``/``1w`` and prints back the same way."""

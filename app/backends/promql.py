"""Building PromQL safely from values that may come from users.

Every value that ends up inside a PromQL string literal goes through
:func:`escape_label_value`; every label or metric name is validated before it
is spliced into a query. Nothing here does I/O.

PromQL double-quoted strings follow Go's escape rules (Prometheus unquotes them
with ``strconv.Unquote``): a raw newline ends the literal with a parse error, and
``\\x``/``\\u``/``\\U`` escapes give back exact characters. Regex matchers
(``=~``, ``!~``) take RE2 syntax and are anchored at both ends by Prometheus.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

MatchOp = Literal["=", "!=", "=~", "!~"]
MATCH_OPS: frozenset[str] = frozenset(get_args(MatchOp))

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# The characters RE2 treats as operators (what Go's regexp.QuoteMeta escapes), the backslash
# first: it is escaped before the escapes of the others are added.
_RE2_SPECIAL = "\\.+*?()|[]{}^$"

_MS_PER_UNIT = (
    ("y", 365 * 24 * 3600 * 1000, True),
    ("w", 7 * 24 * 3600 * 1000, True),
    ("d", 24 * 3600 * 1000, False),
    ("h", 3600 * 1000, False),
    ("m", 60 * 1000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)


def escape_label_value(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal that Prometheus reads back exactly.

    Backslash, double quote, newline, carriage return and tab get their short
    escapes; every other non-printable character gets a ``\\x``/``\\u``/``\\U``
    escape (so logs show it); printable Unicode stays as it is. Lone surrogates
    cannot be encoded in UTF-8 and raise ValueError.
    """
    if not isinstance(value, str):
        raise TypeError(f"a label value must be a str, got {type(value).__name__}")
    if value.isprintable():  # no newline, tab nor lone surrogate: of the short escapes, these two
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'  # C-level (long regexes)
    out = ['"']
    for char in value:
        short = _SHORT_ESCAPES.get(char)
        if short is not None:
            out.append(short)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(_escape_code_point(char))
    out.append('"')
    return "".join(out)


def _escape_code_point(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"lone surrogate U+{code:04X} cannot appear in a PromQL string")
    if code < 0x80:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def validate_label_name(name: str) -> str:
    """Returns ``name`` when it is a valid Prometheus label name, else raises ValueError."""
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"invalid label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
    return name


def validate_metric_name(name: str) -> str:
    """Returns ``name`` when it is a valid Prometheus metric name, else raises ValueError."""
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    return name


def regex_escape_literal(value: str) -> str:
    """An RE2 regex matching exactly ``value`` (as Go's ``regexp.QuoteMeta`` does).

    Use it to put literal strings into ``=~`` alternatives:
    ``matcher("pod", "=~", "|".join(map(regex_escape_literal, pods)))``.
    """
    for char in _RE2_SPECIAL:  # a few C-level passes: 4 times the speed of one per character
        if char in value:
            value = value.replace(char, "\\" + char)
    return value


@dataclass(frozen=True)
class Matcher:
    """One label matcher; validated on creation, rendered by ``str()``."""

    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        validate_label_name(self.name)
        if self.op not in MATCH_OPS:
            raise ValueError(f"invalid matcher operator {self.op!r}: use one of = != =~ !~")
        if not isinstance(self.value, str):
            raise TypeError(f"a matcher value must be a str, got {type(self.value).__name__}")
        escape_label_value(self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{escape_label_value(self.value)}"


def matcher(name: str, op: MatchOp, value: str) -> Matcher:
    """A label matcher. For ``=~``/``!~`` the value is an RE2 regex (anchored by Prometheus);
    it is quoted like any value, so its backslashes survive. To match a literal string
    with a regex operator, pass it through :func:`regex_escape_literal` first."""
    return Matcher(name, op, value)


def selector(metric: str | None, /, *matchers: Matcher, **equals: str) -> str:
    """A vector selector: ``metric{m1,m2,k="v"}``.

    Positional matchers come first, then one ``=`` matcher per keyword argument,
    in the order given. ``metric=None`` gives a selector without a name, which
    Prometheus accepts only when some matcher cannot match the empty string.
    """
    parts = [str(m) for m in matchers]
    parts.extend(str(Matcher(name, "=", value)) for name, value in equals.items())
    if metric is None or metric == "":
        if not parts:
            raise ValueError("a selector needs a metric name or at least one matcher")
        return "{" + ",".join(parts) + "}"
    validate_metric_name(metric)
    return metric + ("{" + ",".join(parts) + "}" if parts else "")


def duration(seconds: float | timedelta) -> str:
    """A PromQL duration such as ``5m``, ``1h30m`` or ``250ms`` (milliseconds precision).

    Formatted the way Prometheus prints durations: years and weeks only when
    they divide exactly, then days, hours, minutes, seconds, milliseconds.
    """
    total = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
    if isinstance(total, bool) or not isinstance(total, int | float):
        raise TypeError(f"a duration must be seconds or a timedelta, got {type(seconds).__name__}")
    if not math.isfinite(total) or total < 0:
        raise ValueError(f"a duration must be a finite, non-negative number of seconds, got {total!r}")
    ms = round(total * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size, exact_only in _MS_PER_UNIT:
        if exact_only and ms % size:
            continue
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)

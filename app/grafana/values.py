"""What Grafana puts into a request after interpolating its variables, read back into plain values.

The JSON datasource interpolates dashboard variables before it sends a query:

- in ``target`` and in builder-mode payloads with the *regex* format: one value comes
  regex-escaped (``checkout\\.shop\\.svc\\.cluster\\.local``), several as ``(a|b)``;
- in code-mode payloads with the *json* format: several values as a JSON list
  (``["a","b"]``), one value as a plain string;
- "All" as the variable's custom all value (``$__all`` in Panorama's dashboards), or as
  every value in one of the forms above when the variable has none.

:func:`selection` turns any of these into the list of names, or :data:`ALL`. Ad hoc
filters (``[{key, operator, value}]``) become :class:`Filter` objects; regex operators are
matched anchored, as Prometheus does, and patterns whose matching time could explode
(nested repetition) are refused rather than run on the event loop.

A ``service`` filter (and an ``oncall_service`` one: the on-call history's services are the same
services, as incidents' alerts name them) matches through :mod:`app.servicenames`, as every other
service filter does:
its ``=``/``!=``/``=|``/``!=|`` values are read by ``parse_filter`` (a malformed one is refused with
its message, but never a stored spelling, one ``/tag-values`` offers), and a bare ``checkout``
means that service in every namespace, ``checkout.shop`` in ``shop`` only, whichever spelling a
figure is stored under. Its ``=~``/``!~`` patterns match a service's canonical key,
``name.namespace`` (``name`` alone when its namespace is unknown), never the stored spelling
(``servicenames.pattern_matches``, for series and incidents alike): ``checkout\\.shop`` matches
``checkout.shop.svc.cluster.local``, and a pattern spelling the FQDN
(``.*\\.svc\\.cluster\\.local``) is refused, naming the one to write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

from app import servicenames
from app.grafana.errors import InvalidQuery


class _All(Enum):
    """Every entity (of the query's range)."""

    ALL = "all"


ALL: Final = _All.ALL
Selection = list[str] | Literal[_All.ALL]

ALL_TOKENS = frozenset({"$__all", "__all", "*", ".*"})
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNINTERPOLATED = re.compile(r"^\$(\{[A-Za-z_]\w*(:\w+)?\}|[A-Za-z_]\w*)$")
MAX_PATTERN_LENGTH = 256


def selection(raw: Any, *, field: str) -> Selection:
    """The names ``raw`` stands for (deduplicated, in order), or :data:`ALL`."""
    names: list[str] = []
    for item in _flatten(raw, field):
        if item is ALL:
            return ALL
        assert isinstance(item, str)
        if item not in names:
            names.append(item)
    if not names:
        raise InvalidQuery(f"{field} is empty: give a name, a list, (a|b) or $__all")
    return names


def _flatten(raw: Any, field: str) -> Iterable[str | Literal[_All.ALL]]:
    if isinstance(raw, list):
        for item in raw:
            yield from _flatten(item, field)
        return
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidQuery(f"{field} must be a string or a list of strings, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        return
    if text in ALL_TOKENS:
        yield ALL
        return
    if _UNINTERPOLATED.match(text):
        raise InvalidQuery(
            f"{field} {text!r} is a Grafana variable that was not interpolated: "
            "define it on the dashboard, or give a value"
        )
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise InvalidQuery(f"{field} {text!r} starts like a JSON list but is not one") from None
        yield from _flatten(parsed, field)
        return
    if text.startswith("(") and text.endswith(")") and not text.endswith("\\)"):
        for part in split_alternatives(text[1:-1]):
            if part:
                yield unescape(part)
        return
    yield unescape(text)


def split_alternatives(text: str) -> list[str]:
    """``a|b\\|c`` → ``["a", "b\\|c"]``: splits on the ``|`` not escaped by a backslash."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Undoes Grafana's regex escaping (a backslash before any character)."""
    return _UNESCAPE.sub(r"\1", text)


def scalar(raw: Any, *, field: str) -> str | None:
    """One plain value (a granularity, a format), unescaped; None when absent or empty."""
    if raw is None:
        return None
    if isinstance(raw, list):
        if len(raw) != 1:
            raise InvalidQuery(f"{field} takes one value, got {len(raw)}")
        raw = raw[0]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidQuery(f"{field} must be a string, got {type(raw).__name__}")
    text = unescape(str(raw).strip())
    if _UNINTERPOLATED.match(text):
        raise InvalidQuery(f"{field} {text!r} is a Grafana variable that was not interpolated")
    return text or None


# --- ad hoc filters ------------------------------------------------------------------------

OPERATORS = ("=", "!=", "=~", "!~", "=|", "!=|")
# A group holding a repetition or an alternation, itself repeated: (a+)+, (a|aa)*, (x.*){2,}
# (an optional group, (a|b)?, matches at most once and is fine)
_NESTED_REPETITION = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+?}|])(?:[^()\\]|\\.)*\)\s*[*+{]")


SERVICE_KEY = "service"
"""The key of the rollups' services (and of incidents' services on annotations)."""

SERVICE_KEYS = frozenset({SERVICE_KEY, "oncall_service"})
"""The keys whose values are service names, matched through :mod:`app.servicenames`: the rollups'
services and the on-call history's (each service an incident names, as its alerts spell it)."""


@dataclass(frozen=True)
class Filter:
    key: str
    operator: str
    values: tuple[str, ...]
    pattern: re.Pattern[str] | None = None
    services: tuple[servicenames.ServiceName, ...] = ()
    """The ``values`` of a service filter's (in)equality (a key of :data:`SERVICE_KEYS`), parsed."""

    @property
    def positive(self) -> bool:
        """Whether a value passes by matching (``=``, ``=~``, ``=|``) rather than by not matching."""
        return self.operator in ("=", "=~", "=|")

    def matches(self, value: str | None) -> bool:
        if self.key in SERVICE_KEYS:
            return self.matches_service(None if value is None else servicenames.parse(value))
        if value is None:
            return not self.positive
        if self.pattern is not None:
            return (self.pattern.fullmatch(value) is not None) == self.positive
        return (value in self.values) == self.positive

    def matches_service(self, service: servicenames.ServiceName | None) -> bool:
        """Whether a service passes this ``service`` filter: the one rule for a rollup's series (its
        stored spelling, parsed) and an incident (its services as its alerts name them)."""
        if service is None:
            return not self.positive
        if self.pattern is not None:
            return servicenames.pattern_matches(self.pattern, service) == self.positive
        return servicenames.matches_any(service, self.services) == self.positive


def parse_filters(
    raw: Sequence[Any], keys: Iterable[str], stored_services: Collection[str] = ()
) -> list[Filter]:
    """``[{"key", "operator", "value"}]`` (``values`` for ``=|``/``!=|``) as filters on ``keys``;
    a service value (``service``, ``oncall_service``) that is one of ``stored_services`` (what
    ``/tag-values`` offers for them) is always accepted."""
    allowed = sorted(set(keys))
    filters = []
    for index, item in enumerate(raw):
        where = f"filters[{index}]"
        if not isinstance(item, dict):
            raise InvalidQuery(f"{where} must be an object with key, operator and value")
        key, operator = item.get("key"), item.get("operator", "=")
        if key not in allowed:
            raise InvalidQuery(f"{where}: key {key!r} is not one of {', '.join(allowed)}")
        if operator not in OPERATORS:
            raise InvalidQuery(f"{where}: operator {operator!r} is not one of {' '.join(OPERATORS)}")
        values = item.get("values") if operator in ("=|", "!=|") else None
        if values is None:
            values = [item.get("value", "")]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidQuery(f"{where}: value(s) must be strings")
        regex = operator in ("=~", "!~")
        service = key in SERVICE_KEYS
        pattern = _pattern(values[0], where, service=service) if regex else None
        services = _services(values, where, stored_services) if service and not regex else ()
        filters.append(Filter(str(key), operator, tuple(values), pattern, services))
    return filters


def _services(
    values: Sequence[str], where: str, stored: Collection[str]
) -> tuple[servicenames.ServiceName, ...]:
    try:
        return tuple(servicenames.parse_filter(value, stored) for value in values)
    except ValueError as exc:
        raise InvalidQuery(f"{where}: {exc}") from None


def _pattern(text: str, where: str, *, service: bool = False) -> re.Pattern[str]:
    if len(text) > MAX_PATTERN_LENGTH:
        raise InvalidQuery(f"{where}: the regular expression is longer than {MAX_PATTERN_LENGTH} characters")
    if _NESTED_REPETITION.search(text):
        raise InvalidQuery(
            f"{where}: {text!r} repeats a group that itself repeats or alternates; "
            "such patterns can take exponential time and are refused"
        )
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise InvalidQuery(f"{where}: {text!r} is not a regular expression ({exc})") from None
    if service:
        try:
            servicenames.check_pattern(text)
        except ValueError as exc:
            raise InvalidQuery(f"{where}: {exc}") from None
    return compiled

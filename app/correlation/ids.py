"""Trace ids as people paste them, and as logs write them.

A pasted id may be bare hex (1-32 digits, any case, ``0x`` allowed, leading zeros
kept or dropped) or a whole propagation header value: W3C ``traceparent``,
Jaeger ``uber-trace-id`` or a single ``b3`` header (with or without the header name).
:func:`parse_trace_id` turns each into a :class:`TraceId`: the canonical 32
lowercase hex digits, and the forms logs write it in (padded, 16-hex for a 64-bit
id, without leading zeros), which is what log searches look for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import unquote

from app.backends.traces import SPAN_ID_HEX, TRACE_ID_HEX

ACCEPTED_FORMS = (
    "1 to 32 hex digits (16 or 32 usually; any case, optional 0x, leading zeros optional), "
    "a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>), "
    "an uber-trace-id (<trace>:<span>:<parent>:<flags>) "
    "or a b3 header (<trace>-<span>[-<sampled>[-<parent>]])"
)
_HEX = frozenset("0123456789abcdef")
_HEADER_NAMES = ("traceparent", "uber-trace-id", "b3", "x-b3-traceid", "trace-id", "trace_id", "traceid")
_HEADER_PREFIX = re.compile(r"^\s*(" + "|".join(re.escape(h) for h in _HEADER_NAMES) + r")\s*[:=]\s*", re.I)
_B3_SAMPLING = frozenset({"0", "1", "d"})


class TraceIdError(ValueError):
    """The text is not a trace id in any accepted form; the message says why and lists the forms."""


@dataclass(frozen=True)
class TraceId:
    """A trace id: ``hex`` is always 32 lowercase hex digits."""

    hex: str
    span_id: str | None = None
    """The span id the pasted value carried (traceparent, uber-trace-id, b3), 16 hex digits."""

    @property
    def is_64_bit(self) -> bool:
        return self.hex.startswith("0" * 16)

    @cached_property
    def forms(self) -> tuple[str, ...]:
        """Every way logs write this id: 32-hex padded, 16-hex (64-bit ids), no leading zeros."""
        forms = [self.hex]
        if self.is_64_bit:
            forms.append(self.hex[16:])
        forms.append(self.hex.lstrip("0"))
        return tuple(dict.fromkeys(forms))

    def __str__(self) -> str:
        return self.hex


def parse_trace_id(text: str) -> TraceId:
    """A trace id from anything in :data:`ACCEPTED_FORMS`; raises TraceIdError otherwise."""
    raw = text.strip()
    if "%" in raw:
        raw = unquote(raw)  # uber-trace-id values are often logged URL-encoded (%3A)
    raw = _HEADER_PREFIX.sub("", raw).strip().strip("\"'")
    if not raw:
        raise TraceIdError(f"the trace id is empty; accepted forms: {ACCEPTED_FORMS}")
    if ":" in raw:
        return _uber_trace_id(raw, text)
    if "-" in raw:
        return _dashed(raw, text)
    return TraceId(_hex_id(raw, TRACE_ID_HEX, text))


def normalise_trace_id(value: object) -> str | None:
    """A trace id read from a log field (hex, any case, ``0x``, unpadded) as 32 hex; None if it is none."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = format(value, "x") if value >= 0 else None
    if not isinstance(value, str):
        return None
    try:
        return parse_trace_id(value).hex
    except TraceIdError:
        return None


def normalise_span_id(value: object) -> str | None:
    """A span id read from a log or a header as 16 lowercase hex digits; None if it is not one."""
    if not isinstance(value, str):
        return None
    digits = value.strip().lower().removeprefix("0x")
    if not digits or len(digits) > SPAN_ID_HEX or not set(digits) <= _HEX or not digits.strip("0"):
        return None
    return digits.rjust(SPAN_ID_HEX, "0")


@dataclass(frozen=True)
class FoundIds:
    trace_id: str
    span_id: str | None


class IdExtractor:
    """Finds a trace id (and span id when the pattern has one) in message text.

    Patterns are the configured ``correlation.trace_id_patterns``, compiled
    case-insensitively, tried in order. Only the first ``MAX_SCAN`` characters of a
    message are scanned: an id is written near the start of a line, and a
    multi-megabyte stack trace must not cost a regex scan per page.
    """

    MAX_SCAN = 16_384

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]

    def find(self, text: str) -> FoundIds | None:
        head = text[: self.MAX_SCAN]
        for pattern in self.patterns:
            for match in pattern.finditer(head):
                trace_id = normalise_trace_id(match.group("trace_id"))
                if trace_id is None:
                    continue
                span = match.groupdict().get("span_id")
                return FoundIds(trace_id, normalise_span_id(span) if span else None)
        return None


KEY_SPELLINGS = (
    "trace_id",
    "traceId",
    "traceID",
    "TraceId",
    "traceid",
    "trace.id",
    "trace-id",
    "Trace-Id",
    "X-B3-TraceId",
    "x-b3-traceid",
    "uber-trace-id",
    "trace",
)
"""How the key before an id is spelt in logs (JSON and logfmt fields, header names)."""
_PROBE_ID = "abcdef0123456789abcdef0123456789"
_WORD_BREAKS = re.compile(r"[^0-9A-Za-z_.]")  # what always ends a word for the standard analyzer


@lru_cache(maxsize=16)
def glued_keys(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The words that Elasticsearch's standard analyzer indexes glued to an id as ``<word>:<id>``,
    for the keys the configured ``patterns`` find an id after (``key:<id>``): the key's last word
    (``uber-trace-id`` → ``id``), lowercased, when it ends with a letter (UAX #29 joins letters
    around ``:``; a digit before it would not join)."""
    extractor = IdExtractor(patterns)
    words: list[str] = []
    for key in KEY_SPELLINGS:
        found = extractor.find(f"{key}:{_PROBE_ID}")
        if found is None or found.trace_id != _PROBE_ID:
            continue
        word = _WORD_BREAKS.split(key)[-1].lower()
        if word and word[-1].isalpha():
            words.append(word)
    return tuple(dict.fromkeys(words))


def _hex_id(raw: str, width: int, original: str) -> str:
    digits = raw.lower()
    if digits.startswith("0x"):
        digits = digits[2:]
    if not digits or not set(digits) <= _HEX:
        raise TraceIdError(f"{_quote(original)} is not a trace id; accepted forms: {ACCEPTED_FORMS}")
    if len(digits) > width:
        raise TraceIdError(
            f"{_quote(original)} has {len(digits)} hex digits, more than a trace id's {width}; "
            f"accepted forms: {ACCEPTED_FORMS}"
        )
    if not digits.strip("0"):
        raise TraceIdError(f"{_quote(original)} is the all-zero trace id, which means 'no trace'")
    return digits.rjust(width, "0")


def _uber_trace_id(raw: str, original: str) -> TraceId:
    parts = raw.split(":")
    if len(parts) != 4:
        raise TraceIdError(
            f"{_quote(original)} looks like an uber-trace-id but has {len(parts)} parts instead of 4 "
            f"(<trace>:<span>:<parent>:<flags>); accepted forms: {ACCEPTED_FORMS}"
        )
    return TraceId(_hex_id(parts[0], TRACE_ID_HEX, original), normalise_span_id(parts[1]))


def _dashed(raw: str, original: str) -> TraceId:
    parts = raw.split("-")
    first = parts[0].lower()
    if len(first) == 2 and len(parts) >= 4:  # traceparent: version-trace-span-flags
        if first == "ff" or not set(first) <= _HEX:
            raise TraceIdError(f"{_quote(original)}: traceparent version {first!r} is invalid")
        if first == "00" and len(parts) != 4:
            raise TraceIdError(f"{_quote(original)}: a version 00 traceparent has exactly 4 parts")
        trace, span = parts[1], parts[2]
        if len(trace) != TRACE_ID_HEX or len(span) != SPAN_ID_HEX:
            raise TraceIdError(
                f"{_quote(original)}: a traceparent carries a 32-hex trace id and a 16-hex span id; "
                f"accepted forms: {ACCEPTED_FORMS}"
            )
        return TraceId(_hex_id(trace, TRACE_ID_HEX, original), normalise_span_id(span))
    if len(first) in (16, 32) and len(parts) >= 2:  # b3: trace-span[-sampled[-parent]]
        span = parts[1]
        if len(span) != SPAN_ID_HEX or len(parts) > 4 or (len(parts) >= 3 and parts[2] not in _B3_SAMPLING):
            raise TraceIdError(
                f"{_quote(original)} looks like a b3 header but is not "
                f"<trace>-<span>[-<sampled>[-<parent>]]; accepted forms: {ACCEPTED_FORMS}"
            )
        return TraceId(_hex_id(first, TRACE_ID_HEX, original), normalise_span_id(span))
    raise TraceIdError(f"{_quote(original)} is not a trace id; accepted forms: {ACCEPTED_FORMS}")


def _quote(text: str, limit: int = 80) -> str:
    shown = text if len(text) <= limit else text[:limit] + "…"
    return repr(shown)

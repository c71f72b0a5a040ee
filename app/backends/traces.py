"""The internal trace model that both Jaeger answer formats (v3 OTLP JSON, v1 UI JSON) normalise into.

Ids are always lowercase hex of full width: 32 digits for a trace, 16 for a span.
Jaeger prints a 128-bit trace id whose high half is zero as 16 hex digits (and
very old releases dropped leading zeros altogether), so ids read from an answer
go through :func:`pad_trace_id` / :func:`pad_span_id` before they reach the model.
Parsing ids pasted by users (``traceparent``, B3, ``uber-trace-id``) is not done here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

TagValue = str | int | float | bool

TRACE_ID_HEX = 32
SPAN_ID_HEX = 16
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX = frozenset("0123456789abcdef")
_ONE_US = timedelta(microseconds=1)


def _pad_hex(raw: str, width: int, what: str) -> str:
    value = raw.strip().lower()
    if not value or len(value) > width or not set(value) <= _HEX:
        raise ValueError(f"not a {what}: {raw!r} (expected up to {width} hex digits)")
    return value.rjust(width, "0")


def pad_trace_id(raw: str) -> str:
    """A trace id from a Jaeger answer as 32 lowercase hex digits (``"00ab"`` → 28 zeros + ``"00ab"``)."""
    return _pad_hex(raw, TRACE_ID_HEX, "trace id")


def pad_span_id(raw: str) -> str:
    """A span id from a Jaeger answer as 16 lowercase hex digits."""
    return _pad_hex(raw, SPAN_ID_HEX, "span id")


def short_trace_id(trace_id: str) -> str:
    """The form Jaeger's v1 API prints: 16 hex digits when the high 64 bits are zero, else 32."""
    padded = pad_trace_id(trace_id)
    return padded[SPAN_ID_HEX:] if padded.startswith("0" * SPAN_ID_HEX) else padded


def is_zero_id(raw: str) -> bool:
    """True for the empty id and for all-zero ids, both of which mean "no id" on the wire."""
    return raw.strip("0") == ""


def datetime_from_us(microseconds: int) -> datetime:
    """A UTC datetime from microseconds since the epoch, without float rounding."""
    return EPOCH + timedelta(microseconds=microseconds)


def us_from_datetime(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone (UTC)")
    return (moment - EPOCH) // _ONE_US


@dataclass(frozen=True)
class Span:
    """One span. ``tags`` are the span's own attributes; ``resource`` its process/resource attributes."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start: datetime
    duration_us: int
    error: bool = False
    tags: Mapping[str, TagValue] = field(default_factory=dict)
    kind: str | None = None
    resource: Mapping[str, TagValue] = field(default_factory=dict)

    @property
    def start_us(self) -> int:
        return us_from_datetime(self.start)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(microseconds=self.duration_us)


@dataclass(frozen=True)
class Trace:
    """A trace: its spans ordered by start time (then span id). Never empty."""

    trace_id: str
    spans: Sequence[Span]

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError(f"trace {self.trace_id} has no spans")

    @property
    def start(self) -> datetime:
        return min(span.start for span in self.spans)

    @property
    def end(self) -> datetime:
        return max(span.end for span in self.spans)

    @property
    def duration_us(self) -> int:
        return (self.end - self.start) // _ONE_US

    @property
    def services(self) -> tuple[str, ...]:
        """Every service with a span in the trace, sorted by name."""
        return tuple(sorted({span.service for span in self.spans}))

    @property
    def has_error(self) -> bool:
        return any(span.error for span in self.spans)

    @property
    def root(self) -> Span:
        """The earliest span whose parent is not in the trace (the earliest span if none is)."""
        ids = {span.span_id for span in self.spans}
        roots = [s for s in self.spans if s.parent_id is None or s.parent_id not in ids]
        return min(roots or self.spans, key=lambda s: (s.start, s.span_id))


def make_trace(trace_id: str, spans: Sequence[Span]) -> Trace:
    """A Trace with its spans in start order."""
    return Trace(trace_id, tuple(sorted(spans, key=lambda s: (s.start, s.span_id))))


@dataclass(frozen=True)
class DependencyLink:
    """Calls from ``parent`` service to ``child`` service in the dependency window."""

    parent: str
    child: str
    call_count: int

"""A trace laid out as a waterfall: pure arithmetic on the answer of the trace API, no I/O.

Spans are shown depth first (children under their parent, siblings by start time), each
with its offset and width as a share of the trace (0-1000, for SVG attributes: the page's
CSP allows no inline styles), its service's colour, and the log lines that name it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from app.correlation.schemas import LogEntry, SpanOut, TraceOut

SCALE = 1000  # the SVG viewBox width of a bar
MIN_WIDTH = 3  # the shortest bar drawn (0.3 % of the trace), so that every span can be seen
MAX_DEPTH_SHOWN = 12  # deeper spans are drawn at this indentation
PALETTE_SIZE = 10  # colours svc-0 … svc-9 in the stylesheet


@dataclass(frozen=True)
class Row:
    span: SpanOut
    depth: int
    offset: int  # 0-SCALE
    width: int  # MIN_WIDTH-SCALE
    offset_ms: float
    colour: int
    logs: list[LogEntry]

    @property
    def indent(self) -> int:
        return min(self.depth, MAX_DEPTH_SHOWN)


@dataclass(frozen=True)
class Waterfall:
    trace: TraceOut
    rows: list[Row]
    colours: dict[str, int]
    ticks: list[tuple[int, float]]  # (position 0-SCALE, milliseconds) along the time axis
    errors: int
    loose_logs: list[LogEntry] = field(default_factory=list)  # lines naming no span of this trace

    def colour_of(self, service: str | None) -> int | None:
        return self.colours.get(service) if service else None

    def offset_ms(self, moment: datetime | None) -> float | None:
        if moment is None:
            return None
        return (moment - self.trace.start).total_seconds() * 1000


def waterfall(trace: TraceOut, logs: list[LogEntry]) -> Waterfall:
    colours = {name: index % PALETTE_SIZE for index, name in enumerate(sorted(trace.services))}
    known = {span.span_id for span in trace.spans}
    children: dict[str | None, list[SpanOut]] = defaultdict(list)
    for span in trace.spans:
        parent = span.parent_id if span.parent_id in known and span.parent_id != span.span_id else None
        children[parent].append(span)
    for spans in children.values():
        spans.sort(key=lambda s: (s.start, s.span_id))
    by_span: dict[str, list[LogEntry]] = defaultdict(list)
    loose: list[LogEntry] = []
    for line in logs:
        if line.span_id in known:
            by_span[line.span_id].append(line)
        else:
            loose.append(line)
    total_ms = max(trace.duration_ms, 0.001)
    rows: list[Row] = []
    seen: set[str] = set()

    def visit(span: SpanOut, depth: int) -> None:
        if span.span_id in seen:  # a malformed trace with a cycle
            return
        seen.add(span.span_id)
        offset_ms = max(0.0, (span.start - trace.start).total_seconds() * 1000)
        offset = min(SCALE - MIN_WIDTH, round(offset_ms / total_ms * SCALE))
        width = max(MIN_WIDTH, min(SCALE - offset, round(span.duration_ms / total_ms * SCALE)))
        rows.append(
            Row(
                span,
                depth,
                offset,
                width,
                offset_ms,
                colours.get(span.service, 0),
                by_span.get(span.span_id, []),
            )
        )
        for child in children.get(span.span_id, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    for span in trace.spans:  # spans only reachable through a cycle
        if span.span_id not in seen:
            visit(span, 0)
    ticks = [(round(SCALE * i / 4), total_ms * i / 4) for i in range(5)]
    return Waterfall(trace, rows, colours, ticks, sum(1 for s in trace.spans if s.error), loose)

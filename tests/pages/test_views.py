"""The waterfall's arithmetic: order, indentation, bar geometry, logs attached to their spans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.correlation.schemas import LogEntry, SpanOut, TraceOut
from app.pages.views import MIN_WIDTH, SCALE, waterfall

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def _span(
    span_id: str, parent: str | None, start_ms: float, duration_ms: float, service: str = "a"
) -> SpanOut:
    return SpanOut(
        span_id=span_id,
        parent_id=parent,
        service=service,
        operation=f"op-{span_id}",
        start=T0 + timedelta(milliseconds=start_ms),
        duration_ms=duration_ms,
        error=False,
        tags={},
    )


def _log(span_id: str | None, ms: float) -> LogEntry:
    return LogEntry(
        timestamp=T0 + timedelta(milliseconds=ms),
        service="a",
        namespace=None,
        pod=None,
        container=None,
        level="info",
        message="m",
        trace_id="0" * 32,
        span_id=span_id,
        index="logstash",
        id=f"{span_id}-{ms}",
    )


def test_spans_come_depth_first_under_their_parents_with_bars_in_proportion() -> None:
    spans = [
        _span("root", None, 0, 1000),
        _span("late", "root", 600, 400, "b"),
        _span("early", "root", 100, 300, "b"),
        _span("child", "early", 150, 0.01),  # a blink: still drawn
        _span("orphan", "not-in-trace", 50, 100, "c"),  # its parent was never reported
        _span("loop1", "loop2", 10, 10),
        _span("loop2", "loop1", 20, 10),  # a malformed cycle shows, once each
    ]
    trace = TraceOut(trace_id="0" * 32, start=T0, duration_ms=1000, services=["a", "b", "c"], spans=spans)
    found = waterfall(trace, [_log("early", 120), _log("early", 130), _log(None, 5), _log("elsewhere", 7)])
    order = [(row.span.span_id, row.depth) for row in found.rows]
    assert order[:5] == [("root", 0), ("early", 1), ("child", 2), ("late", 1), ("orphan", 0)]
    assert sorted(order[5:]) == [("loop1", 0), ("loop2", 1)] or sorted(order[5:]) == [
        ("loop1", 1),
        ("loop2", 0),
    ]
    rows = {row.span.span_id: row for row in found.rows}
    assert (rows["root"].offset, rows["root"].width) == (0, SCALE)
    assert (rows["late"].offset, rows["late"].width) == (600, 400)
    assert rows["child"].width == MIN_WIDTH
    assert [line.id for line in rows["early"].logs] == ["early-120", "early-130"]
    assert [line.span_id for line in found.loose_logs] == [None, "elsewhere"]
    assert found.colours == {"a": 0, "b": 1, "c": 2}
    assert [ms for _, ms in found.ticks] == [0, 250, 500, 750, 1000]
    assert found.offset_ms(T0 + timedelta(milliseconds=42)) == 42

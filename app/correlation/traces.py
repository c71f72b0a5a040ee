"""Traces as answers, and service names as Jaeger knows them. Pure functions: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from app import servicenames
from app.backends.traces import Trace
from app.correlation.schemas import SpanOut, TraceOut, TraceSummary

TRACE_URL = "/api/v1/traces/{trace_id}"


def trace_out(trace: Trace) -> TraceOut:
    return TraceOut(
        trace_id=trace.trace_id,
        start=trace.start,
        duration_ms=trace.duration_us / 1000,
        services=list(trace.services),
        spans=[
            SpanOut(
                span_id=span.span_id,
                parent_id=span.parent_id,
                service=span.service,
                operation=span.operation,
                start=span.start,
                duration_ms=span.duration_us / 1000,
                error=span.error,
                kind=span.kind,
                tags=dict(span.tags),
            )
            for span in trace.spans
        ],
    )


def summary(trace: Trace) -> TraceSummary:
    root = trace.root
    return TraceSummary(
        trace_id=trace.trace_id,
        root_service=root.service,
        root_operation=root.operation,
        start=trace.start,
        duration_ms=trace.duration_us / 1000,
        span_count=len(trace.spans),
        error_count=sum(1 for span in trace.spans if span.error),
        services=list(trace.services),
        url=TRACE_URL.format(trace_id=trace.trace_id),
    )


def jaeger_names(known: Iterable[str], service: str, namespace: str | None) -> list[str]:
    """The Jaeger service names that mean ``service`` (app.servicenames): itself, Istio's
    ``<app>.<namespace>`` spelling, and the bare app name an instrumented app reports. Falls back
    to ``service`` as given when Jaeger knows none of them (the search then simply finds nothing)."""
    wanted = servicenames.parse(service, namespace)
    names = [name for name in known if name == service or servicenames.matches(wanted, name)]
    return sorted(names) or [service]


def newest_first(traces: Iterable[Trace]) -> list[Trace]:
    """Traces each once (by id), newest first."""
    unique = {trace.trace_id: trace for trace in traces}
    return sorted(unique.values(), key=lambda t: (t.start, t.trace_id), reverse=True)

"""A trace with its logs: Jaeger and Elasticsearch asked concurrently, joined by the trace id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime

from app.backends.elasticsearch import ElasticsearchClient, Hit, SearchPage
from app.backends.errors import BackendError
from app.backends.registry import Backends
from app.backends.traces import Trace
from app.config import Settings
from app.correlation import logquery
from app.correlation.errors import BackendsFailed, TraceNotFound
from app.correlation.ids import TraceId
from app.correlation.logrecords import TRACE_URL, LogReader
from app.correlation.outcomes import (
    call,
    glued_search,
    indices,
    search_gaps,
    search_note,
    settle,
    source_error,
    trace_id_param,
    window_param,
)
from app.correlation.schemas import (
    Gap,
    GapCode,
    LogEntry,
    Partial,
    TimeWindow,
    TraceErrors,
    TraceWithLogs,
)
from app.correlation.traces import trace_out
from app.correlation.window import Window, iso
from app.errors import Phrase


@dataclass(frozen=True)
class _TraceLogs:
    hits: list[Hit]
    truncated: bool
    partial: str | None
    gaps: list[Gap]


async def _search_trace_logs(
    es: ElasticsearchClient, trace_id: TraceId, window: Window, settings: Settings
) -> _TraceLogs:
    cs = settings.correlation

    def search(glued: bool) -> Awaitable[SearchPage]:
        return es.search(
            indices(window, settings),
            query=logquery.bool_filter(
                logquery.time_range(cs.log_fields.timestamp, window),
                logquery.trace_id_query(trace_id, cs, glued=glued),
            ),
            sort=logquery.sort_by_time(cs, "asc"),
            size=cs.max_trace_logs + 1,
            track_total_hits=False,
        )

    page = await glued_search(es, search)
    return _TraceLogs(
        page.hits[: cs.max_trace_logs],
        len(page.hits) > cs.max_trace_logs,
        search_note(page, glued_searched=es.prefix_queries),
        search_gaps(page, "logs", glued_searched=es.prefix_queries),
    )


async def trace_with_logs(
    raw_id: str,
    *,
    start: str | None,
    end: str | None,
    backends: Backends,
    settings: Settings,
    now: datetime,
) -> TraceWithLogs:
    """The trace from Jaeger and every log line carrying its id, fetched concurrently.

    While Jaeger is asked, logs are searched over ``[from, to]`` (default: the last
    ``correlation.log_lookback``). Once the trace is known, only the lines within its span
    window widened by ``correlation.skew`` are kept; a trace outside the searched window
    (or more hits than could be read) means one more search, in exactly the trace's window.
    """
    trace_id = trace_id_param(raw_id, "trace_id")
    cs = settings.correlation
    lookback = window_param(start, end, cs.log_lookback, now, settings.tzinfo)
    jaeger, es = backends.jaeger, backends.elasticsearch
    async with asyncio.TaskGroup() as group:
        trace_task = group.create_task(settle(call(jaeger, "jaeger", lambda j: j.get_trace(trace_id.hex))))
        logs_task = group.create_task(
            settle(call(es, "elasticsearch", lambda e: _search_trace_logs(e, trace_id, lookback, settings)))
        )
    trace: Trace | BackendError | None = trace_task.result()
    logs: _TraceLogs | BackendError = logs_task.result()
    window = lookback
    if isinstance(trace, Trace):
        window = Window(trace.start, trace.end).widened(cs.skew)
        if not isinstance(logs, BackendError) and (logs.truncated or not lookback.contains(window)):
            logs = await settle(
                call(es, "elasticsearch", lambda e: _search_trace_logs(e, trace_id, window, settings))
            )
    reader = LogReader(cs)
    services = trace.services if isinstance(trace, Trace) else ()
    entries: list[LogEntry] = []
    if not isinstance(logs, BackendError):
        for hit in logs.hits:
            entry = _as_trace_line(reader.entry(hit, trace_services=services), trace_id)
            if entry.timestamp is None or window.covers(entry.timestamp):
                entries.append(entry)
    _raise_when_nothing(trace, logs, entries, trace_id, window)
    return TraceWithLogs(
        trace=trace_out(trace) if isinstance(trace, Trace) else None,
        logs=entries,
        logs_window=TimeWindow(start=window.start, end=window.end),
        logs_truncated=not isinstance(logs, BackendError) and logs.truncated,
        partial=Partial(logs=_logs_note(logs), trace=_trace_note(trace, trace_id)),
        errors=TraceErrors(
            logs=source_error(logs) if isinstance(logs, BackendError) else None,
            trace=source_error(trace) if isinstance(trace, BackendError) else None,
        ),
        gaps=_gaps(trace, logs, trace_id),
    )


def _gaps(
    trace: Trace | BackendError | None, logs: _TraceLogs | BackendError, trace_id: TraceId
) -> list[Gap]:
    """What the parts that answered lack (as their ``partial`` notes say)."""
    gaps = [] if isinstance(logs, BackendError) else list(logs.gaps)
    if trace is None:
        gaps.append(
            Gap(
                part="trace",
                backend="jaeger",
                code=GapCode.TRACE_NOT_FOUND,
                values={"trace_id": trace_id.hex},
            )
        )
    return gaps


def _as_trace_line(entry: LogEntry, trace_id: TraceId) -> LogEntry:
    """A line found by the trace's id carries it, whatever other id its text may also mention."""
    return entry.model_copy(
        update={"trace_id": trace_id.hex, "trace_url": TRACE_URL.format(trace_id=trace_id.hex)}
    )


def _logs_note(logs: _TraceLogs | BackendError) -> str | None:
    if isinstance(logs, BackendError):
        return f"elasticsearch: {logs.message}"
    return f"elasticsearch: {logs.partial}" if logs.partial else None


def _trace_note(trace: Trace | BackendError | None, trace_id: TraceId) -> str | None:
    if isinstance(trace, BackendError):
        return f"jaeger: {trace.message}"
    if trace is None:
        return f"jaeger has no trace {trace_id.hex} (not sampled, or past Jaeger's retention)"
    return None


def _raise_when_nothing(
    trace: Trace | BackendError | None,
    logs: _TraceLogs | BackendError,
    entries: list[LogEntry],
    trace_id: TraceId,
    window: Window,
) -> None:
    """Errors when there is nothing to show: both backends failed, the id is unknown to both,
    or one failed and the other found nothing."""
    searched = f"between {iso(window.start)} and {iso(window.end)}"
    if isinstance(trace, BackendError) and isinstance(logs, BackendError):
        raise BackendsFailed({"jaeger": trace, "elasticsearch": logs}, f"trace {trace_id.hex}: ")
    if trace is not None and not isinstance(trace, BackendError):
        return
    if entries:
        return
    if isinstance(logs, BackendError):
        raise BackendError(
            logs.backend,
            logs.kind,
            f"{logs.message} (and jaeger has no trace {trace_id.hex})",
            status=logs.status,
        )
    if isinstance(trace, BackendError):
        raise BackendError(
            trace.backend,
            trace.kind,
            f"{trace.message} (and no log line in elasticsearch carries trace {trace_id.hex} {searched})",
            status=trace.status,
        )
    raise TraceNotFound(
        f"jaeger has no trace {trace_id.hex}, and no log line in elasticsearch carries it {searched} "
        "(give from/to to search logs elsewhere)",
        phrase=Phrase("problem.no_trace", id=trace_id.hex, start=window.start, end=window.end),
        trace_id=trace_id.hex,
    )

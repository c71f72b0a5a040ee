"""Trace search, the service overview and the dependency graph.

Backends are passed in (any may be None: not configured). Calls that do not depend on
each other run concurrently; a failing backend becomes a ``partial`` note where the
answer is still useful without it, and an error naming the backend where it is not.
The trace+logs join is in :mod:`.trace_logs`, the log search in :mod:`.log_search`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames
from app.alerts import service as alerts
from app.alerts.schemas import IncidentSummary
from app.backends.elasticsearch import ElasticsearchClient
from app.backends.errors import BackendError, BackendErrorKind
from app.backends.jaeger import JaegerClient
from app.backends.prometheus import PrometheusClient
from app.backends.registry import Backends
from app.backends.traces import Trace
from app.config import Settings
from app.correlation import istio, logquery
from app.correlation.errors import BackendsFailed
from app.correlation.graph import add_trace_links, build_graph
from app.correlation.logrecords import LogReader
from app.correlation.outcomes import (
    call,
    indices,
    need,
    result,
    search_gaps,
    settle,
    source_error,
    window_param,
)
from app.correlation.schemas import (
    ErrorPattern,
    Gap,
    GapCode,
    Graph,
    GraphErrors,
    GraphPartial,
    IncidentContext,
    LogEntry,
    OverviewErrors,
    OverviewPartial,
    Red,
    ServiceOverview,
    TraceList,
    TraceSummary,
)
from app.correlation.traces import jaeger_names, newest_first, summary
from app.correlation.window import Window
from app.errors import InvalidInput

Sessions = async_sessionmaker[AsyncSession]
CONTEXT_LEAD = timedelta(minutes=10)  # an incident's context starts this long before its first alert

RED_QUANTILES = (0.5, 0.95, 0.99)


# --- trace search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceSearch:
    service: str
    operation: str | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    error: bool | None = None
    start: str | None = None
    end: str | None = None
    limit: int = 20


async def _find_traces(
    jaeger: JaegerClient,
    names: list[str],
    window: Window,
    *,
    operation: str | None = None,
    min_us: int | None = None,
    max_us: int | None = None,
    limit: int,
    error: bool | None,
) -> list[Trace]:
    """Traces of any of ``names`` in ``window``; ``error=True`` also asks Jaeger for ``error=true`` spans
    (its own index), besides checking every trace found for a failed span."""

    def search(name: str, tags: dict[str, str | int | float | bool] | None) -> Awaitable[list[Trace]]:
        return jaeger.search_traces(
            name,
            operation=operation,
            tags=tags,
            start=window.start,
            end=window.end,
            min_duration_us=min_us,
            max_duration_us=max_us,
            limit=limit,
        )

    calls = [search(name, None) for name in names]
    if error:
        calls += [search(name, {"error": True}) for name in names]
    found = [trace for batch in await asyncio.gather(*calls) for trace in batch]
    traces = newest_first(found)
    if error is not None:
        traces = [t for t in traces if t.has_error == error]
    return traces


async def search_traces(
    query: TraceSearch, *, backends: Backends, settings: Settings, now: datetime
) -> TraceList:
    cs = settings.correlation
    if not 1 <= query.limit <= cs.max_trace_search:
        raise InvalidInput(
            f"query parameter 'limit': must be between 1 and {cs.max_trace_search}, got {query.limit}"
        )
    if (
        query.min_duration_ms is not None
        and query.max_duration_ms is not None
        and query.min_duration_ms > query.max_duration_ms
    ):
        raise InvalidInput("query parameter 'min_duration_ms': is above max_duration_ms")
    window = window_param(query.start, query.end, cs.default_window, now, settings.tzinfo)
    jaeger = need(backends.jaeger, "jaeger")
    names = jaeger_names(await jaeger.services(), query.service, None)
    traces = await _find_traces(
        jaeger,
        names,
        window,
        operation=query.operation,
        min_us=round(query.min_duration_ms * 1000) if query.min_duration_ms is not None else None,
        max_us=round(query.max_duration_ms * 1000) if query.max_duration_ms is not None else None,
        limit=query.limit,
        error=query.error,
    )
    return TraceList(traces=[summary(t) for t in traces[: query.limit]], services_searched=names)


# --- service overview ---------------------------------------------------------------------------


async def _red(prometheus: PrometheusClient, app: str, namespace: str | None, window: Window) -> Red | Gap:
    """The service's RED figures, or why there are none."""
    requests, latencies = await asyncio.gather(
        prometheus.query(istio.service_requests_query(app, namespace, window.duration), at=window.end),
        prometheus.query(
            istio.service_latency_query(app, namespace, window.duration, RED_QUANTILES), at=window.end
        ),
    )
    if not requests.samples:
        values: dict[str, str | int] = {"service": app, **({"namespace": namespace} if namespace else {})}
        return Gap(part="red", backend="prometheus", code=GapCode.NO_REQUESTS, values=values)
    traffic = istio.red_figures(requests.samples)
    quantiles = istio.quantiles_from(latencies.samples)
    return Red(
        requests_per_s=traffic.requests_per_s,
        error_rate=traffic.error_rate,
        latency_p50_ms=quantiles.get("0.5"),
        latency_p95_ms=quantiles.get("0.95"),
        latency_p99_ms=quantiles.get("0.99"),
    )


async def _error_logs(
    es: ElasticsearchClient,
    service: str,
    namespace: str | None,
    window: Window,
    settings: Settings,
    limit: int | None = None,
) -> _ErrorLogs:
    cs = settings.correlation
    clauses = [
        logquery.time_range(cs.log_fields.timestamp, window),
        logquery.service_query(service, cs),
        logquery.error_logs_query(cs),
    ]
    if namespace:
        clauses.append(logquery.exact_in_any(cs.log_fields.namespace, [namespace]))
    page = await es.search(
        indices(window, settings),
        query=logquery.bool_filter(*clauses),
        sort=logquery.sort_by_time(cs, "desc"),
        size=limit or cs.overview_logs,
        track_total_hits=False,
    )
    reader = LogReader(cs)
    return _ErrorLogs([reader.entry(hit) for hit in page.hits], page.partial, search_gaps(page, "error_logs"))


@dataclass(frozen=True)
class _ErrorLogs:
    entries: list[LogEntry]
    partial: str | None
    """Why lines may be missing although Elasticsearch answered (failed or timed-out shards)."""
    gaps: list[Gap]


@dataclass(frozen=True)
class _OverviewTraces:
    slowest: list[TraceSummary]
    failed: list[TraceSummary]


async def _overview_traces(
    jaeger: JaegerClient, service: str, namespace: str | None, window: Window, settings: Settings
) -> _OverviewTraces:
    cs = settings.correlation
    names = jaeger_names(await jaeger.services(), service, namespace)
    recent, failed = await asyncio.gather(
        _find_traces(jaeger, names, window, limit=cs.max_trace_search, error=None),
        _find_traces(jaeger, names, window, limit=cs.overview_traces, error=True),
    )
    slowest = sorted(recent, key=lambda t: (t.duration_us, t.trace_id), reverse=True)
    return _OverviewTraces(
        slowest=[summary(t) for t in slowest[: cs.overview_traces]],
        failed=[summary(t) for t in failed[: cs.overview_traces]],
    )


BACKEND_PARTS = ("red", "error_logs", "traces")  # when all of these fail, the overview is an error
OVERVIEW_PARTS = ("incidents", *BACKEND_PARTS)
_PART_BACKEND = {
    "incidents": "database",
    "red": "prometheus",
    "error_logs": "elasticsearch",
    "traces": "jaeger",
}


async def _bounded(part: str, awaitable: Awaitable[Any], timeout_s: float | None) -> Any:
    """The part's answer, or the TIMEOUT BackendError naming its backend once ``timeout_s`` has passed."""
    if timeout_s is None:
        return await awaitable
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        raise BackendError(
            _PART_BACKEND[part], BackendErrorKind.TIMEOUT, f"no answer within {timeout_s:g}s"
        ) from None


async def _skipped() -> None:
    return None


async def _incidents(sessions: Sessions, settings: Settings, service: str) -> list[IncidentSummary]:
    """The service's incidents not yet resolved, under any of the names alerts give it (the
    incident filter matches every spelling: app.servicenames)."""
    try:
        async with sessions() as session:
            return await alerts.open_incidents(session, settings, service)
    except SQLAlchemyError as exc:
        raise BackendError("database", BackendErrorKind.UNREACHABLE, type(exc).__name__) from exc


async def service_overview(
    service: str,
    *,
    namespace: str | None,
    start: str | None,
    end: str | None,
    backends: Backends,
    sessions: Sessions,
    settings: Settings,
    now: datetime,
    parts: Collection[str] = OVERVIEW_PARTS,
    part_timeout_s: float | None = None,
    error_log_limit: int | None = None,
    all_failed_is_error: bool = True,
) -> ServiceOverview:
    """RED figures, recent error logs, slowest and failed traces, open incidents: each part fetched
    concurrently, each failing on its own (``partial``). When every backend fails, the answer is an
    error naming each.

    ``parts`` (of :data:`OVERVIEW_PARTS`) limits what is fetched (the others stay empty);
    ``part_timeout_s`` bounds each part on its own, a slow backend then being a ``partial`` note
    like a failing one; ``error_log_limit`` replaces ``correlation.overview_logs``. With
    ``all_failed_is_error=False`` an overview whose every backend failed (or is not configured) is
    still an answer, each part marked in ``partial``."""
    window = window_param(start, end, settings.correlation.default_window, now, settings.tzinfo)
    parsed = servicenames.parse(service, namespace)
    app, ns = parsed.name, parsed.namespace
    fetch: dict[str, Callable[[], Awaitable[Any]]] = {
        "incidents": lambda: _incidents(sessions, settings, parsed.key),
        "red": lambda: call(backends.prometheus, "prometheus", lambda p: _red(p, app, ns, window)),
        "error_logs": lambda: call(
            backends.elasticsearch,
            "elasticsearch",
            lambda e: _error_logs(e, service, namespace, window, settings, error_log_limit),
        ),
        "traces": lambda: call(
            backends.jaeger, "jaeger", lambda j: _overview_traces(j, service, ns, window, settings)
        ),
    }
    wanted = {name: make() if name in parts else _skipped() for name, make in fetch.items()}
    async with asyncio.TaskGroup() as group:
        tasks = {
            name: group.create_task(settle(_bounded(name, part, part_timeout_s)))
            for name, part in wanted.items()
        }
    results = {name: task.result() for name, task in tasks.items()}
    failures = {name: r for name, r in results.items() if isinstance(r, BackendError)}
    asked = [name for name in BACKEND_PARTS if name in parts]
    if all_failed_is_error and asked and all(name in failures for name in asked):
        raise BackendsFailed({e.backend: e for e in failures.values()}, f"overview of {service}: ")
    red, logs, traces, incidents = (
        results["red"],
        results["error_logs"],
        results["traces"],
        results["incidents"],
    )
    notes = {name: f"{error.backend}: {error.message}" for name, error in failures.items()}
    errors = {name: source_error(error) for name, error in failures.items()}
    gaps: list[Gap] = []
    if isinstance(red, Gap):
        gaps.append(red)
        notes["red"], red = _no_requests_note(red), None
    if isinstance(logs, _ErrorLogs) and logs.partial:
        notes["error_logs"] = f"elasticsearch: {logs.partial}"
        gaps += logs.gaps
    return ServiceOverview(
        service=service,
        namespace=ns,
        start=window.start,
        end=window.end,
        red=red if isinstance(red, Red) else None,
        error_logs=logs.entries if isinstance(logs, _ErrorLogs) else [],
        slowest_traces=traces.slowest if isinstance(traces, _OverviewTraces) else [],
        failed_traces=traces.failed if isinstance(traces, _OverviewTraces) else [],
        incidents=incidents if isinstance(incidents, list) else [],
        partial=OverviewPartial(**notes),
        errors=OverviewErrors(**errors),
        gaps=gaps,
    )


def _no_requests_note(gap: Gap) -> str:
    """The English ``partial.red`` of a service no request reached in the window."""
    namespace = gap.values.get("namespace")
    where = f" in namespace {namespace}" if namespace else ""
    return f"prometheus: no Istio requests to service {gap.values['service']}{where} in the window"


# --- dependency graph ---------------------------------------------------------------------------


async def dependency_graph(
    *,
    namespace: str | None,
    start: str | None,
    end: str | None,
    backends: Backends,
    settings: Settings,
    now: datetime,
) -> Graph:
    """Kiali-style service graph from Istio metrics (see :mod:`.istio` for the reporter rules),
    with Jaeger's dependency call counts when Jaeger is configured (its failure is only a note)."""
    window = window_param(start, end, settings.correlation.default_window, now, settings.tzinfo)
    prometheus = need(backends.prometheus, "prometheus")
    span = window.duration
    jaeger = backends.jaeger
    async with asyncio.TaskGroup() as group:
        queries = [
            group.create_task(settle(prometheus.query(promql, at=window.end)))
            for promql in (
                istio.edge_requests_query(span, namespace),
                istio.edge_latency_query(span, namespace),
                istio.node_latency_query(span, namespace),
            )
        ]
        links = group.create_task(settle(jaeger.dependencies(window.end, span))) if jaeger else None
    requests, edge_latency, node_latency = [result(task.result()) for task in queries]
    edges = istio.edge_traffic(requests.samples, edge_latency.samples)
    nodes, out_edges = build_graph(edges, istio.node_latencies(node_latency.samples))
    note, error = None, None
    if links is not None:
        found = links.result()
        if isinstance(found, BackendError):
            note, error = f"jaeger: {found.message}", source_error(found)
        else:
            add_trace_links(nodes, out_edges, found, namespace)
    return Graph(
        start=window.start,
        end=window.end,
        namespace=namespace,
        nodes=sorted(nodes, key=lambda n: n.id),
        edges=sorted(out_edges, key=lambda e: (e.source, e.target, e.protocol or "")),
        partial=GraphPartial(jaeger=note),
        errors=GraphErrors(jaeger=error),
    )


def context_window(
    first_alert: datetime, resolved_at: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window an incident's context covers: from a little before its first alert started to its
    resolution (or now). Pages carry the same window's logs and traces."""
    return first_alert - CONTEXT_LEAD, resolved_at or now


# --- error logs grouped by message pattern ------------------------------------------------------

_VARIABLE_PARTS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b(?:0x)?(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)
PATTERN_CHARS = 300  # a message is grouped by its start (stack traces differ further down)
_PATTERN_READ = 2 * PATTERN_CHARS  # of the line, enough to fill PATTERN_CHARS once varying parts shrink


def message_pattern(message: str) -> str:
    """``message`` with what varies between occurrences of one error (ids, numbers, addresses, times)
    replaced by placeholders: ``order 8812 failed after 300ms`` → ``order <n> failed after <n>ms``.

    The pattern is cut to :data:`PATTERN_CHARS` after the placeholders are in, so two lines that
    differ only in a number's length are cut at the same place of their pattern."""
    text = " ".join(message[: _PATTERN_READ * 4].split())[:_PATTERN_READ]
    for pattern, placeholder in _VARIABLE_PARTS:
        text = pattern.sub(placeholder, text)
    return text[:PATTERN_CHARS]


def error_patterns(logs: Sequence[LogEntry], limit: int) -> list[ErrorPattern]:
    """Error lines grouped by :func:`message_pattern`, the most frequent first (then the newest),
    at most ``limit`` groups; each keeps its newest line as the example."""
    groups: dict[str, list[LogEntry]] = {}
    for entry in logs:
        if entry.message:
            groups.setdefault(message_pattern(entry.message), []).append(entry)
    found = []
    for pattern, entries in groups.items():
        newest = max(entries, key=_entry_time)
        found.append(
            ErrorPattern(
                pattern=pattern,
                example=newest.message or "",
                count=len(entries),
                level=newest.level,
                last_seen=newest.timestamp,
            )
        )
    found.sort(key=lambda g: (-g.count, -_entry_time(g).timestamp(), g.pattern))
    return found[:limit]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _entry_time(item: LogEntry | ErrorPattern) -> datetime:
    moment = item.timestamp if isinstance(item, LogEntry) else item.last_seen
    return moment or _EPOCH


async def incident_context(
    incident_id: int, *, backends: Backends, sessions: Sessions, settings: Settings, now: datetime
) -> IncidentContext:
    """The overview of each of the incident's services, from a little before its first alert started
    to its resolution (or now): each service in the namespace of the alerts naming it (``checkout``
    of two namespaces is two overviews), those most firing alerts name first.

    The incident is in the database whatever the backends do, so it is always answered: a part whose
    backend failed or is not configured is marked in that overview's ``partial``, as the trace
    endpoint marks a missing backend, instead of hiding the incident behind a 503."""
    async with sessions() as session:
        incident = await alerts.incident_detail(session, settings, incident_id)
    started = min([a.starts_at for a in incident.alerts] + [incident.created_at])
    start, end = context_window(started, incident.resolved_at, now)
    names = alerts.incident_services(incident) or [
        servicenames.parse(incident.common_labels.get("service", ""), incident.common_labels.get("namespace"))
    ]
    overviews = await asyncio.gather(
        *(
            service_overview(
                name.name,
                namespace=name.namespace,
                start=start.isoformat(),
                end=end.isoformat(),
                backends=backends,
                sessions=sessions,
                settings=settings,
                now=now,
                all_failed_is_error=False,
            )
            for name in names
            if name.name
        )
    )
    summary = IncidentSummary.model_validate(incident.model_dump(include=set(IncidentSummary.model_fields)))
    return IncidentContext(incident=summary, start=start, end=end, services=list(overviews))

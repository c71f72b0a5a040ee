"""Routes of logs ↔ traces correlation, the service overview and the dependency graph."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.correlation import log_search, trace_logs
from app.correlation import service as correlation
from app.correlation.schemas import (
    Graph,
    IncidentContext,
    LogPage,
    ServiceOverview,
    TraceList,
    TraceWithLogs,
)
from app.deps import ContextDep, SettingsDep, Viewer

router = APIRouter(tags=["correlation"])

FROM = Query(
    alias="from",
    description="Start, in the time grammar (README: Times): RFC 3339 (without an offset: the configured "
    "time zone), a date, epoch s/ms, now-15m, now/d",
)
TO = Query(alias="to", description="End, written like `from` (a date includes that day); default now")
BACKEND_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is invalid; the message names it"},
    502: {"description": "A backend answered badly or refused the query; `backend` names it"},
    503: {"description": "A backend is unreachable or not configured"},
    504: {"description": "A backend did not answer in time"},
}


def _now() -> datetime:
    return datetime.now(UTC)


MAX_DURATION_MS = 7 * 86_400_000  # a week: longer spans are not requests any more


@router.get(
    "/api/v1/traces/{trace_id}",
    response_model=TraceWithLogs,
    summary="A trace and every log line that carries its id",
    responses={
        **BACKEND_ERRORS,
        404: {"description": "Jaeger does not know the trace and no log line carries its id"},
    },
)
async def trace_with_logs(
    _: Viewer,
    context: ContextDep,
    settings: SettingsDep,
    trace_id: Annotated[
        str,
        Path(
            description="16 or 32 hex digits (any case, 0x and leading zeros optional), "
            "or a whole traceparent, uber-trace-id or b3 header value"
        ),
    ],
    start: Annotated[str | None, FROM] = None,
    end: Annotated[
        str | None, Query(alias="to", description="End of the log search while the trace's time is unknown")
    ] = None,
) -> TraceWithLogs:
    """Jaeger and Elasticsearch are asked concurrently. Logs are those within the trace's span
    window widened by `correlation.skew`, sorted by time, each with the span it names.
    `from`/`to` say where to look for logs when Jaeger cannot tell (default: the last
    `correlation.log_lookback`). A failing backend leaves a note in `partial` (200) as long as
    the other one found something."""
    return await trace_logs.trace_with_logs(
        trace_id, start=start, end=end, backends=context.backends, settings=settings, now=_now()
    )


@router.get(
    "/api/v1/logs",
    response_model=LogPage,
    summary="Search log lines, newest first, page by page",
    responses={**BACKEND_ERRORS, 410: {"description": "The cursor expired; start the search again"}},
)
async def search_logs(
    _: Viewer,
    context: ContextDep,
    settings: SettingsDep,
    service: Annotated[str | None, Query(description="Application label, or Istio's app.namespace")] = None,
    namespace: Annotated[str | None, Query(description="Kubernetes namespace")] = None,
    pod: Annotated[str | None, Query(description="Pod name")] = None,
    level: Annotated[
        str | None, Query(description="error, warning, info… (comma list); any spelling")
    ] = None,
    q: Annotated[
        str | None, Query(description="Plain text: every word must appear in the message (no query syntax)")
    ] = None,
    trace_id: Annotated[str | None, Query(description="A trace id in any form /traces/{id} accepts")] = None,
    start: Annotated[str | None, FROM] = None,
    end: Annotated[str | None, TO] = None,
    limit: Annotated[
        int | None, Query(ge=1, description="Lines per page (correlation.default_log_limit)")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> LogPage:
    """Each line carries the trace id found in its fields or message text, and a `trace_url`.
    Pages come from one Elasticsearch point in time, so paging is stable and goes past 10,000 lines;
    with `cursor`, the other parameters may be repeated unchanged or left out. A page Elasticsearch
    answered in part (shards that failed or timed out) says why in `partial` (English) and in `gaps`
    (`shards_failed`, `search_timed_out`, `glued_ids_not_searched`, with their values)."""
    search = log_search.LogSearch(
        service=service,
        namespace=namespace,
        pod=pod,
        level=level,
        q=q,
        trace_id=trace_id,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    return await log_search.search_logs(search, backends=context.backends, settings=settings, now=_now())


@router.get(
    "/api/v1/traces",
    response_model=TraceList,
    summary="Search traces in Jaeger",
    responses=BACKEND_ERRORS,
)
async def search_traces(
    _: Viewer,
    context: ContextDep,
    settings: SettingsDep,
    service: Annotated[str, Query(description="Service, as Jaeger or Istio name it")],
    operation: Annotated[str | None, Query()] = None,
    min_duration_ms: Annotated[float | None, Query(ge=0, le=MAX_DURATION_MS)] = None,
    max_duration_ms: Annotated[float | None, Query(ge=0, le=MAX_DURATION_MS)] = None,
    error: Annotated[
        bool | None, Query(description="true: only traces with a failed span; false: none")
    ] = None,
    start: Annotated[str | None, FROM] = None,
    end: Annotated[str | None, TO] = None,
    limit: Annotated[int, Query(ge=1, description="At most correlation.max_trace_search")] = 20,
) -> TraceList:
    """Summaries, newest first: root service and operation, start, duration, span and error counts."""
    query = correlation.TraceSearch(
        service=service,
        operation=operation,
        min_duration_ms=min_duration_ms,
        max_duration_ms=max_duration_ms,
        error=error,
        start=start,
        end=end,
        limit=limit,
    )
    return await correlation.search_traces(query, backends=context.backends, settings=settings, now=_now())


@router.get(
    "/api/v1/services/{service}/overview",
    response_model=ServiceOverview,
    summary="RED figures, recent error logs, slowest and failed traces of a service",
    responses=BACKEND_ERRORS,
)
async def service_overview(
    _: Viewer,
    context: ContextDep,
    settings: SettingsDep,
    service: Annotated[str, Path(description="Service, or Istio's app.namespace")],
    namespace: Annotated[str | None, Query()] = None,
    start: Annotated[str | None, FROM] = None,
    end: Annotated[str | None, TO] = None,
    allow_partial: Annotated[
        bool,
        Query(
            description="true: when every backend fails, still answer 200 with what the database "
            "knows (the open incidents), each failed part in `partial` and `errors`"
        ),
    ] = False,
) -> ServiceOverview:
    """Each part comes from its own backend and fails on its own (`partial` says why, `errors`
    names the backend, the kind of failure and its HTTP status); only when every backend fails is
    the answer an error (502/503/504 naming each), unless `allow_partial=true`."""
    assert context.sessions is not None
    return await correlation.service_overview(
        service,
        namespace=namespace,
        start=start,
        end=end,
        backends=context.backends,
        sessions=context.sessions,
        settings=settings,
        now=_now(),
        all_failed_is_error=not allow_partial,
    )


@router.get(
    "/api/v1/incidents/{incident_id}/context",
    response_model=IncidentContext,
    summary="An incident with the overview of its services around its time",
    responses=BACKEND_ERRORS,
)
async def incident_context(
    incident_id: int, _: Viewer, context: ContextDep, settings: SettingsDep
) -> IncidentContext:
    """From ten minutes before its first alert started to its resolution (or now): RED figures,
    error logs, slow and failed traces, and open incidents of each service it names."""
    assert context.sessions is not None
    return await correlation.incident_context(
        incident_id, backends=context.backends, sessions=context.sessions, settings=settings, now=_now()
    )


@router.get(
    "/api/v1/graph",
    response_model=Graph,
    summary="The service dependency graph from Istio metrics (and Jaeger)",
    responses=BACKEND_ERRORS,
)
async def dependency_graph(
    _: Viewer,
    context: ContextDep,
    settings: SettingsDep,
    namespace: Annotated[
        str | None, Query(description="Traffic into, out of and within this namespace")
    ] = None,
    start: Annotated[str | None, FROM] = None,
    end: Annotated[str | None, TO] = None,
) -> Graph:
    """Rates over the window from `istio_requests_total`, one reporter per edge (no double counting);
    callers outside the mesh appear as the node `unknown`. Jaeger's dependency call counts are
    added when Jaeger is configured; Jaeger failing leaves the graph without them, `partial.jaeger`
    saying why (English) and `errors.jaeger` naming the backend, the kind of failure and its HTTP
    status."""
    return await correlation.dependency_graph(
        namespace=namespace, start=start, end=end, backends=context.backends, settings=settings, now=_now()
    )

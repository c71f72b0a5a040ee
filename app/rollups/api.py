"""Rollup runs and the reports over stored days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app import errors, times
from app.config import Settings
from app.deps import ContextDep, Operator, SessionDep, SessionsDep, SettingsDep, Viewer
from app.rollups import answers, service
from app.rollups.answers import to_csv
from app.rollups.days import Granularity, local_today, per_period
from app.rollups.schemas import Queued, RunHistory, RunRequest, RunResults

router = APIRouter(tags=["rollups"])

Format = Literal["json", "csv"]
FromDay = Annotated[
    str | None,
    Query(
        alias="from",
        description="First local day: a date, or any time of the grammar (README: Times), e.g. now-7d; "
        "default: 30 days before `to`",
    ),
]
ToDay = Annotated[
    str | None,
    Query(
        alias="to",
        description="Last local day: a date is inclusive; a time (now, Grafana's ${__to}) ends the range, "
        "not past yesterday; default: yesterday",
    ),
]
ReportFormatParam = Annotated[
    Format,
    Query(
        description="json (`partial_days` names the period's partial days), or csv: the same rows after "
        "a header line, each with a last column `partial_days` counting the partial days of its "
        "period (its day, week, month or year; the whole range for a report of every entity)"
    ),
]
DEFAULT_DAYS = 30


def _days(first: str | None, last: str | None, settings: Settings) -> tuple[date | None, date | None]:
    """``from``/``to`` as local days, read by the one time grammar (:mod:`app.times`). A ``to``
    that is a time, not a date, ends the range at the day before it and not past yesterday."""
    clock = times.Clock(datetime.now(UTC), settings.tzinfo)
    first_day = times.parse_day(first, "from", clock) if first else None
    last_day = times.parse_day(last, "to", clock, end=True) if last else None
    if last is not None and last_day is not None and not times.names_a_day(last):
        last_day = min(last_day, clock.today() - timedelta(days=1))
    return first_day, last_day


def _period(first: str | None, last: str | None, context: ContextDep) -> tuple[date, date]:
    first_day, last_day = _days(first, last, context.settings)
    last_day = last_day or local_today(context.settings.tzinfo) - timedelta(days=1)
    first_day = first_day or last_day - timedelta(days=DEFAULT_DAYS - 1)
    service.check_period(first_day, last_day)
    return first_day, last_day


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.csv"'}


def _answer(
    body: dict[str, Any], rows: list[dict[str, Any]], fmt: Format, name: str, columns: list[str]
) -> Response:
    """JSON, or CSV that always starts with its header line (an answer without rows too)."""
    if fmt == "csv":
        return Response(to_csv(rows, columns), media_type=answers.CSV, headers=_attachment(name))
    return Response(answers.json_bytes(body), media_type=answers.JSON)


@router.post(
    "/api/v1/rollups/run",
    summary="Roll up a day or a range of days now",
    response_model=RunResults,
    responses={
        202: {"model": Queued, "description": "A range was queued; see /api/v1/rollups/runs"},
        **errors.answers(_400="Neither a date nor a range, a range over three years, or a day not over yet"),
    },
)
async def run(request: RunRequest, _: Operator, context: ContextDep) -> RunResults | JSONResponse:
    assert context.sessions is not None
    prometheus = context.backends.prometheus  # None: the on-call history only
    answer = await service.run_requested(
        context.sessions, prometheus, context.settings, request, context.spawn
    )
    if isinstance(answer, Queued):
        return JSONResponse(answer.model_dump(mode="json"), status_code=202)
    return answer


@router.get("/api/v1/rollups/runs", summary="History of rollup runs, newest first", response_model=RunHistory)
async def runs(
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    first: FromDay = None,
    last: ToDay = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> RunHistory:
    first_day, last_day = _days(first, last, context.settings)
    return await service.runs(session, first=first_day, last=last_day, limit=limit)


# --- reports ------------------------------------------------------------------------------

PLURALS = {"service": "services", "namespace": "namespaces"}


async def _kind_report(
    kind: str, first: date, last: date, fmt: Format, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    """Every entity's figures over the period; for a kind with many entities, streamed."""
    entity_kind = service.require_kind(settings, kind)
    async with sessions() as session:
        partial = await service.partial_days(session, first, last)
    head = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": settings.timezone,
        "partial_days": [d.isoformat() for d in partial],
    }
    figure_names = service.catalog_of(settings).figure_names(kind)
    # CSV has no top level: each row counts the range's partial days (the same for every entity)
    csv_columns = [kind, "days", *figure_names, answers.PARTIAL_DAYS]
    same = {answers.PARTIAL_DAYS: len(partial)}
    if not entity_kind.labels:
        async with sessions() as session:
            found = await service.report(session, settings, kind, first, last)
        rows = [{kind: e.entity, "days": e.days, **e.figures} for e in found]
        single = rows[0] if rows else {**dict.fromkeys([kind, "days", *figure_names]), kind: kind, "days": 0}
        if fmt == "csv":  # the same row as in JSON, its partial days counted
            return Response(
                to_csv([single | same], csv_columns), media_type=answers.CSV, headers=_attachment(kind)
            )
        return Response(answers.json_bytes({**head, kind: single}), media_type=answers.JSON)
    plural = PLURALS.get(kind, kind)

    async def chunks() -> AsyncIterator[service.Rows]:
        async with sessions() as session:
            async for rows in service.report_chunks(session, settings, kind, first, last):
                yield rows

    # The first chunk is read before the answer starts, so that a failing database still gets
    # its error status rather than a cut-off 200.
    pending = chunks()
    first_chunk = await anext(pending, None)

    async def all_chunks() -> AsyncIterator[service.Rows]:
        if first_chunk is not None:
            yield first_chunk
            async for rows in pending:
                yield rows

    if fmt == "csv":
        body = answers.streamed_csv(csv_columns, kind, all_chunks(), same)
        return StreamingResponse(body, media_type=answers.CSV, headers=_attachment(plural))
    return StreamingResponse(answers.streamed_json(head, plural, kind, all_chunks()), media_type=answers.JSON)


def _add_kind_report(kind: str, path: str, summary: str) -> None:
    """A report route for one built-in entity kind (the same answer as /reports/kinds/{kind})."""

    async def kind_report(
        _: Viewer,
        sessions: SessionsDep,
        context: ContextDep,
        first: FromDay = None,
        last: ToDay = None,
        format: ReportFormatParam = "json",
    ) -> Response:
        days = _period(first, last, context)
        return await _kind_report(kind, *days, format, sessions, context.settings)

    router.add_api_route(path, kind_report, methods=["GET"], summary=summary, name=f"{kind}_report")


_add_kind_report("service", "/api/v1/reports/services", "Every service's figures over a period")
_add_kind_report("namespace", "/api/v1/reports/namespaces", "Every namespace's CPU and memory over a period")
_add_kind_report("cluster", "/api/v1/reports/cluster", "The cluster's CPU and memory use over a period")


GranularityParam = Annotated[Granularity, Query(description="day, week (ISO weeks), month or year")]


async def _entity_series(
    kind: str,
    entity: str,
    first: date,
    last: date,
    granularity: Granularity,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    service.require_kind(settings, kind)
    if fmt == "json" and granularity is Granularity.DAY:  # the stored rows, when they answer it
        stored = await service.stored_daily_json(session, settings, kind, entity, first, last)
        if stored is not None:
            head = await _series_head(session, settings, kind, entity, first, last, granularity)
            return Response(answers.series_json_of(head, stored), media_type=answers.JSON)
    found = await service.series_rows(session, settings, kind, entity, first, last, granularity)
    if fmt == "csv":  # each period counts its partial days (CSV has no top level to name them)
        partial = per_period(await service.partial_days(session, first, last), granularity)
        return Response(
            to_csv(answers.series_rows(found, partial), answers.series_keys(found)),
            media_type=answers.CSV,
            headers=_attachment(f"{kind}-{granularity.value}"),
        )
    head = await _series_head(session, settings, kind, entity, first, last, granularity)
    return Response(answers.series_json(head, found), media_type=answers.JSON)


async def _series_head(
    session: AsyncSession,
    settings: Settings,
    kind: str,
    entity: str,
    first: date,
    last: date,
    granularity: Granularity,
) -> dict[str, Any]:
    return {
        kind: entity,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": settings.timezone,
        "granularity": granularity.value,
        "partial_days": [d.isoformat() for d in await service.partial_days(session, first, last)],
    }


@router.get(
    "/api/v1/reports/services/{service_name}/daily",
    summary="One service per day, week or month",
    responses=errors.answers(_404="No stored days of this service"),
)
async def service_daily(
    service_name: str,
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    first: FromDay = None,
    last: ToDay = None,
    granularity: GranularityParam = Granularity.DAY,
    format: ReportFormatParam = "json",
) -> Response:
    days = _period(first, last, context)
    return await _entity_series(
        "service", service_name, *days, granularity, format, session, context.settings
    )


@router.get(
    "/api/v1/reports/kinds/{kind}",
    summary="Every entity of any configured kind over a period",
    responses=errors.answers(_404="No entity kind of this name (the answer names the known ones)"),
)
async def kind_report(
    kind: str,
    _: Viewer,
    sessions: SessionsDep,
    context: ContextDep,
    first: FromDay = None,
    last: ToDay = None,
    format: ReportFormatParam = "json",
) -> Response:
    days = _period(first, last, context)
    return await _kind_report(kind, *days, format, sessions, context.settings)


@router.get(
    "/api/v1/reports/kinds/{kind}/{entity:path}/daily",
    summary="One entity of any configured kind per day, week or month",
    responses=errors.answers(_404="No entity kind of this name, or no stored days of this entity"),
)
async def entity_daily(
    kind: str,
    entity: str,
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    first: FromDay = None,
    last: ToDay = None,
    granularity: GranularityParam = Granularity.DAY,
    format: ReportFormatParam = "json",
) -> Response:
    days = _period(first, last, context)
    return await _entity_series(kind, entity, *days, granularity, format, session, context.settings)


SLO_COLUMNS = (
    "service",
    "objective",
    "target",
    "achieved",
    "met",
    "error_budget_remaining",
    "error_budget_remaining_minutes",
    "from",
    "to",
    "window_days",
    "data_days",
    answers.PARTIAL_DAYS,
)


@router.get("/api/v1/reports/slo", summary="Service level objectives: achieved, met, error budget left")
async def slo_report(
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    at: Annotated[
        str | None,
        Query(description="Last day of each window: a date or a time (README: Times); default: yesterday"),
    ] = None,
    format: Annotated[
        Format,
        Query(
            description="json (`partial_days` names the partial days of the objectives' windows), or "
            "csv: the same rows after a header line, each with a last column `partial_days` counting "
            "the partial days of its objective's window"
        ),
    ] = "json",
) -> Response:
    settings = context.settings
    if at:
        day = times.parse_day(at, "at", times.Clock(datetime.now(UTC), settings.tzinfo))
    else:
        day = local_today(settings.tzinfo) - timedelta(days=1)
    results = await service.slo_report(session, settings, day)
    partial, counts = await service.slo_partial_days(session, results)
    rows = [
        {
            "service": r.window.service,
            "objective": r.objective,
            "target": r.target,
            "achieved": r.achieved,
            "met": r.met,
            "error_budget_remaining": r.error_budget_remaining,
            "error_budget_remaining_minutes": r.error_budget_remaining_minutes,
            "from": r.window.first.isoformat(),
            "to": r.window.last.isoformat(),
            "window_days": r.window.days,
            "data_days": r.window.data_days,
        }
        for r in results
    ]
    if format == "csv":  # each row counts its window's partial days (CSV has no top level)
        rows = [row | {answers.PARTIAL_DAYS: count} for row, count in zip(rows, counts, strict=True)]
    body = {
        "at": day.isoformat(),
        "timezone": settings.timezone,
        "partial_days": [d.isoformat() for d in partial],
        "objectives": rows,
    }
    return _answer(body, rows, format, "slo", list(SLO_COLUMNS))


# --- flat rows for Grafana's Infinity datasource and alerting on rollups ------------------

FLAT_FROM = Annotated[
    str | None,
    Query(
        alias="from",
        description="A local day or a time in the grammar (README: Times): 2026-12-01, now-30d, or "
        "Grafana's ${__from} (epoch ms); default: 30 days before `to`",
    ),
]
FLAT_TO = Annotated[
    str | None,
    Query(
        alias="to",
        description="The same forms; a day is inclusive, a time ends the range (not past yesterday); "
        "default: yesterday",
    ),
]


@router.get(
    "/api/v1/rollups",
    summary="One figure per day, week or month as a flat JSON array (Grafana Infinity, alerting)",
    responses={
        200: {
            "description": '[{"time": ISO local period start, "entity", "figure", "value", '
            '"partial_days"}]: `partial_days` counts the partial days of the row\'s period (as the '
            "CSV reports' last column)"
        },
        **errors.answers(
            _404="No figure of this name (the answer names them), or no stored days of an entity"
        ),
    },
)
async def flat_rollups(
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    figure: Annotated[str, Query(description="kind.figure, e.g. service.latency_p99_ms")],
    entity: Annotated[
        list[str] | None, Query(description="Repeat for several; default: every entity with data")
    ] = None,
    first: FLAT_FROM = None,
    last: FLAT_TO = None,
    granularity: GranularityParam = Granularity.DAY,
) -> JSONResponse:
    settings = context.settings
    service.flat_figure(settings, figure)  # an unknown figure is told before a malformed day
    first_day, last_day = _period(first, last, context)
    return JSONResponse(
        await service.flat_rows(session, settings, figure, entity, first_day, last_day, granularity)
    )

"""Table answers: the report over the range, one row per entity (per objective for SLOs).

A table is the whole range re-aggregated at once (``rollups.report``), every figure of
the kind as a column; an SLO table is the report of each objective's window ending on
the range's last day. Unlike a time series, a table takes any number of entities. As a CSV
report's rows, each row's last column counts the partial days of its range (or window).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.grafana.catalogue import PARTIAL_DAYS, Metric, unit_of
from app.grafana.entities import passes
from app.grafana.payloads import Job, chosen_entities
from app.grafana.periods import Days
from app.grafana.values import ALL, Filter, Selection
from app.numbers import finite
from app.rollups import service as rollups

Columns = list[dict[str, Any]]
Rows = list[list[Any]]


async def table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    job: Job,
    filters: Sequence[Filter],
    days: Days | None,
) -> dict[str, Any]:
    """The report over the range: one row per entity (per objective for SLOs), every figure."""
    chosen = chosen_entities(settings, job.payload, metric, required=False)
    if metric.is_slo:
        columns, rows = await _slo_table(session, settings, metric, chosen, filters, days)
    else:
        columns, rows = await _report_table(session, settings, metric, chosen, filters, days)
    return {"type": "table", "refId": job.target.ref_id, "columns": columns, "rows": rows}


def _column(text: str, kind: str, unit: str | None = None) -> dict[str, Any]:
    column = {"text": text, "type": kind}
    if unit is not None:
        column["unit"] = unit
    return column


def _wanted(chosen: Selection | None) -> set[str] | None:
    return None if chosen is None or chosen is ALL else set(chosen)


async def _report_table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days | None,
) -> tuple[Columns, Rows]:
    figures = rollups.catalog_of(settings).figure_names(metric.kind)
    columns = [
        _column(metric.kind, "string"),
        _column("days", "number"),
        *(_column(figure, "number", unit_of(figure)) for figure in figures),
        _column(PARTIAL_DAYS, "number"),
    ]
    if days is None:
        return columns, []
    found = await rollups.report(session, settings, metric.kind, days.first, days.last)
    partial = len(await rollups.partial_days(session, days.first, days.last))
    wanted = _wanted(chosen)
    rows = [
        [entity.entity, entity.days, *(finite(entity.figures.get(figure)) for figure in figures), partial]
        for entity in found
        if (wanted is None or entity.entity in wanted) and passes(metric, entity.entity, filters)
    ]
    return columns, rows


async def _slo_table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days | None,
) -> tuple[Columns, Rows]:
    columns = [
        _column("service", "string"),
        _column("objective", "string"),
        _column("target", "number"),
        _column("achieved", "number"),
        _column("met", "boolean"),
        _column("error_budget_remaining", "number", "percentunit"),
        _column("error_budget_remaining_minutes", "number", "m"),
        _column("from", "string"),
        _column("to", "string"),
        _column("window_days", "number"),
        _column("data_days", "number"),
        _column(PARTIAL_DAYS, "number"),
    ]
    if days is None:
        return columns, []
    wanted = _wanted(chosen)
    results = await rollups.slo_report(session, settings, days.last)
    _, counts = await rollups.slo_partial_days(session, results)
    rows = [
        [
            r.window.service,
            r.objective,
            r.target,
            finite(r.achieved),
            r.met,
            finite(r.error_budget_remaining),
            finite(r.error_budget_remaining_minutes),
            r.window.first.isoformat(),
            r.window.last.isoformat(),
            r.window.days,
            r.window.data_days,
            count,
        ]
        for r, count in zip(results, counts, strict=True)
        if (wanted is None or r.window.service in wanted) and passes(metric, r.window.service, filters)
    ]
    return columns, rows

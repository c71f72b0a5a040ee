"""Time series answers: one ``{"target", "datapoints"}`` per entity (per objective for SLOs).

Each point is an exact re-aggregation of its period's stored days (``rollups.series_rows``):
never an average of daily figures. Periods without data between an entity's first and
last point are ``null``, so Grafana shows the gap; NaN and infinities are ``null`` too.
An SLO point is the objective evaluated over its window ending on the period's last day
(at most :data:`SLO_MAX_POINTS` of them: each is a window of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.grafana.catalogue import Metric, entity_key, labelled, unit_of
from app.grafana.entities import target_entities
from app.grafana.payloads import Job, chosen_entities, granularity_of, objectives_of
from app.grafana.periods import Days, choose_granularity, midnight_ms, period_ms, whole_periods
from app.grafana.values import Filter
from app.numbers import finite
from app.rollups import service as rollups
from app.rollups.days import Granularity, period_last_day, period_starts
from app.rollups.errors import UnknownEntity
from app.rollups.frames import Column, Ints
from app.rollups.layouts import day_number, day_of

SLO_MAX_POINTS = 120
"""Windows one SLO series evaluates at most (each is a window of its own): coarser beyond."""


async def time_series(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    job: Job,
    filters: Sequence[Filter],
    days: Days | None,
    max_points: int | None,
    many: bool,
) -> list[dict[str, Any]]:
    """The series of one metric of a target; ``many`` when the request names several metrics."""
    chosen = chosen_entities(settings, job.payload, metric, required=True)
    if days is None:
        return []
    limit = min(max_points or SLO_MAX_POINTS, SLO_MAX_POINTS) if metric.is_slo else max_points
    granularity = choose_granularity(granularity_of(job.payload), days, limit)
    window = whole_periods(days, granularity)
    entities = await target_entities(session, settings, metric, chosen, filters, window)
    if metric.is_slo:
        return await _slo_series(session, settings, metric, entities, job, window, granularity, many)
    tz = settings.tzinfo
    answers = []
    for entity in entities:
        try:
            rows = await rollups.series_rows(
                session,
                settings,
                metric.kind,
                entity,
                window.first,
                window.last,
                granularity,
                only=[metric.figure],
            )
        except UnknownEntity:
            if labelled(settings, metric):
                raise
            rows = None
        points = [] if rows is None else _with_gaps(rows.starts, rows.figures[metric.figure], granularity, tz)
        answers.append(_series(settings, metric, entity, None, granularity, points, job, many))
    return answers


def _with_gaps(starts: Ints, values: Column, granularity: Granularity, tz: ZoneInfo) -> list[list[Any]]:
    """``[value, epoch ms]`` from the first to the last period with data; null where one is missing
    (NaN and infinities, which answers write as null, included)."""
    if len(starts) == 0:
        return []
    found = values.tolist()
    every, stamps = _periods(int(starts[0]), int(starts[-1]), granularity, tz)
    if len(every) == len(found):  # no gap: the rows are every period, in order
        return [[value, stamp] for value, stamp in zip(found, stamps, strict=True)]
    at = dict(zip(starts.tolist(), found, strict=True))
    return [[at.get(number), stamp] for number, stamp in zip(every, stamps, strict=True)]


@lru_cache(maxsize=256)
def _periods(
    first: int, last: int, granularity: Granularity, tz: ZoneInfo
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The day numbers of the periods from ``first`` to ``last`` and their epoch milliseconds:
    the same few ranges for every entity a panel asks (kept: 0.2 ms of a 1,096-point series)."""
    if granularity is Granularity.DAY:
        every = tuple(range(first, last + 1))
    else:
        every = tuple(day_number(start) for start in period_starts(day_of(first), day_of(last), granularity))
    return every, tuple(midnight_ms(number, tz) for number in every)


def _series(
    settings: Settings,
    metric: Metric,
    entity: str,
    objective: str | None,
    granularity: Granularity,
    points: list[list[Any]],
    job: Job,
    many: bool,
) -> dict[str, Any]:
    named = labelled(settings, metric)
    parts = [entity] if named else []
    if objective is not None:
        parts.append(objective)
    if many or not named:
        parts.append(metric.figure)
    name = " ".join(parts)
    tags = {entity_key(metric): entity, "figure": metric.name, "granularity": granularity.value}
    if objective is not None:
        tags["objective"] = objective
    answer: dict[str, Any] = {
        "target": name,
        "title": name,
        "refId": job.target.ref_id,
        "tags": tags,
        "datapoints": points,
    }
    unit = unit_of(metric.figure)
    if unit is not None:
        answer["unit"] = unit
    return answer


async def _slo_series(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    services: list[str],
    job: Job,
    window: Days,
    granularity: Granularity,
    many: bool,
) -> list[dict[str, Any]]:
    """Each objective evaluated over its window ending on the last day of every period."""
    wanted = set(services)
    scoped = settings.model_copy(update={"slo": [o for o in settings.slo if o.service in wanted]})
    objectives = objectives_of(job.payload, metric)
    tz = settings.tzinfo
    found: dict[tuple[str, str], list[list[Any]]] = {}
    for start in period_starts(window.first, window.last, granularity):
        at = min(period_last_day(start, granularity), window.last)
        stamp = period_ms(start, tz)
        for result in await rollups.slo_report(session, scoped, at):
            if result.objective not in objectives:
                continue
            value = {
                "availability": result.achieved,
                "error_budget_remaining": result.error_budget_remaining,
                "error_budget_remaining_minutes": result.error_budget_remaining_minutes,
            }[metric.figure]
            if result.window.data_days == 0:
                value = None
            found.setdefault((result.window.service, result.objective), []).append([finite(value), stamp])
    answers = []
    for (service, objective), points in found.items():
        while points and points[0][0] is None:
            points.pop(0)
        while points and points[-1][0] is None:
            points.pop()
        shown = None if metric.figure == "availability" else objective
        answers.append(_series(settings, metric, service, shown, granularity, points, job, many))
    return answers

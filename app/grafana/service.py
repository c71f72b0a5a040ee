"""Grafana's questions answered from the rollups: the entry points ``api.py`` calls, and ``/query``'s plan.

The work is split by concern, one module each:

- ``catalogue``: the metrics (``<entity kind>.<figure>``, the SLO figures, ``incidents``,
  ``partial_days``) and the payload fields each accepts;
- ``periods``: a Grafana range as finished local days, widened to whole periods
  (calendar arithmetic itself lives in ``app.rollups.days``);
- ``payloads`` and ``entities``: what a target asks for, and which entities that is;
- ``series``, ``tables``, ``annotations``: the three kinds of answer;
- ``variables``: the value lists of variables, ad hoc filters and payload options.

``/query`` reads and checks every target before it reads any rollup, so a bad target
fails the whole request with a message naming it; then each target is answered in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.config import Settings
from app.grafana.annotations import annotation_frame, partial_day_frame
from app.grafana.catalogue import PARTIAL_DAYS, filter_keys, metric_list, metrics_of, resolve_metrics
from app.grafana.entities import offered
from app.grafana.errors import InvalidQuery
from app.grafana.payloads import (
    Job,
    annotation_of,
    chosen_entities,
    format_of,
    granularity_of,
    lang_of,
    objectives_of,
    partial_day_scope,
    target_payload,
)
from app.grafana.periods import days_of
from app.grafana.schemas import QueryRequest
from app.grafana.series import time_series
from app.grafana.tables import table
from app.grafana.values import SERVICE_KEYS, parse_filters
from app.grafana.variables import payload_options, tag_keys, tag_values, variable

__all__ = ["health", "metric_list", "payload_options", "query", "tag_keys", "tag_values", "variable"]


def health(settings: Settings) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": "panorama",
        "version": __version__,
        "timezone": settings.timezone,
        "metrics": len(metrics_of(settings)),
    }


def plan(settings: Settings, request: QueryRequest) -> list[Job]:
    """The targets to answer, each checked: unknown metrics and malformed payloads fail here."""
    jobs = []
    for target in request.targets:
        if target.hide or target.target is None or target.target == "":
            continue
        payload = target_payload(target)
        annotation = annotation_of(target, payload)
        if annotation is not None:
            lang_of(payload, settings.alerts.locale)  # a language it does not speak fails here
            if annotation == PARTIAL_DAYS:
                partial_day_scope(payload)  # and a field it does not have
            jobs.append(Job(target, payload, None, annotation))
            continue
        metrics = resolve_metrics(settings, target.target)
        granularity_of(payload)
        tabular = format_of(payload) == "table"
        for metric in metrics:
            chosen_entities(settings, payload, metric, required=not tabular)
            if metric.is_slo:
                objectives_of(payload, metric)
        jobs.append(Job(target, payload, metrics))
    return jobs


async def query(
    session: AsyncSession, settings: Settings, request: QueryRequest, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every target's answer, in order: time series, tables or annotation frames."""
    raw_filters = [*(request.filters or []), *(request.adhoc_filters or [])]
    try:
        filters = parse_filters(raw_filters, filter_keys(settings))
    except InvalidQuery:  # perhaps a stored service's odd spelling, picked from /tag-values
        keys = SERVICE_KEYS.intersection(filter_keys(settings))
        stored = {name for key in sorted(keys) for name in await offered(session, settings, key)}
        filters = parse_filters(raw_filters, filter_keys(settings), stored)
    jobs = plan(settings, request)
    many = len({m.name for job in jobs for m in job.metrics or []}) > 1
    days = days_of(request.range, settings, now)
    answers: list[dict[str, Any]] = []
    for job in jobs:
        if job.metrics is None and job.annotation == PARTIAL_DAYS:
            answers.append(await partial_day_frame(session, settings, days, job, filters))
            continue
        if job.metrics is None:
            answers.append(await annotation_frame(session, settings, request.range, job, filters))
            continue
        for metric in job.metrics:
            if format_of(job.payload) == "table":
                answers.append(await table(session, settings, metric, job, filters, days))
            else:
                answers.extend(
                    await time_series(
                        session, settings, metric, job, filters, days, request.max_data_points, many
                    )
                )
    return answers

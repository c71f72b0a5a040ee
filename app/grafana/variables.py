"""The value lists Grafana's editors offer: query variables, ad hoc filters, payload options.

``/variable`` answers ``services``, ``namespaces``, ``figures``, ``schedules``,
``entities(<kind>)`` and ``figures(<kind>)``; ``/tag-keys`` and ``/tag-values`` the ad hoc
filter keys and their values; ``/metric-payload-options`` the options of one payload
field of a metric, which :func:`app.grafana.catalogue.payload_fields` declares.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.grafana.catalogue import (
    ALL_VALUE,
    ANNOTATION_FIELDS,
    SLO,
    declared_field,
    filter_keys,
    has_kind,
    metrics_of,
    options,
    payload_fields,
    resolve_metrics,
    slo_services,
)
from app.grafana.entities import kind_entities, namespaces, offered
from app.grafana.errors import InvalidQuery
from app.grafana.periods import days_of
from app.grafana.schemas import PayloadOptionsRequest, VariableRequest
from app.grafana.values import unescape
from app.rollups import service as rollups

_KIND_QUERY = re.compile(r"^(?P<what>entities|figures)\((?P<kind>[a-z][a-z0-9_]*)\)$")
VARIABLE_QUERIES = "services, namespaces, figures, schedules, entities(<kind>), figures(<kind>)"


async def variable(
    session: AsyncSession, settings: Settings, request: VariableRequest, *, now: datetime | None = None
) -> list[dict[str, str]]:
    """A query variable's values: ``services``, ``namespaces``, ``figures``, ``schedules``…

    Entities are those with rollups within the dashboard's range (all of them when the
    range has no finished day).
    """
    text = _variable_text(request)
    days = days_of(request.range, settings, now) if request.range is not None else None
    first, last = (days.first, days.last) if days is not None else (None, None)
    values: list[str]
    if text == "services":
        values = await kind_entities(session, settings, "service", first, last)
    elif text == "namespaces":
        values = await namespaces(session, settings, first, last)
    elif text == "figures":
        values = [metric.name for metric in metrics_of(settings)]
    elif text == "schedules":
        values = [schedule.name for schedule in settings.schedules]
    elif match := _KIND_QUERY.match(text):
        kind = match["kind"]
        if kind != SLO and not has_kind(settings, kind):
            known = ", ".join(sorted(rollups.catalog_of(settings).entities))
            raise InvalidQuery(f"variable query {text!r}: no entity kind {kind!r} (known: {known})")
        if match["what"] == "figures":
            values = [m.name for m in metrics_of(settings) if m.kind == kind]
        elif kind == SLO:
            values = slo_services(settings)
        else:
            values = await kind_entities(session, settings, kind, first, last)
    else:
        raise InvalidQuery(f"unknown variable query {text!r}; use one of {VARIABLE_QUERIES}")
    return [{"__text": value, "__value": value} for value in values]


def _variable_text(request: VariableRequest) -> str:
    raw: Any = request.payload
    if isinstance(raw, dict):
        raw = raw.get("target", raw.get("query"))
    if raw is None or raw == "":
        raw = request.target
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidQuery(f"the variable's query is empty; use one of {VARIABLE_QUERIES}")
    return unescape(raw.strip())


def tag_keys(settings: Settings) -> list[dict[str, str]]:
    return [{"type": "string", "text": key} for key in filter_keys(settings)]


async def tag_values(session: AsyncSession, settings: Settings, key: str) -> list[dict[str, str]]:
    keys = filter_keys(settings)
    if key not in keys:
        raise InvalidQuery(f"tag key {key!r} is not one of {', '.join(keys)}")
    return [{"text": value} for value in await offered(session, settings, key)]


async def payload_options(
    session: AsyncSession, settings: Settings, request: PayloadOptionsRequest
) -> list[dict[str, str]]:
    """The options of one payload field of one metric (the fields ``payload_fields`` declares)."""
    name = request.name
    annotation = request.metric.strip()
    if annotation in ANNOTATION_FIELDS:
        field = declared_field(ANNOTATION_FIELDS[annotation], annotation, name)
        if field.options is not None:
            return options(field.options)
        if field.name == "namespace":
            values = await namespaces(session, settings, None, None)
        else:
            values = await kind_entities(session, settings, "service", None, None)
        return [{"label": "All", "value": ALL_VALUE}, *options(values)]
    metric = resolve_metrics(settings, request.metric, field="metric")[0]
    found = declared_field(payload_fields(settings, metric), metric.name, name)
    if found.options is not None:
        return options(found.options)
    if metric.is_slo:
        names = slo_services(settings)
    else:
        names = await rollups.entities(session, metric.kind)
    return [{"label": "All", "value": ALL_VALUE}, *options(names)]

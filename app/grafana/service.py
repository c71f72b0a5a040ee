"""Grafana's questions answered from the rollups: metrics, variables, time series, tables, annotations.

A *metric* is ``<entity kind>.<figure>`` for every figure of every configured entity
kind (``service.latency_p99_ms``, ``namespace.cpu_cores_peak``, ``cluster.cpu_utilization_avg``,
user-defined kinds alike), plus the SLO figures ``slo.availability``,
``slo.error_budget_remaining`` and ``slo.error_budget_remaining_minutes``, and
``incidents`` for annotations.

Time series points are whole local days, ISO weeks, months or years of the configured
time zone, stamped with the epoch milliseconds of the period's first local midnight;
each is an exact re-aggregation of its stored days (``rollups.series``). A range is
widened to whole periods, never reaches past yesterday (today is not rolled up yet)
and is cut to the latest three years (the rollups' retention and report limit). When
a range at the asked granularity has more periods than the panel's ``maxDataPoints``,
the next coarser granularity is used (day → week → month → year): points are never
dropped. Periods without data between an entity's first and last point are ``null``, so
Grafana shows the gap.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.alerts import service as alerts
from app.config import Settings
from app.grafana.errors import InvalidQuery, UnknownMetric
from app.grafana.schemas import (
    PayloadOptionsRequest,
    QueryRequest,
    Target,
    TimeRange,
    VariableRequest,
)
from app.grafana.values import ALL, Filter, Selection, parse_filters, scalar, selection, unescape
from app.rollups import service as rollups
from app.rollups.days import Granularity, day_window, local_today, period_start
from app.rollups.errors import UnknownEntity
from app.rollups.frames import Column, Ints
from app.rollups.layouts import day_number, day_of

SLO = "slo"
SLO_FIGURES = ("availability", "error_budget_remaining", "error_budget_remaining_minutes")
SLO_OBJECTIVES = ("availability", "latency_p99_ms")
INCIDENTS = "incidents"
ANNOTATION_REF_ID = "Anno"
ALL_VALUE = "$__all"
MAX_ANNOTATIONS = 1000  # incidents shown on one panel

COARSENING = (Granularity.DAY, Granularity.WEEK, Granularity.MONTH, Granularity.YEAR)
OFFERED_GRANULARITIES = (Granularity.DAY, Granularity.WEEK, Granularity.MONTH)
FORMATS = {"time_series": "time_series", "timeseries": "time_series", "table": "table"}
MAX_SERIES = 200
"""Series one target may answer with: a panel with more is unreadable; ask for a table."""
SLO_MAX_POINTS = 120
"""Windows one SLO series evaluates at most (each is a window of its own): coarser beyond."""

_SERVICE_NAMESPACE = re.compile(r"^[^.]+\.([^.]+)\.svc(?:\.|$)")


# --- the catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    kind: str
    figure: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.figure}"

    @property
    def is_slo(self) -> bool:
        return self.kind == SLO


def metrics_of(settings: Settings) -> list[Metric]:
    catalog = rollups.catalog_of(settings)
    found = [Metric(kind, figure) for kind in catalog.entities for figure in catalog.figure_names(kind)]
    return [*found, *(Metric(SLO, figure) for figure in SLO_FIGURES)]


def resolve_metrics(settings: Settings, target: object) -> list[Metric]:
    """The metrics a target names: one, or several through a multi-value variable."""
    names = selection(target, field="target")
    if names is ALL:
        raise InvalidQuery("target: choose metrics; 'all' is not a metric")
    known = {metric.name: metric for metric in metrics_of(settings)}
    found = []
    for name in names:
        metric = known.get(name)
        if metric is None:
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownMetric(
                f"unknown metric {name!r}: metrics are <kind>.<figure>, e.g. service.latency_p99_ms "
                f"(POST /grafana/metrics lists them){hint}"
            )
        found.append(metric)
    return found


def unit_of(figure: str) -> str | None:
    """Grafana's unit for a figure, guessed from its name."""
    if figure.endswith("_ms"):
        return "ms"
    if figure in ("error_rate", "availability", "error_budget_remaining") or "utilization" in figure:
        return "percentunit"
    if "bytes" in figure:
        return "bytes"
    if figure.startswith("qps"):
        return "reqps"
    if figure.endswith("_minutes"):
        return "m"
    return None


def _labelled(settings: Settings, metric: Metric) -> bool:
    """Whether the metric's kind has several entities (a label names them)."""
    if metric.is_slo:
        return True
    return bool(rollups.catalog_of(settings).entities[metric.kind].labels)


def _entity_key(metric: Metric) -> str:
    return "service" if metric.is_slo else metric.kind


# --- ranges and periods ----------------------------------------------------------------------


@dataclass(frozen=True)
class Days:
    """Local days ``first``..``last`` (inclusive); ``latest`` is yesterday, the newest rolled-up day."""

    first: date
    last: date
    latest: date


def days_of(time_range: TimeRange, settings: Settings, now: datetime | None = None) -> Days | None:
    """The finished local days a Grafana range covers (the latest three years of it); None if none."""
    start, end = _aware(time_range.start), _aware(time_range.end)
    if end < start:
        raise InvalidQuery(f"range: 'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})")
    tz = settings.tzinfo
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date() if end > start else first
    latest = local_today(tz, now) - timedelta(days=1)
    last = min(last, latest)
    first = max(first, last - timedelta(days=rollups.MAX_PERIOD_DAYS - 1))
    return Days(first, last, latest) if first <= last else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def next_period(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    if granularity is Granularity.MONTH:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


def period_last_day(start: date, granularity: Granularity) -> date:
    return next_period(start, granularity) - timedelta(days=1)


def period_count(first: date, last: date, granularity: Granularity) -> int:
    """How many periods of ``granularity`` the days ``first``..``last`` touch."""
    if granularity is Granularity.DAY:
        return (last - first).days + 1
    if granularity is Granularity.WEEK:
        return (period_start(last, granularity) - period_start(first, granularity)).days // 7 + 1
    if granularity is Granularity.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def period_starts(first: date, last: date, granularity: Granularity) -> Iterator[date]:
    start = period_start(first, granularity)
    while start <= last:
        yield start
        start = next_period(start, granularity)


def choose_granularity(requested: Granularity, days: Days, max_points: int | None) -> Granularity:
    """The asked granularity, or the first coarser one with at most ``max_points`` periods."""
    if not max_points or max_points <= 0:
        return requested
    for granularity in COARSENING[COARSENING.index(requested) :]:
        if period_count(days.first, days.last, granularity) <= max_points:
            return granularity
    return Granularity.YEAR


def whole_periods(days: Days, granularity: Granularity) -> Days:
    """``days`` widened to whole periods (not past ``latest``), within three years."""
    first = period_start(days.first, granularity)
    last = min(period_last_day(period_start(days.last, granularity), granularity), days.latest)
    earliest = last - timedelta(days=rollups.MAX_PERIOD_DAYS - 1)
    if first < earliest:
        first = period_start(earliest, granularity)
        if first < earliest:
            first = next_period(first, granularity)
    return Days(first, last, days.latest)


@lru_cache(maxsize=16384)
def period_ms(start: date, tz: ZoneInfo) -> int:
    """Epoch milliseconds of the local midnight that starts ``start``."""
    return int(day_window(start, tz).start.timestamp() * 1000)


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# --- entities and ad hoc filters -------------------------------------------------------------


def namespace_of(service: str) -> str | None:
    """``checkout.shop.svc.cluster.local`` → ``shop`` (Istio's destination_service names)."""
    match = _SERVICE_NAMESPACE.match(service)
    return match.group(1) if match else None


def filter_keys(settings: Settings) -> list[str]:
    """Ad hoc filter keys: ``service``, ``namespace`` and any other entity kind named by labels."""
    catalog = rollups.catalog_of(settings)
    return sorted({"service", "namespace"} | {k for k, kind in catalog.entities.items() if kind.labels})


def _passes(metric: Metric, entity: str, filters: Sequence[Filter]) -> bool:
    """Whether ``entity`` passes every filter that applies to its kind (others are ignored)."""
    kind = _entity_key(metric)
    for item in filters:
        if item.key == kind:
            value: str | None = entity
        elif item.key == "namespace" and kind == "service":
            value = namespace_of(entity)
        else:
            continue
        if not item.matches(value):
            return False
    return True


def _entity_payload(payload: dict[str, Any], metric: Metric) -> Any:
    raw = payload.get("entity")
    if raw is None:
        raw = payload.get(_entity_key(metric))
    if raw == "" or raw == []:
        return None
    return raw


async def _entities(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days,
) -> list[str]:
    """The entities a target asks for, filtered; ``None`` chosen means all."""
    if not _labelled(settings, metric):
        return [metric.kind]
    if metric.is_slo:
        configured = list(dict.fromkeys(objective.service for objective in settings.slo))
        if chosen is None or chosen is ALL:
            names = configured
        else:
            unknown = [name for name in chosen if name not in configured]
            if unknown:
                raise InvalidQuery(f"no SLO objective is configured for {', '.join(map(repr, unknown))}")
            names = list(chosen)
    elif chosen is None or chosen is ALL:
        names = await _kind_entities(session, settings, metric.kind, days.first, days.last)
    else:
        names = list(chosen)
    names = [name for name in names if _passes(metric, name, filters)]
    if len(names) > MAX_SERIES:
        raise InvalidQuery(
            f"{metric.name}: {len(names)} {_entity_key(metric)}s selected; a query answers at most "
            f"{MAX_SERIES} series: narrow the selection or an ad hoc filter, or use format table"
        )
    return names


def _choice(
    settings: Settings, payload: dict[str, Any], metric: Metric, *, required: bool
) -> Selection | None:
    raw = _entity_payload(payload, metric)
    if raw is None:
        if required and _labelled(settings, metric):
            raise InvalidQuery(
                f"payload.entity is required for {metric.name}: a {_entity_key(metric)} name, a list, "
                f"(a|b) or {ALL_VALUE} (in code mode write a multi-value variable unquoted: "
                '{"entity": $var})'
            )
        return None
    return selection(raw, field="payload.entity")


# --- payloads --------------------------------------------------------------------------------


def _payload(target: Target) -> dict[str, Any]:
    raw = target.payload
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise InvalidQuery(f"target {target.ref_id}: payload is not JSON: {raw[:80]!r}") from None
        if not isinstance(parsed, dict):
            raise InvalidQuery(f"target {target.ref_id}: payload must be a JSON object")
        return parsed
    return raw


def _granularity(payload: dict[str, Any]) -> Granularity:
    value = scalar(payload.get("granularity"), field="payload.granularity")
    if value is None or value == "auto":
        return Granularity.DAY
    try:
        return Granularity(value)
    except ValueError:
        known = ", ".join(g.value for g in Granularity)
        raise InvalidQuery(f"payload.granularity {value!r} is not one of {known}") from None


def _format(payload: dict[str, Any]) -> str:
    value = scalar(payload.get("format"), field="payload.format")
    if value is None:
        return "time_series"
    found = FORMATS.get(value.lower().replace(" ", "_"))
    if found is None:
        raise InvalidQuery(f"payload.format {value!r} is not one of time_series, table")
    return found


def _objectives(payload: dict[str, Any], metric: Metric) -> set[str]:
    if metric.figure == "availability":
        return {"availability"}
    raw = payload.get("objective")
    if raw is None or raw == "" or raw == []:
        return set(SLO_OBJECTIVES)
    chosen = selection(raw, field="payload.objective")
    if chosen is ALL:
        return set(SLO_OBJECTIVES)
    unknown = [name for name in chosen if name not in SLO_OBJECTIVES]
    if unknown:
        raise InvalidQuery(f"payload.objective {unknown[0]!r} is not one of {', '.join(SLO_OBJECTIVES)}")
    return set(chosen)


def _is_annotation(target: Target, payload: dict[str, Any]) -> bool:
    return (
        target.ref_id == ANNOTATION_REF_ID
        or payload.get("kind") == INCIDENTS
        or (isinstance(target.target, str) and target.target.strip() == INCIDENTS)
    )


# --- /query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    target: Target
    payload: dict[str, Any]
    metrics: list[Metric] | None  # None: an annotation query


async def query(
    session: AsyncSession, settings: Settings, request: QueryRequest, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every target's answer, in order: time series, tables or annotation frames.

    Everything is checked before anything is read, so a bad target fails the whole
    request with a message naming it.
    """
    filters = parse_filters([*(request.filters or []), *(request.adhoc_filters or [])], filter_keys(settings))
    jobs = []
    for target in request.targets:
        if target.hide or target.target is None or target.target == "":
            continue
        payload = _payload(target)
        if _is_annotation(target, payload):
            jobs.append(_Job(target, payload, None))
            continue
        metrics = resolve_metrics(settings, target.target)
        _granularity(payload)
        table = _format(payload) == "table"
        for metric in metrics:
            _choice(settings, payload, metric, required=not table)
            if metric.is_slo:
                _objectives(payload, metric)
        jobs.append(_Job(target, payload, metrics))
    many = len({m.name for job in jobs for m in job.metrics or []}) > 1
    days = days_of(request.range, settings, now)
    answers: list[dict[str, Any]] = []
    for job in jobs:
        if job.metrics is None:
            answers.append(await annotation_frame(session, settings, request.range, job, filters))
            continue
        for metric in job.metrics:
            if _format(job.payload) == "table":
                answers.append(await _table(session, settings, metric, job, filters, days))
            else:
                answers.extend(
                    await _time_series(
                        session, settings, metric, job, filters, days, request.max_data_points, many
                    )
                )
    return answers


async def _time_series(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    job: _Job,
    filters: Sequence[Filter],
    days: Days | None,
    max_points: int | None,
    many: bool,
) -> list[dict[str, Any]]:
    chosen = _choice(settings, job.payload, metric, required=True)
    if days is None:
        return []
    limit = min(max_points or SLO_MAX_POINTS, SLO_MAX_POINTS) if metric.is_slo else max_points
    granularity = choose_granularity(_granularity(job.payload), days, limit)
    window = whole_periods(days, granularity)
    entities = await _entities(session, settings, metric, chosen, filters, window)
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
            if _labelled(settings, metric):
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
    if granularity is Granularity.DAY:
        every = list(range(int(starts[0]), int(starts[-1]) + 1))
    else:
        first, last = day_of(int(starts[0])), day_of(int(starts[-1]))
        every = [day_number(start) for start in period_starts(first, last, granularity)]
    at = dict(zip(starts.tolist(), found, strict=True))
    return [[at.get(number), midnight_ms(number, tz)] for number in every]


@lru_cache(maxsize=65536)
def midnight_ms(number: int, tz: ZoneInfo) -> int:
    """Epoch milliseconds of the local midnight that starts day ``number`` (``layouts.day_number``)."""
    return period_ms(day_of(number), tz)


def _series(
    settings: Settings,
    metric: Metric,
    entity: str,
    objective: str | None,
    granularity: Granularity,
    points: list[list[Any]],
    job: _Job,
    many: bool,
) -> dict[str, Any]:
    labelled = _labelled(settings, metric)
    parts = [entity] if labelled else []
    if objective is not None:
        parts.append(objective)
    if many or not labelled:
        parts.append(metric.figure)
    name = " ".join(parts)
    tags = {_entity_key(metric): entity, "figure": metric.name, "granularity": granularity.value}
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
    job: _Job,
    window: Days,
    granularity: Granularity,
    many: bool,
) -> list[dict[str, Any]]:
    """Each objective evaluated over its window ending on the last day of every period."""
    wanted = set(services)
    scoped = settings.model_copy(update={"slo": [o for o in settings.slo if o.service in wanted]})
    objectives = _objectives(job.payload, metric)
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
            found.setdefault((result.window.service, result.objective), []).append([_number(value), stamp])
    answers = []
    for (service, objective), points in found.items():
        while points and points[0][0] is None:
            points.pop(0)
        while points and points[-1][0] is None:
            points.pop()
        shown = None if metric.figure == "availability" else objective
        answers.append(_series(settings, metric, service, shown, granularity, points, job, many))
    return answers


# --- tables ----------------------------------------------------------------------------------


async def _table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    job: _Job,
    filters: Sequence[Filter],
    days: Days | None,
) -> dict[str, Any]:
    """The report over the range: one row per entity (per objective for SLOs), every figure."""
    chosen = _choice(settings, job.payload, metric, required=False)
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


async def _report_table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days | None,
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    figures = rollups.catalog_of(settings).figure_names(metric.kind)
    columns = [
        _column(metric.kind, "string"),
        _column("days", "number"),
        *(_column(figure, "number", unit_of(figure)) for figure in figures),
    ]
    if days is None:
        return columns, []
    found = await rollups.report(session, settings, metric.kind, days.first, days.last)
    wanted = None if chosen is None or chosen is ALL else set(chosen)
    rows = [
        [entity.entity, entity.days, *(_number(entity.figures.get(figure)) for figure in figures)]
        for entity in found
        if (wanted is None or entity.entity in wanted) and _passes(metric, entity.entity, filters)
    ]
    return columns, rows


async def _slo_table(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days | None,
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
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
    ]
    if days is None:
        return columns, []
    wanted = None if chosen is None or chosen is ALL else set(chosen)
    rows = [
        [
            r.window.service,
            r.objective,
            r.target,
            _number(r.achieved),
            r.met,
            _number(r.error_budget_remaining),
            _number(r.error_budget_remaining_minutes),
            r.window.first.isoformat(),
            r.window.last.isoformat(),
            r.window.days,
            r.window.data_days,
        ]
        for r in await rollups.slo_report(session, settings, days.last)
        if (wanted is None or r.window.service in wanted) and _passes(metric, r.window.service, filters)
    ]
    return columns, rows


# --- annotations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """What an annotation shows of an incident."""

    start: datetime
    end: datetime | None
    title: str
    text: str
    service: str | None = None
    tags: tuple[str, ...] = ()


def _chosen(services: Selection, name: str) -> bool:
    """Whether an incident's service (an alert's ``service`` label, e.g. ``payments``) is among the
    chosen rollup services (``payments.shop.svc.cluster.local``): by full or short name."""
    if services is ALL:
        return True
    return any(name == chosen or chosen.split(".", 1)[0] == name for chosen in services)


async def incidents(
    session: AsyncSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    services: Selection,
    filters: Sequence[Filter],
) -> list[Incident]:
    """Incidents overlapping ``start``..``end`` of the chosen services (ad hoc ``service`` filters
    apply to the incident's services; other keys are ignored)."""
    found = await alerts.list_incidents(session, settings, first=start, last=end, limit=MAX_ANNOTATIONS)
    shown = []
    for incident in found:
        names = incident.services
        if services is not ALL and not any(_chosen(services, name) for name in names):
            continue
        seen: list[str | None] = list(names) or [None]
        if any(f.key == "service" and not any(f.matches(name) for name in seen) for f in filters):
            continue
        details = " · ".join(part for part in (incident.status, incident.severity, incident.url) if part)
        shown.append(
            Incident(
                start=incident.created_at,
                end=incident.resolved_at,
                title=f"#{incident.id} {incident.title}",
                text=details,
                service=names[0] if names else None,
                tags=tuple(t for t in (incident.status, incident.severity) if t),
            )
        )
    return shown


INCIDENT_FIELDS = (("time", "time"), ("timeEnd", "time"), ("title", "string"), ("text", "string"))


def incident_frame(found: Sequence[Incident], ref_id: str) -> dict[str, Any]:
    """A data frame Grafana maps onto annotations (time, timeEnd, title, text, tags)."""
    columns: dict[str, list[Any]] = {"time": [], "timeEnd": [], "title": [], "text": [], "tags": []}
    for incident in sorted(found, key=lambda i: i.start):
        start_ms = int(incident.start.timestamp() * 1000)
        columns["time"].append(start_ms)
        columns["timeEnd"].append(int(incident.end.timestamp() * 1000) if incident.end else start_ms)
        columns["title"].append(incident.title)
        columns["text"].append(incident.text)
        tags = list(incident.tags)
        if incident.service is not None:
            tags.insert(0, f"service:{incident.service}")
        columns["tags"].append(tags)
    fields = [{"name": name, "type": kind, "values": columns[name]} for name, kind in INCIDENT_FIELDS]
    fields.append({"name": "tags", "type": "other", "values": columns["tags"]})
    return {"refId": ref_id, "name": INCIDENTS, "fields": fields}


async def annotation_frame(
    session: AsyncSession, settings: Settings, time_range: TimeRange, job: _Job, filters: Sequence[Filter]
) -> dict[str, Any]:
    raw = job.payload.get("service", job.payload.get("entity"))
    services: Selection = ALL if raw is None or raw == "" else selection(raw, field="payload.service")
    start, end = _aware(time_range.start), _aware(time_range.end)
    if end < start:
        raise InvalidQuery(f"range: 'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})")
    found = await incidents(session, settings, start, end, services=services, filters=filters)
    return incident_frame(found, job.target.ref_id)


# --- the other endpoints ---------------------------------------------------------------------


def health(settings: Settings) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": "panorama",
        "version": __version__,
        "timezone": settings.timezone,
        "metrics": len(metrics_of(settings)),
    }


def _options(values: Sequence[str]) -> list[dict[str, str]]:
    return [{"label": value, "value": value} for value in values]


def metric_list(settings: Settings) -> list[dict[str, Any]]:
    """Every metric with its payloads, for the query builder."""
    answer = []
    for metric in metrics_of(settings):
        payloads: list[dict[str, Any]] = []
        if _labelled(settings, metric):
            key = _entity_key(metric)
            payloads.append(
                {
                    "name": "entity",
                    "label": key.capitalize(),
                    "type": "select",
                    "placeholder": f"a {key}, or a variable such as ${key}",
                    "reloadMetric": False,
                    "width": 40,
                }
            )
        payloads.append(
            {
                "name": "granularity",
                "label": "Granularity",
                "type": "select",
                "placeholder": "day (coarser when the panel has fewer points)",
                "options": _options([g.value for g in OFFERED_GRANULARITIES]),
                "width": 20,
            }
        )
        if metric.is_slo and metric.figure != "availability":
            payloads.append(
                {
                    "name": "objective",
                    "label": "Objective",
                    "type": "select",
                    "placeholder": "every objective",
                    "options": _options(SLO_OBJECTIVES),
                    "width": 20,
                }
            )
        payloads.append(
            {
                "name": "format",
                "label": "Format",
                "type": "select",
                "placeholder": "time_series",
                "options": _options(["time_series", "table"]),
                "width": 20,
            }
        )
        unit = unit_of(metric.figure)
        label = f"{metric.kind} · {metric.figure}" + (f" ({unit})" if unit else "")
        answer.append({"label": label, "value": metric.name, "payloads": payloads})
    answer.append(
        {
            "label": "incidents (annotations)",
            "value": INCIDENTS,
            "payloads": [
                {
                    "name": "service",
                    "label": "Service",
                    "type": "select",
                    "placeholder": "every service",
                    "reloadMetric": False,
                    "width": 40,
                }
            ],
        }
    )
    return answer


async def payload_options(
    session: AsyncSession, settings: Settings, request: PayloadOptionsRequest
) -> list[dict[str, str]]:
    """The options of one payload field of one metric."""
    name = request.name
    if request.metric.strip() == INCIDENTS:
        if name not in ("service", "entity"):
            raise InvalidQuery(f"metric incidents has no payload {name!r} (it has: service)")
        services = await rollups.entities(session, "service") if _has_kind(settings, "service") else []
        return [{"label": "All", "value": ALL_VALUE}, *_options(services)]
    metric = resolve_metrics(settings, request.metric)[0]
    labelled = _labelled(settings, metric)
    if labelled and name in ("entity", _entity_key(metric)):
        if metric.is_slo:
            names = list(dict.fromkeys(objective.service for objective in settings.slo))
        else:
            names = await rollups.entities(session, metric.kind)
        return [{"label": "All", "value": ALL_VALUE}, *_options(names)]
    if name == "granularity":
        return _options([g.value for g in OFFERED_GRANULARITIES])
    if name == "format":
        return _options(["time_series", "table"])
    if name == "objective" and metric.is_slo and metric.figure != "availability":
        return _options(SLO_OBJECTIVES)
    has = ["entity"] if labelled else []
    has += ["granularity", "format"] + (["objective"] if metric.is_slo else [])
    raise InvalidQuery(f"metric {metric.name} has no payload {name!r} (it has: {', '.join(has)})")


def _has_kind(settings: Settings, kind: str) -> bool:
    return kind in rollups.catalog_of(settings).entities


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
        values = await _kind_entities(session, settings, "service", first, last)
    elif text == "namespaces":
        values = await _namespaces(session, settings, first, last)
    elif text == "figures":
        values = [metric.name for metric in metrics_of(settings)]
    elif text == "schedules":
        values = [schedule.name for schedule in settings.schedules]
    elif match := _KIND_QUERY.match(text):
        kind = match["kind"]
        if kind != SLO and not _has_kind(settings, kind):
            known = ", ".join(sorted(rollups.catalog_of(settings).entities))
            raise InvalidQuery(f"variable query {text!r}: no entity kind {kind!r} (known: {known})")
        if match["what"] == "figures":
            values = [m.name for m in metrics_of(settings) if m.kind == kind]
        elif kind == SLO:
            values = list(dict.fromkeys(objective.service for objective in settings.slo))
        else:
            values = await _kind_entities(session, settings, kind, first, last)
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


async def _kind_entities(
    session: AsyncSession, settings: Settings, kind: str, first: date | None, last: date | None
) -> list[str]:
    if not _has_kind(settings, kind):
        return []
    entity_kind = rollups.catalog_of(settings).entities[kind]
    if not entity_kind.labels:
        return [kind]
    return await rollups.entities(session, kind, first=first, last=last)


async def _namespaces(
    session: AsyncSession, settings: Settings, first: date | None, last: date | None
) -> list[str]:
    """Namespaces with rollups of their own, and those of the services' names."""
    found = set(await _kind_entities(session, settings, "namespace", first, last))
    for service in await _kind_entities(session, settings, "service", first, last):
        namespace = namespace_of(service)
        if namespace is not None:
            found.add(namespace)
    return sorted(found)


def tag_keys(settings: Settings) -> list[dict[str, str]]:
    return [{"type": "string", "text": key} for key in filter_keys(settings)]


async def tag_values(session: AsyncSession, settings: Settings, key: str) -> list[dict[str, str]]:
    keys = filter_keys(settings)
    if key not in keys:
        raise InvalidQuery(f"tag key {key!r} is not one of {', '.join(keys)}")
    if key == "namespace":
        values = await _namespaces(session, settings, None, None)
    else:
        values = await _kind_entities(session, settings, key, None, None)
    return [{"text": value} for value in values]

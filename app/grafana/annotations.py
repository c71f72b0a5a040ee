"""Incidents and partial days as Grafana annotations: a data frame with ``time``, ``timeEnd``,
``title``, ``text``, ``tags``.

An incident's annotation spans the time its alerts fired, as Alertmanager reports it:
from their earliest ``startsAt`` to, once resolved, their latest ``endsAt`` (an open
incident is a point at its start). When the webhook arrived does not matter: it comes
after ``group_wait`` and any Alertmanager or network delay. The times come from the
alerting feature (``alerts.incident_spans``).

A partial day's annotation spans the local day (its midnight to the next, 23 or 25 hours on
DST days) whose stored figures cover only part of it, Prometheus's retention having cut it
(``rollups.partial_days``): the reason a daily series dips there. A day is partial for the whole
rollup; a dashboard filtered to some services or namespaces (``payload.service``/``namespace``,
ad hoc ``service``/``namespace`` filters) is shown the partial days those have figures on
(``rollups.partial_days_held``): a service that had no figures that day has none the cut lowered.
Their words are in the team's language (``alerts.locale``) unless the payload's ``lang`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import servicenames
from app.alerts import service as alerts
from app.alerts.schemas import IncidentSpan
from app.config import Settings
from app.errors import InvalidInput
from app.grafana.catalogue import INCIDENTS, PARTIAL_DAYS
from app.grafana.entities import kind_entities, kind_passes, namespace_of, offered
from app.grafana.payloads import Job, PartialDayScope, annotation_services, lang_of, partial_day_scope
from app.grafana.periods import Days, range_bounds
from app.grafana.schemas import TimeRange
from app.grafana.values import ALL, SERVICE_KEY, Filter, Selection
from app.rollups import service as rollups
from app.rollups.days import day_window

T = TypeVar("T")

NAMESPACE_KEY = "namespace"

MAX_ANNOTATIONS = 1000  # incidents shown on one panel
SCANNED_PAGES = 20
"""With a service regex or a namespace filter, which SQL cannot apply, incidents are read
``MAX_ANNOTATIONS`` at a time, newest first, until ``MAX_ANNOTATIONS`` pass or this many pages were
read: a namespace's incidents are found behind a thousand newer ones of other namespaces."""
INCIDENT_FIELDS = (("time", "time"), ("timeEnd", "time"), ("title", "string"), ("text", "string"))


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
    """Whether a rollup service (``payments.shop.svc.cluster.local``) is one the dashboard chose, in
    any spelling (:mod:`app.servicenames`)."""
    if services is ALL:
        return True
    return servicenames.matches_any(name, services)


async def incidents(
    session: AsyncSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    services: Selection,
    filters: Sequence[Filter],
) -> list[Incident]:
    """Incidents whose alerts fired within ``start``..``end``, of the chosen services and passing
    the ad hoc ``service`` and ``namespace`` filters (other keys are ignored).

    The chosen services, and the values of ``=``/``!=``/``=|``/``!=|`` filters, are matched as the
    incident list filters ``?service=`` (one rule, in the alerting feature; a stored service's
    spelling, one a ``$service`` variable offers, is always accepted): a namespace the choice
    says (``payments.shop.svc.cluster.local``) must be the namespace of the alerts naming the
    service, so ``payments`` of another namespace is not annotated on this dashboard; a bare name is
    in every namespace. An incident passes ``=`` when it is of one of the filter's services, ``!=``
    when it is of none of them. A regex (``=~``) passes an incident when it matches the canonical
    key of one of its services, each in the namespace of the alerts naming it (``!~``: of none):
    the rule a series' service passes by (``Filter.matches_service``), so ``payments\\.shop``
    keeps both the series of ``payments.shop.svc.cluster.local`` and the incident of an alert
    ``service=payments, namespace=shop``.

    A ``namespace`` filter is matched against the namespaces of the incident's services, each as its
    alerts name it (their ``namespace`` label, or the namespace its spelling says): an incident passes
    ``=``/``=~``/``=|`` when one of its services is in a namespace that matches, ``!=``/``!~``/``!=|``
    when none is. A service whose namespace is unknown (a bare ``service`` label without a
    ``namespace`` one), like an incident naming no service, is in no namespace: it fails ``=`` and
    passes ``!=``, as a series of a service without a namespace does (``entities.kind_passes``).
    The alerts' labels are read only when a namespace filter or a service regex is present.

    At most ``MAX_ANNOTATIONS`` are shown, the newest; those filters are applied to pages of
    incidents read one after the other (:data:`SCANNED_PAGES`), so the thousand newest incidents of
    other namespaces do not hide a namespace's own."""
    chosen = None if services is ALL else await _chosen_services(session, settings, services)
    equal = [f for f in filters if f.key == SERVICE_KEY and f.pattern is None]
    patterns = [f for f in filters if f.key == SERVICE_KEY and f.pattern is not None]
    namespaces = [f for f in filters if f.key == NAMESPACE_KEY]
    namespaced = bool(patterns or namespaces)
    shown: list[Incident] = []
    before: tuple[datetime, int] | None = None
    for _ in range(SCANNED_PAGES):
        found = await alerts.incident_spans(
            session,
            settings,
            first=start,
            last=end,
            limit=MAX_ANNOTATIONS,
            services=chosen,
            and_one_of=[f.services for f in equal if f.positive],
            none_of=[service for f in equal if not f.positive for service in f.services],
            # the alerts' namespaces are read only for a regex or a namespace filter to match
            namespaced=namespaced,
            before=before,
        )
        shown.extend(_shown(found, patterns, namespaces))
        if len(found) < MAX_ANNOTATIONS or len(shown) >= MAX_ANNOTATIONS or not namespaced:
            break  # filtered in SQL alone, the first page is the answer
        before = (found[-1].started_at, found[-1].incident.id)
    return shown[:MAX_ANNOTATIONS]


def _shown(
    found: Sequence[IncidentSpan], patterns: Sequence[Filter], namespaces: Sequence[Filter]
) -> list[Incident]:
    """The spans that pass the filters SQL cannot apply (service regexes, namespaces), as annotations."""
    shown = []
    for span in found:
        incident = span.incident
        names = incident.services
        seen: list[servicenames.ServiceName | None] = list(span.services) or [None]
        if not all(_passes(f.matches_service, f.positive, seen) for f in patterns):
            continue
        in_namespaces = [None if s is None else s.namespace for s in seen]
        if not all(_passes(f.matches, f.positive, in_namespaces) for f in namespaces):
            continue
        details = " · ".join(part for part in (incident.status, incident.severity, incident.url) if part)
        shown.append(
            Incident(
                start=span.started_at,
                end=span.ended_at,
                title=f"#{incident.id} {incident.title}",
                text=details,
                service=names[0] if names else None,
                tags=tuple(t for t in (incident.status, incident.severity) if t),
            )
        )
    return shown


async def _chosen_services(
    session: AsyncSession, settings: Settings, services: list[str]
) -> list[servicenames.ServiceName]:
    """The ``payload.service`` choice, read as the incident list's filter; a stored service's odd
    spelling (one the ``$service`` variable offers) is accepted, the stored ones looked up only then."""
    try:
        return [alerts.service_filter(name, "payload.service") for name in services]
    except InvalidInput:
        stored = set(await offered(session, settings, SERVICE_KEY))
        return [alerts.service_filter(name, "payload.service", stored) for name in services]


def _passes(matches: Callable[[T], bool], positive: bool, values: Sequence[T]) -> bool:
    """Whether an incident passes a filter by its ``values`` (its services, or their namespaces):
    one matches it (``=``, ``=~``), or each passes it by not matching (``!=``, ``!~``)."""
    passed = map(matches, values)
    return any(passed) if positive else all(passed)


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
    session: AsyncSession, settings: Settings, time_range: TimeRange, job: Job, filters: Sequence[Filter]
) -> dict[str, Any]:
    """The annotation target's frame: the incidents of its services over the range."""
    services = annotation_services(job.payload)
    start, end = range_bounds(time_range, settings)
    found = await incidents(session, settings, start, end, services=services, filters=filters)
    return incident_frame(found, job.target.ref_id)


PARTIAL_TAG = "partial"
PARTIAL_WORDS = {  # (title, text) of a partial day's annotation in each language
    "zh-CN": (
        "数据不全的一天",
        "Prometheus 的保留期只覆盖了这一天的一部分：这天的数字只代表有数据的那部分。",
    ),
    "en": (
        "Partial day",
        "Prometheus's retention covered only part of this day: its figures cover that part only.",
    ),
}


SCOPE_KEYS = ("service", "namespace")
"""The ad hoc filter keys a partial day's annotation applies (filters on other kinds are ignored,
as an incident's annotation ignores them: it applies these two too)."""


async def scope_entities(
    session: AsyncSession,
    settings: Settings,
    scope: PartialDayScope,
    filters: Sequence[Filter],
    first: date,
    last: date,
) -> dict[str, list[str]] | None:
    """The entities (names by kind, with figures in ``first``..``last``) whose partial days a
    dashboard's choices and filters leave; None when they leave every entity (the whole rollup's).

    Services: those chosen (any spelling: :mod:`app.servicenames`), in the chosen namespaces
    (:func:`entities.namespace_of`), passing the ``service`` and ``namespace`` filters. Namespaces
    (the ``namespace`` kind's own figures: CPU, memory) too, unless services are chosen or filtered:
    those chosen, passing the ``namespace`` filters."""
    applied = [f for f in filters if f.key in SCOPE_KEYS]
    if scope.everything and not applied:
        return None
    services = [
        name
        for name in await kind_entities(session, settings, "service", first, last)
        if _chosen(scope.services, name)
        and (scope.namespaces is ALL or namespace_of(name) in scope.namespaces)
        and kind_passes("service", name, applied)
    ]
    chosen = {"service": services}
    if scope.services is ALL and not any(f.key == "service" for f in applied):
        chosen["namespace"] = [
            name
            for name in await kind_entities(session, settings, "namespace", first, last)
            if (scope.namespaces is ALL or name in scope.namespaces)
            and kind_passes("namespace", name, applied)
        ]
    return chosen


async def partial_day_frame(
    session: AsyncSession, settings: Settings, days: Days | None, job: Job, filters: Sequence[Filter]
) -> dict[str, Any]:
    """The partial days of the range's rolled-up days (``periods.days_of``: not past yesterday,
    the latest three years) of the services and namespaces the dashboard chose and filtered,
    each a region from its local midnight to the next."""
    title, text = PARTIAL_WORDS[lang_of(job.payload, settings.alerts.locale)]
    scope = partial_day_scope(job.payload)
    found = [] if days is None else await rollups.partial_days(session, days.first, days.last)
    if found:
        chosen = await scope_entities(session, settings, scope, filters, found[0], found[-1])
        if chosen is not None:
            found = await rollups.partial_days_held(session, found, chosen)
    windows = [day_window(day, settings.tzinfo) for day in found]
    values: dict[str, list[Any]] = {
        "time": [int(w.start.timestamp() * 1000) for w in windows],
        "timeEnd": [int(w.end.timestamp() * 1000) for w in windows],
        "title": [title] * len(windows),
        "text": [f"{w.day.isoformat()} · {text}" for w in windows],
    }
    fields = [{"name": name, "type": kind, "values": values[name]} for name, kind in INCIDENT_FIELDS]
    fields.append({"name": "tags", "type": "other", "values": [[PARTIAL_TAG] for _ in windows]})
    return {"refId": job.target.ref_id, "name": PARTIAL_DAYS, "fields": fields}

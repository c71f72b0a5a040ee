"""Incidents as Grafana annotations: a data frame with ``time``, ``timeEnd``, ``title``, ``text``, ``tags``.

An annotation spans the time the incident's alerts fired, as Alertmanager reports it:
from their earliest ``startsAt`` to, once resolved, their latest ``endsAt`` (an open
incident is a point at its start). When the webhook arrived does not matter: it comes
after ``group_wait`` and any Alertmanager or network delay. The times come from the
alerting feature (``alerts.incident_spans``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.config import Settings
from app.grafana.catalogue import INCIDENTS
from app.grafana.payloads import Job, annotation_services
from app.grafana.periods import range_bounds
from app.grafana.schemas import TimeRange
from app.grafana.values import ALL, Filter, Selection

MAX_ANNOTATIONS = 1000  # incidents shown on one panel
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


def same_service(chosen: str, name: str) -> bool:
    """Whether an incident's service (an alert's ``service`` label, e.g. ``payments``) is the chosen
    rollup service (``payments.shop.svc.cluster.local``): by full or short name."""
    return name == chosen or chosen.split(".", 1)[0] == name


def _chosen(services: Selection, name: str) -> bool:
    if services is ALL:
        return True
    return any(same_service(chosen, name) for chosen in services)


async def incidents(
    session: AsyncSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    services: Selection,
    filters: Sequence[Filter],
) -> list[Incident]:
    """Incidents whose alerts fired within ``start``..``end``, of the chosen services (ad hoc
    ``service`` filters apply to the incident's services; other keys are ignored)."""
    found = await alerts.incident_spans(session, settings, first=start, last=end, limit=MAX_ANNOTATIONS)
    shown = []
    for span in found:
        incident = span.incident
        names = incident.services
        if services is not ALL and not any(_chosen(services, name) for name in names):
            continue
        seen: list[str | None] = list(names) or [None]
        if any(f.key == "service" and not any(f.matches(name) for name in seen) for f in filters):
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

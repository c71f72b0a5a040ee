"""Computing one local day's on-call history from the alerts package: the recorded families.

Every figure is an event counted on the local day it happened, ``[midnight, next midnight)`` in
the configured time zone (an incident opened at 23:30 belongs to that day; one opened at
midnight exactly to the day that starts): an incident opened (by severity), a page written
(``pages_sent``) or delivered, an acknowledgement or a resolution with the seconds since the
incident opened (their sum, their count and a histogram; an incident opened one day and resolved
the next counts its time to resolve on the day it was resolved). So a day's figures are final
once it has ended, and recomputing it gives the same numbers.

Who: each figure goes to the whole team (``oncall``), to every service the incident names and to
every schedule its escalation chains page, as configured when the incident was routed (a
schedule renamed or replaced later keeps the incidents it was paged for); a person's load is the
steps that paged them (``pages``, ``night_pages`` between 22:00 and 07:00 local time), the
distinct incidents they were paged for, and the incidents they acknowledged.

This module reads the alerts package only through its service, and never writes anything.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.alerts.schemas import IncidentActivity, OncallActivity
from app.config import Settings
from app.rollups.builtin import (
    ONCALL,
    ONCALL_PERSON,
    ONCALL_SCHEDULE,
    ONCALL_SERVICE,
    RESPONSE_BOUNDS_S,
    SEVERITIES,
)
from app.rollups.compute import FamilyValue
from app.rollups.days import DayWindow
from app.rollups.errors import HistoryNotSettled

NIGHT_STARTS = 22  # local hour a page starts counting as a night page
NIGHT_ENDS = 7  # and stops


@dataclass
class _Tally:
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, family: str, amount: float = 1.0) -> None:
        self.counters[family] = self.counters.get(family, 0.0) + amount

    def observe(self, family: str, seconds: float) -> None:
        counts = self.histograms.setdefault(family, [0.0] * len(RESPONSE_BOUNDS_S))
        counts[bisect_left(RESPONSE_BOUNDS_S, seconds)] += 1.0


INCIDENT_COUNTERS = (
    "incidents",
    *(f"incidents_{severity}" for severity in (*SEVERITIES, "other")),
    "pages_sent",
    "pages_delivered",
    "acks",
    "ack_seconds",
    "resolves",
    "resolve_seconds",
)
INCIDENT_HISTOGRAMS = ("ack_time", "resolve_time")
PERSON_COUNTERS = ("pages", "night_pages", "incidents", "acks", "ack_seconds")


def severity_family(severity: str | None) -> str:
    name = (severity or "").strip().lower()
    return f"incidents_{name if name in SEVERITIES else 'other'}"


def _owners(incident: IncidentActivity) -> list[tuple[str, str]]:
    return [
        (ONCALL, ONCALL),
        *((ONCALL_SERVICE, s) for s in dict.fromkeys(incident.services)),
        *((ONCALL_SCHEDULE, s) for s in dict.fromkeys(incident.schedules)),
    ]


def _touched(incident: IncidentActivity, inside: Callable[[datetime | None], bool]) -> bool:
    """Opened, acknowledged or resolved that day (not just paged about, or a page delivered)."""
    return any(map(inside, (incident.opened_at, incident.acknowledged_at, incident.resolved_at)))


def _seconds(since: datetime, until: datetime) -> float:
    return max(0.0, (until - since).total_seconds())


def day_values(activity: OncallActivity, tz: ZoneInfo) -> list[FamilyValue]:
    """The day ``[activity.first, activity.last)`` as the additive values of every entity it touched."""

    def inside(at: datetime | None) -> bool:
        return at is not None and activity.first <= at < activity.last

    tallies: dict[tuple[str, str], _Tally] = {}

    def tally(kind: str, entity: str) -> _Tally:
        return tallies.setdefault((kind, entity), _Tally())

    by_id = {incident.id: incident for incident in activity.incidents}
    for incident in activity.incidents:
        keys = _owners(incident)
        owners = [tally(kind, name) for kind, name in keys] if _touched(incident, inside) else []
        if inside(incident.opened_at):
            for one in owners:
                one.add("incidents")
                one.add(severity_family(incident.severity))
        if incident.acknowledged_at is not None and inside(incident.acknowledged_at):
            waited = _seconds(incident.opened_at, incident.acknowledged_at)
            for one in owners:
                one.add("acks")
                one.add("ack_seconds", waited)
                one.observe("ack_time", waited)
            if incident.acknowledged_by:
                person = tally(ONCALL_PERSON, incident.acknowledged_by)
                person.add("acks")
                person.add("ack_seconds", waited)
        if incident.resolved_at is not None and inside(incident.resolved_at):
            lasted = _seconds(incident.opened_at, incident.resolved_at)
            for one in owners:
                one.add("resolves")
                one.add("resolve_seconds", lasted)
                one.observe("resolve_time", lasted)
    for page in activity.pages:
        found = by_id.get(page.incident_id)
        if found is None:
            continue
        for kind, name in _owners(found):
            if inside(page.sent_at):
                tally(kind, name).add("pages_sent")
            if inside(page.delivered_at):
                tally(kind, name).add("pages_delivered")
    incidents_of: dict[str, set[int]] = {}
    for paged in activity.paged:
        person = tally(ONCALL_PERSON, paged.user)
        person.add("pages")
        hour = paged.at.astimezone(tz).hour
        if hour >= NIGHT_STARTS or hour < NIGHT_ENDS:
            person.add("night_pages")
        incidents_of.setdefault(paged.user, set()).add(paged.incident_id)
    for user, incidents in incidents_of.items():
        tally(ONCALL_PERSON, user).add("incidents", float(len(incidents)))
    return [value for (kind, entity), one in sorted(tallies.items()) for value in _values(kind, entity, one)]


def _values(kind: str, entity: str, tally: _Tally) -> Iterable[FamilyValue]:
    """Every family of the entity's kind, zeros included (one layout per kind, every day)."""
    person = kind == ONCALL_PERSON
    for family in PERSON_COUNTERS if person else INCIDENT_COUNTERS:
        yield FamilyValue(kind, entity, family, total=tally.counters.get(family, 0.0))
    if person:
        return
    for family in INCIDENT_HISTOGRAMS:
        counts = tally.histograms.get(family, [0.0] * len(RESPONSE_BOUNDS_S))
        cumulative, running = {}, 0.0
        for bound, count in zip(RESPONSE_BOUNDS_S, counts, strict=True):
            running += count
            cumulative[bound] = running
        yield FamilyValue(kind, entity, family, buckets=cumulative)


async def journal_waiting_since(session: AsyncSession) -> datetime | None:
    """When the oldest webhook the alert journal holds was received (None: none waits): a day that
    ended after it cannot have its history computed yet (:func:`compute_day`)."""
    return await alerts.journal_waiting_since(session)


async def compute_day(session: AsyncSession, settings: Settings, window: DayWindow) -> list[FamilyValue]:
    """The on-call history of ``window``'s local day, read through the alerts service.

    Raises :class:`HistoryNotSettled` while the alert journal holds a webhook received before the
    day ended: applied, it opens, updates or resolves an incident at its receipt, inside the day
    (or before it), so the figures read now would miss it — and a day stored is final (the
    catch-up does not look at it again). The run stores the day's Prometheus figures all the same
    and records its history pending (``service.run_day``); the catch-up computes the history once
    the journal has moved (at the default 00:15 only a journal stuck for a quarter of an hour
    holds a history back; ``PanoramaAlertJournalStuck`` has fired by then)."""
    waiting = await journal_waiting_since(session)
    if waiting is not None and waiting < window.end:
        raise HistoryNotSettled(
            f"the alert journal still holds webhooks received since {waiting.isoformat()}, before the day "
            "ended: its on-call history is computed once they are applied"
        )
    activity = await alerts.oncall_activity(session, settings, window.start, window.end)
    return day_values(activity, settings.tzinfo)

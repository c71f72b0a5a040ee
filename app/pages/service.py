"""What each page shows, gathered from the features that own it (alerts, correlation, rollups).

Every function returns plain data for a template; the pages hold no state of their own and
never write anything except through the alerts service (acknowledge, snooze, resolve).
Backends are asked the way the API asks them, so a page and its API answer never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames, times
from app.alerts import service as alerts
from app.alerts.schemas import IncidentDetail, IncidentSummary, OnCall, ShiftOut, SwapOut
from app.backends.errors import BackendError, display_name
from app.backends.registry import Backends
from app.config import Settings
from app.correlation import service as correlation
from app.correlation import trace_logs
from app.correlation.errors import BackendsFailed
from app.correlation.outcomes import trace_id_param
from app.correlation.schemas import IncidentContext, ServiceOverview, SourceError, TraceWithLogs
from app.errors import InvalidInput, PanoramaError, Phrase
from app.pages.views import Waterfall, waterfall
from app.rollups import service as rollups
from app.rollups.days import Granularity, local_today

Sessions = async_sessionmaker[AsyncSession]
PAGE_SIZE = 25
MAX_OPEN_SHOWN = 100
TREND_DAYS = 30
TREND_FIGURES = ("requests", "error_rate", "latency_p99_ms")
GRAFANA_LEAD = timedelta(minutes=30)  # the dashboard link shows this much before the incident


# --- one incident ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentPage:
    incident: IncidentDetail
    on_call: list[OnCall]
    grafana_url: str | None
    silence_url: str | None


def silence_url(external_url: str | None, labels: dict[str, str]) -> str | None:
    """Alertmanager's "new silence" form, filled with the incident's common labels."""
    if not external_url or not labels:
        return None
    matchers = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(labels.items()))
    return f"{external_url.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def grafana_url(
    settings: Settings, uid: str, start: datetime, end: datetime | None, variables: dict[str, str]
) -> str | None:
    """A Grafana dashboard over ``start``..``end`` (``now`` while open), with template variables."""
    return settings.grafana.dashboard_url(uid, start, end, variables)


async def incident_page(
    sessions: Sessions, settings: Settings, incident_id: int, now: datetime
) -> IncidentPage:
    async with sessions() as session:
        incident = await alerts.incident_detail(session, settings, incident_id)
        on_call = await alerts.on_call_for_incident(session, settings, incident_id, now)
    labels = incident.common_labels
    started = min([a.starts_at for a in incident.alerts] + [incident.created_at])
    services = incident.services or ([labels["service"]] if "service" in labels else [])
    return IncidentPage(
        incident=incident,
        on_call=on_call,
        grafana_url=grafana_url(
            settings,
            settings.grafana.incident_dashboard,
            started - GRAFANA_LEAD,
            incident.resolved_at,
            {"namespace": labels.get("namespace", ""), "service": services[0] if services else ""},
        ),
        silence_url=silence_url(incident.external_url, labels),
    )


@dataclass(frozen=True)
class ContextPage:
    context: IncidentContext | None
    problem: BackendsFailed | BackendError | None  # why there is no context (the page says it: ``_.error``)


async def incident_context(
    incident_id: int, *, backends: Backends, sessions: Sessions, settings: Settings, now: datetime
) -> ContextPage:
    try:
        found = await correlation.incident_context(
            incident_id, backends=backends, sessions=sessions, settings=settings, now=now
        )
    except (BackendsFailed, BackendError) as exc:
        return ContextPage(None, exc)
    return ContextPage(found, None)


# --- the list of incidents ------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentFilter:
    status: str | None = None
    service: str | None = None
    since: str | None = None  # `from`: incidents open at or after (the one time grammar: now-7d, ISO…)
    before: str | None = None  # the page cursor: "<created_at ISO>~<id>" of the last incident shown


@dataclass(frozen=True)
class IncidentsPage:
    open: list[IncidentSummary]
    listed: list[IncidentSummary]
    next_before: str | None


def _cursor(incident: IncidentSummary) -> str:
    return f"{incident.created_at.isoformat()}~{incident.id}"


INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")


def _bad_cursor() -> InvalidInput:
    said = Phrase("problem.parameter", name="before", problem=Phrase("problem.cursor"))
    return InvalidInput(
        "query parameter 'before': not a page cursor of this list", phrase=said, parameter="before"
    )


def _parse_cursor(value: str) -> tuple[datetime, int]:
    moment, _, ident = value.rpartition("~")
    try:
        when = datetime.fromisoformat(moment)
    except ValueError:
        raise _bad_cursor() from None
    if not ident.isdigit() or when.tzinfo is None:
        raise _bad_cursor()
    return when, int(ident)


async def incidents_page(
    session: AsyncSession, settings: Settings, query: IncidentFilter, now: datetime
) -> IncidentsPage:
    """Open incidents first (on the first page, when no status is chosen), then the others,
    newest first, ``PAGE_SIZE`` at a time (keyset paging: stable while new incidents arrive).
    Every parameter is read before anything is listed, and every bad one is said at once."""
    problems: list[InvalidInput] = []
    first, cursor = None, None
    if query.status is not None and query.status not in INCIDENT_STATUSES:
        said = Phrase(
            "problem.parameter", name="status", problem=Phrase("problem.status", value=query.status)
        )
        problems.append(
            InvalidInput(
                "query parameter 'status': triggered, acknowledged or resolved",
                phrase=said,
                parameter="status",
            )
        )
    try:
        first = (
            times.parse_time(query.since, "from", times.Clock(now, settings.tzinfo)) if query.since else None
        )
    except InvalidInput as exc:
        problems.append(exc)
    service: servicenames.ServiceName | None = None
    if query.service:
        try:
            service = await alerts.stored_service_filter(session, query.service)
        except InvalidInput as exc:
            problems.append(exc)
    try:
        cursor = _parse_cursor(query.before) if query.before else None
    except InvalidInput as exc:
        problems.append(exc)
    if problems:
        raise InvalidInput.combined(problems)
    shown_open: list[IncidentSummary] = []
    if query.status is None and query.before is None:
        shown_open = [
            i
            for status in ("triggered", "acknowledged")
            for i in await alerts.list_incidents(
                session, settings, status=status, service=service, first=first, limit=MAX_OPEN_SHOWN
            )
        ]
    statuses = [query.status] if query.status else ["resolved"]
    listed = await _page(session, settings, statuses[0], service, first, cursor)
    more = len(listed) > PAGE_SIZE
    listed = listed[:PAGE_SIZE]
    return IncidentsPage(shown_open, listed, _cursor(listed[-1]) if more and listed else None)


async def _page(
    session: AsyncSession,
    settings: Settings,
    status: str,
    service: servicenames.ServiceName | None,
    first: datetime | None,
    cursor: tuple[datetime, int] | None,
) -> list[IncidentSummary]:
    """One page (and one more row, to know whether there is a next) after ``cursor``."""
    limit = PAGE_SIZE + 1
    while True:
        found = await alerts.list_incidents(
            session,
            settings,
            status=status,
            service=service,
            first=first,
            last=cursor[0] if cursor else None,
            limit=limit,
        )
        kept = [i for i in found if cursor is None or (i.created_at, i.id) < cursor]
        if len(kept) > PAGE_SIZE or len(found) < limit or limit >= 1000:
            return kept
        limit = min(limit * 4, 1000)  # many incidents opened at the very same instant as the cursor


# --- a trace with its logs ------------------------------------------------------------------


@dataclass(frozen=True)
class TracePage:
    trace_id: str
    found: TraceWithLogs
    waterfall: Waterfall | None


def canonical_trace_id(raw: str) -> str:
    """The 32-hex form of any id spelling the API accepts (400 naming the forms otherwise)."""
    return trace_id_param(raw, "trace id").hex


async def trace_page(
    raw_id: str, *, start: str | None, end: str | None, backends: Backends, settings: Settings, now: datetime
) -> TracePage:
    found = await trace_logs.trace_with_logs(
        raw_id, start=start, end=end, backends=backends, settings=settings, now=now
    )
    trace_id = canonical_trace_id(raw_id)
    return TracePage(trace_id, found, waterfall(found.trace, found.logs) if found.trace else None)


# --- a service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    day: date
    requests: float | None
    error_rate: float | None
    latency_p99_ms: float | None
    partial: bool = False
    """Stored ``partial``: Prometheus's samples began after the day did (its retention)."""


BACKEND_PARTS = ("red", "traces", "error_logs")  # the page's parts fed by Prometheus, Jaeger, Elasticsearch
RECENT_SHOWN = 10  # resolved incidents of the service listed, newest first
ONCALL_FROM_INCIDENTS = 20  # open incidents whose escalations say who is on call for the service


@dataclass(frozen=True)
class ServicePage:
    """What the service page shows. The database's parts (its incidents, who is on call, the
    trend) are there whatever the backends do; each backend-fed part of ``overview`` that failed
    is named in ``overview.errors`` (which backend, what happened), so in an outage, when the
    backends struggle, the page still says what Panorama itself knows."""

    overview: ServiceOverview
    recent: list[IncidentSummary]
    on_call: list[OnCall]
    trend_entity: str | None
    trend: list[TrendPoint]
    grafana_url: str | None
    spelled: str | None = None
    """How Panorama writes the service a name in kubectl's ``namespace/name`` form means
    (``payments.shop`` for ``shop/payments``), when nothing is known under the name as written."""

    def failure(self, part: str) -> SourceError | None:
        """Why a backend-fed part is missing; its ``missing`` says it as every page says a missing
        part (``BackendError.missing``: not configured said plainly, a failure as temporary)."""
        error: SourceError | None = getattr(self.overview.errors, part)
        return error

    @property
    def failed(self) -> list[str]:
        """The backend-fed parts whose backend really failed, in the page's order."""
        return [part for part in BACKEND_PARTS if (e := self.failure(part)) is not None and e.configured]

    @property
    def unconfigured(self) -> list[str]:
        """The backend-fed parts whose backend is not configured (no failure), in the page's order."""
        return [part for part in BACKEND_PARTS if (e := self.failure(part)) is not None and not e.configured]

    @property
    def unconfigured_backends(self) -> list[str]:
        """The names of the backends not configured, as pages name them, in the page's order."""
        errors = [e for part in self.unconfigured if (e := self.failure(part)) is not None]
        return list(dict.fromkeys(display_name(e.backend) for e in errors))

    def trend_data(self) -> dict[str, object]:
        """The chart's data, for a ``<script type="application/json">`` block (through ``tojson``)."""
        return {
            "entity": self.trend_entity,
            "days": [p.day.isoformat() for p in self.trend],
            "requests": [p.requests for p in self.trend],
            "error_rate": [p.error_rate for p in self.trend],
            "latency_p99_ms": [p.latency_p99_ms for p in self.trend],
        }


def rollup_entity(name: str, entities: list[str]) -> str | None:
    """The rolled-up service a page name means: ``checkout.shop`` → ``checkout.shop.svc.cluster.local``
    (exact name first; ``checkout`` alone only when one namespace has it)."""
    return servicenames.unique_match(name, entities)


async def service_page(
    name: str,
    *,
    backends: Backends,
    sessions: Sessions,
    settings: Settings,
    now: datetime,
) -> ServicePage:
    """The service's overview, each backend failing on its own (all of them failing is still a
    page: ``all_failed_is_error=False``) and waited for at most ``web.part_timeout`` (a hanging
    backend, as in an outage, is then a part that timed out, not a page that never comes), with
    what the database holds beside it."""
    overview = await correlation.service_overview(
        name,
        namespace=None,
        start=None,
        end=None,
        backends=backends,
        sessions=sessions,
        settings=settings,
        now=now,
        part_timeout_s=settings.web.part_timeout.total_seconds(),
        all_failed_is_error=False,
    )
    last = local_today(settings.tzinfo, now) - timedelta(days=1)
    first = last - timedelta(days=TREND_DAYS - 1)
    async with sessions() as session:
        try:
            recent = await alerts.list_incidents(
                session,
                settings,
                status="resolved",
                service=name,
                first=now - timedelta(days=TREND_DAYS),
                limit=RECENT_SHOWN,
            )
        except InvalidInput:  # a name no filter could be, and no incident holds: none
            recent = []
        opened = [i.id for i in overview.incidents[:ONCALL_FROM_INCIDENTS]]
        on_call = await alerts.on_call_for_service(session, settings, name, opened, now)
        entity = rollup_entity(name, await rollups.entities(session, "service"))
        periods = []
        partial = set(await rollups.partial_days(session, first, last))
        if entity is not None:
            try:
                periods = await rollups.series(
                    session, settings, "service", entity, first, last, Granularity.DAY, only=TREND_FIGURES
                )
            except PanoramaError:
                periods = []
    trend = [
        TrendPoint(
            p.start,
            p.figures.get("requests"),
            p.figures.get("error_rate"),
            p.figures.get("latency_p99_ms"),
            partial=p.start in partial,
        )
        for p in periods
    ]
    known = overview.incidents or recent or entity is not None
    return ServicePage(
        overview=overview,
        recent=recent,
        on_call=on_call,
        trend_entity=entity,
        trend=trend,
        spelled=None if known else servicenames.kubectl_spelled(name),
        grafana_url=grafana_url(
            settings,
            settings.grafana.service_dashboard,
            now - timedelta(days=TREND_DAYS),
            None,
            {"service": entity or name},
        ),
    )


# --- on call ---------------------------------------------------------------------------------

ONCALL_DAYS = 14


OFFSET_SCAN = timedelta(hours=1)  # no zone changes its offset twice within an hour


@dataclass(frozen=True)
class ScheduleCard:
    """One schedule on the on-call page. Its times are in the schedule's own zone (a rotation
    hands over at 09:00 *there*), which the card names with its offset now; where that offset
    changes within the times listed (daylight saving), ``changes`` says when, and a time at the
    other offset carries it."""

    name: str
    timezone: str
    now: OnCall
    until: datetime | None  # the end of the shift under way (the next handover)
    next_user: str | None  # who takes over then
    shifts: list[ShiftOut]
    swaps: list[SwapOut]
    users: list[str]
    changes: list[datetime]  # the moments the zone's offset changes between the first and last time shown
    runs_on: datetime | None = None  # the last shift's end was looked for up to here, and it runs on
    alone: bool = False  # that shift is the schedule's only person's: it never ends, there is no end to name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class SwapForm:
    """What a reader sent with one of the on-call page's forms (``offer`` a shift, ``take`` one),
    shown again with its problem when it could not be done."""

    schedule: str
    action: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OncallPage:
    cards: list[ScheduleCard]

    @property
    def zones(self) -> list[str]:
        """The zones the page's times are in: its schedules' (the shell names them)."""
        return [c.timezone for c in self.cards]


def offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """The moments (to the minute, UTC) within ``first``..``last`` at which ``zone``'s offset from
    UTC changes: ``2026-03-29 01:00 UTC`` for Europe/Berlin's spring forward."""
    found: list[datetime] = []
    moment = first.astimezone(UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < last:
        step = min(moment + OFFSET_SCAN, last.astimezone(UTC))
        if step.astimezone(zone).utcoffset() != offset:
            low, high = moment, step  # the offset changes after low, at or before high
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            change = high.replace(second=0, microsecond=0)
            if change.astimezone(zone).utcoffset() == offset:
                change += timedelta(minutes=1)
            found.append(change)
            offset = step.astimezone(zone).utcoffset()
        moment = step
    return found


async def oncall_page(
    session: AsyncSession, settings: Settings, now: datetime, only: str | None = None
) -> OncallPage:
    """Each schedule (or the one asked for): who is on call now and until when (then who), the
    next two weeks' shifts (overrides and swaps included) and the swaps on offer, all in the
    schedule's zone. The shifts are those that start within the two weeks, each from its real
    start to its real end (:func:`app.alerts.service.shifts`): the first from before now, the last
    past the two weeks; one still on where the alerts service stopped looking for its end, e.g. an
    override covering months, says it runs on (for ever, when it is the schedule's only person)."""
    names = [s.name for s in settings.schedules if only is None or s.name == only]
    if only is not None and not names:
        alerts.schedule_named(settings, only)  # raises the schedule's NotFound
    cards = []
    people = {s.name: {user for r in s.rotations for user in r.users} for s in settings.schedules}
    for name in names:
        found = await alerts.shifts(session, settings, name, now, now + timedelta(days=ONCALL_DAYS))
        listed = found.shifts
        on_call = await alerts.on_call_at(session, settings, name, now)
        swaps = await alerts.open_swaps(session, settings, name)
        # the last shift's end when it is only where its end was looked for, not a hand-over
        runs_on = listed[-1].end if listed and listed[-1].runs_on else None
        until, next_user = _handover(listed, on_call, now)
        if until is not None and until == runs_on:  # on call as far as was looked: no end to name
            until = None
        moments = [m for s in listed for m in (s.start, s.end)] + [m for w in swaps for m in (w.start, w.end)]
        zone = ZoneInfo(found.timezone)
        cards.append(
            ScheduleCard(
                name=name,
                timezone=found.timezone,
                now=on_call,
                until=until,
                next_user=next_user,
                shifts=listed,
                swaps=swaps,
                users=[u.name for u in settings.users],
                changes=offset_changes(zone, min(moments), max(moments)) if moments else [],
                runs_on=runs_on,
                alone=runs_on is not None and people[name] == {listed[-1].user},
            )
        )
    return OncallPage(cards)


def _handover(shifts: list[ShiftOut], on_call: OnCall, now: datetime) -> tuple[datetime | None, str | None]:
    """When the person on call now hands over (their shifts run back to back, a cover and the
    rotation's shift after it included), and to whom (None: nobody, or a gap follows)."""
    if not shifts or on_call.user is None:
        return None, None
    current = shifts[0]
    if not current.start <= now < current.end or current.user != on_call.user:
        return None, None
    until = current.end
    for shift in shifts[1:]:
        if shift.start != until:
            return until, None
        if shift.user != on_call.user:
            return until, shift.user
        until = shift.end
    return until, None


def local_time(value: str, zone: str, field: str) -> datetime:
    """A form's ``datetime-local`` value (``2026-12-01T09:00``), read in the schedule's zone by the
    one time grammar (:mod:`app.times`: an offset, a date or ``now+1h`` work too)."""
    return times.parse_time(value, field, times.Clock(datetime.now(UTC), ZoneInfo(zone)), source="")

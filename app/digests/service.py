"""Making a digest (运维日报) for a day and sending it once.

The figures come from the other features' services only: the rollups (exact re-aggregation of
the stored additive figures: a scope's p99 from its services' summed buckets, never an average),
the SLO report, the alerts' incidents and schedules. A figure that was not rolled up is said
to be missing, never shown as 0.

Sending: the digest is computed first (reads only), then one short transaction inserts its
``digest_sends`` row (unique per digest and day, ``ON CONFLICT DO NOTHING``) and, only if that
insert happened, puts it in the alerts outbox. Two replicas at the same instant, or a restart
that runs the job again, find the row there and send nothing. ``force`` sends again on purpose.

Gated on the alert journal (since 2026-12-07), as the on-call history's daily rollup is
(:func:`app.rollups.oncall.compute_day`): a webhook answered 202 waits in the journal until it is
applied (:mod:`app.alerts.journal`), and one received before the period ended opens, acknowledges
or resolves an incident inside the period when it is. A digest built while such a row waits would
miss it or count it wrong, and a sent digest is not sent again. So :func:`send` reads the journal's
oldest queued receipt first (:func:`app.alerts.service.journal_waiting_since`) and, while it is
before the period's end, holds the digest (:class:`DigestHeld`: nothing claimed, nothing sent; the
API answers 503 with ``Retry-After``; the scheduled job's catch-up pass tries again a minute
later). Bounded: a journal whose oldest row has waited longer than :data:`JOURNAL_HOLD` is stuck
(``PanoramaAlertJournalStuck`` fires for it), and the digest goes anyway, its first line saying in
its language that it may be incomplete and since when webhooks wait: a digest does not vanish
because intake is stuck, and is late by :data:`JOURNAL_HOLD` at most. The journal is read before
the incidents, in the same session: once no row received before the end is queued, every such row
is committed, and the reads after it see what it did. A preview (:func:`digest`) is never held;
it carries the same note while rows wait.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames, times
from app.alerts import service as alerts
from app.config import Settings
from app.digests import render, repository
from app.digests.config import DigestConfig, DigestScope
from app.digests.errors import DigestHeld, UnknownDigest
from app.digests.schemas import (
    DigestOut,
    IncidentLine,
    Incidents,
    NoisyAlert,
    OnCallNow,
    PersonLoad,
    Regression,
    SendOut,
    ServiceFigures,
    SloFigures,
    Traffic,
)
from app.errors import InvalidInput, known_names
from app.rollups import service as rollups
from app.rollups.days import local_today
from app.web import auth as web_auth

Sessions = async_sessionmaker[AsyncSession]

WEEK = timedelta(days=7)
# How long a digest waits for the alert journal's rows received before its period ended; past it
# the journal is stuck, and the digest goes with a note (see the module's docstring).
JOURNAL_HOLD = timedelta(minutes=15)
MAX_LISTED_INCIDENTS = 5
MAX_NOISY = 3
TRAFFIC = ("requests", "errors", "error_rate", "latency_p99_ms")


def utcnow() -> datetime:
    return datetime.now(UTC)


def digest_named(settings: Settings, name: str) -> DigestConfig:
    found = next((d for d in settings.digests if d.name == name), None)
    if found is None:
        known = known_names([d.name for d in settings.digests], "digests")
        raise UnknownDigest(f"no digest {name!r} ({known})", digest=name)
    return found


@dataclass(frozen=True)
class DayInput:
    """Where the day was given, for errors: the API's ``query parameter 'date'``, the command's
    ``option '--date'``."""

    name: str = "date"
    source: str = "query parameter"


CLI_DAY = DayInput("--date", "option")


def parse_day(value: str | None, zone: ZoneInfo, now: datetime, given: DayInput = DayInput()) -> date:
    """The day a digest covers, in the one time grammar (:mod:`app.times`): a date, or any time
    (its local day in ``zone``); by default yesterday in ``zone``. A day not over yet is refused."""
    today = local_today(zone, now)
    if value is None or not value.strip():
        return today - timedelta(days=1)
    day = times.parse_day(value, given.name, times.Clock(now, zone), source=given.source)
    if day >= today:
        raise InvalidInput(
            f"{given.source} {given.name!r}: {day.isoformat()} is not over yet in {zone.key}; "
            "a digest covers a past day (default: yesterday)",
            parameter=given.name,
        )
    return day


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def week_before(self) -> Period:
        return Period(self.first - WEEK, self.last - WEEK)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """``[first local midnight, the midnight after the last day)`` in ``zone``, as UTC instants."""
        start = datetime.combine(self.first, datetime.min.time(), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        return start, end.astimezone(UTC)


def period_of(config: DigestConfig, day: date) -> tuple[Period, bool]:
    """The days covered: ``day`` alone, or, when the digest goes out on its ``weekly`` weekday
    (the day after ``day``), the seven days ending at ``day``."""
    weekly = config.weekly_day is not None and (day + timedelta(days=1)).weekday() == config.weekly_day
    return Period(day - timedelta(days=6) if weekly else day, day), weekly


def in_scope(scope: DigestScope, service: str) -> bool:
    """Whether a rolled-up service (any spelling) is in the digest's scope."""
    if scope.everything:
        return True
    parsed = servicenames.parse(service)
    if parsed.namespace is not None and parsed.namespace in scope.namespaces:
        return True
    return servicenames.matches_any(parsed, scope.services)


def _traffic(values: dict[str, float | None], days: int) -> Traffic:
    return Traffic(**{name: values.get(name) for name in TRAFFIC}, days=days)


async def _scope_traffic(
    session: AsyncSession, settings: Settings, period: Period, services: Sequence[str]
) -> Traffic | None:
    if not services:
        return None
    found = await rollups.combined(session, settings, "service", period.first, period.last, services)
    return None if found is None or found.days == 0 else _traffic(found.figures, found.days)


async def _services(
    session: AsyncSession, settings: Settings, scope: DigestScope, period: Period
) -> dict[str, Traffic]:
    found = await rollups.report(session, settings, "service", period.first, period.last)
    return {e.entity: _traffic(e.figures, e.days) for e in found if e.days > 0 and in_scope(scope, e.entity)}


def _regressions(
    config: DigestConfig, now_: dict[str, Traffic], before: dict[str, Traffic]
) -> list[Regression]:
    """p99 or error rate up by more than the configured ratio against a week before."""
    found: list[Regression] = []
    for service, current in sorted(now_.items(), key=lambda item: -(item[1].requests or 0)):
        previous = before.get(service)
        if previous is None or (current.requests or 0) < config.regression.min_requests:
            continue
        for figure in ("latency_p99_ms", "error_rate"):
            after, prior = getattr(current, figure), getattr(previous, figure)
            if after is None or prior is None or after <= 0:
                continue
            if prior == 0:
                found.append(Regression(service=service, figure=figure, before=0.0, after=after, ratio=None))
            elif after / prior > config.regression.ratio:
                found.append(
                    Regression(service=service, figure=figure, before=prior, after=after, ratio=after / prior)
                )
    return found


async def _slos(
    session: AsyncSession, settings: Settings, config: DigestConfig, day: date
) -> list[SloFigures]:
    results = await rollups.slo_report(session, settings, day)
    return [
        SloFigures(
            service=r.window.service,
            name=servicenames.key(r.window.service),
            objective=r.objective,
            target=r.target,
            achieved=r.achieved,
            met=r.met,
            error_budget_remaining=r.error_budget_remaining,
            error_budget_remaining_minutes=r.error_budget_remaining_minutes,
            window_days=r.window.days,
            data_days=r.window.data_days,
        )
        for r in results
        if in_scope(config.scope, r.window.service)
    ]


def _incident_in_scope(scope: DigestScope, services: Sequence[str], apps: set[str]) -> bool:
    """Whether an incident is about the scope: one of its services is in it, or, named without a
    namespace (an alert's ``service`` label often is), is an app of the scope's services."""
    if scope.everything:
        return True
    return any(
        in_scope(scope, s) or (servicenames.parse(s).namespace is None and s in apps) for s in services
    )


def _stats(seconds: list[float]) -> tuple[float | None, float | None]:
    return (sum(seconds) / len(seconds), max(seconds)) if seconds else (None, None)


async def _incidents(
    session: AsyncSession,
    settings: Settings,
    config: DigestConfig,
    period: Period,
    zone: ZoneInfo,
    apps: set[str],
) -> Incidents:
    start, end = period.bounds(zone)
    found = [
        (incident, names)
        for incident, names in await alerts.incidents_opened(session, settings, start, end)
        if _incident_in_scope(config.scope, incident.services, apps)
    ]
    severities = Counter(i.severity or "none" for i, _ in found)
    ack = [(i.acknowledged_at - i.created_at).total_seconds() for i, _ in found if i.acknowledged_at]
    done = [(i.resolved_at - i.created_at).total_seconds() for i, _ in found if i.resolved_at]
    alerts_of: Counter[str] = Counter()
    incidents_of: Counter[str] = Counter()
    for _, names in found:
        alerts_of.update(n for n in names if n)
        incidents_of.update({n for n in names if n})
    noisiest = sorted(alerts_of, key=lambda n: (-alerts_of[n], -incidents_of[n], n))[:MAX_NOISY]
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    listed = sorted(found, key=lambda item: (rank.get(item[0].severity or "", 4), item[0].created_at))
    mean_ack, max_ack = _stats(ack)
    mean_done, max_done = _stats(done)
    return Incidents(
        opened=len(found),
        by_severity=dict(sorted(severities.items(), key=lambda kv: (rank.get(kv[0], 4), kv[0]))),
        acknowledged=len(ack),
        resolved=len(done),
        still_open=sum(1 for i, _ in found if i.status != "resolved"),
        mean_ack_seconds=mean_ack,
        max_ack_seconds=max_ack,
        mean_resolve_seconds=mean_done,
        max_resolve_seconds=max_done,
        noisiest=[NoisyAlert(alertname=n, alerts=alerts_of[n], incidents=incidents_of[n]) for n in noisiest],
        listed=[
            IncidentLine(id=i.id, title=i.title, severity=i.severity, status=i.status, url=i.url)
            for i, _ in listed[:MAX_LISTED_INCIDENTS]
        ],
        url=settings.alerts.public_url + _incidents_path(settings, period.first, zone),
    )


def _incidents_path(settings: Settings, first: date, zone: ZoneInfo) -> str:
    """The incidents page from the period's first local midnight on, in the one time grammar: the
    plain date where the digest's zone is Panorama's (pages read dates there), else the instant."""
    if zone.key == settings.timezone:
        return f"/incidents?from={first.isoformat()}"
    since = datetime.combine(first, datetime.min.time(), tzinfo=zone).isoformat()
    return f"/incidents?{urlencode({'from': since})}"


async def _on_call(
    session: AsyncSession, settings: Settings, config: DigestConfig, at: datetime
) -> list[OnCallNow]:
    names = config.schedules or [s.name for s in settings.schedules]
    found = [await alerts.on_call_at(session, settings, name, at) for name in names]
    return [OnCallNow(schedule=o.schedule, at=o.at, user=o.user) for o in found]


ONCALL_PERSON = "oncall_person"
"""The rollups' entity kind of the on-call history per person (pages, night pages, acks)."""
MAX_LOAD_LINES = 5


async def _load(
    session: AsyncSession, settings: Settings, period: Period, before: Period
) -> list[PersonLoad]:
    """Pages per person over the period and the one compared with, re-added from the on-call
    history the daily rollup keeps (not recounted from the incidents: the same figures as the
    reports API and the "On-call health" dashboard). The history is recorded by the same daily
    run as the traffic figures, so a period without a rollup (``missing``) has none either; a
    rolled-up period without rows is one where nobody was paged, unless a day's history is
    pending (``missing``: ``oncall_history``, the alert journal had not moved past it)."""
    current = await rollups.report(session, settings, ONCALL_PERSON, period.first, period.last)
    if not current:
        return []
    previous = {
        e.entity: e for e in await rollups.report(session, settings, ONCALL_PERSON, before.first, before.last)
    }

    def whole(value: float | None) -> int:
        return round(value or 0)

    found = [
        PersonLoad(
            user=e.entity,
            pages=whole(e.figures.get("pages")),
            night_pages=whole(e.figures.get("night_pages")),
            acks=whole(e.figures.get("acks")),
            pages_before=whole(previous[e.entity].figures.get("pages")) if e.entity in previous else None,
        )
        for e in current
    ]
    return sorted(found, key=lambda p: (-p.pages, p.user))[:MAX_LOAD_LINES]


def due_at(config: DigestConfig, settings: Settings, day: date) -> datetime:
    """When the digest of ``day`` is due: its schedule time on the next day, in its zone."""
    zone = config.zone(settings.timezone)
    return datetime.combine(day + timedelta(days=1), config.schedule, tzinfo=zone).astimezone(UTC)


async def build(session: AsyncSession, settings: Settings, config: DigestConfig, day: date) -> DigestOut:
    """The digest of ``day``: every figure, and its text as the channels render it."""
    zone = config.zone(settings.timezone)
    period, weekly = period_of(config, day)
    # Read first: everything applied by then is seen by the reads below (see the module's docstring).
    waiting = await alerts.journal_waiting_since(session)
    if waiting is not None and waiting >= period.bounds(zone)[1]:
        waiting = None  # received after the period: nothing it does falls inside
    before = period.week_before()
    current = await _services(session, settings, config.scope, period)
    previous = await _services(session, settings, config.scope, before)
    in_scope_names = sorted(set(current) | set(previous))
    scope = await _scope_traffic(session, settings, period, [s for s in in_scope_names if s in current])
    scope_previous = await _scope_traffic(
        session, settings, before, [s for s in in_scope_names if s in previous]
    )
    top = sorted(current, key=lambda s: (-(current[s].requests or 0), s))[: config.top]
    public = settings.alerts.public_url
    services = [
        ServiceFigures(
            service=s,
            name=servicenames.key(s),
            current=current[s],
            previous=previous.get(s),
            url=f"{public}{_service_path(servicenames.key(s))}",
        )
        for s in top
    ]
    missing: list[str] = []
    if scope is None:
        missing.append("rollup")
        if await rollups.rolled_up_without_prometheus(session, period.first, period.last):
            missing.append("prometheus")  # rolled up, from the on-call history alone
    elif scope.days < period.days:
        missing.append("rollup_partial")
    if scope_previous is None:
        missing.append("rollup_previous")
    if waiting is not None:
        missing.append("alert_journal")
    if await rollups.pending_history(session, period.first, period.last):
        missing.append("oncall_history")  # its Prometheus figures are stored, its history waits
    sent = await repository.sent(session, config.name, day)
    report = DigestOut(
        name=config.name,
        day=day,
        first=period.first,
        last=period.last,
        weekly=weekly,
        compared_with=(before.first, before.last),
        timezone=zone.key,
        locale=config.locale,
        channels=list(config.channels),
        missing=missing,
        scope=scope,
        scope_previous=scope_previous,
        services=services,
        regressions=_regressions(config, current, previous),
        slo=await _slos(session, settings, config, day),
        incidents=await _incidents(
            session, settings, config, period, zone, {servicenames.parse(s).name for s in in_scope_names}
        ),
        on_call=await _on_call(session, settings, config, due_at(config, settings, day)),
        load=await _load(session, settings, period, before),
        journal_waiting_since=waiting,
        title="",
        text="",
        markdown="",
        sent=sent.sent_at if sent else None,
    )
    notice = render.notice(report, config)
    return report.model_copy(
        update={
            "title": notice.title,
            "text": alerts.render_notice(notice, markdown=False),
            "markdown": alerts.render_notice(notice, markdown=True),
        }
    )


def _service_path(name: str) -> str:
    return f"/services/{quote(name, safe='')}"


def _with_view_links(report: DigestOut, settings: Settings, key: bytes, expires: datetime) -> DigestOut:
    """The report whose service, incident and incidents-list links open without signing in
    (read-only, each its own page, until ``expires``), as a notification's do: a digest goes to a
    chat whose members may hold no token. Shown through the API, a digest keeps plain links (its
    reader is signed in)."""
    public = settings.alerts.public_url
    services = [
        s.model_copy(
            update={
                "url": web_auth.view_url(
                    public, _service_path(s.name), key, web_auth.service_scope(s.name), expires
                )
            }
        )
        for s in report.services
    ]
    listed = [
        i.model_copy(
            update={
                "url": web_auth.view_url(
                    public, f"/incidents/{i.id}", key, web_auth.incident_scope(i.id), expires
                )
            }
        )
        for i in report.incidents.listed
    ]
    page = _incidents_path(settings, report.first, ZoneInfo(report.timezone))
    url = web_auth.view_url(public, page, key, web_auth.incidents_scope(), expires)
    incidents = report.incidents.model_copy(update={"listed": listed, "url": url})
    return report.model_copy(update={"services": services, "incidents": incidents})


async def digest(
    sessions: Sessions,
    settings: Settings,
    name: str,
    day_text: str | None,
    *,
    now: datetime | None = None,
    given: DayInput = DayInput(),
) -> DigestOut:
    """``GET /api/v1/digests/{name}``: the digest of a day, sending nothing."""
    config = digest_named(settings, name)
    day = parse_day(day_text, config.zone(settings.timezone), now or utcnow(), given)
    async with sessions() as session:
        return await build(session, settings, config, day)


async def send(
    sessions: Sessions,
    settings: Settings,
    name: str,
    day_text: str | None,
    *,
    force: bool = False,
    by: str,
    now: datetime | None = None,
    wake: Callable[[], None] | None = None,
    given: DayInput = DayInput(),
) -> SendOut:
    """Sends the digest of a day once: see the module's docstring. ``wake`` (the delivery
    worker's) is called once it is in the outbox. Raises :class:`DigestHeld` while the alert
    journal holds a webhook received before the period ended, for less than :data:`JOURNAL_HOLD`."""
    config = digest_named(settings, name)
    moment = now or utcnow()
    day = parse_day(day_text, config.zone(settings.timezone), moment, given)
    async with sessions() as session:
        report = await build(session, settings, config, day)
    waiting = report.journal_waiting_since
    if waiting is not None and moment - waiting <= JOURNAL_HOLD:
        until = waiting + JOURNAL_HOLD
        raise DigestHeld(
            f"the alert journal still holds webhooks received since {waiting.isoformat()}, before "
            f"the period of digest {name!r} for {day.isoformat()} ended: it is sent once they are "
            f"applied, or at {until.isoformat()} with a note that it may be incomplete",
            digest=name,
            retry_after_s=max(1, min(60, math.ceil((until - moment).total_seconds()))),
        )
    key = await alerts.signing_key(sessions, settings)
    report = _with_view_links(report, settings, key, moment + settings.web.view_link_ttl)
    notice = render.notice(report, config)
    async with sessions.begin() as session:
        claimed = await repository.claim_send(session, config.name, day, moment, by)
        if claimed or force:
            if not claimed:
                await repository.record_resend(session, config.name, day, moment, by)
            alerts.enqueue_notice(session, settings, config.channels, notice, moment)
        row = await repository.sent(session, config.name, day)
    sends = row.sends if row is not None else 1
    queued = claimed or force
    if queued and wake is not None:
        wake()
    return SendOut(
        name=config.name,
        day=day,
        sent=queued,
        already_sent=not queued,
        sends=sends,
        channels=list(config.channels),
        digest=report.model_copy(update={"sent": row.sent_at if row is not None else moment}),
    )


async def was_sent(sessions: Sessions, name: str, day: date) -> bool:
    async with sessions() as session:
        return await repository.sent(session, name, day) is not None


def due_day(config: DigestConfig, settings: Settings, now: datetime) -> date:
    """The day a digest sent at ``now`` covers: yesterday in its zone."""
    return local_today(config.zone(settings.timezone), now) - timedelta(days=1)

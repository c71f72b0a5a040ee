"""The alerting feature's operations, as the API, the jobs and other features use them."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames
from app.alerts import ack, escalation, horizon, incidents, journal, oncall, outbox, repository
from app.alerts import schedules as oncall_schedules
from app.alerts.channels import notices as notice_layout
from app.alerts.channels import twilio
from app.alerts.channels.base import Notice
from app.alerts.channels.dialects import PLAIN, ROBOT_MARKDOWN
from app.alerts.config import AlertsSettings, Schedule
from app.alerts.errors import (
    IncidentClosed,
    StorageFailed,
    UnknownIncident,
    UnknownIntake,
    UnknownOverride,
    UnknownSchedule,
    WebhookUnauthorized,
)
from app.alerts.messages import incident_url
from app.alerts.models import Incident, Maintenance, ScheduleOverride, services_named
from app.alerts.routing import matching_routes
from app.alerts.schemas import (
    AlertOut,
    IncidentActivity,
    IncidentDetail,
    IncidentSpan,
    IncidentSummary,
    IntakeStatus,
    MaintenanceOut,
    MaintenanceRequest,
    OnCall,
    OncallActivity,
    OverrideOut,
    OverrideRequest,
    PageActivity,
    PersonPaged,
    ShiftOut,
    Shifts,
    SwapOut,
    SwapRequest,
    TimelineOut,
)
from app.config import Settings
from app.db import dumps
from app.errors import InvalidInput, NotFound, Phrase, known_names
from app.security import Role, TokenRegistry

if TYPE_CHECKING:  # the runtime's worker reaches the correlation feature, which reaches this module
    from app.alerts.runtime import AlertRuntime

Sessions = async_sessionmaker[AsyncSession]


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- intake -------------------------------------------------------------------------------

WEBHOOK_AUTH = (
    "`Authorization: Bearer <alerts.webhook_token>`, basic auth with `alerts.webhook_basic_auth`, "
    "or an API token with the operator role"
)


def webhook_caller(settings: AlertsSettings, tokens: TokenRegistry, authorization: str) -> str:
    """Who posts the webhook (its ``Authorization`` header): Alertmanager's configured credentials
    (``alertmanager``), or an operator's API token (its name); WebhookUnauthorized otherwise."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value:
        if settings.webhook_token is not None and hmac.compare_digest(
            value.encode(), settings.webhook_token.get_secret_value().encode()
        ):
            return "alertmanager"
        principal = tokens.authenticate(value)
        if principal is not None and principal.role.allows(Role.OPERATOR):
            return principal.name
    if scheme.lower() == "basic" and value and settings.webhook_basic_auth is not None:
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        expected = settings.webhook_basic_auth
        if hmac.compare_digest(user.encode(), expected.username.encode()) and hmac.compare_digest(
            password.encode(), expected.password.get_secret_value().encode()
        ):
            return "alertmanager"
    raise WebhookUnauthorized(f"the webhook needs {WEBHOOK_AUTH}")


def check_twilio_signature(
    settings: Settings, channel: str, url: str, form: dict[str, str], presented: str
) -> None:
    """Twilio's callback of a paging call must be signed by the channel's account
    (``X-Twilio-Signature`` over ``url`` and ``form``); WebhookUnauthorized otherwise."""
    config = next((c for c in settings.channels if c.name == channel), None)
    if (
        not isinstance(config, twilio.TwilioCallConfig)
        or not presented
        or not hmac.compare_digest(
            presented, twilio.signature(config.auth_token.get_secret_value(), url, form)
        )
        or form.get("AccountSid") != config.account_sid
    ):
        raise WebhookUnauthorized("not signed by this channel's Twilio account (X-Twilio-Signature)")


async def receive(runtime: AlertRuntime, group_key: str, alerts: int, body: bytes) -> dict[str, Any]:
    """Journals the webhook's raw ``body`` (validated: its ``groupKey`` and number of alerts) and
    answers once it is committed (a transaction shared with the webhooks arriving at the same moment:
    :mod:`app.alerts.groupcommit`); the incidents follow right behind (:mod:`app.alerts.journal`).
    5xx-worthy if the insert fails. The answer is :class:`Accepted`'s body, as a dict (its fields in
    order: the webhook writes it with orjson, a tenth of building and dumping the model)."""
    received = journal.Received(utcnow(), group_key, body, alerts)
    try:
        entry_id = await runtime.journaling.submit(received, NO_KEYS)
    except (SQLAlchemyError, OSError) as exc:  # OSError: the driver could not even connect
        raise StorageFailed(
            f"the alerts could not be stored ({type(exc).__name__}); Alertmanager will retry"
        ) from exc
    runtime.journaled()
    return {"status": "accepted", "id": entry_id, "alerts": alerts, "url": journal.intake_path(entry_id)}


NO_KEYS: frozenset[str] = frozenset()  # journal rows are only inserted: any two share a batch


async def intake_status(session: AsyncSession, entry_id: int) -> IntakeStatus:
    entry = await repository.journal_entry(session, entry_id)
    if entry is None:
        raise UnknownIntake(f"no journaled webhook {entry_id} (unknown, or applied more than a day ago)")
    return IntakeStatus(
        id=entry.id,
        status=cast(Literal["queued", "applied", "failed"], entry.status),
        received_at=entry.received_at,
        applied_at=entry.applied_at,
        alerts=entry.alerts,
        attempts=entry.attempts,
        incident_id=entry.incident_id,
        incident_url=None if entry.incident_id is None else f"/api/v1/incidents/{entry.incident_id}",
        error=entry.error,
    )


# --- incidents ----------------------------------------------------------------------------


def summary(settings: Settings, incident: Incident, firing: int) -> IncidentSummary:
    return IncidentSummary(
        id=incident.id,
        status=incident.status,
        title=incident.title,
        severity=incident.severity,
        services=json.loads(incident.services),
        group_key=incident.group_key,
        receiver=incident.receiver,
        created_at=incident.created_at,
        updated_at=incident.updated_at,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        resolved_at=incident.resolved_at,
        resolved_by=incident.resolved_by,
        snoozed_until=incident.snoozed_until,
        muted=incident.muted,
        firing=firing,
        url=incident_url(settings, incident.id),
    )


async def list_incidents(
    session: AsyncSession,
    settings: Settings,
    *,
    status: str | None = None,
    service: str | servicenames.ServiceName | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
    limit: int = 200,
) -> list[IncidentSummary]:
    """Incidents newest first; ``service`` is a filter as people type it (app.servicenames: ``name``
    in any namespace, ``name.namespace``, an FQDN; blank filters nothing), refused when malformed,
    unless incidents name the service so (:func:`stored_service_filter`), or one read so already
    (a page listing several statuses reads it once)."""
    wanted = service if not isinstance(service, str) else None
    if isinstance(service, str) and service.strip():
        wanted = await stored_service_filter(session, service)
    return await _listed(
        session, settings, status=status, service=wanted, first=first, last=last, limit=limit
    )


async def _listed(
    session: AsyncSession,
    settings: Settings,
    *,
    status: str | None,
    service: servicenames.ServiceName | None,
    first: datetime | None = None,
    last: datetime | None = None,
    limit: int = 200,
) -> list[IncidentSummary]:
    found = await repository.incidents(
        session, status=status, service=service, first=first, last=last, limit=limit
    )
    firing = await repository.firing_counts(session, [i.id for i in found])
    return [summary(settings, i, firing.get(i.id, 0)) for i in found]


async def _incident(session: AsyncSession, incident_id: int, *, lock: bool = False) -> Incident:
    """The incident; with ``lock``, locked for the transaction (whoever acts on it waits their turn)."""
    if lock:
        found = await repository.lock_incident(session, incident_id)
    else:
        found = await repository.incident(session, incident_id)
    if found is None:
        raise UnknownIncident(
            f"no incident {incident_id}",
            phrase=Phrase("problem.no_incident", id=incident_id),
            incident=incident_id,
        )
    return found


async def incident_detail(session: AsyncSession, settings: Settings, incident_id: int) -> IncidentDetail:
    incident = await _incident(session, incident_id)
    alerts = await repository.alerts_of(session, incident_id)
    entries = await repository.timeline(session, incident_id)
    firing = sum(1 for a in alerts if a.status == "firing")
    return IncidentDetail(
        **summary(settings, incident, firing).model_dump(),
        external_url=incident.external_url,
        common_labels=json.loads(incident.common_labels),
        common_annotations=json.loads(incident.common_annotations),
        alerts=[
            AlertOut(
                fingerprint=a.fingerprint,
                status=a.status,
                labels=json.loads(a.labels),
                annotations=json.loads(a.annotations),
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                generator_url=a.generator_url,
            )
            for a in alerts
        ],
        timeline=[
            TimelineOut(at=e.at, kind=e.kind, actor=e.actor, detail=json.loads(e.detail)) for e in entries
        ],
    )


async def acknowledge(
    sessions: Sessions, runtime: AlertRuntime, settings: Settings, incident_id: int, *, actor: str
) -> IncidentDetail:
    async with sessions.begin() as session:
        incident = await _incident(session, incident_id, lock=True)
        if incident.status == "resolved":
            raise IncidentClosed(f"incident {incident_id} is resolved already")
        await incidents.acknowledge(session, settings, incident, utcnow(), actor=actor)
    async with sessions() as session:
        return await incident_detail(session, settings, incident_id)


async def resolve(
    sessions: Sessions, runtime: AlertRuntime, settings: Settings, incident_id: int, *, actor: str
) -> IncidentDetail:
    key = await runtime.signing_key()
    async with sessions.begin() as session:
        incident = await _incident(session, incident_id, lock=True)
        if incident.status != "resolved":
            await incidents.resolve(session, settings, incident, utcnow(), actor=actor, key=key)
    runtime.wake()
    async with sessions() as session:
        return await incident_detail(session, settings, incident_id)


async def snooze(
    sessions: Sessions, settings: Settings, incident_id: int, minutes: int, *, actor: str
) -> IncidentDetail:
    async with sessions.begin() as session:
        incident = await _incident(session, incident_id, lock=True)
        if incident.status == "resolved":
            raise IncidentClosed(f"incident {incident_id} is resolved already")
        await incidents.snooze(session, incident, minutes, utcnow(), actor=actor)
    async with sessions() as session:
        return await incident_detail(session, settings, incident_id)


async def signing_key(sessions: Sessions, settings: Settings) -> bytes:
    """The key every replica signs ack and view links with: for features that send links to
    Panorama's pages (digests)."""
    return await ack.signing_key(sessions, settings)


async def check_ack_token(runtime: AlertRuntime, token: str) -> ack.AckClaim:
    """The incident an ack link names; raises ack.InvalidAckToken when it is forged or expired."""
    return ack.verify(await runtime.signing_key(), token, utcnow())


async def acknowledge_with_token(
    sessions: Sessions, runtime: AlertRuntime, settings: Settings, token: str, *, actor: str = ack.LINK_ACTOR
) -> tuple[IncidentSummary, bool]:
    """Acknowledges through a one-click link (or a key pressed on a paging call); returns the incident
    and whether this click changed it. A link sent to one person acknowledges in their name."""
    claim = await check_ack_token(runtime, token)
    async with sessions.begin() as session:
        incident = await _incident(session, claim.incident_id, lock=True)
        by = claim.person or actor
        changed = await incidents.acknowledge(session, settings, incident, utcnow(), actor=by)
        firing = await repository.firing_counts(session, [incident.id])
    return summary(settings, incident, firing.get(incident.id, 0)), changed


async def incident_for_token(
    sessions: Sessions, runtime: AlertRuntime, settings: Settings, token: str
) -> IncidentSummary:
    claim = await check_ack_token(runtime, token)
    async with sessions() as session:
        incident = await _incident(session, claim.incident_id)
        firing = await repository.firing_counts(session, [incident.id])
    return summary(settings, incident, firing.get(incident.id, 0))


def service_filter(
    service: str, parameter: str = "service", stored: Collection[str] = ()
) -> servicenames.ServiceName:
    """A typed service filter's parts; InvalidInput naming the parameter and the problem when it is
    malformed (:func:`app.servicenames.parse_filter`: one of the ``stored`` spellings, those offered
    to pick, never is)."""
    try:
        return servicenames.parse_filter(service, stored)
    except servicenames.InvalidServiceName as exc:
        said = Phrase("problem.parameter", name=parameter, problem=exc.said)
        raise InvalidInput(
            f"query parameter {parameter!r}: {exc}", phrase=said, parameter=parameter
        ) from None


async def stored_service_filter(
    session: AsyncSession, service: str, parameter: str = "service"
) -> servicenames.ServiceName:
    """:func:`service_filter`, accepting too any spelling incidents' ``services`` hold, as Panorama
    shows and links it (``My App``, ``api.Example``: ``servicenames.parse_filter``'s ``stored``);
    the stored spellings are read only when the strict reading refuses ``service``."""
    try:
        return service_filter(service, parameter)
    except InvalidInput:
        return service_filter(service, parameter, await repository.service_spellings(session))


def incident_services(incident: IncidentDetail) -> list[servicenames.ServiceName]:
    """The incident's services, each in the namespace of the alerts naming it, those most of its
    firing alerts name first (as its pages' context orders them)."""
    firing = [a.labels for a in incident.alerts if a.status == "firing"]
    return services_named(firing or [a.labels for a in incident.alerts], incident.services)


async def open_incidents(session: AsyncSession, settings: Settings, service: str) -> list[IncidentSummary]:
    """The service's incidents not yet resolved (for overviews and dashboards); a name no filter
    could be (``.shop``), and no incident names, has none."""
    try:
        wanted = await stored_service_filter(session, service)
    except InvalidInput:
        return []
    found = [
        i
        for status in ("triggered", "acknowledged")
        for i in await _listed(session, settings, status=status, service=wanted)
    ]
    return sorted(found, key=lambda i: i.created_at, reverse=True)


async def on_call_for_incident(
    session: AsyncSession, settings: Settings, incident_id: int, at: datetime
) -> list[OnCall]:
    """Who is on call at ``at`` in each schedule the incident's escalations page, in chain order
    (for the incident page)."""
    await _incident(session, incident_id)
    chains = {e.name: e for e in settings.escalations}
    known = {s.name for s in settings.schedules}
    names: list[str] = []
    for state in await repository.escalations_of(session, incident_id):
        chain = chains.get(state.escalation)
        for step in chain.steps if chain else ():
            name = step.notify.schedule if step.notify else None
            if name and name in known and name not in names:
                names.append(name)
    return [await on_call_at(session, settings, name, at) for name in names]


async def on_call_for_service(
    session: AsyncSession, settings: Settings, service: str, incident_ids: Sequence[int], at: datetime
) -> list[OnCall]:
    """Who is on call at ``at`` for a service (for its page): in each schedule its open incidents'
    escalations page (``incident_ids``, in that order), then in each schedule the routes page for
    an alert naming the service alone (its ``service`` and ``namespace`` labels), once each. A
    route that needs other labels (``severity``, ``alertname``) is not guessed at."""
    chains = [
        state.escalation
        for incident_id in incident_ids
        for state in await repository.escalations_of(session, incident_id)
    ]
    parsed = servicenames.parse(service)
    labels = {"service": parsed.name, **({"namespace": parsed.namespace} if parsed.namespace else {})}
    chains += [route.escalation for _, route in matching_routes(settings.routes, labels) if route.escalation]
    known = {s.name for s in settings.schedules}
    names = [name for name in escalation.schedules_paged(settings, chains) if name in known]
    return [await on_call_at(session, settings, name, at) for name in names]


# --- schedules ----------------------------------------------------------------------------


def schedule_named(settings: Settings, name: str) -> Schedule:
    found = next((s for s in settings.schedules if s.name == name), None)
    if found is None:
        known = known_names([s.name for s in settings.schedules], "schedules")
        said = (
            Phrase("problem.no_schedule", name=name, known=[s.name for s in settings.schedules])
            if settings.schedules
            else Phrase("problem.no_schedule_configured", name=name)
        )
        raise UnknownSchedule(f"no schedule {name!r} ({known})", phrase=said, schedule=name)
    return found


def _overrides(rows: Sequence[ScheduleOverride]) -> list[oncall.Override]:
    return [
        oncall.Override(user=o.user, start=o.start, end=o.end, id=o.id, created_at=o.created_at) for o in rows
    ]


async def on_call_at(session: AsyncSession, settings: Settings, name: str, at: datetime) -> OnCall:
    schedule = schedule_named(settings, name)
    overrides = _overrides(await repository.overrides(session, name, first=at, last=at))
    user = oncall.on_call(schedule, at, overrides)
    current = oncall.shifts(schedule, at, at + timedelta(minutes=1), overrides)
    source = current[0].source if user is not None and current and current[0].start <= at else None
    return OnCall(schedule=name, at=at, user=user, source=source)


MAX_SHIFTS_RANGE = timedelta(days=366)


async def shifts(
    session: AsyncSession, settings: Settings, name: str, first: datetime, last: datetime
) -> Shifts:
    """The shifts that start in ``[first, last)`` (at most a year) and the one under way at
    ``first``, each from its real start to its real end, as calendar feeds and the on-call page
    show them (:func:`app.alerts.schedules.whole_shifts`); a last one still under way where its end
    was looked for ends there and says it ``runs_on``."""
    schedule = schedule_named(settings, name)
    if last - first > MAX_SHIFTS_RANGE:
        raise InvalidInput("query parameters 'from' and 'to' may be at most 366 days apart", parameter="to")
    found = await oncall_schedules.whole_shifts(session, schedule, first, last)
    return Shifts(
        schedule=name,
        timezone=schedule.timezone,
        shifts=[
            ShiftOut(user=s.user, start=s.start, end=s.end, source=s.source, runs_on=found.runs_on(s))
            for s in found.shifts
        ],
    )


async def add_override(
    sessions: Sessions, settings: Settings, name: str, request: OverrideRequest, *, actor: str
) -> OverrideOut:
    schedule_named(settings, name)
    if request.user not in {u.name for u in settings.users}:
        raise InvalidInput(f"body 'user': unknown user {request.user!r}", parameter="user")
    row = ScheduleOverride(
        schedule=name,
        user=request.user,
        start=request.start,
        end=request.end,
        created_at=utcnow(),
        created_by=actor,
    )
    async with sessions.begin() as session:
        repository.add_override(session, row)
    return OverrideOut(
        id=row.id, schedule=name, user=row.user, start=request.start, end=request.end, created_by=actor
    )


async def list_overrides(session: AsyncSession, settings: Settings, name: str) -> list[OverrideOut]:
    schedule_named(settings, name)
    return [
        OverrideOut(id=o.id, schedule=name, user=o.user, start=o.start, end=o.end, created_by=o.created_by)
        for o in await repository.overrides(session, name)
    ]


async def delete_override(sessions: Sessions, settings: Settings, name: str, override_id: int) -> None:
    schedule_named(settings, name)
    async with sessions.begin() as session:
        if not await repository.delete_override(session, name, override_id):
            raise UnknownOverride(f"schedule {name!r} has no override {override_id}")


# --- maintenance --------------------------------------------------------------------------


async def add_maintenance(sessions: Sessions, request: MaintenanceRequest, *, actor: str) -> MaintenanceOut:
    row = Maintenance(
        matchers=dumps([str(m) for m in request.matchers]),
        start=request.start,
        end=request.end,
        comment=request.comment,
        created_at=utcnow(),
        created_by=actor,
    )
    async with sessions.begin() as session:
        repository.add_maintenance(session, row)
    return MaintenanceOut(
        id=row.id,
        matchers=[str(m) for m in request.matchers],
        start=request.start,
        end=request.end,
        comment=request.comment,
        source="api",
        created_by=actor,
    )


async def list_maintenance(session: AsyncSession, settings: Settings) -> list[MaintenanceOut]:
    configured = [
        MaintenanceOut(
            id=None,
            matchers=[str(m) for m in w.matchers],
            start=w.start,
            end=w.end,
            comment=w.comment,
            source="config",
            created_by=None,
        )
        for w in settings.maintenance
    ]
    stored = [
        MaintenanceOut(
            id=w.id,
            matchers=json.loads(w.matchers),
            start=w.start,
            end=w.end,
            comment=w.comment,
            source="api",
            created_by=w.created_by,
        )
        for w in await repository.maintenance_windows(session)
    ]
    return configured + stored


async def delete_maintenance(sessions: Sessions, window_id: int) -> None:
    async with sessions.begin() as session:
        if not await repository.delete_maintenance(session, window_id):
            raise NotFound(
                f"no maintenance window {window_id} (windows from the configuration cannot be deleted)"
            )


# --- swaps (for the pages and the API) ---------------------------------------------------------


async def open_swaps(session: AsyncSession, settings: Settings, name: str) -> list[SwapOut]:
    return await oncall_schedules.list_swaps(session, schedule_named(settings, name), "open")


async def offer_swap(
    sessions: Sessions,
    runtime: AlertRuntime,
    settings: Settings,
    name: str,
    request: SwapRequest,
    *,
    actor: str,
) -> SwapOut:
    """Offers a stretch of a shift (taken at once with ``taken_by``); its notice's link is signed."""
    schedule = schedule_named(settings, name)
    key = await runtime.signing_key()
    return await oncall_schedules.offer(sessions, settings, schedule, request, utcnow(), actor=actor, key=key)


async def take_swap(
    sessions: Sessions,
    runtime: AlertRuntime,
    settings: Settings,
    name: str,
    swap_id: int,
    user: str,
    *,
    actor: str,
) -> SwapOut:
    schedule = schedule_named(settings, name)
    key = await runtime.signing_key()
    return await oncall_schedules.take(
        sessions, settings, schedule, swap_id, user, utcnow(), actor=actor, key=key
    )


# --- for digests: the day's incidents, and notices sent through the outbox --------------------

MAX_DAY_INCIDENTS = 5000


async def incidents_opened(
    session: AsyncSession, settings: Settings, first: datetime, last: datetime
) -> list[tuple[IncidentSummary, list[str]]]:
    """Each incident opened in ``[first, last)`` (oldest first) with the ``alertname`` of each of
    its alerts (one per alert, so a name repeats as often as it fired)."""
    found = await repository.incidents_opened(session, first, last, MAX_DAY_INCIDENTS)
    names: dict[int, list[str]] = {i.id: [] for i in found}
    for incident_id, labels in await repository.alert_labels_of(session, list(names)):
        names[incident_id].append(str(json.loads(labels).get("alertname", "")))
    firing = await repository.firing_counts(session, list(names))
    return [(summary(settings, i, firing.get(i.id, 0)), names[i.id]) for i in found]


def enqueue_notice(
    session: AsyncSession, settings: Settings, channels: Sequence[str], notice: Notice, now: datetime
) -> None:
    """Puts ``notice`` in the outbox for each channel, in the caller's transaction (the delivery
    worker sends it, with its retries, rate limits and dead letters)."""
    outbox.enqueue(session, settings, None, channels, notice, now)


def render_notice(notice: Notice, *, markdown: bool) -> str:
    """A notice as a robot's markdown (DingTalk's) or as plain text, the way the channels lay it out."""
    if markdown:
        return notice_layout.markdown(notice_layout.lay_out(notice, ROBOT_MARKDOWN))
    text = notice_layout.lay_out(notice, PLAIN)
    return f"{text.title}\n\n{notice_layout.plain(text)}"


# --- on-call history ----------------------------------------------------------------------


async def journal_waiting_since(session: AsyncSession) -> datetime | None:
    """When the oldest webhook answered 202 and not applied yet was received (None: none waits):
    what other features read of the alert journal before trusting the incidents as final."""
    return await horizon.oldest_queued(session)


async def oncall_activity(
    session: AsyncSession, settings: Settings, first: datetime, last: datetime
) -> OncallActivity:
    """What the on-call history of ``[first, last)`` is computed from (the rollups read it daily).

    An incident belongs to the schedules of the escalation chains its routes started, as they
    were configured when it was routed: the intake records them on its ``routed`` timeline
    entries (``schedules``), so that renaming or replacing a chain's schedule later never moves
    an old day's figures. Entries written before 2026-12-07 do not have them: their chains'
    schedules are looked up in today's configuration (the only record there is). A person was
    paged by each ``escalated`` entry that names them (a step of a chain, or of their own rule).
    """
    pages = await repository.paging_deliveries_between(session, first, last)
    escalated = await repository.timeline_between(session, "escalated", first, last)
    paged = [
        PersonPaged(incident_id=entry.incident_id, user=str(user), at=entry.at)
        for entry in escalated
        for user in dict.fromkeys(json.loads(entry.detail).get("mentions") or [])
    ]
    referenced = [p[0] for p in pages] + [p.incident_id for p in paged]
    found = await repository.incidents_active_between(session, first, last, referenced)
    routed: dict[int, dict[str, None]] = {}
    for entry in await repository.timeline_of_incidents(session, "routed", [i.id for i in found]):
        detail = json.loads(entry.detail)
        recorded = detail.get("schedules")
        if recorded is None:  # routed before 2026-12-07: the chain's schedules as configured now
            chain = detail.get("escalation")
            recorded = escalation.schedules_paged(settings, [str(chain)] if chain else [])
        routed.setdefault(entry.incident_id, {}).update(dict.fromkeys(map(str, recorded)))
    return OncallActivity(
        first=first,
        last=last,
        incidents=[
            IncidentActivity(
                id=i.id,
                severity=i.severity,
                services=json.loads(i.services),
                schedules=list(routed.get(i.id, {})),
                opened_at=i.created_at,
                acknowledged_at=i.acknowledged_at,
                acknowledged_by=None
                if i.acknowledged_by is None or ack.is_anonymous(i.acknowledged_by)
                else i.acknowledged_by,
                resolved_at=i.resolved_at,
            )
            for i in found
        ],
        pages=[PageActivity(incident_id=i, sent_at=sent, delivered_at=done) for i, sent, done in pages],
        paged=paged,
    )


async def incident_spans(
    session: AsyncSession,
    settings: Settings,
    *,
    first: datetime,
    last: datetime,
    limit: int = 200,
    services: Sequence[servicenames.ServiceName] | None = None,
    and_one_of: Sequence[Sequence[servicenames.ServiceName]] = (),
    none_of: Sequence[servicenames.ServiceName] = (),
    namespaced: bool = False,
    before: tuple[datetime, int] | None = None,
) -> list[IncidentSpan]:
    """Incidents whose alerts fired within ``first``..``last``, newest first, at their alerts' times;
    with ``services``, only the incidents of one of them (each as :func:`list_incidents` filters),
    and of one service of each group of ``and_one_of``, and of none of ``none_of``. With
    ``namespaced``, each span's ``services`` are read from its alerts' labels (one more query;
    otherwise they are left empty). With ``before`` (a listed span's ``started_at`` and incident
    id), the spans listed after it: the next page.

    An incident starts at its alerts' earliest ``startsAt`` and, once resolved, ends at their latest
    ``endsAt``; without such times (no alerts, or resolved by hand while they fire) its own
    ``created_at``/``resolved_at`` stand in. Its ``services`` are those its alerts name, each in the
    namespace of the alerts naming it (every alert counts, as for the ``services`` filter), so a
    ``service=payments`` alert with ``namespace=shop`` is ``payments.shop`` there.
    """
    found = await repository.incidents_by_alert_time(
        session,
        first=first,
        last=last,
        limit=limit,
        services=services,
        and_one_of=and_one_of,
        none_of=none_of,
        before=before,
    )
    ids = [incident.id for incident, _, _ in found]
    firing = await repository.firing_counts(session, ids)
    labels = await repository.alert_labels(session, ids) if namespaced else {}
    spans = []
    for incident, started, ended in found:
        start = started or incident.created_at
        end = None
        if incident.status == "resolved":
            end = max(ended or incident.resolved_at or start, start)
        spans.append(
            IncidentSpan(
                incident=summary(settings, incident, firing.get(incident.id, 0)),
                started_at=start,
                ended_at=end,
                services=services_named(
                    [json.loads(text) for text in labels.get(incident.id, [])], json.loads(incident.services)
                )
                if namespaced
                else [],
            )
        )
    return spans

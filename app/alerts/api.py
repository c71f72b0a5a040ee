"""Alertmanager's webhook, incidents, one-click ack links, schedules and maintenance windows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from app import times
from app.alerts import schedules as oncall_schedules
from app.alerts import service
from app.alerts.ack import CALL_ACTOR, InvalidAckToken
from app.alerts.channels import twilio
from app.alerts.errors import (
    FeedRefused,
    InvalidAlertmanagerPayload,
    PayloadTooLarge,
    UnknownIncident,
)
from app.alerts.schemas import (
    Accepted,
    CalendarLink,
    IncidentDetail,
    IncidentList,
    IncidentSummary,
    IntakeStatus,
    MaintenanceList,
    MaintenanceOut,
    MaintenanceRequest,
    OnCall,
    OverrideOut,
    OverrideRequest,
    Shifts,
    SnoozeRequest,
    SwapOut,
    SwapRequest,
    TakeRequest,
    WebhookPayload,
    check_webhook,
)
from app.config import format_path
from app.context import AppContext
from app.deps import AlertsDep, ContextDep, Operator, SessionDep, SessionsDep, Viewer
from app.errors import InvalidInput, answers
from app.web import auth as web_auth
from app.web.deps import Page, PageDep

router = APIRouter(tags=["alerts"])


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; alerts.max_body_bytes allows {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than alerts.max_body_bytes ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(raw: bytes) -> WebhookPayload:
    """The body, parsed and validated in one pass (pydantic's JSON parser builds the models
    straight from the bytes, no dict of dicts first: 2.4× faster on a storm's 4.3 KB bodies, measured)."""
    with _invalid_answered():
        return WebhookPayload.model_validate_json(raw)


def _checked(raw: bytes) -> tuple[str, int]:
    """The body's ``groupKey`` and number of alerts, validated as :func:`_payload` does, without
    building the models (:func:`app.alerts.schemas.check_webhook`: the webhook only journals it)."""
    with _invalid_answered():
        return check_webhook(raw)


@contextlib.contextmanager
def _invalid_answered() -> Iterator[None]:
    """A body pydantic refuses, as the 400 that names its problems."""
    try:
        yield
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidAlertmanagerPayload(f"the body is not JSON: {errors[0]['msg']}") from None
        problems = [
            f"{format_path(tuple(e['loc'])) or 'body'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in errors
        ]
        raise InvalidAlertmanagerPayload(
            "not an Alertmanager webhook payload: " + "; ".join(problems), problems=problems
        ) from None


@router.post(
    "/api/v1/alerts/alertmanager",
    response_model=Accepted,
    status_code=202,
    summary="Alertmanager's webhook receiver",
    description="Answers 202 once the body is durably journaled (committed); incidents, routing and "
    "pages follow right behind: `url` (GET /api/v1/alerts/intake/{id}) tells when and to which incident. "
    "5xx when journaling failed (Alertmanager retries); 4xx for bodies that can never succeed, nothing "
    "stored; 413 over alerts.max_body_bytes.",
    openapi_extra={"x-auth": service.WEBHOOK_AUTH},
    responses=answers(
        _400="Not an Alertmanager webhook payload (Alertmanager must not retry)",
        _413="Larger than alerts.max_body_bytes",
        _503="Not stored (the database failed): Alertmanager retries",
    ),
)
async def alertmanager_webhook(request: Request) -> Response:
    """A direct route (``app.http_stack``: called without FastAPI's routing and dependencies, the
    storm's path): it checks the caller before reading the body, as a dependency did."""
    context: AppContext = request.app.state.context
    settings = context.settings
    assert context.alerts is not None, "the alerting runtime is opened in the lifespan"
    service.webhook_caller(settings.alerts, context.tokens, request.headers.get("authorization", ""))
    body = await _body(request, settings.alerts.max_body_bytes)
    group_key, alerts = _checked(body)
    accepted = await service.receive(context.alerts, group_key, alerts, body)
    return Response(orjson.dumps(accepted), status_code=202, media_type="application/json")


DIRECT_ROUTES = [r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is alertmanager_webhook]
"""The routes ``app.http_stack`` answers directly."""


@router.get(
    "/api/v1/alerts/intake/{entry_id}",
    response_model=IntakeStatus,
    summary="What became of a journaled webhook",
    description="The `url` of the webhook's 202 answer: queued, applied (with its incident) or failed "
    "(with the error). Rows are kept a day after they are applied.",
    responses=answers(_404="No journaled webhook with this id"),
)
async def intake_status(entry_id: int, _: Viewer, session: SessionDep) -> IntakeStatus:
    return await service.intake_status(session, entry_id)


# --- incidents ----------------------------------------------------------------------------


@router.get("/api/v1/incidents", response_model=IncidentList, summary="Incidents, newest first")
async def incidents(
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    status: Literal["triggered", "acknowledged", "resolved"] | None = None,
    service_name: Annotated[str | None, Query(alias="service")] = None,
    first: Annotated[
        str | None, Query(alias="from", description="Incidents open at or after; " + _TIMES)
    ] = None,
    last: Annotated[
        str | None, Query(alias="to", description="Incidents opened at or before; " + _TIMES)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> IncidentList:
    clock = times.Clock(service.utcnow(), context.settings.tzinfo)
    since = times.parse_time(first, "from", clock) if first else None
    until = times.parse_time(last, "to", clock, round_up=True) if last else None
    found = await service.list_incidents(
        session, context.settings, status=status, service=service_name, first=since, last=until, limit=limit
    )
    return IncidentList(incidents=found)


@router.get(
    "/api/v1/incidents/{incident_id}",
    response_model=IncidentDetail,
    summary="An incident with its timeline",
    responses=answers(_404="No incident with this id"),
)
async def incident(incident_id: int, _: Viewer, session: SessionDep, context: ContextDep) -> IncidentDetail:
    return await service.incident_detail(session, context.settings, incident_id)


CLOSED = answers(_404="No incident with this id", _409="The incident is resolved already")


@router.post(
    "/api/v1/incidents/{incident_id}/ack",
    response_model=IncidentDetail,
    summary="Acknowledge",
    responses=CLOSED,
)
async def acknowledge(
    incident_id: int, who: Operator, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> IncidentDetail:
    return await service.acknowledge(sessions, alerts, context.settings, incident_id, actor=who.name)


@router.post(
    "/api/v1/incidents/{incident_id}/resolve",
    response_model=IncidentDetail,
    summary="Resolve",
    responses=answers(_404="No incident with this id"),
)
async def resolve(
    incident_id: int, who: Operator, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> IncidentDetail:
    return await service.resolve(sessions, alerts, context.settings, incident_id, actor=who.name)


@router.post(
    "/api/v1/incidents/{incident_id}/snooze",
    response_model=IncidentDetail,
    summary="Pause escalation",
    responses=CLOSED,
)
async def snooze(
    incident_id: int, body: SnoozeRequest, who: Operator, context: ContextDep, sessions: SessionsDep
) -> IncidentDetail:
    return await service.snooze(sessions, context.settings, incident_id, body.minutes, actor=who.name)


# --- one-click acknowledge links (signed tokens; pages on the web shell) ---------------------


def _ack_answer(
    page: Page,
    heading: str,
    *,
    status: int = 200,
    incident: IncidentSummary | None = None,
    confirm: bool = False,
    note: str | None = None,
) -> HTMLResponse:
    t = page.translator
    view_url = None
    if incident is not None:
        expires = page.now + page.settings.web.view_link_ttl
        view_url = page.view().href(
            f"/incidents/{incident.id}",
            view=web_auth.view_token(page.key, web_auth.incident_scope(incident.id), expires),
        )
    return page.render(
        "alerts/ack.html",
        status=status,
        heading=t(heading),
        incident=incident,
        confirm=confirm,
        note=t(note) if note else None,
        view_url=view_url,
    )


def _ack_error(page: Page, error: InvalidAckToken | UnknownIncident) -> HTMLResponse:
    if isinstance(error, UnknownIncident):
        return _ack_answer(page, "ack.missing", status=404, note="ack.open_panorama")
    heading = "ack.expired" if error.expired else "ack.invalid"
    return _ack_answer(page, heading, status=410 if error.expired else 401, note="ack.open_panorama")


@router.get("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_page(token: str, page: PageDep, alerts: AlertsDep, sessions: SessionsDep) -> HTMLResponse:
    try:
        found = await service.incident_for_token(sessions, alerts, page.settings, token)
    except (InvalidAckToken, UnknownIncident) as error:
        return _ack_error(page, error)
    can_ack = found.status == "triggered"
    return _ack_answer(page, "ack.ask" if can_ack else "ack.already", incident=found, confirm=can_ack)


@router.post("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_confirm(token: str, page: PageDep, alerts: AlertsDep, sessions: SessionsDep) -> Response:
    """The confirmation: the page's form, or a phone app's button (ntfy's ``http`` action) that posts
    with no form, cookie or token of its own. ``Accept: application/json`` gets JSON instead of a page."""
    wants_json = "application/json" in page.request.headers.get("accept", "")
    try:
        found, changed = await service.acknowledge_with_token(sessions, alerts, page.settings, token)
    except (InvalidAckToken, UnknownIncident) as error:
        if wants_json:
            expired = isinstance(error, InvalidAckToken) and error.expired
            status = 404 if isinstance(error, UnknownIncident) else 410 if expired else 401
            return JSONResponse({"error": "ack_refused", "message": str(error)}, status_code=status)
        return _ack_error(page, error)
    if wants_json:
        return JSONResponse({"incident": found.id, "status": found.status, "changed": changed})
    return _ack_answer(page, "ack.done" if changed else "ack.already", incident=found)


@router.post(
    "/api/v1/alerts/twilio/{channel}/gather/{token}",
    summary="Twilio's key press on a paging call (acknowledges)",
    openapi_extra={"x-auth": "Twilio's `X-Twilio-Signature` (the channel's auth token)"},
    responses=answers(_401="Not signed by the channel's Twilio account"),
)
async def twilio_gather(
    channel: str, token: str, request: Request, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> Response:
    """Twilio posts the key pressed during a paging call here; any key acknowledges the incident."""
    settings = context.settings
    raw = await _body(request, 64 * 1024)
    form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    query = f"?{request.url.query}" if request.url.query else ""
    url = f"{settings.alerts.public_url}{request.url.path}{query}"
    service.check_twilio_signature(
        settings, channel, url, form, request.headers.get("x-twilio-signature", "")
    )
    acknowledged = False
    if form.get("Digits"):
        try:
            await service.acknowledge_with_token(
                sessions, alerts, settings, token, actor=CALL_ACTOR.format(number=form.get("To", "?"))
            )
            acknowledged = True
        except (InvalidAckToken, UnknownIncident):
            acknowledged = False
    return Response(twilio.reply(settings.alerts.locale, acknowledged), media_type="text/xml")


# --- schedules ----------------------------------------------------------------------------


@router.get(
    "/api/v1/schedules/{name}/oncall",
    response_model=OnCall,
    summary="Who is on call at a time",
    responses=answers(_404="No schedule of this name"),
)
async def on_call(
    name: str,
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    at: Annotated[str | None, Query(description="Default: now. " + _SCHEDULE_TIMES)] = None,
) -> OnCall:
    moment = times.parse_time(at or "now", "at", _schedule_clock(context, name))
    return await service.on_call_at(session, context.settings, name, moment)


@router.get(
    "/api/v1/schedules/{name}/shifts",
    response_model=Shifts,
    summary="Shifts that start between two times, each whole",
    description="The shifts that start in [`from`, `to`) and the one under way at `from`, each from its "
    "real start to its real end: the first may start before `from`, the last end after `to` (a shift "
    "starting exactly at `to` is not listed). A last shift still under way where its end was looked "
    "for says `runs_on`.",
    responses=answers(_404="No schedule of this name"),
)
async def shifts(
    name: str,
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    first: Annotated[str | None, Query(alias="from", description="Default: now. " + _SCHEDULE_TIMES)] = None,
    last: Annotated[
        str | None,
        Query(
            alias="to",
            description="Default: 7 days after `from`; a date includes that day. Shifts starting "
            "at `to` or later are not listed",
        ),
    ] = None,
) -> Shifts:
    clock = _schedule_clock(context, name)
    start = times.parse_time(first or "now", "from", clock)
    end = (
        times.parse_time(last, "to", clock, round_up=True, open_end=True) if last else start + SHIFTS_DEFAULT
    )
    if end <= start:
        raise InvalidInput("query parameter 'to' must be after 'from'", parameter="to")
    return await service.shifts(session, context.settings, name, start, end)


@router.get(
    "/api/v1/schedules/{name}/overrides",
    response_model=list[OverrideOut],
    summary="Overrides",
    responses=answers(_404="No schedule of this name"),
)
async def overrides(name: str, _: Viewer, session: SessionDep, context: ContextDep) -> list[OverrideOut]:
    return await service.list_overrides(session, context.settings, name)


@router.post(
    "/api/v1/schedules/{name}/overrides",
    response_model=OverrideOut,
    status_code=201,
    summary="Cover a shift",
    responses=answers(_404="No schedule of this name"),
)
async def add_override(
    name: str, body: OverrideRequest, who: Operator, context: ContextDep, sessions: SessionsDep
) -> OverrideOut:
    body = _in_zone(body, _schedule_clock(context, name))
    return await service.add_override(sessions, context.settings, name, body, actor=who.name)


@router.delete(
    "/api/v1/schedules/{name}/overrides/{override_id}",
    status_code=204,
    summary="Remove an override",
    responses=answers(_404="No schedule of this name, or no override of it with this id"),
)
async def delete_override(
    name: str, override_id: int, _: Operator, context: ContextDep, sessions: SessionsDep
) -> None:
    await service.delete_override(sessions, context.settings, name, override_id)


# --- calendar feeds and swaps ----------------------------------------------------------------

ICS_AUTH = "`?token=` (the signed feed URL from `…/calendar`), or a bearer token (viewer)"
FEED_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/calendar": {}}, "description": "RFC 5545 iCalendar"},
    401: {"description": "A forged, revoked or missing feed token"},
    410: {"description": "An expired feed token"},
}


async def _calendar_answer(
    feed: oncall_schedules.Feed,
    request: Request,
    context: ContextDep,
    alerts: AlertsDep,
    session: SessionDep,
    token: str | None,
) -> Response:
    now = service.utcnow()
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        if context.tokens.authenticate(credentials.strip()) is None:
            raise FeedRefused("invalid token")
    elif token:
        await oncall_schedules.check_feed_token(session, await alerts.signing_key(), feed, token, now)
    else:
        raise FeedRefused(f"the feed needs {ICS_AUTH}")
    body = await oncall_schedules.calendar(session, context.settings, feed, now, await alerts.signing_key())
    filename = f"{feed.kind}-{feed.name}.ics"
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get(
    "/api/v1/schedules/{name}/calendar.ics",
    summary="The schedule's shifts for the next 90 days (iCalendar)",
    openapi_extra={"x-auth": ICS_AUTH},
    responses=FEED_ANSWERS,
)
async def schedule_calendar(
    name: str,
    request: Request,
    context: ContextDep,
    alerts: AlertsDep,
    session: SessionDep,
    token: Annotated[str | None, Query(description="The signed feed token")] = None,
) -> Response:
    feed = oncall_schedules.Feed("schedule", name)
    return await _calendar_answer(feed, request, context, alerts, session, token)


@router.get(
    "/api/v1/users/{name}/calendar.ics",
    summary="One person's shifts on every schedule for the next 90 days (iCalendar)",
    openapi_extra={"x-auth": ICS_AUTH},
    responses=FEED_ANSWERS,
)
async def user_calendar(
    name: str,
    request: Request,
    context: ContextDep,
    alerts: AlertsDep,
    session: SessionDep,
    token: Annotated[str | None, Query(description="The signed feed token")] = None,
) -> Response:
    feed = oncall_schedules.Feed("user", name)
    return await _calendar_answer(feed, request, context, alerts, session, token)


@router.get(
    "/api/v1/schedules/{name}/calendar",
    response_model=CalendarLink,
    summary="The URL to subscribe to",
    responses=answers(_404="No schedule of this name"),
)
async def schedule_calendar_link(
    name: str, _: Viewer, context: ContextDep, alerts: AlertsDep, session: SessionDep
) -> CalendarLink:
    feed = oncall_schedules.Feed("schedule", name)
    key = await alerts.signing_key()
    return await oncall_schedules.feed_link(session, context.settings, key, feed, service.utcnow())


@router.get(
    "/api/v1/users/{name}/calendar",
    response_model=CalendarLink,
    summary="The URL to subscribe to",
    responses=answers(_404="No user of this name"),
)
async def user_calendar_link(
    name: str, _: Viewer, context: ContextDep, alerts: AlertsDep, session: SessionDep
) -> CalendarLink:
    feed = oncall_schedules.Feed("user", name)
    key = await alerts.signing_key()
    return await oncall_schedules.feed_link(session, context.settings, key, feed, service.utcnow())


@router.post(
    "/api/v1/schedules/{name}/calendar/revoke",
    response_model=CalendarLink,
    summary="Revoke every URL of the feed; answers a new one",
    responses=answers(_404="No schedule of this name"),
)
async def revoke_schedule_calendar(
    name: str, _: Operator, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> CalendarLink:
    return await _revoke(oncall_schedules.Feed("schedule", name), context, alerts, sessions)


@router.post(
    "/api/v1/users/{name}/calendar/revoke",
    response_model=CalendarLink,
    summary="Revoke every URL of the feed; answers a new one",
    responses=answers(_404="No user of this name"),
)
async def revoke_user_calendar(
    name: str, _: Operator, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> CalendarLink:
    return await _revoke(oncall_schedules.Feed("user", name), context, alerts, sessions)


async def _revoke(
    feed: oncall_schedules.Feed, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> CalendarLink:
    now = service.utcnow()
    await oncall_schedules.revoke_feed(sessions, context.settings, feed, now)
    async with sessions() as session:
        return await oncall_schedules.feed_link(
            session, context.settings, await alerts.signing_key(), feed, now
        )


@router.get(
    "/api/v1/schedules/{name}/swaps",
    response_model=list[SwapOut],
    summary="Swaps of the schedule",
    responses=answers(_404="No schedule of this name"),
)
async def swaps(
    name: str,
    _: Viewer,
    session: SessionDep,
    context: ContextDep,
    status: Literal["open", "taken", "cancelled"] | None = None,
) -> list[SwapOut]:
    schedule = service.schedule_named(context.settings, name)
    return await oncall_schedules.list_swaps(session, schedule, status)


SWAP_CLOSED = answers(
    _404="No schedule of this name, or no swap of it with this id", _409="Taken or cancelled already"
)


@router.post(
    "/api/v1/schedules/{name}/swaps",
    response_model=SwapOut,
    status_code=201,
    summary="Offer a shift (or part of one); with taken_by, swap it at once",
    responses=answers(_404="No schedule of this name"),
)
async def offer_swap(
    name: str, body: SwapRequest, who: Operator, context: ContextDep, alerts: AlertsDep, sessions: SessionsDep
) -> SwapOut:
    body = _in_zone(body, _schedule_clock(context, name))
    return await service.offer_swap(sessions, alerts, context.settings, name, body, actor=who.name)


@router.post(
    "/api/v1/schedules/{name}/swaps/{swap_id}/take",
    response_model=SwapOut,
    summary="Take an offered shift (it becomes an override)",
    responses=SWAP_CLOSED,
)
async def take_swap(
    name: str,
    swap_id: int,
    body: TakeRequest,
    who: Operator,
    context: ContextDep,
    alerts: AlertsDep,
    sessions: SessionsDep,
) -> SwapOut:
    return await service.take_swap(
        sessions, alerts, context.settings, name, swap_id, body.user, actor=who.name
    )


@router.post(
    "/api/v1/schedules/{name}/swaps/{swap_id}/cancel",
    response_model=SwapOut,
    summary="Withdraw an offer",
    responses=SWAP_CLOSED,
)
async def cancel_swap(
    name: str, swap_id: int, _: Operator, context: ContextDep, sessions: SessionsDep
) -> SwapOut:
    schedule = service.schedule_named(context.settings, name)
    return await oncall_schedules.cancel(sessions, schedule, swap_id)


_TIMES = "a time in the grammar of the README's Times: RFC 3339, a date, epoch s/ms, now-1h"
_SCHEDULE_TIMES = _TIMES + "; without an offset, in the schedule's time zone"
SHIFTS_DEFAULT = timedelta(days=7)
_Timed = TypeVar("_Timed", OverrideRequest, SwapRequest, MaintenanceRequest)


def _schedule_clock(context: ContextDep, name: str) -> times.Clock:
    """A schedule's times without an offset are wall times of the schedule's own zone."""
    zone = ZoneInfo(service.schedule_named(context.settings, name).timezone)
    return times.Clock(service.utcnow(), zone)


def _in_zone(body: _Timed, clock: times.Clock) -> _Timed:
    """A body's ``start``/``end`` with an offset-less time read in ``clock``'s zone (app.times)."""
    try:
        start, end = times.localize(body.start, clock.zone), times.localize(body.end, clock.zone)
    except OverflowError:
        raise InvalidInput("body 'start'/'end': out of range", parameter="start") from None
    if end <= start:
        raise InvalidInput("body 'end': must be after start", parameter="end")
    return body.model_copy(update={"start": start, "end": end})


# --- maintenance --------------------------------------------------------------------------


@router.get("/api/v1/maintenance", response_model=MaintenanceList, summary="Maintenance windows")
async def maintenance(_: Viewer, session: SessionDep, context: ContextDep) -> MaintenanceList:
    return MaintenanceList(maintenance=await service.list_maintenance(session, context.settings))


@router.post("/api/v1/maintenance", response_model=MaintenanceOut, status_code=201, summary="Add a window")
async def add_maintenance(
    body: MaintenanceRequest, who: Operator, context: ContextDep, sessions: SessionsDep
) -> MaintenanceOut:
    body = _in_zone(body, times.Clock(service.utcnow(), context.settings.tzinfo))
    return await service.add_maintenance(sessions, body, actor=who.name)


@router.delete(
    "/api/v1/maintenance/{window_id}",
    status_code=204,
    summary="Remove a window",
    responses=answers(_404="No window with this id (windows from the configuration cannot be deleted)"),
)
async def delete_maintenance(window_id: int, _: Operator, sessions: SessionsDep) -> None:
    await service.delete_maintenance(sessions, window_id)

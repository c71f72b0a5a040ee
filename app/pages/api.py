"""The pages people land on: an incident (and its correlated context), the incidents, a trace
with its logs, a service. HTML for phones first; every route starts from the shell's page
dependency (language, reader, view links) and calls one service function."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.alerts.errors import IncidentClosed, SwapClosed
from app.alerts.schemas import SwapRequest
from app.deps import AlertsDep, ContextDep, SessionDep, SessionsDep
from app.errors import InvalidInput, Phrase
from app.pages import service
from app.pages.service import Sessions
from app.web import auth
from app.web.api import form_fields
from app.web.deps import Page, PageDep

router = APIRouter(include_in_schema=False)

SNOOZE_CHOICES = (15, 30, 60, 120, 240, 480)
MAX_ALERTS_SHOWN = 50  # firing first; a storm of hundreds stays readable on a phone
Action = Literal["ack", "resolve", "snooze"]


@router.get("/")
async def home(page: PageDep) -> RedirectResponse:
    return page.redirect("/incidents")


@router.get("/incidents")
async def incidents(
    page: PageDep,
    session: SessionDep,
    status: Annotated[str | None, Query()] = None,
    service_name: Annotated[str | None, Query(alias="service")] = None,
    since: Annotated[str | None, Query(alias="from")] = None,
    before: Annotated[str | None, Query()] = None,
) -> Response:
    page.require(auth.incidents_scope())
    query = service.IncidentFilter(status=status or None, service=service_name, since=since, before=before)
    try:
        found = await service.incidents_page(session, page.settings, query, page.now)
    except InvalidInput as bad:  # the page again, the filter as typed, the problem beside it (400)
        return page.render("pages/incidents.html", bad_input=bad, found=None, query=query)
    return page.render("pages/incidents.html", found=found, query=query)


@router.get("/incidents/{incident_id}")
async def incident(incident_id: int, page: PageDep, sessions: SessionsDep) -> Response:
    page.require(auth.incident_scope(incident_id))
    found = await service.incident_page(sessions, page.settings, incident_id, page.now)
    notice = page.request.query_params.get("done")
    return page.render(
        "pages/incident.html",
        found=found,
        snooze_choices=SNOOZE_CHOICES,
        notice=notice,
        max_alerts=MAX_ALERTS_SHOWN,
    )


@router.get("/incidents/{incident_id}/context")
async def incident_context(
    incident_id: int,
    page: PageDep,
    context: ContextDep,
    sessions: SessionsDep,
    fragment: Annotated[bool, Query()] = False,
) -> Response:
    page.require(auth.incident_scope(incident_id))
    found = await service.incident_context(
        incident_id, backends=context.backends, sessions=sessions, settings=page.settings, now=page.now
    )
    template = "pages/context_fragment.html" if fragment else "pages/context.html"
    return page.render(template, found=found, incident_id=incident_id)


@router.post("/incidents/{incident_id}/{action}")
async def act(
    incident_id: int, action: Action, page: PageDep, alerts_runtime: AlertsDep, sessions: SessionsDep
) -> Response:
    who = page.require_actor()
    settings = page.settings
    fields = await form_fields(page.request)
    try:
        if action == "ack":
            await alerts.acknowledge(sessions, alerts_runtime, settings, incident_id, actor=who.name)
        elif action == "resolve":
            await alerts.resolve(sessions, alerts_runtime, settings, incident_id, actor=who.name)
        else:
            minutes = fields.get("minutes", "")
            if not minutes.isdigit() or int(minutes) not in SNOOZE_CHOICES:
                choices = ", ".join(map(str, SNOOZE_CHOICES))
                said = Phrase(
                    "problem.parameter", name="minutes", problem=Phrase("problem.snooze", choices=choices)
                )
                raise InvalidInput(f"minutes: one of {choices}", phrase=said, parameter="minutes")
            await alerts.snooze(sessions, settings, incident_id, int(minutes), actor=who.name)
    except IncidentClosed:
        return page.redirect(f"/incidents/{incident_id}", done="closed")
    return page.redirect(f"/incidents/{incident_id}", done=action)


@router.get("/traces/{trace_id}")
async def trace(
    trace_id: str,
    page: PageDep,
    context: ContextDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    try:
        canonical = service.canonical_trace_id(trace_id)
    except InvalidInput:
        page.require()  # only a signed-in reader learns that the id is malformed
        raise
    page.require(auth.trace_scope(canonical))
    found = await service.trace_page(
        trace_id, start=start, end=end, backends=context.backends, settings=page.settings, now=page.now
    )
    return page.render("pages/trace.html", found=found, asked=trace_id)


# `:path`: a name Panorama links may hold a "/" (a service its alerts call `frontend/api`)
@router.get("/services/{name:path}")
async def service_overview(name: str, page: PageDep, context: ContextDep, sessions: SessionsDep) -> Response:
    page.require(auth.service_scope(name))
    found = await service.service_page(
        name, backends=context.backends, sessions=sessions, settings=page.settings, now=page.now
    )
    return page.render("pages/service.html", found=found, name=name)


@router.get("/oncall")
async def oncall(
    page: PageDep, session: SessionDep, schedule: Annotated[str | None, Query()] = None
) -> Response:
    page.require(auth.oncall_scope(schedule) if schedule else None)
    return await _oncall_page(page, session, schedule, notice=page.request.query_params.get("done"))


async def _oncall_page(
    page: Page,
    session: AsyncSession,
    schedule: str | None,
    *,
    notice: str | None = None,
    bad_input: InvalidInput | None = None,
    form: service.SwapForm | None = None,
) -> Response:
    """The on-call page; with ``bad_input``, answering a form of ``form.schedule`` that could not be
    done: the page again (400), the form as it was sent, its problem above it."""
    found = await service.oncall_page(session, page.settings, page.now, schedule)
    return page.render(
        "pages/oncall.html",
        zones=found.zones,
        cards=found.cards,
        notice=notice,
        chosen=schedule,
        bad_input=bad_input,
        form=form,
    )


async def _swap_form_problem(
    page: Page, sessions: Sessions, form: service.SwapForm, bad: InvalidInput
) -> Response:
    page.address = ("/oncall", {"schedule": form.schedule})
    async with sessions() as session:
        return await _oncall_page(page, session, form.schedule, bad_input=bad, form=form)


@router.post("/oncall/{name}/swaps")
async def offer_swap(name: str, page: PageDep, alerts_runtime: AlertsDep, sessions: SessionsDep) -> Response:
    """The page's small form: offer a stretch of someone's shift (and, optionally, who takes it)."""
    who = page.require_actor()
    fields = await form_fields(page.request)
    zone = alerts.schedule_named(page.settings, name).timezone
    try:
        try:
            request = SwapRequest(
                user=fields.get("user", ""),
                start=service.local_time(fields.get("start", ""), zone, "start"),
                end=service.local_time(fields.get("end", ""), zone, "end"),
                note=fields.get("note", "")[:500],
                taken_by=fields.get("taken_by") or None,
            )
        except ValidationError as exc:
            raise _invalid_swap(exc) from None
        await alerts.offer_swap(sessions, alerts_runtime, page.settings, name, request, actor=who.name)
    except InvalidInput as bad:
        return await _swap_form_problem(page, sessions, service.SwapForm(name, "offer", fields), bad)
    done = "swapped" if request.taken_by else "offered"
    return page.redirect("/oncall", schedule=name, done=done)


@router.post("/oncall/{name}/swaps/{swap_id}/take")
async def take_swap(
    name: str, swap_id: str, page: PageDep, alerts_runtime: AlertsDep, sessions: SessionsDep
) -> Response:
    who = page.require_actor()  # before anything about the request is said
    if not swap_id.isdigit():
        raise InvalidInput(
            f"no swap {swap_id!r}", phrase=Phrase("problem.no_swap", schedule=name, id=swap_id)
        )
    fields = await form_fields(page.request)
    try:
        user = fields.get("user", "")
        await alerts.take_swap(
            sessions, alerts_runtime, page.settings, name, int(swap_id), user, actor=who.name
        )
    except SwapClosed:
        return page.redirect("/oncall", schedule=name, done="closed")
    except InvalidInput as bad:
        return await _swap_form_problem(page, sessions, service.SwapForm(name, "take", fields), bad)
    return page.redirect("/oncall", schedule=name, done="taken")


def _invalid_swap(exc: ValidationError) -> InvalidInput:
    """The swap form's values the request model refused, said for the page (the first problem
    marks its field)."""
    problems = exc.errors()
    message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in problems)
    first = problems[0]
    field = str(first["loc"][0]) if first["loc"] else "end"
    if first["type"] == "end_before_start":
        said = Phrase("problem.swap.end_before_start")
    else:
        said = Phrase("problem.value", detail=str(first["msg"]).removeprefix("Value error, "))
    return InvalidInput(
        message, phrase=Phrase("problem.parameter", name=field, problem=said), parameter=field
    )

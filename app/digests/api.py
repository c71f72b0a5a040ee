"""The digest routes: see one for a day (viewer), send it (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import AlertsDep, ContextDep, Operator, SessionsDep, Viewer
from app.digests import service
from app.digests.schemas import DigestOut, SendOut
from app.errors import answers

router = APIRouter(tags=["digests"])

DayParam = Annotated[
    str | None,
    Query(
        alias="date",
        description="The day covered, in the time grammar (README: Times), read in the digest's time "
        "zone: 2026-11-20, now-1d, an RFC 3339 time, epoch s/ms; default: yesterday there",
    ),
]
ERRORS = answers(
    _400="The date is not a day, or the day is not over yet",
    _404="No digest of that name (the answer names the known ones)",
)


@router.get(
    "/api/v1/digests/{name}",
    response_model=DigestOut,
    summary="A digest (运维日报) for a day, with its figures and rendered text; sends nothing",
    responses=ERRORS,
)
async def digest(
    name: str, _: Viewer, context: ContextDep, sessions: SessionsDep, day: DayParam = None
) -> DigestOut:
    return await service.digest(sessions, context.settings, name, day)


@router.post(
    "/api/v1/digests/{name}/send",
    response_model=SendOut,
    summary="Send a digest for a day to its channels, once",
    description="Puts the digest in the alerts outbox for its channels (retries, rate limits, dead "
    "letters). A digest is sent once per day, whichever replica or caller asks: when it was already "
    "sent for that day the answer is 200 with `already_sent: true` and nothing is sent, unless "
    "`force=true`. While the alert journal still holds webhooks received before the period ended "
    "(for less than 15 minutes) the digest is held: 503 with `Retry-After`, nothing sent; a journal "
    "stuck longer does not hold it, the digest then says it may be incomplete.",
    responses={
        **ERRORS,
        **answers(_503="Held: webhooks of the period still wait in the alert journal (see Retry-After)"),
    },
)
async def send(
    name: str,
    caller: Operator,
    context: ContextDep,
    sessions: SessionsDep,
    alerts: AlertsDep,
    day: DayParam = None,
    force: Annotated[bool, Query(description="Send again even if it was sent for that day")] = False,
) -> SendOut:
    return await service.send(
        sessions, context.settings, name, day, force=force, by=f"api:{caller.name}", wake=alerts.wake
    )

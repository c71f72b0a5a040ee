"""Escalation chains: notify steps write to the outbox, wait steps set when the chain resumes.

The state of each chain is stored (``alert_escalations``), not a sleeping task, so
delays survive restarts; any replica's worker picks up a due step.

A step may apply only inside (``active_time_intervals``) or outside (``mute_time_intervals``)
named time intervals; a step that does not apply now is skipped. So is a notify step whose
target has nobody on call (its schedule is empty now and it names no users): it is skipped at
once, and so are the waits right after a skipped step, instead of waiting out their delay. Each
person a step reaches who has rules of their own (``users[].rules``) is also paged through them
(:mod:`app.alerts.personal`), besides the step's group channels.

A chain's clock may start before its first steps run: a journaled webhook is applied after it
was received (:mod:`app.alerts.journal`), and its chain counts from the receipt (``since``), not
from the apply, so that a 5-minute wait means 5 minutes after Alertmanager delivered. A wait
already over when the chain reaches it is passed at once, the way the worker runs an overdue step
when its pass comes; the wait after it counts from then (so a late apply pages the next step at
once, never the whole chain, and never a second round, in one go). Who is on call and whether a
step's time intervals apply are decided when its page goes out (``now``), as for every step.

The other way round, a step falls due while a webhook of its group received before then still
waits in the journal — its resolve, most often, after a storm or a short outage: the step waits
for it, as it would have had the row been applied at once (:func:`run_due`,
:mod:`app.alerts.horizon`). Before 2026-12-07 such a step paged someone for an incident Alertmanager
had resolved, the resolved message following a second later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import horizon, messages, outbox, personal, repository
from app.alerts.channels.base import MessageKind
from app.alerts.config import Escalation, NotifyStep, Step
from app.alerts.models import AlertRow, EscalationState, Incident
from app.alerts.oncall import Override, on_call
from app.alerts.timeintervals import in_any
from app.config import Settings

log = logging.getLogger("panorama.alerts")


async def start(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    escalations: list[str],
    now: datetime,
    key: bytes,
    *,
    alerts: Sequence[AlertRow] | None = None,
    since: datetime | None = None,
) -> None:
    """Starts each named chain of a new incident and runs its first steps right away (same
    transaction); each chain's state is written once, as it stands after those steps. The chains'
    clock starts ``since`` (default ``now``: when the incident's webhook was received), their steps
    due by ``now`` run now (see the module's docstring)."""
    paging = _Paging(alerts=alerts, paged=False)
    for name in dict.fromkeys(escalations):
        due = since or now
        state = EscalationState(incident_id=incident.id, escalation=name, step=0, round=0, due_at=due)
        await advance(session, settings, incident, state, now, key, paging=paging, since=since)
        repository.add_escalation(session, state)


def schedules_paged(settings: Settings, escalations: Sequence[str | None]) -> list[str]:
    """The schedules the named chains' notify steps page, as configured now, in order, once each.

    The intake records them on an incident's ``routed`` entries when it routes it (the heartbeat
    check on the "missing" incident's, when it opens it), and the on-call history reads them
    there: a schedule renamed or replaced later does not move the incidents it was paged for
    (``service.oncall_activity``)."""
    by_name = {e.name: e for e in settings.escalations}
    found: dict[str, None] = {}
    for name in escalations:
        chain = by_name.get(name) if name is not None else None
        for step in chain.steps if chain is not None else []:
            if step.notify is not None and step.notify.schedule is not None:
                found[step.notify.schedule] = None
    return list(found)


@dataclass
class _Position:
    """Where a chain stands while it runs (recorded on its row once it stops: a wait, or its end)."""

    step: int
    round: int
    due_at: datetime | None = None


@dataclass
class _Paging:
    """What one pass already knows of an incident: its alerts, and whether anybody was paged."""

    alerts: Sequence[AlertRow] | None = None
    paged: bool | None = None


async def advance(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    state: EscalationState,
    now: datetime,
    key: bytes,
    *,
    paging: _Paging | None = None,
    since: datetime | None = None,
) -> None:
    """Runs the chain from its current step until a wait, or its end (after ``repeat`` more rounds);
    its next wait counts from ``since`` (default ``now``)."""
    known = paging or _Paging()
    escalation = next((e for e in settings.escalations if e.name == state.escalation), None)
    if escalation is None:
        repository.record_escalation_position(state, state.step, state.round, None)
        repository.add_timeline(
            session,
            incident.id,
            now,
            "escalated",
            {"escalation": state.escalation, "stopped": "no longer configured"},
        )
        return
    position = _Position(state.step, state.round)
    await _run(session, settings, incident, escalation, position, now, key, known, since=since or now)
    repository.record_escalation_position(state, position.step, position.round, position.due_at)


async def _run(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    escalation: Escalation,
    position: _Position,
    now: datetime,
    key: bytes,
    known: _Paging,
    *,
    since: datetime,
) -> None:
    """Moves ``position`` through the chain's steps, paging as it goes, until a wait not over at
    ``now`` (it counts from ``since``, the chain's clock) or the end."""
    skipping = False  # the step before was skipped: so are the waits right after it
    clock = since
    for _ in range(len(escalation.steps) * (escalation.repeat + 1) + 1):
        if position.step >= len(escalation.steps):
            if position.round >= escalation.repeat:
                position.due_at = None
                return
            position.round += 1
            position.step = 0
        step = escalation.steps[position.step]
        position.step += 1
        outside = _outside_its_time(settings, step, now)
        if step.wait is not None:
            if skipping or outside:
                continue
            if clock + step.wait > now:
                position.due_at = clock + step.wait
                return
            clock = now  # over already (a late apply): passed at once; the next wait counts from now
            continue
        assert step.notify is not None
        if outside:
            _skipped(session, incident, escalation, position, now, outside)
            skipping = True
            continue
        reached = await _notify(
            session, settings, incident, escalation, position, step.notify, now, key, known, since=clock
        )
        skipping = not reached
    position.due_at = None


def _outside_its_time(settings: Settings, step: Step, now: datetime) -> str | None:
    """Why ``step`` does not apply at ``now`` (its time intervals), or None when it does."""
    named = {n.name: n.time_intervals for n in settings.time_intervals}
    if step.active_time_intervals and not any(
        in_any(named.get(name, []), now) for name in step.active_time_intervals
    ):
        return "outside " + ", ".join(step.active_time_intervals)
    for name in step.mute_time_intervals:
        if in_any(named.get(name, []), now):
            return f"inside {name}"
    return None


def _skipped(
    session: AsyncSession,
    incident: Incident,
    escalation: Escalation,
    position: _Position,
    now: datetime,
    why: str,
) -> None:
    repository.add_timeline(
        session,
        incident.id,
        now,
        "step_skipped",
        {"escalation": escalation.name, "step": position.step - 1, "round": position.round, "reason": why},
    )


async def _notify(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    escalation: Escalation,
    position: _Position,
    notify: NotifyStep,
    now: datetime,
    key: bytes,
    known: _Paging,
    *,
    since: datetime,
) -> bool:
    """Pages the step's people and channels; False (nothing sent) when its schedule has nobody on
    call and it names nobody else. People's own rules count their delays from ``since``."""
    names = list(notify.users)
    timezone = settings.timezone
    if notify.schedule is not None:
        schedule = next((s for s in settings.schedules if s.name == notify.schedule), None)
        if schedule is not None:
            timezone = schedule.timezone
            overrides = [
                Override(user=o.user, start=o.start, end=o.end, id=o.id, created_at=o.created_at)
                for o in await repository.overrides(session, schedule.name, first=now, last=now)
            ]
            who = on_call(schedule, now, overrides)
            if who is not None:
                names.insert(0, who)
        if not names:
            _skipped(session, incident, escalation, position, now, f"nobody on call in {notify.schedule}")
            return False
    if known.paged is None:
        known.paged = await repository.was_paged(session, incident.id)
    # A "heartbeat missing" incident's first page says so in its headline (the alert pipeline itself
    # may be broken); any incident's later pages are escalations.
    first: MessageKind = "heartbeat" if incident.heartbeat else "trigger"
    kind: MessageKind = "escalate" if known.paged else first
    if known.alerts is None:
        known.alerts = await repository.alerts_of(session, incident.id)
    notification = messages.build(
        settings,
        incident,
        known.alerts,
        kind,
        mentions=messages.people(settings, names),
        timezone=timezone,
        signing_key=key,
        now=now,
    )
    outbox.enqueue(session, settings, incident.id, notify.channels, notification, now)
    known.paged = True
    if notify.channels:
        repository.add_timeline(
            session,
            incident.id,
            now,
            "escalated",
            {
                "escalation": escalation.name,
                "step": position.step - 1,
                "round": position.round,
                "kind": kind,
                "mentions": list(dict.fromkeys(names)),
                "channels": notify.channels,
            },
        )
    await personal.page(
        session, settings, incident, names, escalation.name, kind, now, key, alerts=known.alerts, since=since
    )
    return True


async def run_due(session: AsyncSession, settings: Settings, now: datetime, key: bytes) -> int:
    """Advances every due chain; returns how many.

    Each incident is locked before its chains and its people's pages (the order acks, resolves
    and webhooks use);
    one another replica holds right now is skipped (``SKIP LOCKED``) and looked at next pass.
    The incident's state is checked again under the lock: an ack that committed meanwhile wins.

    A step is due as of the journal's horizon for the incident (:mod:`app.alerts.horizon`): while
    its group has a webhook received before the step fell due still queued — its resolve, most
    often, applied a second later — the step waits for it, as it would have if the row had been
    applied at once (a resolve stops the chain; anything else lets it run a pass later). A "heartbeat
    missing" incident waits for the whole journal's rows received before its step: the Watchdog
    that comes back may be in any group. At most :data:`~app.alerts.horizon.ESCALATION_HOLD`: a
    journal that does not move pages anyway, and says so in the log.
    """
    advanced = 0
    due = await repository.due_escalation_incidents(session, now)
    due += [i for i in await repository.due_personal_incidents(session, now) if i not in due]
    if not due:
        return 0
    queued = await horizon.queued(session)
    for incident_id in due:
        incident = await repository.lock_incident(session, incident_id, skip_locked=True)
        if incident is None or incident.status != "triggered":
            continue
        if incident.snoozed_until is not None and incident.snoozed_until > now:
            continue
        waiting_since = queued.oldest if incident.heartbeat else queued.of_group(incident.group_key)
        as_of = horizon.as_of(now, waiting_since, longest=horizon.ESCALATION_HOLD)
        before = advanced
        for state in await repository.lock_due_escalations(session, incident_id, as_of):
            await advance(session, settings, incident, state, now, key)
            advanced += 1
        for person in await repository.lock_due_personal_pages(session, incident_id, as_of):
            await personal.advance(session, settings, incident, person, now, key)
            advanced += 1
        if advanced > before and waiting_since is not None and as_of > waiting_since:
            log.warning(
                "incident %s escalated although the alert journal has held a webhook received at %s "
                "for longer than %s (stuck?): it may have resolved it",
                incident_id,
                waiting_since.isoformat(),
                horizon.ESCALATION_HOLD,
            )
    return advanced

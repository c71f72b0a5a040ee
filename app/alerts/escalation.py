"""Escalation chains: notify steps write to the outbox, wait steps set when the chain resumes.

The state of each chain is stored (``alert_escalations``), not a sleeping task, so
delays survive restarts; any replica's worker picks up a due step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import messages, repository
from app.alerts.channels.base import MessageKind, Notification
from app.alerts.config import Escalation, NotifyStep
from app.alerts.models import Delivery, EscalationState, Incident, IncidentAlert
from app.alerts.oncall import Override, on_call
from app.config import Settings


def enqueue(
    session: AsyncSession,
    incident_id: int | None,
    channels: Sequence[str],
    notification: Notification,
    now: datetime,
) -> None:
    """Writes one notification per channel to the outbox, in the caller's transaction."""
    payload = messages.to_json(notification)
    session.add_all(
        Delivery(
            incident_id=incident_id,
            channel=channel,
            kind=notification.kind,
            payload=payload,
            status="pending",
            created_at=now,
            due_at=now,
            attempts=0,
        )
        for channel in channels
    )


async def start(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    escalations: list[str],
    now: datetime,
    key: bytes,
    *,
    alerts: Sequence[IncidentAlert] | None = None,
) -> None:
    """Starts each named chain of a new incident and runs its first steps right away (same
    transaction); each chain's state is written once, as it stands after those steps."""
    paging = _Paging(alerts=alerts, paged=False)
    for name in dict.fromkeys(escalations):
        state = EscalationState(incident_id=incident.id, escalation=name, step=0, round=0, due_at=now)
        await advance(session, settings, incident, state, now, key, paging=paging)
        session.add(state)


@dataclass
class _Paging:
    """What one pass already knows of an incident: its alerts, and whether anybody was paged."""

    alerts: Sequence[IncidentAlert] | None = None
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
) -> None:
    """Runs the chain from its current step until a wait, or its end (after ``repeat`` more rounds)."""
    known = paging or _Paging()
    escalation = next((e for e in settings.escalations if e.name == state.escalation), None)
    if escalation is None:
        state.due_at = None
        repository.add_timeline(
            session,
            incident.id,
            now,
            "escalated",
            {"escalation": state.escalation, "stopped": "no longer configured"},
        )
        return
    for _ in range(len(escalation.steps) * (escalation.repeat + 1) + 1):
        if state.step >= len(escalation.steps):
            if state.round >= escalation.repeat:
                state.due_at = None
                return
            state.round += 1
            state.step = 0
        step = escalation.steps[state.step]
        state.step += 1
        if step.wait is not None:
            state.due_at = now + step.wait
            return
        assert step.notify is not None
        await _notify(session, settings, incident, escalation, state, step.notify, now, key, known)
    state.due_at = None


async def _notify(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    escalation: Escalation,
    state: EscalationState,
    notify: NotifyStep,
    now: datetime,
    key: bytes,
    known: _Paging,
) -> None:
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
    if known.paged is None:
        known.paged = await repository.was_paged(session, incident.id)
    kind: MessageKind = "escalate" if known.paged else "trigger"
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
    enqueue(session, incident.id, notify.channels, notification, now)
    known.paged = True
    repository.add_timeline(
        session,
        incident.id,
        now,
        "escalated",
        {
            "escalation": escalation.name,
            "step": state.step - 1,
            "round": state.round,
            "kind": kind,
            "mentions": list(dict.fromkeys(names)),
            "channels": notify.channels,
        },
    )


async def run_due(session: AsyncSession, settings: Settings, now: datetime, key: bytes) -> int:
    """Advances every due chain; returns how many.

    Each incident is locked before its chains (the order acks, resolves and webhooks use);
    one another replica holds right now is skipped (``SKIP LOCKED``) and looked at next pass.
    The incident's state is checked again under the lock: an ack that committed meanwhile wins.
    """
    advanced = 0
    for incident_id in await repository.due_escalation_incidents(session, now):
        incident = await repository.lock_incident(session, incident_id, skip_locked=True)
        if incident is None or incident.status != "triggered":
            continue
        if incident.snoozed_until is not None and incident.snoozed_until > now:
            continue
        for state in await repository.lock_due_escalations(session, incident_id, now):
            await advance(session, settings, incident, state, now, key)
            advanced += 1
    return advanced

"""People's own rules: "critical: push now, call after 5 min if still unacknowledged".

When an escalation step reaches a person (named, or found on call) who has a rule for the
incident's severity (``users[].rules``, the first that names the severity, else the first
catch-all), their page starts: each step of the rule is sent through its channel ``after`` its
delay from then, while the incident stays triggered and not snoozed. The state is stored
(``alert_personal_pages``), so delays survive restarts and any replica's worker sends a due step;
the unique key on incident and person means one page per person, even when two steps (or two
replicas) name them at once. A later step naming them again restarts a page that has finished.

A step that fails for good — an unanswered or refused call, a channel that refused the message,
or one that kept failing until ``alerts.max_delivery_age`` — makes the next step of the rule due
at once (the outbox calls :func:`step_failed`): the rule moves on instead of waiting its delay.
An ack or a resolve stops every page and cancels their deliveries not yet being sent.

This module never sends anything itself: it writes to the outbox, in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import messages, outbox, repository
from app.alerts.channels.base import MessageKind
from app.alerts.models import AlertRow, Incident, PersonalPage
from app.config import Settings


async def page(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    names: Sequence[str],
    escalation: str,
    kind: MessageKind,
    now: datetime,
    key: bytes,
    *,
    alerts: Sequence[AlertRow] | None = None,
    since: datetime | None = None,
) -> list[str]:
    """Starts the page of each of ``names`` who has a rule for the incident, its delays counted from
    ``since`` (default ``now``; a journaled webhook's receipt), sending the steps due by ``now``;
    returns who is paged through a rule."""
    started_at = since or now
    users = {u.name: u for u in settings.users}
    reached: list[str] = []
    for name in dict.fromkeys(names):
        user = users.get(name)
        rule = user.rule_for(incident.severity) if user is not None else None
        if rule is None:
            continue
        steps = sorted(((s.channel, s.after.total_seconds()) for s in rule.steps), key=lambda s: s[1])
        started = await repository.start_personal_page(
            session,
            {
                "incident_id": incident.id,
                "user": name,
                "escalation": escalation,
                "steps": json.dumps(steps),
                "step": 0,
                "started_at": started_at,
                "due_at": started_at + timedelta(seconds=steps[0][1]),
            },
        )
        if started is None:
            continue  # their page is still running: it carries on as it is
        reached.append(name)
        await advance(session, settings, incident, started, now, key, first=kind, alerts=alerts)
    return reached


async def advance(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    state: PersonalPage,
    now: datetime,
    key: bytes,
    *,
    first: MessageKind = "escalate",
    alerts: Sequence[AlertRow] | None = None,
) -> None:
    """Sends every step of the person's rule that is due, and sets when the next one is."""
    steps: list[list[object]] = json.loads(state.steps)
    step, due_at = state.step, state.due_at
    while due_at is not None and due_at <= now and step < len(steps):
        channel = str(steps[step][0])
        if alerts is None:
            alerts = await repository.alerts_of(session, incident.id)
        kind: MessageKind = first if step == 0 else "escalate"
        notification = messages.build(
            settings,
            incident,
            alerts,
            kind,
            mentions=messages.people(settings, [state.user]),
            signing_key=key,
            ack_for=state.user,
            now=now,
        )
        outbox.enqueue(session, settings, incident.id, [channel], notification, now, page=(state.id, step))
        repository.add_timeline(
            session,
            incident.id,
            now,
            "escalated",
            {
                "escalation": state.escalation,
                "personal": True,
                "step": step,
                "kind": kind,
                "mentions": [state.user],
                "channels": [channel],
            },
        )
        step += 1
        if step < len(steps):
            due_at = max(state.started_at + timedelta(seconds=float(str(steps[step][1]))), now)
            if due_at > now:
                break
        else:
            due_at = None
    repository.record_personal_page_position(state, step, due_at)


async def step_failed(session: AsyncSession, page_id: int, step: int, now: datetime) -> None:
    """The delivery of ``step`` failed for good: the rule's next step is due now."""
    await repository.hurry_personal_page(session, page_id, step + 1, now)

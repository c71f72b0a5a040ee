"""What happens to an incident: acknowledged, snoozed, resolved, and the messages that tells.

An incident's life is ordered: opened, perhaps acknowledged (or snoozed), resolved —
``created_at <= acknowledged_at <= resolved_at`` — and every report and digest counts on it (time
to acknowledge and time to resolve, both from the opening; an ack after the resolve would make
the first longer than the second, and anything measured from the ack to the resolve negative).
A journaled webhook is applied after it was received (:mod:`app.alerts.journal`), and its resolve
is stamped with its receipt; an operator may act on the incident in between, while the resolve
waits in the journal. Since 2026-12-07 such a resolve is stamped no earlier than the incident's
last change (``updated_at``: its opening, an ack, a snooze, the alerts' last update): the person's
ack stands at the time they made it (it stopped the escalation then, and the on-call history counts
it as theirs), the resolve follows it, and its timeline entry keeps when Alertmanager said so
(``received_at``). Before, ``resolved_at`` could precede ``acknowledged_at``. The resolve is late
by at most the apply's lag (a second on a quiet system), and only when somebody acted within it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import messages, outbox, repository
from app.alerts.channels.registry import pages_only
from app.alerts.models import AlertRow, Incident
from app.config import Settings


async def tell_paged(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    kind: str,
    now: datetime,
    key: bytes | None,
    *,
    alerts: Sequence[AlertRow] | None = None,
) -> None:
    """Sends an update or resolved message to every channel already paged, mentioning those paged."""
    paged = await repository.paged_deliveries(session, incident.id)
    if not paged:
        return
    configs = {c.name: c for c in settings.channels}
    channels = [c for c in dict.fromkeys(channel for channel, _ in paged) if not pages_only(configs.get(c))]
    names: list[str] = []
    timezone = settings.timezone
    for _, payload in paged:
        earlier = messages.from_json(payload)
        names.extend(p.name for p in earlier.mentions)
        timezone = earlier.timezone
    if alerts is None:
        alerts = await repository.alerts_of(session, incident.id)
    notification = messages.build(
        settings,
        incident,
        alerts,
        "update" if kind == "update" else "resolve",
        mentions=messages.people(settings, names),
        timezone=timezone,
        signing_key=key,
        now=now,
    )
    outbox.enqueue(session, settings, incident.id, channels, notification, now)


async def resolve(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    now: datetime,
    *,
    actor: str,
    key: bytes | None,
    alerts: Sequence[AlertRow] | None = None,
    at: datetime | None = None,
) -> None:
    """Resolves the incident as of ``at`` (default ``now``: a journaled webhook's receipt, when
    Alertmanager said so), but never before its last change (see the module's docstring); the
    resolved message to those paged goes out ``now``."""
    told = at or now
    when = max(told, incident.updated_at) if incident.updated_at is not None else told
    repository.mark_resolved(incident, when, actor)
    await repository.stop_paging(session, incident.id)
    detail = {} if when == told else {"received_at": told.isoformat()}
    repository.add_timeline(session, incident.id, when, "resolved", detail, actor=actor)
    if incident.muted is None:
        await tell_paged(session, settings, incident, "resolve", now, key, alerts=alerts)


async def acknowledge(
    session: AsyncSession, settings: Settings, incident: Incident, now: datetime, *, actor: str
) -> bool:
    """Stops the escalation; False when the incident was not triggered (nothing changes)."""
    if incident.status != "triggered":
        return False
    repository.mark_acknowledged(incident, now, actor)
    await repository.stop_paging(session, incident.id)
    repository.add_timeline(session, incident.id, now, "acknowledged", {}, actor=actor)
    return True


async def snooze(
    session: AsyncSession, incident: Incident, minutes: int, now: datetime, *, actor: str
) -> datetime:
    """Nothing of the incident's escalation runs for ``minutes``; then it carries on where it was."""
    until = now + timedelta(minutes=minutes)
    repository.mark_snoozed(incident, until, now)
    await repository.delay_escalations(session, incident.id, until)
    await repository.delay_personal_pages(session, incident.id, until)
    repository.add_timeline(session, incident.id, now, "snoozed", {"until": until.isoformat()}, actor=actor)
    return until

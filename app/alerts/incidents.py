"""What happens to an incident: acknowledged, snoozed, resolved, and the messages that tells."""

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
    Alertmanager said so); the resolved message to those paged goes out ``now``."""
    when = at or now
    repository.mark_resolved(incident, when, actor)
    await repository.stop_paging(session, incident.id)
    repository.add_timeline(session, incident.id, when, "resolved", {}, actor=actor)
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

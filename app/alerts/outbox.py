"""Writing to the outbox: what every page, update, resolution and notice goes through.

Rows are written in the caller's transaction (with the change that caused them), and sent by
the delivery worker (:mod:`app.alerts.delivery`). This module never sends anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import messages, repository
from app.alerts.channels import registry
from app.alerts.channels.base import Notice, Notification
from app.alerts.channels.config import ChannelConfig
from app.config import Settings


def enqueue(
    session: AsyncSession,
    settings: Settings,
    incident_id: int | None,
    channels: Sequence[str],
    notification: Notification | Notice,
    now: datetime,
    *,
    page: tuple[int, int] | None = None,
) -> None:
    """Writes the notification to the outbox, in the caller's transaction: one row per channel, or,
    for a channel that addresses one person (a push topic, a phone), one row per person it can
    reach, so that each is sent, retried and recorded on its own. ``page`` is (personal page,
    step) when a person's own rule sends it."""
    configs = {c.name: c for c in settings.channels}
    for channel in channels:
        config = configs.get(channel)
        for one in _addressed(config, notification):
            payload = messages.notice_to_json(one) if isinstance(one, Notice) else messages.to_json(one)
            repository.add_delivery(
                session,
                {
                    "incident_id": incident_id,
                    "channel": channel,
                    "kind": "notice" if isinstance(one, Notice) else one.kind,
                    "payload": payload,
                    "status": "pending",
                    "created_at": now,
                    "due_at": now,
                    "attempts": 0,
                    "page_id": page[0] if page else None,
                    "page_step": page[1] if page else None,
                },
            )


def _addressed(config: ChannelConfig | None, message: Notification | Notice) -> list[Notification | Notice]:
    """``message`` once, or once per person a one-person channel can reach (at least once, so a
    channel that can reach nobody says so in its own delivery's failure)."""
    if not registry.per_person(config) or len(message.mentions) <= 1:
        return [message]
    reachable = [p for p in message.mentions if registry.reaches(config, p)]
    return [replace(message, mentions=[p]) for p in reachable] or [message]

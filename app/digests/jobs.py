"""Scheduled digests: each at its configured time in its time zone, and, every
:data:`RETRY_INTERVAL` from start-up on, any digest whose time passed less than :data:`CATCH_UP`
ago and that was not sent (Panorama was restarting then, or the digest was held while the alert
journal still held webhooks of its period: :class:`app.digests.errors.DigestHeld`). Every replica
runs them; the ``digest_sends`` row lets one send each digest once per day."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.digests import service
from app.digests.errors import DigestHeld

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger("panorama.digests")

CATCH_UP = timedelta(hours=3)
STARTUP_DELAY = timedelta(seconds=20)
RETRY_INTERVAL = timedelta(minutes=1)


async def send_due(context: AppContext, name: str) -> None:
    if context.sessions is None or not context.schema_ready or context.stopping:
        return
    settings = context.settings
    try:
        config = service.digest_named(settings, name)
        day = service.due_day(config, settings, datetime.now(UTC))
        wake = context.alerts.wake if context.alerts is not None else None
        answer = await service.send(
            context.sessions, settings, name, day.isoformat(), by="schedule", wake=wake
        )
    except DigestHeld as held:
        log.info("digest %s held: %s", name, held.message)
        return
    except Exception:
        log.exception("digest %s could not be sent", name)
        return
    log.info("digest %s for %s: %s", name, answer.day, "queued" if answer.sent else "already sent")


async def catch_up(context: AppContext) -> None:
    """Sends the digests whose time today passed within :data:`CATCH_UP` and that were not sent."""
    if context.sessions is None or not context.schema_ready or context.stopping:
        return
    now = datetime.now(UTC)
    for config in context.settings.digests:
        day = service.due_day(config, context.settings, now)
        due = service.due_at(config, context.settings, day)
        if due <= now < due + CATCH_UP and not await service.was_sent(context.sessions, config.name, day):
            await send_due(context, config.name)


def register(scheduler: AsyncIOScheduler, context: AppContext) -> None:
    settings = context.settings
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    for config in settings.digests:
        scheduler.add_job(
            send_due,
            CronTrigger(
                hour=config.schedule.hour,
                minute=config.schedule.minute,
                timezone=config.zone(settings.timezone),
            ),
            id=f"digests.{config.name}",
            args=[context, config.name],
            **options,
        )
    if settings.digests:
        scheduler.add_job(
            catch_up,
            IntervalTrigger(seconds=RETRY_INTERVAL.total_seconds()),
            next_run_time=datetime.now(UTC) + STARTUP_DELAY,
            id="digests.catch_up",
            args=[context],
            **options,
        )

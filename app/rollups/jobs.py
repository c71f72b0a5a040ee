"""Scheduled rollup work: catch up missed days (daily and on a retry interval), apply retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.rollups import service

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger("panorama.rollups")

STARTUP_DELAY = timedelta(seconds=5)


async def catch_up(context: AppContext) -> None:
    prometheus = context.backends.prometheus  # None: only the on-call history is rolled up
    if context.sessions is None:
        return
    if not context.schema_ready or context.stopping:
        return  # the database is not migrated (said once at start), or the process is stopping
    try:
        await service.catch_up(context.sessions, prometheus, context.settings)
    except Exception:
        log.exception("rollup catch-up failed")
    try:
        pending = await service.history_pending_days(context.sessions, context.settings)
        context.metrics.rollup_history_pending.set(len(pending))
        if pending:
            log.warning(
                "the on-call history of %d rolled-up days is pending: the alert journal has not moved",
                len(pending),
                extra={"history": "pending", "days": [day.isoformat() for day in pending]},
            )
    except Exception:
        log.exception("reading the rollups' pending histories failed")
    try:  # months stored before their daily report rows existed, or with another configuration
        written = await service.render_stale(context.sessions, context.settings)
        if written:
            log.info("rollup report rows written", extra={"months": written})
    except Exception:
        log.exception("writing the rollups' report rows failed")


async def daily(context: AppContext) -> None:
    await catch_up(context)
    if context.sessions is not None:
        try:
            await service.apply_retention(context.sessions, context.settings)
        except Exception:
            log.exception("rollup retention failed")


def register(scheduler: AsyncIOScheduler, context: AppContext) -> None:
    settings = context.settings
    if not settings.rollups.enabled:
        return
    schedule = settings.rollups.schedule
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600, "args": [context]}
    scheduler.add_job(
        daily,
        CronTrigger(hour=schedule.hour, minute=schedule.minute, timezone=settings.tzinfo),
        id="rollups.daily",
        **options,
    )
    scheduler.add_job(
        catch_up,
        IntervalTrigger(seconds=settings.rollups.retry_interval.total_seconds()),
        id="rollups.catch_up",
        next_run_time=datetime.now(UTC) + STARTUP_DELAY,
        **options,
    )

"""The in-process scheduler (APScheduler 3, memory job store rebuilt from the configuration).

Replicas do not share a job store: each runs the same jobs, and the jobs
themselves coordinate through the database (claims, advisory locks, idempotent
writes), so running them on several replicas at once is safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.rollups import jobs as rollup_jobs

if TYPE_CHECKING:
    from app.context import AppContext


def register_jobs(scheduler: AsyncIOScheduler, context: AppContext) -> None:
    """(Re)creates every feature's jobs from the current settings."""
    scheduler.remove_all_jobs()
    rollup_jobs.register(scheduler, context)


def start_scheduler(context: AppContext) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=context.settings.tzinfo)
    register_jobs(scheduler, context)
    scheduler.start()
    return scheduler

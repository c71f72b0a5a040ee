"""The in-process scheduler (APScheduler 3, memory job store rebuilt from the configuration).

Replicas do not share a job store: each runs the same jobs, and the jobs
themselves coordinate through the database (claims, advisory locks, idempotent
writes), so running them on several replicas at once is safe.

APScheduler's own shutdown cancels running coroutine jobs without waiting for them;
a cancelled job would then record its outcome on a database engine already disposed
(and hang the event loop's teardown). :func:`stop_scheduler` cancels them and waits,
so that the lifespan disposes the engine only once every job has let go of it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.digests import jobs as digest_jobs
from app.rollups import jobs as rollup_jobs

if TYPE_CHECKING:
    from app.context import AppContext


class _TrackingExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """The asyncio executor, telling which job tasks are still running."""

    def running(self) -> list[asyncio.Future[Any]]:
        return [future for future in self._pending_futures if not future.done()]


def register_jobs(scheduler: AsyncIOScheduler, context: AppContext) -> None:
    """(Re)creates every feature's jobs from the current settings."""
    scheduler.remove_all_jobs()
    rollup_jobs.register(scheduler, context)
    digest_jobs.register(scheduler, context)


def start_scheduler(context: AppContext) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=context.settings.tzinfo, executors={"default": _TrackingExecutor()})
    register_jobs(scheduler, context)
    scheduler.start()
    return scheduler


async def stop_scheduler(scheduler: AsyncIOScheduler, timeout_s: float) -> int:
    """Starts no more jobs, cancels those running and waits up to ``timeout_s`` for them to
    finish cleaning up (a rollup releases its claim). Returns how many did not finish in time."""
    executor = scheduler._lookup_executor("default")
    running = executor.running() if isinstance(executor, _TrackingExecutor) else []
    scheduler.shutdown(wait=False)  # cancels the running jobs' tasks
    if not running:
        return 0
    _done, pending = await asyncio.wait(running, timeout=timeout_s)
    return len(pending)

"""What one running Panorama holds: settings, database, backend clients, tokens, metrics.

The app factory builds one :class:`AppContext`; the lifespan opens it (engine,
clients) and closes it. A configuration reload swaps settings, tokens and the
clients of backends whose settings changed, without a restart.

Closing is orderly, within ``server.shutdown_grace``: no new work is taken (the scheduler
starts no job, the alert worker claims no batch); rollups running are cancelled and give their
day back; deliveries in flight are sent and recorded; only then are the clients closed and the
engine disposed. Nothing may touch the engine after it is disposed: that used to hang the
event loop's teardown (and a pod ignored SIGTERM until it was killed mid-claim).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import db, migrations
from app.alerts.runtime import AlertRuntime
from app.backends.registry import BACKEND_NAMES, Backends, Closable
from app.config import Settings, with_public_url
from app.observability import Metrics, update_log_settings
from app.scheduler import register_jobs, start_scheduler, stop_scheduler
from app.screen.cache import ScreenCache
from app.security import TokenRegistry

log = logging.getLogger("panorama")

# Requests still running on a replaced client get this long before it is closed.
RETIRED_CLIENT_GRACE_S = 60.0
# Work cancelled at the end of the grace still gets this long to give its claims back.
CLEANUP_FLOOR_S = 2.0
# How often a process started on an unmigrated database looks again.
SCHEMA_RECHECK_S = 10.0


def token_registry(settings: Settings) -> TokenRegistry:
    return TokenRegistry((t.name, t.role, t.token.get_secret_value()) for t in settings.auth.tokens)


@dataclass
class AppContext:
    settings: Settings
    config_path: Path | None = None
    served_url: str | None = None  # what alerts.public_url defaults to (see config.with_public_url)
    tracer_provider: TracerProvider = field(default_factory=TracerProvider)
    metrics: Metrics = field(default_factory=Metrics)
    tokens: TokenRegistry = field(init=False)
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    backends: Backends = field(default_factory=Backends)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    scheduler: AsyncIOScheduler | None = None
    alerts: AlertRuntime | None = None
    schema_ready: bool = False
    stopping: bool = False
    screen: ScreenCache = field(init=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _retiring: dict[asyncio.Task[None], Closable] = field(default_factory=dict)
    _deadline: float | None = None
    _schema_watch: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.settings = with_public_url(self.settings, self.served_url)
        self.tokens = token_registry(self.settings)
        self.screen = ScreenCache(self.metrics.registry)  # per process: see app/screen/cache.py
        self.metrics.backend_call_listeners.append(self.screen.observe_backend_call)

    async def open(self) -> None:
        self.engine = db.create_engine(self.settings.database)
        self.sessions = db.create_session_factory(self.engine)
        self.metrics.watch_database(self.engine)
        self.backends = self._build_backends(self.settings, BACKEND_NAMES)
        self.alerts = AlertRuntime(
            self.sessions,
            lambda: self.settings,
            observe=self.metrics.observe_delivery,
            observe_journal=self.metrics.observe_journal,
            ready=lambda: self.schema_ready,
            backends=lambda: self.backends,
        )
        if not await self._check_schema(first=True):
            self._schema_watch = asyncio.get_running_loop().create_task(self._watch_schema())
        self.scheduler = start_scheduler(self)
        self.alerts.start_applier()  # webhooks answered 202 become incidents in every process
        if self.settings.alerts.worker:
            self.alerts.start()

    def begin_shutdown(self) -> None:
        """The process was told to stop (SIGTERM): the grace starts now, and no new work is taken.
        Safe to call from a signal handler."""
        if self._deadline is None:
            loop = asyncio.get_event_loop()
            self._deadline = loop.time() + self.settings.server.shutdown_grace.total_seconds()
            self.stopping = True
            if self.alerts is not None:
                loop.call_soon_threadsafe(self.alerts.request_stop)

    async def close(self) -> None:
        """Stops within what is left of the grace (see the module's docstring)."""
        self.begin_shutdown()
        loop = asyncio.get_running_loop()
        assert self._deadline is not None

        def left() -> float:
            return max(self._deadline - loop.time(), CLEANUP_FLOOR_S) if self._deadline else CLEANUP_FLOOR_S

        if self._schema_watch is not None:
            self._schema_watch.cancel()
        for task in list(self._tasks):  # queued rollups: restartable, they give their days back
            task.cancel()
        stopping: list[asyncio.Future[Any]] = [asyncio.gather(*self._tasks, return_exceptions=True)]
        if self.scheduler is not None:
            stopping.append(asyncio.ensure_future(stop_scheduler(self.scheduler, left())))
        if self.alerts is not None:
            stopping.append(asyncio.ensure_future(self.alerts.stop(left())))
        _done, late = await asyncio.wait(stopping, timeout=left() + CLEANUP_FLOOR_S)
        if late:
            log.warning("shutdown grace is over: work still running is abandoned, its claims expire")
        for task, client in list(self._retiring.items()):
            task.cancel()
            await client.aclose()
        await self.backends.aclose()
        if self.engine is not None:
            await self.engine.dispose()
        self.tracer_provider.shutdown()

    async def _check_schema(self, *, first: bool = False) -> bool:
        """Whether the database is migrated to this version's head; says so once, clearly, when not."""
        assert self.engine is not None
        head = migrations.head_revision()
        try:
            current = await asyncio.wait_for(migrations.current_revision(self.engine), timeout=10)
        except Exception as exc:  # unreachable: readiness reports it; the watch looks again
            if first:
                log.error("the database cannot be reached: %s", type(exc).__name__)
            return False
        self.schema_ready = current == head
        if not self.schema_ready and first:
            log.error(
                "the database is not migrated (at revision %s, this version needs %s): "
                "run `panorama migrate`; until then readiness fails and background work waits",
                current or "none",
                head,
            )
        return self.schema_ready

    async def _watch_schema(self) -> None:
        never = asyncio.Event()  # only the interval ends a wait
        while not await self._check_schema():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(never.wait(), timeout=SCHEMA_RECHECK_S)
        log.info("the database is migrated now: background work starts")

    def apply(self, new: Settings) -> list[str]:
        """Switches to ``new`` settings and returns the names of the sections that changed.

        The database section is kept as it was: a different database needs a restart.
        """
        old = self.settings
        new = with_public_url(new, self.served_url).model_copy(update={"database": old.database})
        changed = [name for name in type(new).model_fields if getattr(new, name) != getattr(old, name)]
        replaced = [name for name in BACKEND_NAMES if name in changed]
        if replaced:
            fresh = self._build_backends(new, replaced)
            for name in replaced:
                self._retire(getattr(self.backends, name))
                setattr(self.backends, name, getattr(fresh, name))
        self.settings = new
        self.tokens = token_registry(new)
        update_log_settings(new.logging.level, new.secrets())
        if self.scheduler is not None:
            register_jobs(self.scheduler, self)
        return changed

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Runs ``work`` in the background; it is cancelled when the app stops."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def _build_backends(self, settings: Settings, names: list[str]) -> Backends:
        backends = Backends.from_settings(settings, names, observer=self.metrics.observe_backend_call)
        for client in backends.http_clients():
            HTTPXClientInstrumentor.instrument_client(client.http, tracer_provider=self.tracer_provider)
        return backends

    def _retire(self, client: Closable | None) -> None:
        if client is None:
            return

        async def close_later() -> None:
            await asyncio.sleep(RETIRED_CLIENT_GRACE_S)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring[task] = client
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

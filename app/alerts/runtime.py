"""What the alerting feature keeps while Panorama runs: the channels' HTTP client, the ack-link
signing key, and the worker that runs escalations, heartbeats and deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import ack, delivery, escalation, heartbeats
from app.config import Settings

log = logging.getLogger("panorama.alerts")

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class AlertRuntime:
    sessions: async_sessionmaker[AsyncSession]
    settings: Callable[[], Settings]
    observe: delivery.Observer = delivery.ignore_delivery
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": "panorama"})
    )
    _key: bytes | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def signing_key(self) -> bytes:
        if self._key is None:
            self._key = await ack.signing_key(self.sessions, self.settings())
        return self._key

    def wake(self) -> None:
        """Runs the worker now (e.g. right after a webhook stored new notifications)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.http.aclose()

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass: due escalation steps, overdue heartbeats, then due deliveries."""
        settings = self.settings()
        moment = now or datetime.now(UTC)
        key = await self.signing_key()
        async with self.sessions.begin() as session:
            await escalation.run_due(session, settings, moment, key)
            await heartbeats.check(session, settings, moment, key)
        return await delivery.deliver_due(
            self.sessions, settings, self.http, worker=WORKER, now=moment, observe=self.observe
        )

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("alert worker pass failed")
                handled = 0
            if handled:
                continue  # more may be due; go again at once
            interval = self.settings().alerts.worker_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()

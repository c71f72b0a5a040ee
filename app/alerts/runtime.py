"""What the alerting feature keeps while Panorama runs: the channels' HTTP client, the ack-link
signing key, and the worker: one loop for escalations and heartbeats, and one sender task per
channel with deliveries due, so that a slow channel never delays an escalation or another channel.
Every stored webhook wakes the sender loop; in a storm the wakes are merged (a pass at most every
``DISPATCH_GAP_S``), and a running sender claims its channel's next batch itself.

Stopping is orderly: no new batch is claimed, batches in flight are sent and recorded within
the grace the caller gives; what is still running after it is cancelled, and rows it had
claimed are left to their (short) lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import ack, delivery, enrichment, escalation, handovers, heartbeats, intake, repository
from app.alerts.groupcommit import GroupCommit
from app.alerts.schemas import Accepted
from app.backends.registry import Backends
from app.config import Settings
from app.db import WORKER

log = logging.getLogger("panorama.alerts")

# Every stored webhook wakes the sender loop, and each of its passes asks the database which channels
# have deliveries due (~1.4 ms of the event loop's CPU on SQLite, bench/delivery_cpu.py): in a storm,
# wakes closer than this are merged into one pass. A lone page is still looked at at once.
DISPATCH_GAP_S = 0.25


@dataclass
class AlertRuntime:
    sessions: async_sessionmaker[AsyncSession]
    settings: Callable[[], Settings]
    observe: delivery.Observer = delivery.ignore_delivery
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": "panorama"})
    )
    ready: Callable[[], bool] = lambda: True  # False while the database is not migrated: wait
    backends: Callable[[], Backends] = Backends  # where pages find their context (logs, traces)
    _key: bytes | None = None
    _wake_escalations: asyncio.Event = field(default_factory=asyncio.Event)
    _wake_deliveries: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _senders: dict[str, asyncio.Task[int]] = field(default_factory=dict)
    # Channels whose rate limit holds everything back, until when: no sender is started for them
    # before (in a storm every webhook wakes the worker, and each wake re-checked a full minute).
    _held: dict[str, datetime] = field(default_factory=dict)
    # Channels the dispatch pass found due while their sender ran: looked at again when it ends (it
    # may have made its last claim before their rows were committed).
    _look_again: set[str] = field(default_factory=set)
    _stopping: bool = False
    _enricher: enrichment.Enricher | None = None
    intake: GroupCommit[intake.Webhook, Accepted] = field(init=False)

    def __post_init__(self) -> None:
        self.intake = GroupCommit(functools.partial(intake.store, self.sessions))

    async def signing_key(self) -> bytes:
        if self._key is None:
            self._key = await ack.signing_key(self.sessions, self.settings())
        return self._key

    async def enricher(self) -> enrichment.Enricher:
        """What adds context to pages as they are sent: the backends, and the key of view links."""
        if self._enricher is None:
            self._enricher = enrichment.Enricher(self.backends, self.sessions, await self.signing_key())
        return self._enricher

    def wake(self) -> None:
        """Looks at the outbox now (e.g. right after a webhook stored new notifications)."""
        self._wake_deliveries.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._loop(self._escalate_pass, self._wake_escalations), name="escalations"),
            loop.create_task(
                self._loop(self._dispatch_pass, self._wake_deliveries, gap_s=DISPATCH_GAP_S),
                name="deliveries",
            ),
        ]

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Claims nothing more from now on; batches in flight carry on."""
        self._stopping = True
        self._wake_escalations.set()
        self._wake_deliveries.set()

    async def stop(self, grace_s: float = 0.0) -> None:
        """Claims nothing more; lets batches in flight finish for up to ``grace_s``, then cancels."""
        self.request_stop()
        running: list[asyncio.Task[Any]] = [*self._tasks, *self._senders.values()]
        if running and grace_s > 0:
            await asyncio.wait(running, timeout=grace_s)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await self.http.aclose()

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass, start to end: due escalation steps, overdue heartbeats, then every due delivery."""
        moment = now or datetime.now(UTC)
        await self.escalate(moment)
        return await delivery.deliver_due(
            self.sessions,
            self.settings(),
            self.http,
            worker=WORKER,
            now=moment,
            observe=self.observe,
            enricher=await self.enricher(),
        )

    async def escalate(self, now: datetime) -> int:
        """Overdue heartbeats, due escalation steps (chains and people's rules) and hand-overs to
        announce, each in its own transaction (heartbeat rows, then incidents, then their chains:
        the lock order every writer follows)."""
        settings = self.settings()
        key = await self.signing_key()
        async with self.sessions.begin() as session:
            opened = await heartbeats.check(session, settings, now, key)
        async with self.sessions.begin() as session:
            advanced = await escalation.run_due(session, settings, now, key)
            await delivery.prune_ledger(session, now)
        announced = 0
        if any(schedule.notices for schedule in settings.schedules):
            async with self.sessions.begin() as session:
                announced = await handovers.announce_due(session, settings, now)
        if opened or advanced or announced:
            self.wake()
        return opened + advanced + announced

    # --- the background loops -------------------------------------------------------------

    async def _escalate_pass(self) -> bool:
        return await self.escalate(datetime.now(UTC)) > 0

    async def _dispatch_pass(self) -> bool:
        """Starts a sender for each channel with due deliveries that has none running."""
        now = datetime.now(UTC)
        async with self.sessions() as session:
            due = await repository.due_channels(session, now)
        for channel in due:
            held = self._held.get(channel)
            if held is not None and held > now:
                continue
            if channel in self._senders:  # it may be past its last claim: look again when it ends
                self._look_again.add(channel)
            elif not self._stopping:
                task = asyncio.get_running_loop().create_task(self._send(channel), name=f"send-{channel}")
                self._senders[channel] = task
                task.add_done_callback(self._sender_done)
        return False

    def _sender_done(self, task: asyncio.Task[int]) -> None:
        for name, running in list(self._senders.items()):
            if running is task:
                del self._senders[name]
                if name in self._look_again:
                    self._look_again.discard(name)
                    self._wake_deliveries.set()

    async def _send(self, channel: str) -> int:
        try:
            return await delivery.drain_channel(
                self.sessions,
                self.settings(),
                self.http,
                channel,
                worker=WORKER,
                observe=self.observe,
                stopping=lambda: self._stopping,
                enricher=await self.enricher(),
                hold=self._held.__setitem__,
            )
        except (SQLAlchemyError, OSError):
            log.exception("deliveries to %s failed; retrying on the next pass", channel)
            return 0

    async def _loop(self, run_pass: Callable[[], Any], wake: asyncio.Event, *, gap_s: float = 0.0) -> None:
        """Runs ``run_pass`` when woken, every ``worker_interval`` otherwise, and at once again while
        it says it was busy; passes woken start at least ``gap_s`` apart (wakes in between are one)."""
        failures = 0
        clock = asyncio.get_running_loop().time
        while not self._stopping:
            started = clock()
            busy = False
            if self.ready():
                try:
                    busy = await run_pass()
                    failures = 0
                except Exception:
                    failures += 1
                    if failures == 1 or failures % 100 == 0:  # not a traceback every pass
                        log.exception("alert worker pass failed", extra={"failures": failures})
            if busy:
                continue  # more may be due; go again at once
            interval = self.settings().alerts.worker_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)
            pause = started + gap_s - clock()
            if pause > 0 and not self._stopping:
                await asyncio.sleep(pause)
            wake.clear()

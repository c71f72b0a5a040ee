"""What the alerting feature keeps while Panorama runs: the channels' HTTP client, the ack-link
signing key, the journal's applier, and the worker: one loop for escalations and heartbeats, and
one sender task per channel with deliveries due, so that a slow channel never delays an escalation
or another channel. Every applied webhook wakes the sender loop; in a storm the wakes are merged (a
pass at most every ``DISPATCH_GAP_S``), and a running sender claims its channel's next batch itself.

The applier (:mod:`app.alerts.journal`) runs in every process, whatever ``alerts.worker`` says:
that flag keeps a process from *sending* (escalations, deliveries: e.g. a replica kept off the
chat robots), while a webhook a process answered 202 must become an incident even when no
replica sends (an incident, an ack link and the pages' rows are what the worker later sends).
It is woken by each webhook this process journals, and polls every ``JOURNAL_POLL_S`` for rows
other replicas (or a crashed process) left. Answers come first: while webhooks keep arriving it
holds off (at most ``JOURNAL_HOLD_S`` for the oldest local row), then applies in batches of
``JOURNAL_BATCH`` rows, each one transaction, between which the queued answers get the writer;
a lone webhook on a quiet system is applied at once.

Stopping is orderly: no new batch is claimed, batches in flight are sent and recorded within
the grace the caller gives; what is still running after it is cancelled, and rows it had
claimed are left to their (short) lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import ack, delivery, enrichment, escalation, handovers, heartbeats, journal, repository
from app.alerts.groupcommit import GroupCommit
from app.backends.registry import Backends
from app.config import Settings
from app.db import WORKER

log = logging.getLogger("panorama.alerts")

# Every stored webhook wakes the sender loop, and each of its passes asks the database which channels
# have deliveries due (~1.4 ms of the event loop's CPU on SQLite, bench/delivery_cpu.py): in a storm,
# wakes closer than this are merged into one pass. A lone page is still looked at at once.
DISPATCH_GAP_S = 0.25

# The journal's applier (see the module's docstring; figures in docs/performance.md).
JOURNAL_BATCH = 64  # rows claimed per transaction: bounds how long answers wait for the writer
JOURNAL_POLL_S = 1.0  # rows left by other replicas or a crashed process are looked for this often
JOURNAL_QUIET_S = 0.02  # "webhooks keep arriving": another arrived this recently, or answers wait
JOURNAL_HOLD_S = 1.0  # the longest a local row waits for the storm to pass before applying starts
JOURNAL_PRUNE_S = 600.0  # applied rows older than journal.KEEP are deleted this often
JOURNAL_BACKOFF_S = (0.1, 10.0)  # after a database error: first and longest pause
# Answers first for the senders too: a batch of pages waits while webhook answers wait, at most this
# long (far under a claim's lease, which outlasts the send by 15 s). Measured in the storm (bench/
# alert_storm.py, worker on): the pages of one phase sent during the next had cut the answering
# ratio to bare from 0.53 (worker off) to 0.28, and p99 from 3.5x to 9.4x bare's.
SEND_HOLD_S = 0.5


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
    # The journal: rows inserted by the webhooks (group-committed), applied by the applier task.
    journaling: GroupCommit[journal.Received, int] = field(init=False)
    # One applier pass: rows still queued (None: the pass failed), the applied rows' lags, rows given up,
    # and the age in seconds of the oldest row queued when the pass began (None: not read).
    observe_journal: Callable[[int | None, Sequence[float], int, float | None], None] = (
        lambda _b, _l, _f, _a: None
    )
    _wake_applier: asyncio.Event = field(default_factory=asyncio.Event)
    _stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: int = 0  # webhooks journaled here since the applier's last pass began
    _last_arrival: float = 0.0
    _waiting_since: float | None = None  # the first of them (the oldest local row), loop time
    _applier: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.journaling = GroupCommit(functools.partial(journal.insert, self.sessions))

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

    def journaled(self) -> None:
        """A webhook's row was committed here: the applier looks at once (or after the storm)."""
        now = asyncio.get_running_loop().time()
        self._arrived += 1
        self._last_arrival = now
        if self._waiting_since is None:
            self._waiting_since = now
        self._wake_applier.set()

    def start_applier(self) -> None:
        """Starts applying the journal (every process, worker or not: see the module's docstring)."""
        self._applier = asyncio.get_running_loop().create_task(self._apply_loop(), name="alert-journal")
        self._tasks.append(self._applier)

    def start(self) -> None:
        """Starts the worker: escalations and deliveries."""
        loop = asyncio.get_running_loop()
        self._tasks += [
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
        self._stop_event.set()
        self._wake_applier.set()
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
                announced = await handovers.announce_due(session, settings, now, key)
        if opened or advanced or announced:
            self.wake()
        return opened + advanced + announced

    # --- the journal's applier -------------------------------------------------------------

    async def apply_journal(self) -> journal.Pass:
        """One batch of the journal applied (see :func:`app.alerts.journal.apply_next`)."""
        done = await journal.apply_next(
            self.sessions, self.settings(), await self.signing_key(), limit=JOURNAL_BATCH
        )
        if done.changed:
            self.wake()
        return done

    async def _apply_loop(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        retrying = 0  # passes in a row that only counted failed applies of rows
        pruned_at: float | None = None
        while not self._stopping:
            if not self.ready():
                await self._pause(JOURNAL_POLL_S)
                continue
            self._arrived = 0
            backlog: journal.Backlog | None = None
            try:
                # A read first (SQLite: a reader connection, no write lock taken on an idle system).
                backlog = await journal.backlog(self.sessions)
                done = await self.apply_journal() if backlog.rows else journal.Pass()
                self.observe_journal(
                    max(backlog.rows - done.applied - done.failed, 0),
                    done.lags,
                    done.failed,
                    backlog.age(journal.utcnow()),
                )
                if pruned_at is None or loop.time() - pruned_at >= JOURNAL_PRUNE_S:
                    pruned_at = loop.time()
                    await journal.prune(self.sessions, journal.utcnow())
                failures = 0
            except Exception:
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.exception("applying the alert journal failed; retrying", extra={"failures": failures})
                # The oldest row's age still shows (a database refusing the applies, not the reads).
                self.observe_journal(
                    None, (), 0, backlog.age(journal.utcnow()) if backlog is not None else None
                )
                first, longest = JOURNAL_BACKOFF_S
                await self._pause(min(first * 2 ** (failures - 1), longest))
                continue
            if done.retried and not (done.applied or done.failed):
                # Rows whose apply fails (each counted, given up after its limit): not again at once.
                retrying += 1
                first, longest = JOURNAL_BACKOFF_S
                await self._pause(min(first * 2 ** (retrying - 1), longest))
                continue
            retrying = 0
            if done.claimed and not (done.applied or done.failed):
                await self._pause(JOURNAL_QUIET_S)  # all held back by rows another replica applies
                continue
            if done.claimed >= JOURNAL_BATCH:
                await self._answers_first()  # more is queued: the next batch, after the answers
                continue
            # Everything journaled here before the pass is applied; what arrived during it waits.
            self._waiting_since = loop.time() if self._arrived else None
            if self._arrived == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_applier.wait(), timeout=JOURNAL_POLL_S)
            self._wake_applier.clear()
            await self._answers_first()

    async def _answers_first(self) -> None:
        """Holds off while webhooks keep arriving (their answers wait for the same writer and
        loop), until they stop or the oldest local row has waited ``JOURNAL_HOLD_S``."""
        clock = asyncio.get_running_loop().time
        while not self._stopping:
            now = clock()
            storm = self._answers_waiting(now)
            held = self._waiting_since is not None and now - self._waiting_since >= JOURNAL_HOLD_S
            if not storm or held:
                return
            await asyncio.sleep(JOURNAL_QUIET_S)

    async def _answers_before_sending(self) -> None:
        """A batch of pages waits while webhook answers wait (a storm), at most ``SEND_HOLD_S``."""
        clock = asyncio.get_running_loop().time
        until = clock() + SEND_HOLD_S
        while not self._stopping and clock() < until and self._answers_waiting(clock()):  # noqa: ASYNC110 (another task's state, bounded)
            await asyncio.sleep(JOURNAL_QUIET_S)

    def _answers_waiting(self, now: float) -> bool:
        return self.journaling.busy or (self._arrived > 1 and now - self._last_arrival < JOURNAL_QUIET_S)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), timeout=seconds)

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
                pace=self._answers_before_sending,
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

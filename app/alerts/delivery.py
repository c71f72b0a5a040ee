"""The delivery worker's job: send what the outbox holds, and never lose or repeat a page.

Each channel is drained on its own (a slow robot never holds up another channel, nor the
escalations, which run in their own loop). A batch of a channel — as many rows as the channel sends
at once (``concurrency``), or every queued row merged into one digest — is claimed in one
transaction (``sending``, a lease, a fresh claim token), sent, and its outcome recorded in another,
fenced: only rows still carrying this claim's token are updated. That transaction also claims the
channel's next batch, so a channel being drained costs one transaction per batch, not two (the
first claim of a drain has its own). The lease outlasts the batch's longest possible sends (each
send is cut at its timeout), so another worker re-claims a row only when its claimer died or
stalled; if the stalled one comes back, the fence keeps it from recording over the new claimer. A
message can thus go twice only when a worker dies between the channel's confirmation and the
record, never because a channel is slow. A database that stops answering between the two (a
restart, a failover, SQLite's write lock held elsewhere) does not make it go twice either: the
outcome, already known, is recorded again and again until the claim's lease is about to end.

Failures are retried with exponential backoff and jitter until ``max_delivery_age``, then
dead-lettered. Rate limits (DingTalk and WeCom: 20 a minute) are kept in a ledger in the
database that every replica counts (``alert_channel_attempts``): each message sent, whatever
its outcome, takes a place in the channel's minute; when more is queued than the minute has
left, the queue goes as one digest.

Why it is written this way (issue 13, the webhook storm, where the worker shares the event loop
with the intake): a batch's cost is its transactions and statements, each a few round trips to
the database's thread (aiosqlite) and SQLAlchemy's work around them, and its HTTP post; the rows
themselves cost little. So claims and outcomes are plain rows, not ORM objects: a claim reads
(id, payload) ``FOR UPDATE SKIP LOCKED`` and marks them with one ``UPDATE … WHERE id IN``; the
record reads the held rows' few columns under the fence (``FOR UPDATE``, the claim's token) and
writes every outcome with one ``executemany`` (:func:`repository.record_outcomes`), where the ORM
loaded, tracked and flushed an object per row (200 for a digest). A row's message is parsed once,
when it is sent; whom it named is kept for the timeline rather than parsed again at the record.
Measured with ``bench/delivery_cpu.py`` (300 pages drained to a local sink, event-loop CPU per
row, SQLite, runs alternating with the code before, 2026-12-06 at load 7–11): one message at a time
(``webhook``, ``concurrency: 1``) 7.6–9.4 ms of CPU and 7.0 statements a row before, 5.0–6.1 ms
with plain rows and one transaction a batch, 2.8–3.1 ms and 1.5 statements with waves (below);
eight at a time 2.3–3.2 ms before, 1.8–2.2 after; DingTalk digests of 200 rows 0.44–0.57 ms a row
before, 0.28–0.32 after (PostgreSQL at load 10: 9.9 → 3.5, 3.8 → 2.5, 0.67 → 0.37). What is left
of a one-at-a-time row is mostly its HTTP post: httpx costs about 1 ms of CPU a post here, a bare
asyncio stream 0.1 ms.

A batch could hold several waves of ``concurrency`` sends, sent wave after wave with one claim
and one record for all: measured, 2.8–3.1 ms a row one at a time against
5.0–6.1 with one wave. It holds one: the outcomes of a batch are recorded when its last wave
is done, so a worker killed in its fourth wave had three messages the channel took and nobody
recorded, sent again after a lease four times as long — the SIGKILL drill
(``tests/drills/test_deliveries.py``) counted three duplicates where only the one send in flight
may go twice. A page's "at most the send in flight goes twice" is worth more than 2–3 ms of CPU.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import enrichment, messages, personal, repository
from app.alerts.channels import registry
from app.alerts.channels.base import Digest, Notification, Outgoing, SendResult
from app.alerts.channels.config import ChannelConfig
from app.alerts.failures import GaveUp, failure
from app.config import Settings

log = logging.getLogger("panorama.alerts")

RATE_WINDOW = timedelta(minutes=1)
# Attempts are counted a little longer than the robot's minute: a request reaches the robot a
# moment after it is counted here, and the robot's own clock decides.
RATE_MARGIN = timedelta(seconds=5)
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 300.0
# A send gets its channel's timeout plus this before it is cut (the channel's own timeout covers
# one HTTP exchange; an SMTP session is several).
SEND_SLACK_S = 5.0
# What a claim's lease adds to the batch's longest send: the two transactions around it. It is
# also how long a crashed worker's batch waits before another worker sends it.
LEASE_MARGIN_S = 15.0
MAX_DIGEST_ROWS = 200
# Recording an outcome the database did not take is tried again after these pauses (the last one
# repeating) while the claim's lease lasts; RECORD_DEADLINE_MARGIN before it ends, the worker gives up
# and the lease decides.
RECORD_RETRY_S = (0.2, 0.5, 1.0, 2.0)
RECORD_DEADLINE_MARGIN = timedelta(seconds=2)
Observer = Callable[[str, str, str | None], None]
"""Told of each attempt: (channel, outcome, failure class or None when delivered)."""


def ignore_delivery(channel: str, outcome: str, failure: str | None) -> None:
    """No metrics."""


@dataclass(frozen=True)
class Outcome:
    delivery_ids: list[int]
    result: SendResult
    digest: bool = False
    payload: str | None = None  # the row's message as sent, when the worker added to it (its context)
    mentions: Mapping[int, list[str]] = field(default_factory=dict)  # whom each row's message named


@dataclass(frozen=True)
class Claim:
    """What one worker holds of one channel: rows claimed under ``token`` at ``at`` until
    ``lease_ends``, sent as a digest or one by one."""

    channel: str
    token: str
    rows: list[tuple[int, str]]  # (id, payload)
    digest: bool
    at: datetime
    lease_ends: datetime


@dataclass(frozen=True)
class HeldBack:
    """Nothing of the channel can be claimed before ``until``: its rate limit's minute is used up
    (the ledger's oldest attempt in it leaves the minute then)."""

    until: datetime


Hold = Callable[[str, datetime], None]
"""Told that a channel is held back until a time (its sender need not look again before)."""


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … capped at 5 minutes, each ±20 % so replicas do not retry in step."""
    base = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto


def send_limit_s(config: ChannelConfig | None) -> float:
    """The longest one send to the channel may take before it is cut."""
    return (config.timeout_s if config is not None else 10.0) + SEND_SLACK_S


def lease(config: ChannelConfig | None, extra_s: float = 0.0) -> timedelta:
    """A claim's lease: a batch is sent at once, so it lasts one send (and ``extra_s`` of work before
    it: fetching pages' context), plus the margin."""
    return timedelta(seconds=send_limit_s(config) + extra_s + LEASE_MARGIN_S)


def context_limit_s(
    settings: Settings, config: ChannelConfig | None, enricher: enrichment.Enricher | None
) -> float:
    """The longest the worker may spend adding context to a batch of the channel before sending it."""
    if enricher is None or not registry.shows_context(config):
        return 0.0
    return enrichment.fetch_limit_s(settings)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    worker: str,
    now: datetime | None = None,
    observe: Observer = ignore_delivery,
    enricher: enrichment.Enricher | None = None,
) -> int:
    """Drains every channel with due deliveries, channels side by side; returns how many were handled."""
    moment = now or datetime.now(UTC)
    async with sessions() as session:
        channels = await repository.due_channels(session, moment)
    counts = await asyncio.gather(
        *(
            drain_channel(
                sessions, settings, http, name, worker=worker, now=moment, observe=observe, enricher=enricher
            )
            for name in channels
        )
    )
    return sum(counts)


async def drain_channel(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    channel: str,
    *,
    worker: str,
    now: datetime | None = None,
    observe: Observer = ignore_delivery,
    stopping: Callable[[], bool] = lambda: False,
    enricher: enrichment.Enricher | None = None,
    hold: Hold | None = None,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Sends the channel's due deliveries batch after batch, until none is due, its rate limit holds
    the rest back, or ``stopping()``; returns how many rows were handled. ``hold`` is told when the
    channel's rate limit holds everything back, and until when; ``pace`` is awaited before each
    batch is sent (the runtime lets waiting webhook answers go first, for well under the lease).

    The next batch is claimed in the transaction that records the last one's outcome: one
    transaction per batch, not two (see the module's docstring)."""
    if stopping():
        return 0
    config = channel_config(settings, channel)
    claim_next = _claimer(
        config, channel, worker=worker, now=now, extra_s=context_limit_s(settings, config, enricher)
    )
    async with sessions.begin() as session:
        claim = await claim_next(session)
    handled = 0
    while isinstance(claim, Claim):
        if pace is not None:
            await pace()
        outcomes = await _send_claim(config, claim, http, settings, enricher)
        handled += len(claim.rows)
        claim = await _record_while_leased(
            sessions, settings, claim, outcomes, observe, then=None if stopping() else claim_next
        )
    if isinstance(claim, HeldBack) and hold is not None:
        hold(channel, claim.until)
    return handled


async def deliver_batch(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    channel: str,
    *,
    worker: str,
    now: datetime | None = None,
    observe: Observer = ignore_delivery,
    enricher: enrichment.Enricher | None = None,
    hold: Hold | None = None,
) -> int:
    """Claims one batch of the channel, sends it and records the outcome; returns the rows handled.
    ``hold`` is told when the channel's rate limit holds everything back, and until when.

    A page that wants its context (error logs, traces) gets it here, between the claim's
    transaction and the record's, never inside either (see :mod:`app.alerts.enrichment`)."""
    config = channel_config(settings, channel)
    claim_next = _claimer(
        config, channel, worker=worker, now=now, extra_s=context_limit_s(settings, config, enricher)
    )
    async with sessions.begin() as session:
        claim = await claim_next(session)
    if isinstance(claim, HeldBack):
        if hold is not None:
            hold(channel, claim.until)
        return 0
    if claim is None:
        return 0
    outcomes = await _send_claim(config, claim, http, settings, enricher)
    await _record_while_leased(sessions, settings, claim, outcomes, observe, then=None)
    return len(claim.rows)


def channel_config(settings: Settings, channel: str) -> ChannelConfig | None:
    """The channel's configuration; None when it is no longer configured (its rows are dead-lettered)."""
    return next((c for c in settings.channels if c.name == channel), None)


Claimer = Callable[[AsyncSession], Awaitable["Claim | HeldBack | None"]]
"""Claims the channel's next batch in the session's transaction."""


def _claimer(
    config: ChannelConfig | None, channel: str, *, worker: str, now: datetime | None, extra_s: float
) -> Claimer:
    async def claim(session: AsyncSession) -> Claim | HeldBack | None:
        return await _claim(session, config, channel, now or datetime.now(UTC), worker, extra_s)

    return claim


async def _claim(
    session: AsyncSession,
    config: ChannelConfig | None,
    channel: str,
    now: datetime,
    worker: str,
    extra_s: float = 0.0,
) -> Claim | HeldBack | None:
    token = uuid.uuid4().hex
    until = now + lease(config, extra_s)
    if config is None:  # dead-lettered at once: nothing is sent
        gone = await repository.claim_deliveries(
            session, channel, now, worker=worker, token=token, until=until, limit=MAX_DIGEST_ROWS
        )
        return Claim(channel, token, gone, digest=False, at=now, lease_ends=until) if gone else None
    batch = config.concurrency
    limit = registry.rate_limit_per_min(config)
    digest = False
    if limit is not None:
        await repository.lock_channel_ledger(session, channel)
        counted, oldest = await repository.attempts_since(session, channel, now - RATE_WINDOW - RATE_MARGIN)
        budget = limit - counted
        if budget <= 0:  # the minute is used up, by this replica or another: wait for it to pass
            return HeldBack(oldest + RATE_WINDOW + RATE_MARGIN if oldest is not None else now)
        queued = await repository.due_count(session, channel, now, at_most=budget + 1)
        digest = queued > budget
        batch = min(batch, budget)
    rows: list[tuple[int, str]] = []
    if digest:  # notices are never merged into a digest of pages: they go one by one
        rows = await repository.claim_deliveries(
            session,
            channel,
            now,
            worker=worker,
            token=token,
            until=until,  # one send, however many rows
            limit=MAX_DIGEST_ROWS,
            pages=True,
        )
        digest = len(rows) > 1
    if not rows:
        rows = await repository.claim_deliveries(
            session, channel, now, worker=worker, token=token, until=until, limit=batch
        )
    if not rows:
        return None
    if limit is not None:
        await repository.add_attempts(session, channel, now, 1 if digest else len(rows))
    return Claim(channel, token, rows, digest=digest, at=now, lease_ends=until)


async def _send_claim(
    config: ChannelConfig | None,
    claim: Claim,
    http: httpx.AsyncClient,
    settings: Settings,
    enricher: enrichment.Enricher | None,
) -> list[Outcome]:
    ids = [row_id for row_id, _ in claim.rows]
    if config is None:
        gone = SendResult.failure(
            f"channel {claim.channel!r} is no longer configured",
            retryable=False,
            problem=failure("not_configured"),
        )
        return [Outcome(ids, gone)]
    if claim.digest:
        items = [messages.from_json(payload) for _, payload in claim.rows]
        digest = Digest(items=items, locale=items[0].locale, timezone=items[0].timezone)
        named = {row_id: _names(item) for row_id, item in zip(ids, items, strict=True)}
        return [Outcome(ids, await _send(config, digest, http), digest=True, mentions=named)]
    enrich = enricher if enricher is not None and registry.shows_context(config) else None
    sent = await asyncio.gather(
        *(_prepare_and_send(config, payload, http, settings, claim.at, enrich) for _, payload in claim.rows)
    )
    return [
        Outcome([row_id], result, payload=kept, mentions={row_id: names})
        for row_id, (result, kept, names) in zip(ids, sent, strict=True)
    ]


def _names(message: Outgoing) -> list[str]:
    return [person.name for person in message.mentions]


async def _prepare_and_send(
    config: ChannelConfig,
    payload: str,
    http: httpx.AsyncClient,
    settings: Settings,
    now: datetime,
    enricher: enrichment.Enricher | None,
) -> tuple[SendResult, str | None, list[str]]:
    """Sends the row's message, with its context added first when it wants one; returns the result,
    the message as sent when context was added (kept on the row: a retry does not fetch again), and
    whom it names."""
    message = messages.outgoing_from_json(payload)
    if enricher is None or not isinstance(message, Notification) or not message.enrich or message.context:
        return await _send(config, message, http), None, _names(message)
    try:
        enriched = await enricher.add_context(settings, message, now)
    except Exception:  # context is a bonus: a bug fetching it must not hold the page back
        log.exception("adding context to a page failed; it goes without")
        enriched = message
    kept = messages.to_json(enriched) if enriched.context is not None else None
    return await _send(config, enriched, http), kept, _names(message)


async def _send(config: ChannelConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    limit = send_limit_s(config)
    try:
        async with asyncio.timeout(limit):
            return await registry.send(config, message, http)
    except TimeoutError:
        return SendResult.failure(
            f"{config.name}: no answer within {limit:g}s",
            retryable=True,
            timeout=True,
            problem=failure("timeout", seconds=limit),
        )
    except Exception as exc:  # a channel bug must not stop the worker or lose the row
        log.exception("channel %s failed unexpectedly", config.name)
        said = f"{type(exc).__name__}: {exc}"
        return SendResult.failure(said, retryable=True, problem=failure("unexpected_error", said))


async def _record_while_leased(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    claim: Claim,
    outcomes: Sequence[Outcome],
    observe: Observer,
    *,
    then: Claimer | None,
) -> Claim | HeldBack | None:
    """Records the outcomes, retrying while the database does not answer and the claim is ours;
    with ``then``, claims the channel's next batch in the same transaction and returns it.

    The channel has taken the messages already: a record lost to a database restart would make
    the next claimer send them again once the lease ran out.
    """
    attempt = 0
    while True:
        counted: list[tuple[str, str, str | None]] = []  # metrics only for what was committed
        following: Claim | HeldBack | None = None
        try:
            async with sessions.begin() as session:
                held = await _record(session, settings, claim, outcomes, _appender(counted))
                if then is not None:
                    following = await then(session)
        except (DBAPIError, OSError) as exc:
            pause = RECORD_RETRY_S[min(attempt, len(RECORD_RETRY_S) - 1)]
            if datetime.now(UTC) + timedelta(seconds=pause) >= claim.lease_ends - RECORD_DEADLINE_MARGIN:
                raise
            log.warning(
                "recording sent deliveries failed; trying again while their claim lasts",
                extra={"channel": claim.channel, "rows": len(claim.rows), "error": type(exc).__name__},
            )
            attempt += 1
            await asyncio.sleep(pause)
            continue
        for channel, outcome, failure_class in counted:
            observe(channel, outcome, failure_class)
        if held < len(claim.rows):
            log.warning(
                "deliveries were re-claimed by another worker while this one sent them; their outcome "
                "is theirs to record",
                extra={"channel": claim.channel, "rows": len(claim.rows) - held},
            )
        return following


def _appender(into: list[tuple[str, str, str | None]]) -> Observer:
    def observe(channel: str, outcome: str, failure: str | None) -> None:
        into.append((channel, outcome, failure))

    return observe


async def _record(
    session: AsyncSession,
    settings: Settings,
    claim: Claim,
    outcomes: Sequence[Outcome],
    observe: Observer,
) -> int:
    """Applies each outcome to the rows this claim still holds (one ``UPDATE`` for all); returns how
    many it held."""
    ids = [row_id for row_id, _ in claim.rows]
    held = {row.id: row for row in await repository.lock_claimed(session, ids, claim.token)}
    changes: list[dict[str, object]] = []
    failed_steps: list[tuple[int, int]] = []
    for outcome in outcomes:
        primary = min(outcome.delivery_ids)
        for delivery_id in sorted(outcome.delivery_ids):
            delivery = held.get(delivery_id)
            if delivery is None:
                continue
            change = _apply(session, settings, delivery, outcome, primary, claim.at, observe)
            changes.append(change)
            if (
                change["new_status"] == "dead"
                and delivery.page_id is not None
                and delivery.page_step is not None
            ):
                failed_steps.append((delivery.page_id, delivery.page_step))
    await repository.record_outcomes(session, changes)
    # A person's rule moves on when one of its steps failed for good. Written last, after the
    # rows and the timeline: rows, incident, then the person's page is the order that cannot
    # deadlock with an ack (incident, then pages).
    for page_id, step in failed_steps:
        await personal.step_failed(session, page_id, step, claim.at)
    return len(held)


def _apply(
    session: AsyncSession,
    settings: Settings,
    delivery: repository.HeldDelivery,
    outcome: Outcome,
    primary: int,
    now: datetime,
    observe: Observer,
) -> dict[str, object]:
    """The row's outcome (for :func:`repository.record_outcomes`), its timeline entry staged."""
    result = outcome.result
    attempt = delivery.attempts + 1
    detail: dict[str, object] = {"channel": delivery.channel, "kind": delivery.kind, "attempt": attempt}
    if outcome.digest:
        detail["digest_of"] = len(outcome.delivery_ids)
    if result.ok:
        observe(delivery.channel, "delivered", None)
        _timeline(
            session, delivery, now, "notified", {**detail, "mentions": outcome.mentions.get(delivery.id, [])}
        )
        return repository.outcome_row(
            delivery,
            "delivered",
            delivered_at=now,
            digest_of=primary if delivery.id != primary else None,
            payload=outcome.payload,
        )
    too_old = now - delivery.created_at >= settings.alerts.max_delivery_age
    if result.problem is not None:  # the failure as data, for pages to say (``error`` stays for the API)
        detail["failure"] = result.problem.stored()
    if result.retryable and not too_old:
        delay = backoff(attempt)
        observe(delivery.channel, "retried", result.failure_class)
        _timeline(
            session,
            delivery,
            now,
            "delivery_failed",
            {**detail, "error": result.detail, "retry_in_s": round(delay.total_seconds(), 1)},
        )
        return repository.outcome_row(
            delivery, "pending", due_at=now + delay, error=result.detail, payload=outcome.payload
        )
    observe(delivery.channel, "dead_lettered", result.failure_class)
    log.error("notification dead-lettered", extra={"channel": delivery.channel, "error": result.detail})
    reason = "gave up after max_delivery_age" if result.retryable else "not retryable"
    why: GaveUp = "too_old" if result.retryable else "not_retryable"
    if result.problem is not None and result.problem.kind == "not_configured":
        why = "not_configured"
    _timeline(
        session,
        delivery,
        now,
        "dead_lettered",
        {**detail, "error": result.detail, "reason": reason, "gave_up": why},
    )
    return repository.outcome_row(delivery, "dead", error=result.detail, payload=outcome.payload)


def _timeline(
    session: AsyncSession,
    delivery: repository.HeldDelivery,
    now: datetime,
    kind: str,
    detail: dict[str, object],
) -> None:
    if delivery.incident_id is not None:
        repository.add_timeline(session, delivery.incident_id, now, kind, detail)


async def prune_ledger(session: AsyncSession, now: datetime) -> None:
    """Forgets attempts older than any rate window."""
    await repository.delete_attempts_before(session, now - 10 * RATE_WINDOW)

"""The delivery worker's job: send what the outbox holds, and never lose or repeat a page.

A delivery is claimed (``sending``, with a lease) in one transaction, sent, and its
outcome recorded in another. A worker that dies mid-send leaves a claim whose lease
runs out; another worker then sends it again — the only case where a message can go
twice, and only when the crash fell between the channel's confirmation and the record.
Failures are retried with exponential backoff and jitter until ``max_delivery_age``,
then dead-lettered. Rate-limited robots (DingTalk and WeCom: 20 a minute) get one
digest instead of a burst when more is queued than the limit allows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import messages, repository
from app.alerts.channels import registry
from app.alerts.channels.base import Digest, Message, SendResult
from app.alerts.channels.config import ChannelConfig
from app.alerts.models import Delivery
from app.config import Settings

log = logging.getLogger("panorama.alerts")

RATE_WINDOW = timedelta(minutes=1)
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 300.0
Observer = Callable[[str, str], None]


def ignore_delivery(channel: str, outcome: str) -> None:
    """No metrics."""


@dataclass(frozen=True)
class Outcome:
    delivery_ids: list[int]
    result: SendResult
    digest: bool = False


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … capped at 5 minutes, each ±20 % so replicas do not retry in step."""
    base = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    worker: str,
    now: datetime | None = None,
    observe: Observer = ignore_delivery,
) -> int:
    """Sends every due delivery once; returns how many were handled."""
    moment = now or datetime.now(UTC)
    channels = {c.name: c for c in settings.channels}
    lease = max((c.timeout_s for c in settings.channels), default=10.0) * 3 + 30
    async with sessions.begin() as session:
        claimed = await repository.claim_deliveries(
            session, moment, worker=worker, lease_until=moment + timedelta(seconds=lease)
        )
        by_channel: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for row in claimed:
            by_channel[row.channel].append((row.id, row.kind, row.payload))
        budgets = {name: await _budget(session, channels.get(name), name, moment) for name in by_channel}
    if not by_channel:
        return 0
    groups = [
        _send_channel(channels.get(name), name, rows, budgets[name], http)
        for name, rows in by_channel.items()
    ]
    results = await asyncio.gather(*groups)
    async with sessions.begin() as session:
        for name, (outcomes, held) in zip(by_channel, results, strict=True):
            await _record(session, settings, name, outcomes, held, moment, observe)
    return len(claimed)


async def _budget(
    session: AsyncSession, config: ChannelConfig | None, name: str, now: datetime
) -> int | None:
    if config is None or config.rate_limit_per_min is None:
        return None
    return config.rate_limit_per_min - await repository.sent_since(session, name, now - RATE_WINDOW)


async def _send_channel(
    config: ChannelConfig | None,
    name: str,
    rows: list[tuple[int, str, str]],
    budget: int | None,
    http: httpx.AsyncClient,
) -> tuple[list[Outcome], list[int]]:
    """Sends a channel's claimed rows in order.

    Returns the outcomes, and the rows its rate limit holds back for later.
    """
    if config is None:
        failure = SendResult.failure(f"channel {name!r} is no longer configured", retryable=False)
        return [Outcome([row[0] for row in rows], failure)], []
    if budget is not None and budget <= 0:
        return [], [row[0] for row in rows]
    if budget is not None and len(rows) > budget:
        digest = Digest(
            items=[messages.from_json(payload) for _, _, payload in rows],
            locale=messages.from_json(rows[0][2]).locale,
            timezone=messages.from_json(rows[0][2]).timezone,
        )
        result = await _send(config, digest, http)
        return [Outcome([row[0] for row in rows], result, digest=True)], []
    outcomes = []
    for delivery_id, _, payload in rows:
        result = await _send(config, messages.from_json(payload), http)
        outcomes.append(Outcome([delivery_id], result))
    return outcomes, []


async def _send(config: ChannelConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    try:
        return await registry.send(config, message, http)
    except Exception as exc:  # a channel bug must not stop the worker or lose the row
        log.exception("channel %s failed unexpectedly", config.name)
        return SendResult.failure(f"{type(exc).__name__}: {exc}", retryable=True)


async def _record(
    session: AsyncSession,
    settings: Settings,
    channel: str,
    outcomes: Sequence[Outcome],
    held: Sequence[int],
    now: datetime,
    observe: Observer,
) -> None:
    for delivery in await repository.deliveries_by_id(session, list(held)):
        delivery.status = "pending"
        delivery.due_at = now + timedelta(seconds=5)
        delivery.claimed_by = None
    for outcome in outcomes:
        rows = await repository.deliveries_by_id(session, outcome.delivery_ids)
        primary = min(outcome.delivery_ids)
        for delivery in sorted(rows, key=lambda d: d.id):
            _apply(session, settings, delivery, outcome, primary, now, observe)


def _apply(
    session: AsyncSession,
    settings: Settings,
    delivery: Delivery,
    outcome: Outcome,
    primary: int,
    now: datetime,
    observe: Observer,
) -> None:
    result = outcome.result
    delivery.attempts += 1
    delivery.claimed_by = None
    detail = {"channel": delivery.channel, "kind": delivery.kind, "attempt": delivery.attempts}
    if outcome.digest:
        detail["digest_of"] = len(outcome.delivery_ids)
    if result.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.digest_of = primary if delivery.id != primary else None
        observe(delivery.channel, "delivered")
        if delivery.incident_id is not None:
            mentions = [p.name for p in messages.from_json(delivery.payload).mentions]
            _timeline(session, delivery, now, "notified", {**detail, "mentions": mentions})
        return
    delivery.last_error = result.detail
    too_old = now - delivery.created_at >= settings.alerts.max_delivery_age
    if result.retryable and not too_old:
        delay = backoff(delivery.attempts)
        delivery.status = "pending"
        delivery.due_at = now + delay
        observe(delivery.channel, "retried")
        _timeline(
            session,
            delivery,
            now,
            "delivery_failed",
            {**detail, "error": result.detail, "retry_in_s": round(delay.total_seconds(), 1)},
        )
        return
    delivery.status = "dead"
    observe(delivery.channel, "dead_lettered")
    log.error("notification dead-lettered", extra={"channel": delivery.channel, "error": result.detail})
    reason = "gave up after max_delivery_age" if result.retryable else "not retryable"
    _timeline(session, delivery, now, "dead_lettered", {**detail, "error": result.detail, "reason": reason})


def _timeline(
    session: AsyncSession, delivery: Delivery, now: datetime, kind: str, detail: dict[str, object]
) -> None:
    if delivery.incident_id is not None:
        repository.add_timeline(session, delivery.incident_id, now, kind, detail)

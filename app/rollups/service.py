"""Rolling days up (once, whole or not at all) and reporting over any period, exactly."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.backends.errors import BackendError
from app.backends.prometheus import PrometheusClient
from app.config import Settings
from app.rollups import builtin, repository
from app.rollups.aggregate import FigureValues, Totals, figures
from app.rollups.catalog import Catalog
from app.rollups.compute import compute_day
from app.rollups.config import EntityKind, FamilyKind
from app.rollups.days import (
    Granularity,
    day_window,
    days_between,
    local_today,
    period_label,
    period_start,
)
from app.rollups.errors import InvalidPeriod, RollupQueryError, UnknownEntity
from app.rollups.histograms import fraction_above, quantile
from app.rollups.models import RollupRun
from app.rollups.repository import RunStatus, decode_buckets

log = logging.getLogger("panorama.rollups")

MAX_PERIOD_DAYS = 1096
# A run still marked running after this long is taken for dead (its worker crashed).
LEASE = timedelta(minutes=30)
# How long an interrupted run may take to record that it gave its day back.
RELEASE_TIMEOUT_S = 5.0
WORKER = f"{socket.gethostname()}:{os.getpid()}"
DAY_SECONDS = 86400

Sessions = async_sessionmaker[AsyncSession]


class Trigger:
    SCHEDULE = "schedule"
    CATCH_UP = "catch_up"
    API = "api"
    CLI = "cli"


@dataclass(frozen=True)
class RunOutcome:
    day: date
    status: str
    duration_ms: float = 0.0
    entities: int = 0
    values: int = 0
    error: str | None = None


SKIPPED = "skipped"  # another worker holds the day


def catalog_of(settings: Settings) -> Catalog:
    return settings.rollups.catalog


def require_kind(settings: Settings, kind: str) -> EntityKind:
    found = catalog_of(settings).entities.get(kind)
    if found is None:
        known = ", ".join(sorted(catalog_of(settings).entities))
        raise UnknownEntity(f"no entity kind {kind!r} is configured (known: {known})")
    return found


# --- running days -------------------------------------------------------------------------


def check_day_is_over(
    day: date, settings: Settings, *, name: str = "date", now: datetime | None = None
) -> None:
    today = local_today(settings.tzinfo, now)
    if day >= today:
        raise InvalidPeriod(
            f"{name} {day.isoformat()} has not ended yet in {settings.timezone} "
            f"(today is {today.isoformat()}); only finished days can be rolled up"
        )


async def run_day(
    sessions: Sessions,
    prometheus: PrometheusClient,
    settings: Settings,
    day: date,
    *,
    trigger: str,
    now: datetime | None = None,
) -> RunOutcome:
    """Computes ``day`` and stores it whole, replacing what it held; or records why it failed.

    A day another worker is computing right now is skipped. A day Prometheus has
    no data for is recorded as ``no_data`` and what was stored before is kept.
    """
    catalog = catalog_of(settings)
    window = day_window(day, settings.tzinfo)
    async with sessions.begin() as session:
        run_id = await repository.claim_day(
            session, day, trigger=trigger, worker=WORKER, now=now or datetime.now(UTC), lease=LEASE
        )
    if run_id is None:
        return RunOutcome(day, SKIPPED)
    started = time.perf_counter()
    try:
        computed = await compute_day(prometheus, catalog, settings.rollups, window)
    except (BackendError, RollupQueryError) as exc:
        return await _fail(sessions, run_id, day, started, _describe(exc))
    except BaseException:
        # Cancelled (the process is stopping) or broken: give the day back at once, so that another
        # replica or the restarted process computes it, instead of waiting for the lease to run out.
        await _release(sessions, run_id, day, started)
        raise
    status = RunStatus.OK if computed.values else RunStatus.NO_DATA
    elapsed = _ms_since(started)
    try:
        async with sessions.begin() as session:
            if computed.values:
                await repository.replace_day(session, day, computed.values)
            await repository.finish_run(
                session,
                run_id,
                status=status,
                duration_ms=elapsed,
                entities=computed.entities,
                values=len(computed.values),
            )
    except SQLAlchemyError as exc:
        return await _fail(sessions, run_id, day, started, f"storing the day failed: {type(exc).__name__}")
    log.info(
        "rolled up %s",
        day.isoformat(),
        extra={
            "status": status,
            "entities": computed.entities,
            "values": len(computed.values),
            "ms": elapsed,
        },
    )
    return RunOutcome(day, status, elapsed, computed.entities, len(computed.values))


async def _fail(sessions: Sessions, run_id: int, day: date, started: float, error: str) -> RunOutcome:
    elapsed = _ms_since(started)
    log.warning("rollup of %s failed", day.isoformat(), extra={"error": error})
    async with sessions.begin() as session:
        await repository.finish_run(
            session, run_id, status=RunStatus.FAILED, duration_ms=elapsed, error=error
        )
    return RunOutcome(day, RunStatus.FAILED, elapsed, error=error)


async def _release(sessions: Sessions, run_id: int, day: date, started: float) -> None:
    """Records an interrupted run as failed, within a bounded time; a database that cannot be
    reached then leaves the claim to expire (after ``LEASE``)."""
    try:
        async with asyncio.timeout(RELEASE_TIMEOUT_S):
            await _fail(sessions, run_id, day, started, "interrupted before the day was computed")
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        log.warning(
            "the interrupted rollup of %s could not be released; its claim expires by itself",
            day.isoformat(),
            extra={"error": type(exc).__name__},
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return f"{exc.backend} {exc.kind.value}: {exc.message}"
    return str(exc)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def run_days(
    sessions: Sessions,
    prometheus: PrometheusClient,
    settings: Settings,
    days: list[date],
    *,
    trigger: str,
    progress: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Runs each day in turn (each day's own queries run concurrently)."""
    outcomes = []
    for day in days:
        outcome = await run_day(sessions, prometheus, settings, day, trigger=trigger)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes


async def catch_up(
    sessions: Sessions, prometheus: PrometheusClient, settings: Settings, *, now: datetime | None = None
) -> list[RunOutcome]:
    """Rolls up the missing or failed days of the last ``backfill_days``, newest first.

    It stops at the first day Prometheus has no data for (older days will not
    have any either, so later catch-ups do not go past it) and at the first
    failure (the retry job comes back later).
    """
    last = local_today(settings.tzinfo, now) - timedelta(days=1)
    first = last - timedelta(days=settings.rollups.backfill_days - 1)
    if settings.rollups.backfill_days == 0 or first > last:
        return []
    async with sessions() as session:
        states = await repository.day_states(session, first, last)
    moment = now or datetime.now(UTC)
    empty = [day for day, (status, _) in states.items() if status == RunStatus.NO_DATA]
    oldest = max(empty, default=first - timedelta(days=1)) + timedelta(days=1)
    pending = [
        day
        for day in reversed(list(days_between(max(first, oldest), last)))
        if not _settled(states.get(day), moment)
    ]
    outcomes = []
    for day in pending:
        outcome = await run_day(sessions, prometheus, settings, day, trigger=Trigger.CATCH_UP, now=now)
        outcomes.append(outcome)
        if outcome.status in (RunStatus.NO_DATA, RunStatus.FAILED):
            break
    return outcomes


def _settled(state: tuple[str, datetime] | None, now: datetime) -> bool:
    if state is None:
        return False
    status, started = state
    if status in RunStatus.DONE:
        return True
    return status == RunStatus.RUNNING and now - started < LEASE


async def apply_retention(
    sessions: Sessions, settings: Settings, *, now: datetime | None = None
) -> tuple[int, int]:
    """Deletes values and runs older than ``retention_days``."""
    keep_from = local_today(settings.tzinfo, now) - timedelta(days=settings.rollups.retention_days)
    async with sessions.begin() as session:
        deleted = await repository.delete_before(session, keep_from)
    if any(deleted):
        log.info(
            "retention", extra={"before": keep_from.isoformat(), "values": deleted[0], "runs": deleted[1]}
        )
    return deleted


async def entities(
    session: AsyncSession,
    entity_kind: str,
    *,
    first: date | None = None,
    last: date | None = None,
    families: Collection[str] | None = None,
) -> list[str]:
    """The entities of a kind that have stored days (within ``[first, last]`` when given), sorted.

    ``families`` (the kind's, from the catalogue) makes a range much quicker to check.
    """
    return await repository.entities(session, entity_kind, first=first, last=last, families=families)


async def runs(
    session: AsyncSession, *, first: date | None = None, last: date | None = None, limit: int = 100
) -> list[RollupRun]:
    return list(await repository.runs(session, first=first, last=last, limit=limit))


# --- reports ------------------------------------------------------------------------------


def check_period(first: date, last: date) -> None:
    if first > last:
        raise InvalidPeriod(f"'from' ({first}) is after 'to' ({last})", parameter="from")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidPeriod(
            f"the period from {first} to {last} is longer than {MAX_PERIOD_DAYS} days (three years)",
            parameter="to",
        )


def day_seconds(day: date, settings: Settings) -> int:
    return day_window(day, settings.tzinfo).seconds


def _unusual_days(first: date, last: date, settings: Settings) -> dict[date, int]:
    """Days of the period that are not 24 hours long (DST changes), with their length."""
    lengths = {day: day_seconds(day, settings) for day in days_between(first, last)}
    return {day: seconds for day, seconds in lengths.items() if seconds != DAY_SECONDS}


@dataclass(frozen=True)
class EntityFigures:
    entity: str
    days: int
    figures: FigureValues


async def period_totals(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    entity_kind: str,
    first: date,
    last: date,
    *,
    entity: str | None = None,
) -> dict[str, Totals]:
    """What each entity accumulated over the whole period (counters and gauges summed in SQL)."""
    kinds = {d.name: d.kind for d in catalog.families(entity_kind)}
    unusual = _unusual_days(first, last, settings)
    special = list(unusual)
    totals: dict[str, Totals] = {}
    present = await repository.presence(
        session, entity_kind, first, last, entity=entity, special_days=special
    )
    for name, seen in present.items():
        extra = sum(
            unusual[day] - DAY_SECONDS for day, on in zip(special, seen.on_special, strict=True) if on
        )
        totals[name] = Totals(days=seen.days, seconds=seen.days * DAY_SECONDS + extra)
    for name, family, total, samples, peak, low in await repository.scalar_totals(
        session, entity_kind, first, last, entity=entity
    ):
        if name in totals and family in kinds:
            totals[name].add_scalar(family, kinds[family], total, samples, peak, low)
    async for chunk in repository.histogram_rows(session, entity_kind, first, last, entity=entity):
        for name, family, raw in chunk:
            if name in totals and family in kinds and raw is not None:
                totals[name].add_buckets(family, decode_buckets(raw))
        await asyncio.sleep(0)  # let webhooks and the worker in between chunks
    return totals


async def report(
    session: AsyncSession,
    settings: Settings,
    entity_kind: str,
    first: date,
    last: date,
    *,
    entity: str | None = None,
) -> list[EntityFigures]:
    """Each entity's figures over the whole period, re-aggregated exactly from the stored days."""
    check_period(first, last)
    catalog = catalog_of(settings)
    totals = await period_totals(session, settings, catalog, entity_kind, first, last, entity=entity)
    return [
        EntityFigures(name, t.days, figures(catalog, entity_kind, t)) for name, t in sorted(totals.items())
    ]


@dataclass(frozen=True)
class PeriodFigures:
    start: date
    label: str
    days: int
    figures: FigureValues


async def series(
    session: AsyncSession,
    settings: Settings,
    entity_kind: str,
    entity: str,
    first: date,
    last: date,
    granularity: Granularity,
    *,
    only: Collection[str] | None = None,
) -> list[PeriodFigures]:
    """One entity's figures per day, ISO week, month or year: each period re-aggregated exactly.

    With ``only`` (figure names), just those figures are computed, from just the families
    they need (what a chart of one figure over three years asks for).
    """
    check_period(first, last)
    if not await repository.entity_exists(session, entity_kind, entity):
        raise UnknownEntity(f"no {entity_kind} {entity!r} has any rollup", **{entity_kind: entity})
    catalog = catalog_of(settings)
    wanted, families = (None, None) if only is None else catalog.requirements(entity_kind, only)
    kinds = {d.name: d.kind for d in catalog.families(entity_kind)}
    tz = settings.tzinfo
    periods: dict[date, Totals] = {}
    seen_days: set[date] = set()
    for day, family, total, samples, peak, low, raw in await repository.daily_rows(
        session, entity_kind, entity, first, last, families=families
    ):
        kind = kinds.get(family)
        if kind is None:
            continue
        start = period_start(day, granularity)
        totals = periods.get(start)
        if totals is None:
            totals = periods[start] = Totals()
        if day not in seen_days:
            seen_days.add(day)
            totals.days += 1
            totals.seconds += day_window(day, tz).seconds
        if kind is FamilyKind.HISTOGRAM:
            if raw is not None:
                totals.add_buckets(family, decode_buckets(raw))
        else:
            totals.add_scalar(family, kind, total, samples, peak, low)
    return [
        PeriodFigures(
            start, period_label(start, granularity), t.days, figures(catalog, entity_kind, t, only=wanted)
        )
        for start, t in sorted(periods.items())
    ]


# --- SLOs ---------------------------------------------------------------------------------

LATENCY_OBJECTIVE_SHARE = 0.99  # latency_p99_ms: 99% of requests are faster than the target
LATENCY_FAMILY = builtin.LATENCY_FAMILY


@dataclass(frozen=True)
class SloWindow:
    service: str
    first: date
    last: date
    days: int
    data_days: int


@dataclass(frozen=True)
class SloResult:
    window: SloWindow
    objective: str
    target: float
    achieved: float | None
    met: bool | None
    error_budget_remaining: float | None
    error_budget_remaining_minutes: float | None


async def slo_report(session: AsyncSession, settings: Settings, at: date) -> list[SloResult]:
    """Each configured objective over its window ending at ``at`` (inclusive)."""
    catalog = catalog_of(settings)
    results = []
    for objective in settings.slo:
        first = at - timedelta(days=objective.window_days - 1)
        window_minutes = sum(day_seconds(d, settings) for d in days_between(first, at)) / 60
        found = await period_totals(
            session, settings, catalog, "service", first, at, entity=objective.service
        )
        totals = found.get(objective.service, Totals())
        window = SloWindow(objective.service, first, at, objective.window_days, totals.days)
        if objective.availability is not None:
            achieved = figures(catalog, "service", totals).get("availability")
            results.append(
                _budget(
                    "availability",
                    objective.availability,
                    achieved,
                    None if achieved is None else 1 - achieved,
                    1 - objective.availability,
                    window_minutes,
                    met=None if achieved is None else achieved >= objective.availability,
                    window=window,
                )
            )
        if objective.latency_p99_ms is not None:
            buckets = totals.histograms.get(LATENCY_FAMILY)
            achieved = quantile(LATENCY_OBJECTIVE_SHARE, buckets) if buckets else None
            results.append(
                _budget(
                    "latency_p99_ms",
                    objective.latency_p99_ms,
                    achieved,
                    fraction_above(objective.latency_p99_ms, buckets) if buckets else None,
                    1 - LATENCY_OBJECTIVE_SHARE,
                    window_minutes,
                    met=None if achieved is None else achieved <= objective.latency_p99_ms,
                    window=window,
                )
            )
    return results


def _budget(
    objective: str,
    target: float,
    achieved: float | None,
    bad_share: float | None,
    allowed_share: float,
    window_minutes: float,
    *,
    met: bool | None,
    window: SloWindow,
) -> SloResult:
    """Error budget: the share of bad requests allowed over the window, and what is left of it."""
    remaining = None if bad_share is None else 1 - bad_share / allowed_share
    minutes = None if remaining is None else remaining * allowed_share * window_minutes
    return SloResult(window, objective, target, achieved, met, remaining, minutes)

"""Rolling days up (once, whole or not at all) and reporting over any period, exactly.

Reports read the stored days in the shape they need: one entity's days over years are one
range of one index (``repository.entity_days``), many entities' long periods are read as month
sums plus the days at the period's ends (``_entity_sums``); figures are then computed on whole
columns (``frames.py``), never by averaging daily figures, and a series already computed is
answered again while the store has not changed (``cache.py``).

A cold three-year report of one entity reads everything on the driver's connection, the partial
days beside its figures included (``repository.partial_days``): that last read went through the
ORM's grouped join and cost 1.4–1.5 ms of event-loop CPU, a third of the route's, and on
PostgreSQL it was the one statement that opened a transaction (``BEGIN``/``ROLLBACK``: two round
trips more per request). Measured 2026-12-06 19:20–19:35, load 5–8, 200 services × 1,096 days,
three runs alternating with main's: the cold report's loop CPU 6.1–7.6 ms against 7.7–8.1
in-process; over HTTP on PostgreSQL 23.9–27.8 ms against 31.9–40.0 (3.7–4.0× bare against
4.2–4.5×). The read of 1,096 day rows that was left (SQLite 0.8–2 ms, PostgreSQL 1.6 ms and more:
one heap page per day) is now 37 month rows (``repository``: 0.9–1.2 ms with their unpacking);
what was left was the figures (~0.9 ms) and the JSON (1.8 ms), computed again for every cold
report although a day's row never changes once its day is stored. So every writer of a month's
days now also writes that month's daily rows as JSON (``renderer``, ``rendered.py`` says why and
how exactness is kept), and a cold daily JSON report is joined from them
(``stored_daily_json``: one range read, no figure computed): in-process, 200 services × 1,096
days on SQLite, 1.4 ms against 3.9 for the same bytes. Anything else (weeks, months, CSV, a
range over two layouts, another configuration than the rows were written with) is computed as
before. The same writers keep each figure's daily values per month too (``figure_months.py``),
and a daily series of one figure (Grafana's) reads them instead of computing
(``_stored_daily_figure``): on PostgreSQL the month rows of every family's numbers cost a TOAST
probe each, and the cold Grafana series stayed above 3× a bare app's time until then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames
from app.backends.errors import BackendError
from app.backends.prometheus import PrometheusClient
from app.config import Settings
from app.db import WORKER
from app.numbers import finite
from app.rollups import answers, builtin, figure_months, frames, oncall, rendered, repository
from app.rollups.aggregate import FigureValues, Totals, figures
from app.rollups.cache import Computed
from app.rollups.catalog import Catalog, build_catalog
from app.rollups.compute import DayFigures, FamilyValue, compute_day, first_failure
from app.rollups.config import EntityKind, FamilyKind, RollupSettings
from app.rollups.days import (
    DayWindow,
    Granularity,
    day_window,
    days_between,
    local_today,
    per_period,
    period_label,
)
from app.rollups.errors import (
    HistoryNotSettled,
    InvalidPeriod,
    RollupQueryError,
    UnknownEntity,
    UnknownFigure,
)
from app.rollups.frames import Ints
from app.rollups.histograms import fraction_above, quantile
from app.rollups.layouts import Layout, day_number, day_of
from app.rollups.repository import History, RunStatus
from app.rollups.schemas import Queued, RunHistory, RunOut, RunRecord, RunRequest, RunResults

log = logging.getLogger("panorama.rollups")

MAX_PERIOD_DAYS = 1096
# A run still marked running after this long is taken for dead (its worker crashed).
LEASE = timedelta(minutes=30)
# How long an interrupted run may take to record that it gave its day back.
RELEASE_TIMEOUT_S = 5.0
# How far back a catch-up completes pending on-call histories (the days before are left pending):
# the alert data they are computed from is kept (incidents, timelines, outbox rows), but a history
# still pending after a quarter, its journal stuck that long, is a matter for a person
# (``panorama rollup --from … --to …``), not for a retry every ten minutes.
HISTORY_DAYS = 90
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
    history: str | None = None
    """What the run did with the day's on-call history (``repository.History``); None: nothing
    stored (failed, skipped)."""


SKIPPED = "skipped"  # another worker holds the day


_CATALOGS: dict[int, tuple[RollupSettings, Catalog]] = {}
"""Catalogues by settings object (kept with it, so its id is not reused while it is here)."""


def catalog_of(settings: Settings) -> Catalog:
    """The merged, checked catalogue of the rollup settings, built once per settings object
    (loading the settings checked it already: see ``RollupSettings``)."""
    rollups = settings.rollups
    kept = _CATALOGS.get(id(rollups))
    if kept is not None and kept[0] is rollups:
        return kept[1]
    catalog = build_catalog(rollups)
    if len(_CATALOGS) >= 16:  # a reload replaces the settings: the old catalogues go
        _CATALOGS.clear()
    _CATALOGS[id(rollups)] = (rollups, catalog)
    return catalog


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
    prometheus: PrometheusClient | None,
    settings: Settings,
    day: date,
    *,
    trigger: str,
    now: datetime | None = None,
) -> RunOutcome:
    """Computes ``day`` and stores it whole, replacing what it held; or records why it failed.

    Two sources: Prometheus (the catalogue's queried kinds; skipped when ``prometheus`` is None)
    and the on-call history Panorama records itself (``oncall.py``). A source with nothing for
    the day leaves what it stored before in place. A day another worker is computing right now
    is skipped, and so is, for a catch-up, a day another worker finished since the catch-up
    looked (``repository.claim_day``'s ``unless_settled``). A day neither source has data for is
    recorded as ``no_data`` (without Prometheus, a quiet on-call day is a day with nothing to
    record: ``ok``); a day with no Prometheus sample strictly inside it has no Prometheus data (a
    sample at its closing midnight alone is not a day), and one whose samples start after it
    began is ``partial`` (``compute.probe_coverage``).

    The on-call history waits for the alert journal (``oncall.compute_day``), the Prometheus
    figures do not: while the journal holds a webhook received before the day ended, the run
    stores the Prometheus figures and records the history ``pending`` (Prometheus's retention
    does not wait for a stuck journal); a later catch-up stores the history alone
    (:func:`_complete_history`). With no Prometheus figures to store, the run fails as a whole.

    The finish is fenced (``repository.finish_run``): a run that outlived its lease and whose day
    was claimed again meanwhile stores nothing and is recorded ``superseded``; the newer run's
    figures stand.

    The fenced transaction stores the day's numbers (the night's day on rows of its own:
    ``repository.replace_day``) and month sums, not the month's daily report rows and figure rows
    (what reports read ready-made: ``rendered.py``, ``figure_months.py``): the callers write
    those after their days (:func:`run_days`, :func:`catch_up`), once per month touched, and the
    month's rows take in the days on rows of their own then. Written inside, they cost 0.1–0.15 s
    of a day that Prometheus answers in 0.8–1.1 s (each month row's rows rewritten whole:
    ``bench/rollup.py``), and a catch-up of a month's 30 days rewrote that month's rows 30 times.
    Until they are written, reports compute those months live (the same answers;
    ``stored_daily_json`` finds none written and says so).
    """
    catalog = catalog_of(settings)
    window = day_window(day, settings.tzinfo)
    moment = now or datetime.now(UTC)
    catching_up = trigger == Trigger.CATCH_UP
    completing: repository.HistoryClaim | None = None
    async with sessions.begin() as session:
        if catching_up:  # a day whose history is pending: the history alone
            completing = await repository.claim_history(
                session, day, trigger=trigger, worker=WORKER, now=moment, lease=LEASE
            )
        run_id = None
        if completing is None:
            run_id = await repository.claim_day(
                session,
                day,
                trigger=trigger,
                worker=WORKER,
                now=moment,
                lease=LEASE,
                prometheus=prometheus is not None,
                unless_settled=catching_up,
            )
    started = time.perf_counter()
    if completing is not None:
        return await _complete_history(sessions, settings, catalog, window, completing, started)
    if run_id is None:
        return RunOutcome(day, SKIPPED)
    try:
        computed, recorded = await _compute_sources(sessions, prometheus, settings, catalog, window)
    except (BackendError, RollupQueryError) as exc:
        return await _fail(sessions, run_id, day, started, _describe(exc))
    except BaseException:
        # Cancelled (the process is stopping) or broken: give the day back at once, so that another
        # replica or the restarted process computes it, instead of waiting for the lease to run out.
        await _release(sessions, run_id, day, started)
        raise
    waiting: str | None = None
    if isinstance(recorded, HistoryNotSettled):
        if not computed.values:  # nothing to store before the history: the day waits whole
            return await _fail(sessions, run_id, day, started, str(recorded))
        waiting, recorded = str(recorded), []
    history = History.PENDING if waiting is not None else History.STORED
    values = [*computed.values, *recorded]
    kinds = [
        *(catalog.queried_kinds if computed.values else []),
        *(catalog.recorded_kinds if recorded else []),
    ]
    entities = len({(v.entity_kind, v.entity) for v in values})
    status = _status(computed, values, prometheus is not None)
    elapsed = _ms_since(started)
    try:
        async with sessions.begin() as session:  # fenced: stored only while the claim is current
            current = await repository.finish_run(
                session,
                run_id,
                status=status,
                duration_ms=elapsed,
                entities=entities,
                values=len(values),
                error=waiting,
                history=history,
            )
            if current and values:  # the month's report rows follow it (``render_stale``: see above)
                await repository.replace_day(session, day, values, kinds=kinds)
    except SQLAlchemyError as exc:
        return await _fail(sessions, run_id, day, started, f"storing the day failed: {type(exc).__name__}")
    if not current:
        return _superseded(run_id, day, elapsed)
    facts = {"status": status, "history": history, "entities": entities, "values": len(values), "ms": elapsed}
    if waiting is None:
        log.info("rolled up %s", day.isoformat(), extra=facts)
    else:
        log.warning(
            "rolled up %s without its on-call history (pending: the alert journal has not moved past "
            "the day; a catch-up stores it once it has)",
            day.isoformat(),
            extra=facts,
        )
    return RunOutcome(day, status, elapsed, entities, len(values), error=waiting, history=history)


async def _complete_history(
    sessions: Sessions,
    settings: Settings,
    catalog: Catalog,
    window: DayWindow,
    claim: repository.HistoryClaim,
    started: float,
) -> RunOutcome:
    """Stores the on-call history of a day whose Prometheus figures an earlier run stored while
    the history was pending: the recorded kinds alone are replaced (``replace_day``'s ``kinds``),
    so the Prometheus figures, their month sums, report rows and figure rows stay as they are
    (bit for bit), and Prometheus is not queried again. The run records the day's Prometheus
    state it carries (``claim.status``); whatever keeps it from storing the history (the journal
    still waiting, a database error, the process stopping) leaves the history pending, never the
    day failed, so that no later catch-up queries Prometheus again for it."""
    day = window.day
    try:
        async with sessions() as session:
            recorded = await oncall.compute_day(session, settings, window)
    except HistoryNotSettled as exc:
        return await _leave_pending(sessions, claim, day, started, str(exc))
    except BaseException:
        await _release(sessions, claim.id, day, started, carried=claim)
        raise
    entities = len({(v.entity_kind, v.entity) for v in recorded})
    elapsed = _ms_since(started)
    try:
        async with sessions.begin() as session:  # fenced as run_day's finish
            current = await repository.finish_run(
                session,
                claim.id,
                status=claim.status,
                duration_ms=elapsed,
                entities=entities,
                values=len(recorded),
                history=History.COMPLETED,
            )
            if current and recorded:
                await repository.replace_day(
                    session, day, recorded, kinds=catalog.recorded_kinds, render=renderer(settings)
                )
    except SQLAlchemyError as exc:
        return await _leave_pending(
            sessions, claim, day, started, f"storing the on-call history failed: {type(exc).__name__}"
        )
    if not current:
        return _superseded(claim.id, day, elapsed)
    log.info(
        "rolled up the on-call history of %s",
        day.isoformat(),
        extra={
            "status": claim.status,
            "history": History.COMPLETED,
            "entities": entities,
            "values": len(recorded),
            "ms": elapsed,
        },
    )
    return RunOutcome(day, claim.status, elapsed, entities, len(recorded), history=History.COMPLETED)


async def _leave_pending(
    sessions: Sessions, claim: repository.HistoryClaim, day: date, started: float, error: str
) -> RunOutcome:
    """A run that completes a pending day's history and could not: recorded with the day's state
    it carries and the history still pending (the next catch-up tries again)."""
    elapsed = _ms_since(started)
    log.warning(
        "the on-call history of %s is still pending",
        day.isoformat(),
        extra={"history": History.PENDING, "error": error},
    )
    async with sessions.begin() as session:
        current = await repository.finish_run(
            session,
            claim.id,
            status=claim.status,
            duration_ms=elapsed,
            entities=0,
            values=0,
            error=error,
            history=History.PENDING,
        )
    if not current:
        return _superseded(claim.id, day, elapsed)
    return RunOutcome(day, claim.status, elapsed, error=error, history=History.PENDING)


async def _compute_sources(
    sessions: Sessions,
    prometheus: PrometheusClient | None,
    settings: Settings,
    catalog: Catalog,
    window: DayWindow,
) -> tuple[DayFigures, list[FamilyValue] | HistoryNotSettled]:
    """The day from Prometheus and from the on-call history at once (the database read waits on
    no query); the first failure cancels the other. A history not settled yet is no failure: it
    is answered in the history's place, and the Prometheus figures are computed all the same."""

    async def recorded() -> list[FamilyValue] | HistoryNotSettled:
        async with sessions() as session:
            try:
                return await oncall.compute_day(session, settings, window)
            except HistoryNotSettled as exc:
                return exc

    async def queried() -> DayFigures:
        if prometheus is None:
            return DayFigures(window, [])
        return await compute_day(prometheus, catalog, settings.rollups, window)

    with first_failure():
        async with asyncio.TaskGroup() as group:
            from_prometheus = group.create_task(queried())
            from_history = group.create_task(recorded())
    return from_prometheus.result(), from_history.result()


def _status(computed: DayFigures, values: list[FamilyValue], queried: bool) -> str:
    if not values and queried:
        return RunStatus.NO_DATA
    coverage = computed.coverage
    if computed.values and coverage is not None and not coverage.whole:
        return RunStatus.PARTIAL
    return RunStatus.OK


async def _fail(sessions: Sessions, run_id: int, day: date, started: float, error: str) -> RunOutcome:
    elapsed = _ms_since(started)
    log.warning("rollup of %s failed", day.isoformat(), extra={"error": error})
    async with sessions.begin() as session:
        current = await repository.finish_run(
            session, run_id, status=RunStatus.FAILED, duration_ms=elapsed, error=error
        )
    if not current:
        return _superseded(run_id, day, elapsed)
    return RunOutcome(day, RunStatus.FAILED, elapsed, error=error)


def _superseded(run_id: int, day: date, elapsed: float) -> RunOutcome:
    """A run whose finish found its claim taken over (``repository.finish_run``'s fence): it
    stored nothing, the newer run's figures stand."""
    log.warning(
        "the rollup of %s outlived its lease and the day was claimed again: it stored nothing",
        day.isoformat(),
        extra={"run": run_id, "status": RunStatus.SUPERSEDED, "ms": elapsed},
    )
    return RunOutcome(day, RunStatus.SUPERSEDED, elapsed, error=repository.SUPERSEDED_ERROR)


async def _release(
    sessions: Sessions,
    run_id: int,
    day: date,
    started: float,
    *,
    carried: repository.HistoryClaim | None = None,
) -> None:
    """Records an interrupted run as failed (one completing a pending history: with the history
    still pending, ``carried``), within a bounded time; a database that cannot be reached then
    leaves the claim to expire (after ``LEASE``)."""
    try:
        async with asyncio.timeout(RELEASE_TIMEOUT_S):
            if carried is None:
                await _fail(sessions, run_id, day, started, "interrupted before the day was computed")
            else:
                await _leave_pending(
                    sessions, carried, day, started, "interrupted before the history was stored"
                )
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        log.warning(
            "the interrupted rollup of %s could not be released; its claim expires by itself",
            day.isoformat(),
            extra={"error": type(exc).__name__},
        )


def _describe(exc: BaseException) -> str:
    """A failed day's stored error: a backend's names the backend once (its message says what)."""
    if isinstance(exc, BackendError):
        return exc.described
    return str(exc)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _run_out(outcome: RunOutcome) -> RunOut:
    return RunOut(
        day=outcome.day,
        status=outcome.status,
        duration_ms=outcome.duration_ms,
        entities=outcome.entities,
        values=outcome.values,
        error=outcome.error,
        history=outcome.history,
    )


async def run_requested(
    sessions: Sessions,
    prometheus: PrometheusClient | None,
    settings: Settings,
    request: RunRequest,
    spawn: Callable[[Coroutine[Any, Any, Any]], object],
) -> RunResults | Queued:
    """``POST /api/v1/rollups/run``: the request checked first, then the days run now (a date, or
    ``wait``), or queued with ``spawn`` (a range). Without Prometheus, only the on-call history
    is recorded."""
    if request.date is not None:
        days = [request.date]
        check_day_is_over(request.date, settings)
    else:
        assert request.first is not None
        assert request.last is not None
        try:
            check_period(request.first, request.last)
        except InvalidPeriod as exc:
            raise InvalidPeriod(exc.message.replace("'from'", "body 'from'"), parameter="from") from None
        check_day_is_over(request.last, settings, name="to")
        days = list(days_between(request.first, request.last))
    wait = request.wait if request.wait is not None else request.date is not None
    if not wait:
        spawn(run_days(sessions, prometheus, settings, days, trigger=Trigger.API))
        return Queued(queued=days, message=f"{len(days)} days queued; follow them at /api/v1/rollups/runs")
    outcomes = await run_days(sessions, prometheus, settings, days, trigger=Trigger.API)
    return RunResults(runs=[_run_out(o) for o in outcomes])


async def run_days(
    sessions: Sessions,
    prometheus: PrometheusClient | None,
    settings: Settings,
    days: list[date],
    *,
    trigger: str,
    progress: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Runs each day in turn (each day's own queries run concurrently), then writes the report
    rows of the months they stored (:func:`run_day`)."""
    outcomes = []
    for day in days:
        outcome = await run_day(sessions, prometheus, settings, day, trigger=trigger)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    await _render_after(sessions, settings, [o.day for o in outcomes if o.values])
    return outcomes


async def _render_after(sessions: Sessions, settings: Settings, days: list[date]) -> None:
    """The report rows of the months of ``days``, just stored; a failure leaves them to the
    catch-up job (the days are stored, and reports compute those months live meanwhile)."""
    if not days:
        return
    try:
        await render_stale(sessions, settings, days=days)
    except Exception:  # the days are stored whatever happens here: their runs' outcomes stand
        log.exception("writing the report rows of the days rolled up failed; the catch-up job writes them")


async def catch_up(
    sessions: Sessions,
    prometheus: PrometheusClient | None,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> list[RunOutcome]:
    """Rolls up the missing or failed days of the last ``backfill_days``, newest first (and,
    once a Prometheus is configured, the days rolled up without it: ``repository.settled``).

    It stops at the first day Prometheus has no data for (older days will not
    have any either, so later catch-ups do not go past it) and at the first
    failure (the retry job comes back later).

    Days whose on-call history is pending (their Prometheus figures stored: see :func:`run_day`)
    get their history alone, once the alert journal has moved past them; until then they are
    left alone (no run is recorded for them every retry). That needs no Prometheus, so it goes
    further back than the window, as far as :data:`HISTORY_DAYS` (:func:`_history_window`), and
    past the days the window's pass did not reach (:func:`_complete_histories`).
    """
    first, last = _backfill_window(settings, now)
    if first > last:
        return []
    oldest_history = _history_window(settings, now)[0]
    async with sessions() as session:
        states = await repository.day_states(session, min(first, oldest_history), last)
        waiting = await oncall.journal_waiting_since(session)
    moment = now or datetime.now(UTC)
    empty = [day for day, state in states.items() if first <= day and state.status == RunStatus.NO_DATA]
    oldest = max(empty, default=first - timedelta(days=1)) + timedelta(days=1)
    pending = [
        day
        for day in reversed(list(days_between(max(first, oldest), last)))
        if not repository.settled(states.get(day), moment, LEASE, prometheus=prometheus is not None)
        and not _history_still_waiting(states.get(day), waiting, day, settings)
    ]
    outcomes = []
    for day in pending:
        outcome = await run_day(sessions, prometheus, settings, day, trigger=Trigger.CATCH_UP, now=now)
        outcomes.append(outcome)
        if outcome.status in (RunStatus.NO_DATA, RunStatus.FAILED):
            break
    await _render_after(sessions, settings, [o.day for o in outcomes if o.values])
    tried = {outcome.day for outcome in outcomes}
    histories = [
        day
        for day in reversed(list(days_between(oldest_history, last)))
        if day not in tried
        and (state := states.get(day)) is not None
        and state.history_pending
        and not repository.settled(state, moment, LEASE, prometheus=prometheus is not None)
        and not _history_still_waiting(state, waiting, day, settings)
    ]
    return [*outcomes, *await _complete_histories(sessions, settings, histories, moment)]


async def _complete_histories(
    sessions: Sessions, settings: Settings, days: list[date], now: datetime
) -> list[RunOutcome]:
    """Stores the pending histories of ``days`` alone, newest first, each claimed for its history
    alone (never the whole day: they are days the window's pass does not compute, past the
    window, or past a day Prometheus had no data for, or after a failure); it stops at the first
    it could not store (the retry job comes back later)."""
    catalog = catalog_of(settings)
    outcomes = []
    for day in days:
        async with sessions.begin() as session:
            claim = await repository.claim_history(
                session, day, trigger=Trigger.CATCH_UP, worker=WORKER, now=now, lease=LEASE
            )
        if claim is None:  # another replica completes it, or has
            outcomes.append(RunOutcome(day, SKIPPED))
            continue
        window = day_window(day, settings.tzinfo)
        outcome = await _complete_history(sessions, settings, catalog, window, claim, time.perf_counter())
        outcomes.append(outcome)
        if outcome.history != History.COMPLETED:
            break
    return outcomes


def _backfill_window(settings: Settings, now: datetime | None) -> tuple[date, date]:
    """The days a catch-up looks at: the last ``backfill_days`` before today (none: first > last)."""
    last = local_today(settings.tzinfo, now) - timedelta(days=1)
    return last - timedelta(days=settings.rollups.backfill_days - 1), last


def _history_window(settings: Settings, now: datetime | None) -> tuple[date, date]:
    """The days whose pending histories a catch-up completes: the last :data:`HISTORY_DAYS`, or
    ``backfill_days`` if more, never past ``retention_days`` (none when ``backfill_days`` is 0:
    no catch-up runs)."""
    first, last = _backfill_window(settings, now)
    if first > last:
        return first, last
    days = min(max(HISTORY_DAYS, settings.rollups.backfill_days), settings.rollups.retention_days)
    return min(first, last - timedelta(days=days - 1)), last


def _history_still_waiting(
    state: repository.DayState | None, waiting: datetime | None, day: date, settings: Settings
) -> bool:
    """Whether the day's history is pending and the journal still holds a webhook received before
    the day ended (``oncall.compute_day`` would refuse it again)."""
    if state is None or not state.history_pending or waiting is None:
        return False
    return waiting < day_window(day, settings.tzinfo).end


async def history_pending_days(
    sessions: Sessions, settings: Settings, *, now: datetime | None = None
) -> list[date]:
    """:func:`pending_history` over the days a catch-up completes them (:func:`_history_window`:
    ``panorama_rollup_history_pending_days``)."""
    first, last = _history_window(settings, now)
    if first > last:
        return []
    async with sessions() as session:
        return await pending_history(session, first, last)


async def pending_history(session: AsyncSession, first: date, last: date) -> list[date]:
    """The days of ``[first, last]`` whose Prometheus figures are stored and whose on-call history
    is pending (the alert journal had not moved past them): a reader of the on-call figures (the
    digest's load) says they are missing there, not zero."""
    states = await repository.day_states(session, first, last)
    return sorted(day for day, state in states.items() if state.history_pending)


async def rolled_up_without_prometheus(session: AsyncSession, first: date, last: date) -> bool:
    """Whether every day of ``[first, last]`` was rolled up and none of them queried Prometheus (none
    configured: the on-call history alone was stored): a reader of the traffic figures says that is
    why they are missing, rather than "not run, or failed"."""
    states = await repository.day_states(session, first, last)
    days = (last - first).days + 1
    return len(states) == days and not any(state.prometheus for state in states.values())


async def apply_retention(
    sessions: Sessions, settings: Settings, *, now: datetime | None = None
) -> tuple[int, int]:
    """Deletes values and runs older than ``retention_days``."""
    keep_from = local_today(settings.tzinfo, now) - timedelta(days=settings.rollups.retention_days)
    async with sessions.begin() as session:
        deleted = await repository.delete_before(session, keep_from, render=renderer(settings))
    if any(deleted):
        log.info(
            "retention", extra={"before": keep_from.isoformat(), "values": deleted[0], "runs": deleted[1]}
        )
    return deleted


async def entities(
    session: AsyncSession, entity_kind: str, *, first: date | None = None, last: date | None = None
) -> list[str]:
    """The entities of a kind that have stored days (within ``[first, last]`` when given), sorted."""
    return await repository.entities(session, entity_kind, first=first, last=last)


async def runs(
    session: AsyncSession, *, first: date | None = None, last: date | None = None, limit: int = 100
) -> RunHistory:
    found = await repository.runs(session, first=first, last=last, limit=limit)
    return RunHistory(
        runs=[
            RunRecord(
                id=r.id,
                day=r.day,
                status=r.status,
                trigger=r.trigger,
                started=r.started_at,
                duration_ms=r.duration_ms,
                entities=r.entities,
                values=r.values,
                error=r.error,
                worker=r.worker,
                prometheus=r.prometheus is not False,
                history=_history_of(r.status, r.history),
            )
            for r in found
        ]
    )


def _history_of(status: str, history: str | None) -> str | None:
    """A run's ``history`` as answered: None for a run that stored nothing (running, failed);
    a finished run recorded before migration 0020 stored the history with its day."""
    if status not in RunStatus.DONE:
        return None
    return history or History.STORED


async def partial_days(session: AsyncSession, first: date, last: date) -> list[date]:
    """The days of ``[first, last]`` stored ``partial`` (Prometheus's samples began after the day
    did, its retention having cut the day): reports and pages name them beside their figures."""
    return await repository.partial_days(session, first, last)


async def partial_days_held(
    session: AsyncSession, days: Collection[date], entities: Mapping[str, Collection[str]]
) -> list[date]:
    """Which of the partial ``days`` are partial days of ``entities`` (names by kind): the days
    one of them has stored figures on, in order. A day none of them has figures for holds no
    figure of theirs that the cut could have lowered."""
    held: set[date] = set()
    for kind, names in entities.items():
        wanted = [day for day in days if day not in held]
        if names and wanted:
            held |= await repository.days_held(session, kind, names, wanted)
    return sorted(held)


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


@lru_cache(maxsize=256)
def _unusual_days(first: date, last: date, tz: ZoneInfo) -> dict[int, int]:
    """Day numbers of the days of the period that are not 24 hours long (DST), with their length."""
    found = {}
    for day in days_between(first, last):
        seconds = day_window(day, tz).seconds
        if seconds != DAY_SECONDS:
            found[day_number(day)] = seconds
    return found


def _day_lengths(numbers: Ints, first: date, last: date, settings: Settings) -> Ints:
    """Each stored day's length in seconds, DST days included."""
    lengths = np.full(len(numbers), DAY_SECONDS, dtype=np.int64)
    for number, seconds in _unusual_days(first, last, settings.tzinfo).items():
        lengths[numbers == number] = seconds
    return lengths


_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0)


def period_keys(numbers: Ints, granularity: Granularity) -> Ints:
    """The day number of the first day of each day's period (ISO weeks start on Monday)."""
    if granularity is Granularity.DAY:
        return numbers
    if granularity is Granularity.WEEK:
        return numbers - (numbers + _EPOCH_WEEKDAY) % 7
    unit = "M" if granularity is Granularity.MONTH else "Y"
    as_days = numbers.astype("datetime64[D]")
    return as_days.astype(f"datetime64[{unit}]").astype("datetime64[D]").astype(np.int64)


def _iso(numbers: Ints, unit: str) -> list[str]:
    """Day numbers as ISO text at ``unit`` precision (``D``: 2026-11-23, ``M``: 2026-11, ``Y``).

    Consecutive days (a daily series without gaps, the usual case) are written once per range and
    copied from then on: every cold three-year report asks for the same 1,096 dates (0.2 ms).
    """
    if unit == "D" and len(numbers) and bool(np.all(np.diff(numbers) == 1)):
        return list(_consecutive_dates(int(numbers[0]), len(numbers)))
    return _iso_text(numbers, unit)


@lru_cache(maxsize=64)
def _consecutive_dates(first: int, count: int) -> tuple[str, ...]:
    return tuple(_iso_text(np.arange(first, first + count, dtype=np.int64), "D"))


def _iso_text(numbers: Ints, unit: str) -> list[str]:
    as_days = numbers.astype("datetime64[D]")
    text: list[str] = np.datetime_as_string(
        as_days if unit == "D" else as_days.astype(f"datetime64[{unit}]")
    ).tolist()
    return text


def period_labels(starts: Ints, granularity: Granularity) -> list[str]:
    """``period_label`` of many periods at once: ``2026-11-23``, ``2026-W48``, ``2026-11``, ``2026``."""
    if granularity is Granularity.WEEK:
        return [period_label(day_of(int(start)), granularity) for start in starts.tolist()]
    unit = {Granularity.DAY: "D", Granularity.MONTH: "M", Granularity.YEAR: "Y"}[granularity]
    return _iso(starts, unit)


@dataclass(frozen=True)
class Rows:
    """Report rows as columns: one name (an entity or a period) per row, its days, its figures.

    Figures are NumPy columns with NaN for "none"; :meth:`figures_of` gives one row as numbers.
    """

    names: list[str]
    days: list[int]
    figures: dict[str, frames.Column]
    starts: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Periods only: the day number of each period's first day."""
    rendered: dict[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)
    """Answers already written from these rows (kept with them: see ``answers.series_json``)."""

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def start_dates(self) -> list[str]:
        """Each period's first day, ``YYYY-MM-DD`` (the labels themselves for days)."""
        if self.names and len(self.names[0]) == 10:  # daily labels are the dates
            return self.names
        return _iso(self.starts, "D")

    def figures_of(self, index: int) -> FigureValues:
        return {name: finite(float(column[index])) for name, column in self.figures.items()}


def _kinds(catalog: Catalog, entity_kind: str) -> dict[str, FamilyKind]:
    return {d.name: d.kind for d in catalog.stored_families(entity_kind)}


async def _frame(
    session: AsyncSession, catalog: Catalog, entity_kind: str, stored: repository.StoredDays
) -> frames.Frame:
    distinct = set(stored.layout_ids)
    found = await repository.layouts(session, distinct)
    if len(distinct) == 1:  # the usual case: one list of one object, not a lookup per day
        layouts = [found[stored.layout_ids[0]]] * len(stored.layout_ids)
    else:
        layouts = [found[i] for i in stored.layout_ids]
    kinds = _kinds(catalog, entity_kind)
    return frames.frame_of_vectors(layouts, stored.vectors, stored.starts, stored.stops, kinds)


def _grouped(frame: frames.Frame, keys: Ints, lengths: Ints) -> tuple[frames.Frame, Ints, Ints, Ints]:
    """Rows with equal consecutive keys summed: (frame, where each group starts, days, seconds)."""
    starts = frames.group_starts(keys)
    ends = np.append(starts[1:], len(keys))
    seconds = np.add.reduceat(lengths, starts) if len(keys) else lengths
    return frames.reduce(frame, starts), starts, ends - starts, seconds


async def series_rows(
    session: AsyncSession,
    settings: Settings,
    entity_kind: str,
    entity: str,
    first: date,
    last: date,
    granularity: Granularity,
    *,
    only: Collection[str] | None = None,
) -> Rows:
    """One entity's figures per day, ISO week, month or year, each period re-aggregated exactly.

    One indexed range read of the entity's days, then whole columns (``frames.py``); kept while
    the store does not change (``cache.py``). With ``only`` (figure names), just those figures,
    from just what they need; one figure per day is read already computed from its month rows
    where they hold the range (:func:`_stored_daily_figure`). A series not asked before reads
    its days and the store's generation in one statement (``repository.entity_days_at``: one
    round trip instead of two, which on PostgreSQL was 0.4–0.6 ms of a cold Grafana series);
    one asked before reads the generation alone first, and its days only if the store moved.
    """
    check_period(first, last)
    catalog = catalog_of(settings)
    names = None if only is None else frozenset(only)
    key = (
        session.get_bind().engine.url,
        entity_kind,
        entity,
        first,
        last,
        granularity,
        names,
        settings.tzinfo,
    )
    if key in _SERIES:  # asked before: one number read tells whether it still holds
        kept = _SERIES.get(key, await repository.generation(session), catalog)
        if kept is not None:
            return kept
    if granularity is Granularity.DAY and names is not None and len(names) == 1:
        daily = await _stored_daily_figure(
            session, settings, catalog, entity_kind, entity, first, last, *names
        )
        if daily is not None:
            _SERIES.put(key, daily[1], catalog, daily[0])
            return daily[0]
    stored, generation = await repository.entity_days_at(session, entity_kind, entity, first, last)
    if not stored.days and not await repository.entity_exists(session, entity_kind, entity):
        spelled = await _service_spelled(session, entity_kind, entity)
        if spelled is None:
            named: dict[str, Any] = {entity_kind: entity}
            raise UnknownEntity(f"no {entity_kind} {entity!r} has any rollup", **named)
        return await series_rows(session, settings, entity_kind, spelled, first, last, granularity, only=only)
    wanted = None if only is None else catalog.requirements(entity_kind, only)[0]
    numbers = np.asarray(stored.days, dtype=np.int64)
    keys = period_keys(numbers, granularity)
    frame = await _frame(session, catalog, entity_kind, stored)
    grouped, starts, days, seconds = _grouped(frame, keys, _day_lengths(numbers, first, last, settings))
    periods = keys[starts] if len(keys) else keys
    found = Rows(
        period_labels(periods, granularity),
        days.tolist(),
        frames.figures(catalog, entity_kind, grouped, days, seconds, only=wanted),
        periods,
    )
    for column in (*found.figures.values(), found.starts):
        column.flags.writeable = False  # kept and shared: nobody may change it
    _SERIES.put(key, generation, catalog, found)
    return found


async def _stored_daily_figure(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    entity_kind: str,
    entity: str,
    first: date,
    last: date,
    figure: str,
) -> tuple[Rows, int] | None:
    """One figure's daily rows read already computed (``figure_months.py``: 37 rows of ~260
    bytes for three years, instead of 37 month rows of every family's numbers), with the store's
    generation; None when they do not hold every stored day of the range with this configuration
    and one layout, or the range has no stored day: the caller computes it."""
    if figure not in catalog.figure_names(entity_kind):
        return None
    read = await repository.figure_months_of(session, entity_kind, entity, figure, first, last)
    if not read.months:
        return None
    key = render_key(catalog, entity_kind, settings.tzinfo)
    if any(stored_key != key for _, stored_key, _ in read.rows):
        return None
    rows = [(month, data) for month, _, data in read.rows]
    found = figure_months.daily_values(rows, read.months, day_number(first), day_number(last))
    if found is None or not len(found[0]):
        return None
    numbers, values = found
    numbers.flags.writeable = False
    values.flags.writeable = False
    answer = Rows(period_labels(numbers, Granularity.DAY), [1] * len(numbers), {figure: values}, numbers)
    return answer, read.generation


async def _service_spelled(session: AsyncSession, entity_kind: str, entity: str) -> str | None:
    """The stored service another spelling names (``checkout`` or ``checkout.shop`` for
    ``checkout.shop.svc.cluster.local``: app.servicenames), when exactly one does."""
    if entity_kind != "service":
        return None
    spelled = servicenames.unique_match(entity, await repository.entities(session, entity_kind))
    return None if spelled == entity else spelled


# --- the daily report's rows, stored written (``rendered.py``) ----------------------------


def render_key(catalog: Catalog, entity_kind: str, tz: ZoneInfo) -> int:
    """What a kind's daily report rows depend on besides the stored days: its figures' and
    families' definitions and the timezone (DST days are longer or shorter)."""
    kept = _RENDER_KEYS.get((id(catalog), entity_kind, tz.key))
    if kept is not None and kept[0] is catalog:
        return kept[1]
    figures_of = [(f.name, f.family, f.statistic, f.expr) for f in catalog.figures.get(entity_kind, [])]
    families = [(d.name, d.kind.value) for d in catalog.stored_families(entity_kind)]
    key = rendered.render_key((entity_kind, tz.key, figures_of, families))
    if len(_RENDER_KEYS) >= 256:
        _RENDER_KEYS.clear()
    _RENDER_KEYS[(id(catalog), entity_kind, tz.key)] = (catalog, key)
    return key


_RENDER_KEYS: dict[tuple[int, str, str], tuple[Catalog, int]] = {}


def renderer(settings: Settings) -> repository.Renderer:
    """What every writer of stored days passes to the repository: writes each month row's daily
    report rows with this configuration's figures and timezone, exactly as :func:`series_rows`
    and ``answers.series_json`` write them live, and gives each figure's values on the month's
    days for the figures' month rows (``figure_months.py``). A month whose days have more than one
    layout gets none (the live answer merges layouts over the whole range: ``rendered.py``)."""
    catalog = catalog_of(settings)
    tz = settings.tzinfo

    def render(
        month: int, packs: dict[int, tuple[str, repository.MonthDays]], known: dict[int, Layout]
    ) -> dict[int, repository.MonthWritten]:
        groups: dict[tuple[str, int], list[tuple[int, repository.MonthDays]]] = {}
        written: dict[int, repository.MonthWritten] = {}
        for entity_id, (kind, days) in packs.items():
            if kind not in catalog.entities:  # stored, no longer configured: nothing to report
                written[entity_id] = repository.MonthWritten(_unconfigured_key(kind), None)
                continue
            ids = {layout_id for layout_id, _ in days.values()}
            if len(ids) == 1:
                groups.setdefault((kind, ids.pop()), []).append((entity_id, days))
            else:  # done for this configuration: none can be written, none is asked for again
                written[entity_id] = repository.MonthWritten(render_key(catalog, kind, settings.tzinfo), None)
        first = day_of(month)
        last = _month_after(first) - timedelta(days=1)
        for (kind, layout_id), members in groups.items():
            numbers = np.asarray([month + d - 1 for _, days in members for d in sorted(days)], dtype=np.int64)
            blobs = [days[d][1] for _, days in members for d in sorted(days)]
            layout = known[layout_id]
            frame = frames.frame_of([layout] * len(blobs), blobs, _kinds(catalog, kind))
            ones = np.ones(len(numbers), dtype=np.int64)
            seconds = _day_lengths(numbers, first, last, settings)
            found = frames.figures(catalog, kind, frame, ones, seconds)
            labels = period_labels(numbers, Granularity.DAY)
            objects = answers.json_object_rows(
                ("date", "period", "days", *found),
                [labels, labels, ones.tolist(), *(column.tolist() for column in found.values())],
            )
            key = render_key(catalog, kind, tz)
            at = 0
            for entity_id, days in members:
                end = at + len(days)
                written[entity_id] = repository.MonthWritten(
                    key,
                    rendered.encode(layout_id, objects[at:end]),
                    layout_id,
                    {name: column[at:end] for name, column in found.items()},
                )
                at = end
        return written

    return render


async def stored_daily_json(
    session: AsyncSession, settings: Settings, entity_kind: str, entity: str, first: date, last: date
) -> bytes | None:
    """The ``days`` array of an entity's daily JSON report, joined from its months' stored rows
    (one range read, nothing computed); None when a month in the range has none written with
    this configuration, or the range holds more than one layout: the caller answers live."""
    check_period(first, last)
    catalog = catalog_of(settings)
    kept_as = (session.get_bind().engine.url, entity_kind, entity, first, last, settings.tzinfo)
    if kept_as in _DAILY:  # asked before: one number read tells whether it still holds
        kept = _DAILY.get(kept_as, await repository.generation(session), catalog)
        if kept is not None:
            return kept
    months, generation = await repository.entity_rendered(session, entity_kind, entity, first, last)
    if not months:
        return None
    key = render_key(catalog, entity_kind, settings.tzinfo)
    first_number, last_number = day_number(first), day_number(last)
    layout: int | None = None
    parts: list[bytes] = []
    for month, mask, stored_key, fragment in months:
        if stored_key != key or fragment is None:
            return None
        layout_id = rendered.layout_of(fragment)
        if layout_id < 0 or layout not in (None, layout_id):
            return None
        layout = layout_id
        below = (1 << max(0, first_number - month)) - 1  # days of the month before ``first``
        through = (1 << max(0, last_number - month + 1)) - 1  # days up to ``last``
        text = rendered.objects_text(fragment, (mask & below).bit_count(), (mask & through).bit_count() - 1)
        if text:
            parts.append(text)
    joined = b"[" + b",".join(parts) + b"]"
    _DAILY.put(kept_as, generation, catalog, joined)
    return joined


_DAILY: Computed[bytes] = Computed()
"""Daily answers joined from stored rows, each for the store's generation it was read at: a
repeated request reads that one number instead of the rows (``cache.py``)."""


RENDER_BATCH = 200
"""Month rows written again per transaction by :func:`render_stale` (about 50 ms of CPU: the
job shares the event loop with the requests)."""


async def render_stale(
    sessions: Sessions, settings: Settings, *, limit: int | None = None, days: Collection[date] | None = None
) -> int:
    """Writes the daily report rows (and the figure rows, ``figure_months.py``) of every month
    row that has none, or has them from another configuration (after an upgrade, or a change of
    figures or timezone; or a day just stored: :func:`run_day`), a batch per transaction; with
    ``days``, of those days' months only. Returns how many month rows were written. Until then
    those reports and series are computed live."""
    months = None if days is None else {day_number(day.replace(day=1)) for day in days}
    catalog = catalog_of(settings)
    render = renderer(settings)
    done = 0
    while limit is None or done < limit:
        batch = RENDER_BATCH if limit is None else min(RENDER_BATCH, limit - done)
        async with sessions.begin() as session:
            keys = [
                render_key(catalog, kind, settings.tzinfo)
                if kind in catalog.entities
                else _unconfigured_key(kind)
                for kind in await repository.stored_kinds(session)
            ]
            todo = await repository.stale_renders(session, keys, batch, months)
            written = await repository.render_months(session, todo, render) if todo else 0
        if not written:  # every month found gets a key: none found, or gone meanwhile
            break
        done += written
    return done


def _unconfigured_key(kind: str) -> int:
    """The key of a stored kind that is not configured (any more): its months are done until it
    is configured again, when its own key differs from this one."""
    return rendered.render_key(("not configured", kind))


_SERIES: Computed[Rows] = Computed()
"""Series already computed, each for the store's generation it was computed at (``cache.py``)."""


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
    """:func:`series_rows` as one object per period (figures None where there is none)."""
    rows = await series_rows(session, settings, entity_kind, entity, first, last, granularity, only=only)
    return [
        PeriodFigures(day_of(int(rows.starts[i])), rows.names[i], rows.days[i], rows.figures_of(i))
        for i in range(len(rows))
    ]


# --- flat rows for Grafana's Infinity datasource and alerting on rollups ------------------


def flat_figure(settings: Settings, name: str) -> tuple[str, str]:
    """``service.latency_p99_ms`` → (kind, figure); a bare figure name when one kind has it."""
    catalog = catalog_of(settings)
    kind, dot, figure = name.strip().partition(".")
    if dot and kind in catalog.entities and figure in catalog.figure_names(kind):
        return kind, figure
    if not dot:
        kinds = [k for k in catalog.entities if name in catalog.figure_names(k)]
        if len(kinds) == 1:
            return kinds[0], name
    known = ", ".join(f"{k}.{f}" for k in catalog.entities for f in catalog.figure_names(k))
    raise UnknownFigure(f"unknown figure {name!r}; the figures are {known}", parameter="figure")


async def flat_rows(
    session: AsyncSession,
    settings: Settings,
    figure: str,
    entity: list[str] | None,
    first: date,
    last: date,
    granularity: Granularity,
) -> list[dict[str, object]]:
    """``GET /api/v1/rollups``: one figure of ``entity`` (default: every entity with data) per
    period, as flat rows ``{time, entity, figure, value, partial_days}``. A flat array has no top
    level to name the partial days at, so each row counts those of its period, as a CSV report's
    rows do (``days.per_period``)."""
    kind, name = flat_figure(settings, figure)
    partial = per_period(await partial_days(session, first, last), granularity)
    if entity:
        entities = list(dict.fromkeys(entity))
    elif require_kind(settings, kind).labels:
        entities = await repository.entities(session, kind, first=first, last=last)
    else:
        entities = [kind]
    tz = settings.tzinfo
    rows: list[dict[str, object]] = []
    for one in entities:
        found = await series(session, settings, kind, one, first, last, granularity, only=[name])
        for period in found:
            rows.append(
                {
                    "time": day_window(period.start, tz).start.astimezone(tz).isoformat(),
                    "entity": one,
                    "figure": f"{kind}.{name}",
                    "value": finite(period.figures.get(name)),
                    answers.PARTIAL_DAYS: partial.get(period.start.isoformat(), 0),
                }
            )
    return rows


def _month_after(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True)
class _Sums:
    """Entities' sums over a period: one frame row per entity (in id order), its days and seconds."""

    ids: list[int]
    frame: frames.Frame
    days: Ints
    seconds: Ints


async def _entity_sums(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    entity_kind: str,
    ids: list[int],
    first: date,
    last: date,
) -> _Sums:
    """Each entity's days in ``[first, last]`` summed, read as month sums for the whole months of
    the period and as days at its two ends: over three years, about 36 + 60 rows per entity
    instead of 1,096."""
    whole_first = first if first.day == 1 else _month_after(first)
    whole_end = _month_after(last) - timedelta(days=1) == last
    whole_last = (
        last.replace(day=1) if whole_end else (last.replace(day=1) - timedelta(days=1)).replace(day=1)
    )
    layout_ids: list[int] = []
    blobs: list[bytes] = []
    keys: list[int] = []
    counts: list[Ints] = []
    lengths: list[Ints] = []
    ranges = [(first, last)]
    if whole_first <= whole_last:
        months = await repository.months_of_entities(session, ids, whole_first, whole_last)
        layout_ids += months.layout_ids
        blobs += months.blobs
        keys += months.entity_ids
        masks = np.asarray(months.masks, dtype=np.int64)
        counts.append(np.bitwise_count(masks).astype(np.int64))
        seconds = counts[-1] * DAY_SECONDS
        numbers = np.asarray(months.months, dtype=np.int64)
        for unusual, length in _unusual_days(first, last, settings.tzinfo).items():
            at = day_of(unusual)
            bit = 1 << (at.day - 1)
            hit = (numbers == day_number(at.replace(day=1))) & ((masks & bit) != 0)
            seconds = seconds + np.where(hit, length - DAY_SECONDS, 0)
        lengths.append(seconds)
        ranges = [(first, whole_first - timedelta(days=1)), (_month_after(whole_last), last)]
    for start, end in ranges:
        if start > end:
            continue
        stored = await repository.days_of_entities(session, ids, start, end)
        layout_ids += stored.layout_ids
        blobs += stored.blobs
        keys += stored.entity_ids
        numbers = np.asarray(stored.days, dtype=np.int64)
        counts.append(np.ones(len(numbers), dtype=np.int64))
        lengths.append(_day_lengths(numbers, first, last, settings))
    order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
    found = await repository.layouts(session, set(layout_ids))
    frame = frames.frame_of(
        [found[layout_ids[i]] for i in order], [blobs[i] for i in order], _kinds(catalog, entity_kind)
    )
    ordered = np.asarray(keys, dtype=np.int64)[order]
    starts = frames.group_starts(ordered)
    all_counts = np.concatenate(counts)[order] if counts else np.zeros(0, dtype=np.int64)
    all_lengths = np.concatenate(lengths)[order] if lengths else np.zeros(0, dtype=np.int64)
    if not len(ordered):
        return _Sums([], frame, all_counts, all_lengths)
    return _Sums(
        ordered[starts].tolist(),
        frames.reduce(frame, starts),
        np.add.reduceat(all_counts, starts),
        np.add.reduceat(all_lengths, starts),
    )


async def _listed(
    session: AsyncSession, entity_kind: str, first: date, last: date, entity: str | None
) -> list[tuple[int, str]]:
    """(id, name) of the kind's entities with days in the period (only ``entity`` when given)."""
    listed = await repository.entity_list(session, entity_kind, first=first, last=last)
    return listed if entity is None else [(entity_id, name) for entity_id, name in listed if name == entity]


ROWS_PER_READ = 1 << 16
"""Stored rows read at once by a report over many entities: its memory stays flat."""
ENTITIES_PER_READ = 1000
"""And entities at once (each is a bound parameter: SQLite allows 32,766)."""


async def report_chunks(
    session: AsyncSession,
    settings: Settings,
    entity_kind: str,
    first: date,
    last: date,
    *,
    entity: str | None = None,
) -> AsyncIterator[Rows]:
    """Each entity's figures over the whole period, in name order, a few dozen entities at a time.

    A report of every service over three years reads the month sums of the whole months and
    the days at the two ends (about 96 rows per service instead of 1,096), a few hundred
    entities at a time, each read summed per entity (``frames.reduce``) before the next.
    """
    check_period(first, last)
    catalog = catalog_of(settings)
    listed = await _listed(session, entity_kind, first, last, entity)
    per_read = max(1, min(ENTITIES_PER_READ, ROWS_PER_READ // min((last - first).days + 1, 100)))
    for index in range(0, len(listed), per_read):
        chunk = listed[index : index + per_read]
        sums = await _entity_sums(session, settings, catalog, entity_kind, [i for i, _ in chunk], first, last)
        position = {entity_id: row for row, entity_id in enumerate(sums.ids)}
        order = np.asarray(
            [position[entity_id] for entity_id, _ in chunk if entity_id in position], dtype=np.int64
        )
        names = [name for entity_id, name in chunk if entity_id in position]
        ordered = frames.Frame(sums.frame.layout, sums.frame.matrix[order])
        yield Rows(
            names,
            sums.days[order].tolist(),
            frames.figures(catalog, entity_kind, ordered, sums.days[order], sums.seconds[order]),
        )


@dataclass(frozen=True)
class EntityFigures:
    entity: str
    days: int
    figures: FigureValues


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
    found: list[EntityFigures] = []
    async for rows in report_chunks(session, settings, entity_kind, first, last, entity=entity):
        found.extend(EntityFigures(rows.names[i], rows.days[i], rows.figures_of(i)) for i in range(len(rows)))
    return found


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
    """What each entity accumulated over the whole period, as ``aggregate.Totals``."""
    check_period(first, last)
    listed = await _listed(session, entity_kind, first, last, entity)
    if not listed:
        return {}
    sums = await _entity_sums(session, settings, catalog, entity_kind, [i for i, _ in listed], first, last)
    names = dict(listed)
    return {
        names[entity_id]: frames.totals(sums.frame, row, int(sums.days[row]), int(sums.seconds[row]))
        for row, entity_id in enumerate(sums.ids)
    }


async def combined(
    session: AsyncSession,
    settings: Settings,
    entity_kind: str,
    first: date,
    last: date,
    entities: Collection[str],
) -> EntityFigures | None:
    """Several entities taken as one over the period (a digest's scope): their counters and
    histogram buckets summed, so that its error rate and percentiles are exact (never an average
    of theirs); gauges, which do not add up across entities, are left out. None when none of
    them has a stored day in the period; ``days`` is the most days any of them has."""
    catalog = catalog_of(settings)
    found = await period_totals(session, settings, catalog, entity_kind, first, last)
    wanted = set(entities)
    chosen = [totals for name, totals in found.items() if name in wanted]
    if not chosen:
        return None
    total = Totals(days=max(t.days for t in chosen), seconds=max(t.seconds for t in chosen))
    for one in chosen:
        for family, value in one.counters.items():
            total.counters[family] = total.counters.get(family, 0.0) + value
        for family, buckets in one.histograms.items():
            total.add_buckets(family, buckets)
    return EntityFigures(
        ", ".join(sorted(n for n in found if n in wanted)), total.days, figures(catalog, entity_kind, total)
    )


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


async def slo_partial_days(
    session: AsyncSession, results: Sequence[SloResult]
) -> tuple[list[date], list[int]]:
    """The partial days of the objectives' windows (one read from the earliest window's first day),
    and how many each result's window holds (a report row's ``partial_days``)."""
    if not results:
        return [], []
    earliest = min(r.window.first for r in results)
    found = await partial_days(session, earliest, max(r.window.last for r in results))
    return found, [sum(r.window.first <= day <= r.window.last for day in found) for r in results]


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

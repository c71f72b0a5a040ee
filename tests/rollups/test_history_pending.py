"""A stuck alert journal holds back a day's on-call history, never its Prometheus figures: they
are stored on time and read in reports while the history is pending; once the journal has moved,
the catch-up stores the history alone, without querying Prometheus again and without touching a
byte of the Prometheus figures' stored rows, once, even with two replicas at the same instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import db, migrations
from app.backends.prometheus import PrometheusClient
from app.config import PrometheusSettings, Settings
from app.context import AppContext
from app.rollups import jobs, repository, service
from app.rollups.days import Granularity, day_window
from app.rollups.errors import UnknownEntity
from app.rollups.layouts import day_number
from app.rollups.repository import History, RunStatus
from tests.alerts.support import alerting_config
from tests.harness.app import VIEWER_TOKEN, bearer, running_app, settings_for
from tests.harness.processes import free_port
from tests.harness.prometheus import RunningPrometheus
from tests.harness.proxy import SwitchableProxy
from tests.harness.replicas import run_replicas
from tests.rollups.support import (
    CHECKOUT,
    client_for,
    dataset_of,
    drain_journal,
    journal_stuck_at_noon,
    requests_truth,
    rollup_settings,
    utc_days,
)

Factory = async_sessionmaker[AsyncSession]
QUERIED = ("service", "namespace", "cluster", "platform")
# The Prometheus figures' stored rows: the day packs (with their report rows), month sums, figure rows.
STORED_ROWS = {
    "packs": "SELECT e.kind, e.name, p.month, p.day_mask, p.data, p.render_key, p.rendered"
    " FROM rollup_day_packs p JOIN rollup_entities e ON e.id = p.entity_id",
    "months": "SELECT e.kind, e.name, m.month, m.layout_id, m.day_mask, m.data"
    " FROM rollup_months m JOIN rollup_entities e ON e.id = m.entity_id",
    "figures": "SELECT e.kind, e.name, f.figure, f.month, f.render_key, f.data"
    " FROM rollup_figure_months f JOIN rollup_entities e ON e.id = f.entity_id",
}


def settings_of(prometheus_url: str, database_url: str) -> Settings:
    return rollup_settings(prometheus_url, database_url, rollups={"backfill_days": 1}, **alerting_config())


def morning_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)


async def record_pending(sessions: Factory, day: date, at: datetime) -> None:
    """A run of ``day`` at ``at`` as one records its Prometheus figures stored with the history
    pending (the figures themselves play no part where this is used)."""
    async with sessions.begin() as session:
        run_id = await repository.claim_day(
            session, day, trigger="test", worker="test", now=at, lease=service.LEASE
        )
        assert run_id is not None
        await repository.finish_run(
            session, run_id, status=RunStatus.OK, duration_ms=1.0, history=History.PENDING
        )


def refusing_prometheus() -> tuple[SwitchableProxy, PrometheusClient]:
    """A Prometheus that refuses every connection (asked once, no retries): a run that queries it
    fails its day."""
    proxy = SwitchableProxy(free_port(), mode="down")
    return proxy, PrometheusClient(PrometheusSettings(url=proxy.url, timeout_s=5, retries=0))


async def prometheus_rows(sessions: Factory) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the Prometheus kinds, in a fixed order."""
    found = {}
    async with sessions() as session:
        for name, query in STORED_ROWS.items():
            rows = (await session.execute(text(query))).all()
            found[name] = sorted(tuple(row) for row in rows if row[0] in QUERIED)
    return found


async def checkout_series(sessions: Factory, settings: Settings, day: date) -> dict[str, Any]:
    """CHECKOUT's figures of ``day`` by day, week, month and year, and its daily requests read
    alone (Grafana's path: the figure rows)."""
    found: dict[str, Any] = {}
    async with sessions() as session:
        for granularity in Granularity:
            found[granularity.value] = [
                (p.label, p.days, p.figures)
                for p in await service.series(session, settings, "service", CHECKOUT, day, day, granularity)
            ]
        found["requests"] = [
            p.figures
            for p in await service.series(
                session, settings, "service", CHECKOUT, day, day, Granularity.DAY, only=["requests"]
            )
        ]
    return found


async def oncall_incidents(sessions: Factory, settings: Settings, day: date) -> float | None:
    async with sessions() as session:
        [found] = await service.series(
            session, settings, "oncall_service", CHECKOUT, day, day, Granularity.DAY
        )
    return found.figures["incidents"]


async def stored_days(sessions: Factory, day: date) -> int:
    async with sessions() as session:
        return (await repository.day_counts(session)).get(day_number(day), 0)


async def test_a_stuck_journal_holds_back_the_history_and_never_the_prometheus_figures(
    prometheus: RunningPrometheus, migrated_engine: AsyncEngine, database_url: str
) -> None:
    settings = settings_of(prometheus.url, database_url)
    sessions = db.create_session_factory(migrated_engine)
    day = utc_days(dataset_of(prometheus))[0]
    now = morning_after(day)
    noon = await journal_stuck_at_noon(sessions, day)
    client = client_for(prometheus)
    try:
        [stuck] = await service.catch_up(sessions, client, settings, now=now)
    finally:
        await client.aclose()
    assert (stuck.day, stuck.status, stuck.history) == (day, RunStatus.OK, History.PENDING)
    assert stuck.error is not None
    assert f"the alert journal still holds webhooks received since {noon.isoformat()}" in stuck.error
    async with sessions() as session:
        [report] = await service.report(session, settings, "service", day, day, entity=CHECKOUT)
        assert await service.entities(session, "oncall_service") == []
        [pending_run] = (await service.runs(session)).runs
    window = day_window(day, UTC)
    truth = requests_truth(dataset_of(prometheus), CHECKOUT, window.start.timestamp(), window.end.timestamp())
    assert report.figures["requests"] == truth
    assert (pending_run.status, pending_run.prometheus, pending_run.history) == ("ok", True, "pending")
    with pytest.raises(UnknownEntity):
        await oncall_incidents(sessions, settings, day)
    assert await service.history_pending_days(sessions, settings, now=now) == [day]
    before = await prometheus_rows(sessions)
    series_before = await checkout_series(sessions, settings, day)
    prometheus_days = await stored_days(sessions, day)
    assert prometheus_days == stuck.entities == 5

    assert await service.catch_up(sessions, None, settings, now=now) == []  # still stuck: left alone

    await drain_journal(sessions, settings)
    unreachable = SwitchableProxy(prometheus.port, mode="down")  # queried, it would fail the day
    refused = PrometheusClient(PrometheusSettings(url=unreachable.url, timeout_s=5, retries=0))
    try:
        [landed] = await service.catch_up(sessions, refused, settings, now=now)
        again = await service.catch_up(sessions, refused, settings, now=now)
    finally:
        await refused.aclose()
        unreachable.close()
    assert (landed.day, landed.status, landed.history, landed.error) == (day, "ok", "completed", None)
    assert again == []
    assert await oncall_incidents(sessions, settings, day) == 1
    assert await prometheus_rows(sessions) == before  # bit for bit
    assert await checkout_series(sessions, settings, day) == series_before
    assert await stored_days(sessions, day) == prometheus_days + landed.entities
    assert await service.history_pending_days(sessions, settings, now=now) == []

    async with running_app(settings) as (_app, http):
        answer = await http.get(
            "/api/v1/rollups/runs", params={"from": day.isoformat()}, headers=bearer(VIEWER_TOKEN)
        )
    assert answer.status_code == 200, answer.text
    runs = [(r["status"], r["prometheus"], r["history"], r["values"]) for r in answer.json()["runs"]]
    assert runs == [("ok", True, "completed", landed.values), ("ok", True, "pending", stuck.values)]


async def test_two_replicas_store_a_pending_history_once(
    prometheus: RunningPrometheus, postgres_url: str
) -> None:
    """Two processes catch up on PostgreSQL at the same instant, once the journal has moved past
    a day whose history was pending: one stores it, the other finds the day claimed (or, had the
    first finished, settled); one run records it, and its figures are stored once."""
    config = {"timezone": "UTC", "rollups": {"enabled": False, "backfill_days": 1}, **alerting_config()}
    settings = settings_of(prometheus.url, postgres_url)
    day = utc_days(dataset_of(prometheus))[0]
    now = morning_after(day)
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        await journal_stuck_at_noon(sessions, day)
        client = client_for(prometheus)
        try:
            [stuck] = await service.catch_up(sessions, client, settings, now=now)
        finally:
            await client.aclose()
        assert stuck.history == History.PENDING
        before = await prometheus_rows(sessions)
        await drain_journal(sessions, settings)
        replicas = [{"database_url": postgres_url, "config": config, "now": now.isoformat()} for _ in "ab"]
        outcomes = await run_replicas("tests.rollups.replica_scenarios:catch_up", replicas)
        async with sessions() as session:
            runs = (await service.runs(session)).runs
        incidents = await oncall_incidents(sessions, settings, day)
        after = await prometheus_rows(sessions)
        stored = await stored_days(sessions, day)
    finally:
        await engine.dispose()
    done = [outcome for found in outcomes for outcome in found]
    assert [o for o in done if o[1] != "skipped"] == [[day.isoformat(), "ok", "completed"]]
    assert [r.history for r in runs] == ["completed", "pending"]
    assert incidents == 1
    assert after == before
    assert stored == stuck.entities + (runs[0].entities or 0)


async def test_the_catch_up_job_counts_the_pending_histories_and_completes_them_without_prometheus(
    migrated_engine: AsyncEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Yesterday's Prometheus figures stored with its history pending (as a run records them):
    the job's catch-up leaves it while the journal waits and says so (the gauge, a warning); once
    the journal has moved, a replica without Prometheus completes it."""
    settings = settings_for(
        database_url, timezone="UTC", rollups={"enabled": False, "backfill_days": 2}, **alerting_config()
    )
    sessions = db.create_session_factory(migrated_engine)
    context = AppContext(settings, sessions=sessions, schema_ready=True)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    await journal_stuck_at_noon(sessions, yesterday)
    await record_pending(sessions, yesterday, datetime.now(UTC))

    def pending() -> float | None:
        return context.metrics.registry.get_sample_value("panorama_rollup_history_pending_days")

    await jobs.catch_up(context)
    assert pending() == 1
    assert any(getattr(r, "history", None) == "pending" for r in caplog.records)
    await drain_journal(sessions, settings)
    await jobs.catch_up(context)
    assert pending() == 0
    async with sessions() as session:
        runs = (await service.runs(session, first=yesterday, last=yesterday)).runs
    assert [(r.status, r.prometheus, r.history) for r in runs] == [
        ("ok", True, "completed"),
        ("ok", True, "pending"),
    ]
    assert await oncall_incidents(sessions, settings, yesterday) == 1


# --- a history run killed before it finished; histories past the catch-up's window -----------------

KILLED_AT = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
YESTERDAY = date(2026, 11, 20)


async def killed_history_run(sessions: Factory, settings: Settings) -> None:
    """YESTERDAY's history pending, the journal moved past it (an incident at noon), and a
    catch-up's claim of its history alone at KILLED_AT whose process was killed (no release)."""
    await record_pending(sessions, YESTERDAY, KILLED_AT - timedelta(hours=5))
    await journal_stuck_at_noon(sessions, YESTERDAY)
    await drain_journal(sessions, settings)
    async with sessions.begin() as session:
        claim = await repository.claim_history(
            session, YESTERDAY, trigger="catch_up", worker="killed", now=KILLED_AT, lease=service.LEASE
        )
    assert claim is not None


async def run_states(sessions: Factory, day: date) -> list[tuple[str, bool, str | None]]:
    async with sessions() as session:
        runs = (await service.runs(session, first=day, last=day)).runs
    return [(r.status, r.prometheus, r.history) for r in runs]


async def test_a_history_run_killed_before_it_finished_is_claimed_again_for_the_history_alone(
    migrated_engine: AsyncEngine, database_url: str
) -> None:
    """Within its lease the killed run holds the day (the catch-up leaves it, the day still
    counts as pending); once the lease has run out the catch-up claims the history alone again,
    never the whole day: a Prometheus that refuses every query does not fail it."""
    settings = settings_for(
        database_url, timezone="UTC", rollups={"enabled": False, "backfill_days": 1}, **alerting_config()
    )
    sessions = db.create_session_factory(migrated_engine)
    await killed_history_run(sessions, settings)
    proxy, refused = refusing_prometheus()
    try:
        held = await service.catch_up(sessions, refused, settings, now=KILLED_AT + timedelta(minutes=10))
        pending = await service.history_pending_days(sessions, settings, now=KILLED_AT)
        later = KILLED_AT + service.LEASE + timedelta(minutes=1)
        landed = await service.catch_up(sessions, refused, settings, now=later)
    finally:
        await refused.aclose()
        proxy.close()
    assert held == []
    assert pending == [YESTERDAY]
    assert [(o.day, o.status, o.history, o.error) for o in landed] == [(YESTERDAY, "ok", "completed", None)]
    assert await run_states(sessions, YESTERDAY) == [
        ("ok", True, "completed"),
        ("running", True, None),  # the killed run, as it was left
        ("ok", True, "pending"),
    ]
    assert await oncall_incidents(sessions, settings, YESTERDAY) == 1


async def test_two_replicas_reclaim_a_killed_history_run_once(postgres_url: str) -> None:
    """Two processes catch up on PostgreSQL at the same instant, after the lease of a killed
    history run: one claims the history alone again (the other finds the day claimed, or
    completed), and neither queries Prometheus (it refuses every query)."""
    config = {"timezone": "UTC", "rollups": {"enabled": False, "backfill_days": 1}, **alerting_config()}
    settings = settings_for(postgres_url, **config)
    engine = db.create_engine(settings.database)
    proxy = SwitchableProxy(free_port(), mode="down")
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        await killed_history_run(sessions, settings)
        later = KILLED_AT + service.LEASE + timedelta(minutes=1)
        replicas = [
            {
                "database_url": postgres_url,
                "config": config,
                "now": later.isoformat(),
                "prometheus_url": proxy.url,
            }
            for _ in "ab"
        ]
        outcomes = await run_replicas("tests.rollups.replica_scenarios:catch_up", replicas)
        runs = await run_states(sessions, YESTERDAY)
        incidents = await oncall_incidents(sessions, settings, YESTERDAY)
    finally:
        proxy.close()
        await engine.dispose()
    done = [outcome for found in outcomes for outcome in found]
    assert [o for o in done if o[1] != "skipped"] == [[YESTERDAY.isoformat(), "ok", "completed"]]
    assert runs == [("ok", True, "completed"), ("running", True, None), ("ok", True, "pending")]
    assert incidents == 1


async def test_the_catch_up_completes_pending_histories_past_its_window_as_far_back_as_90_days(
    migrated_engine: AsyncEngine, database_url: str
) -> None:
    """Histories left pending past the catch-up's window (``backfill_days``: 2 here) are completed
    alone, without Prometheus (it refuses every query: the window's day fails, the histories
    land all the same), as far back as ``service.HISTORY_DAYS``; an older one stays pending."""
    settings = settings_for(
        database_url, timezone="UTC", rollups={"enabled": False, "backfill_days": 2}, **alerting_config()
    )
    sessions = db.create_session_factory(migrated_engine)
    now = KILLED_AT
    recent = YESTERDAY - timedelta(days=10)
    edge = YESTERDAY - timedelta(days=service.HISTORY_DAYS - 1)
    beyond = edge - timedelta(days=1)
    for day in (beyond, edge, recent):
        await record_pending(sessions, day, now - timedelta(hours=1))
    await journal_stuck_at_noon(sessions, recent)
    counted_while_stuck = await service.history_pending_days(sessions, settings, now=now)
    held = await service.catch_up(sessions, None, settings, now=now)
    await drain_journal(sessions, settings)
    proxy, refused = refusing_prometheus()
    try:
        landed = await service.catch_up(sessions, refused, settings, now=now)
    finally:
        await refused.aclose()
        proxy.close()
    assert counted_while_stuck == [edge, recent]  # the days the catch-up completes
    # The window's newest day waits whole for the journal (no Prometheus figures to store without
    # one), which stops the window's pass; ``edge`` ended before the webhook waiting at noon of
    # ``recent`` was received: its history lands, ``recent``'s waits.
    assert [(o.day, o.status, o.history) for o in held] == [
        (YESTERDAY, "failed", None),
        (edge, "ok", "completed"),
    ]
    # Prometheus refuses: the window's day fails again, ``recent``'s history lands all the same.
    assert [(o.day, o.status, o.history) for o in landed] == [
        (YESTERDAY, "failed", None),
        (recent, "ok", "completed"),
    ]
    assert await oncall_incidents(sessions, settings, recent) == 1
    assert await service.history_pending_days(sessions, settings, now=now) == []
    async with sessions() as session:
        assert await service.pending_history(session, beyond, beyond) == [beyond]
    assert await run_states(sessions, edge) == [("ok", True, "completed"), ("ok", True, "pending")]

"""A run's finish is fenced: a run that outlived its lease (its Prometheus queries held back here)
and whose day another run claimed meanwhile stores nothing when its answers arrive, and is
recorded ``superseded``; the newer run's figures stand, bit for bit."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import db, migrations
from app.backends.prometheus import PrometheusClient
from app.config import PrometheusSettings
from app.rollups import repository, service
from app.rollups.compute import FamilyValue
from app.rollups.models import RollupRun
from app.rollups.repository import RunStatus
from tests.harness.prometheus import RunningPrometheus
from tests.harness.proxy import SwitchableProxy
from tests.harness.replicas import run_replicas
from tests.harness.waiting import eventually
from tests.rollups.support import dataset_of, rollup_settings, utc_days

Factory = async_sessionmaker[AsyncSession]
STORED_ROWS = (
    "SELECT e.kind, e.name, p.month, p.day_mask, p.data, p.render_key, p.rendered"
    " FROM rollup_day_packs p JOIN rollup_entities e ON e.id = p.entity_id",
    "SELECT e.kind, e.name, m.month, m.layout_id, m.day_mask, m.data"
    " FROM rollup_months m JOIN rollup_entities e ON e.id = m.entity_id",
    "SELECT e.kind, e.name, f.figure, f.month, f.render_key, f.data"
    " FROM rollup_figure_months f JOIN rollup_entities e ON e.id = f.entity_id",
)


async def stored_rows(sessions: Factory) -> list[list[tuple[Any, ...]]]:
    """Every stored row of the days, month sums and figure rows, in a fixed order."""
    async with sessions() as session:
        return [sorted(tuple(row) for row in (await session.execute(text(q))).all()) for q in STORED_ROWS]


async def runs_of(sessions: Factory, day: date) -> list[tuple[int, str, str | None]]:
    async with sessions() as session:
        rows = await session.execute(
            select(RollupRun.id, RollupRun.status, RollupRun.error)
            .where(RollupRun.day == day)
            .order_by(RollupRun.id)
        )
        return [(run_id, status, error) for run_id, status, error in rows]


async def test_a_run_whose_day_was_claimed_again_stores_nothing(
    prometheus: RunningPrometheus, migrated_engine: AsyncEngine, database_url: str
) -> None:
    settings = rollup_settings(prometheus.url, database_url)
    sessions = db.create_session_factory(migrated_engine)
    day = utc_days(dataset_of(prometheus))[0]
    claimed_at = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)
    held = SwitchableProxy(prometheus.port, mode="hang")  # the stale run's queries wait here
    client = PrometheusClient(PrometheusSettings(url=held.url, timeout_s=60, retries=0))
    try:
        stale = asyncio.create_task(
            service.run_day(sessions, client, settings, day, trigger="api", now=claimed_at)
        )

        async def claimed() -> bool:
            return bool(await runs_of(sessions, day))

        await eventually(claimed, "the stale run's claim")
        [(stale_id, status, _)] = await runs_of(sessions, day)
        assert status == RunStatus.RUNNING

        # Its lease runs out; another replica claims the day (the repository's own claim), stores
        # its figures and finishes.
        async with sessions.begin() as session:
            newer_id = await repository.claim_day(
                session,
                day,
                trigger="test",
                worker="newer",
                now=claimed_at + service.LEASE + timedelta(seconds=1),
                lease=service.LEASE,
            )
            assert newer_id is not None
            newer_values = [FamilyValue("service", f"s{i}", "requests", total=1000.0 + i) for i in range(3)]
            await repository.replace_day(session, day, newer_values)
            assert await repository.finish_run(
                session, newer_id, status=RunStatus.OK, duration_ms=1.0, entities=3, values=3
            )
        newer_rows = await stored_rows(sessions)
        assert newer_rows[0]  # the newer run's day is stored

        held.mode = "up"  # the stale run's answers arrive
        async with asyncio.timeout(60):
            outcome = await stale
    finally:
        await client.aclose()
        held.close()

    assert (outcome.day, outcome.status, outcome.values) == (day, RunStatus.SUPERSEDED, 0)
    assert await stored_rows(sessions) == newer_rows  # bit for bit: nothing of the stale run's
    assert await runs_of(sessions, day) == [
        (stale_id, RunStatus.SUPERSEDED, repository.SUPERSEDED_ERROR),
        (newer_id, RunStatus.OK, None),
    ]
    async with sessions() as session:
        stored = await repository.entities(session, "service")
        assert stored == ["s0", "s1", "s2"]  # not the Prometheus services the stale run computed


async def test_a_finish_is_recorded_once_and_only_for_the_days_newest_claim(
    migrated_engine: AsyncEngine,
) -> None:
    """The fence itself: a run recorded finished is not recorded again, and a run whose day was
    claimed again is recorded superseded, whatever it tried to record (a failure too)."""
    sessions = db.create_session_factory(migrated_engine)
    day = date(2026, 11, 2)
    at = datetime(2026, 11, 3, 6, tzinfo=UTC)
    async with sessions.begin() as session:
        first = await repository.claim_day(
            session, day, trigger="test", worker="a", now=at, lease=service.LEASE
        )
    async with sessions.begin() as session:
        second = await repository.claim_day(
            session, day, trigger="test", worker="b", now=at + service.LEASE * 2, lease=service.LEASE
        )
    assert first is not None
    assert second is not None
    async with sessions.begin() as session:
        assert not await repository.finish_run(session, first, status=RunStatus.FAILED, duration_ms=1.0)
    async with sessions.begin() as session:
        assert await repository.finish_run(session, second, status=RunStatus.OK, duration_ms=1.0)
    async with sessions.begin() as session:
        assert not await repository.finish_run(session, second, status=RunStatus.FAILED, duration_ms=2.0)
    assert await runs_of(sessions, day) == [
        (first, RunStatus.SUPERSEDED, repository.SUPERSEDED_ERROR),
        (second, RunStatus.OK, None),
    ]


async def test_a_stale_finish_and_a_new_claim_at_the_same_instant(postgres_url: str) -> None:
    """Two processes on PostgreSQL at once: one finishes a run whose lease ran out, the other
    claims the day again and stores its figures. Whichever comes first, the day ends with the
    newer run's figures, and the stale run either finished before the claim (recorded ``ok``)
    or stored nothing (``superseded``): never its figures over the newer run's."""
    day = date(2026, 11, 4)
    at = datetime(2026, 11, 5, 6, tzinfo=UTC)
    engine = db.create_engine(rollup_settings("http://127.0.0.1:9", postgres_url).database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        async with sessions.begin() as session:
            stale = await repository.claim_day(
                session, day, trigger="test", worker="stale", now=at, lease=service.LEASE
            )
        assert stale is not None
        common = {"database_url": postgres_url, "day": day.isoformat(), "entities": 3}
        claim_at = (at + service.LEASE + timedelta(seconds=1)).isoformat()
        [(_, recorded), (newer, newer_recorded)] = await run_replicas(
            "tests.rollups.replica_scenarios:finish_or_claim",
            [{**common, "stale_run": stale}, {**common, "claim_at": claim_at}],
        )
        runs = await runs_of(sessions, day)
        async with sessions() as session:
            stored = await repository.entities(session, "service")
    finally:
        await engine.dispose()
    assert newer_recorded
    assert stored == ["newer0", "newer1", "newer2"]
    stale_status = RunStatus.OK if recorded else RunStatus.SUPERSEDED
    assert [(run_id, status) for run_id, status, _ in runs] == [(stale, stale_status), (newer, RunStatus.OK)]

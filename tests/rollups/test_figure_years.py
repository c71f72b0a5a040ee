"""Each figure's daily values kept per entity and year (``app/rollups/figure_years.py``): a daily
series read from them is the live series bit for bit, for any range, timezone and layout; what
they do not hold is computed live; every writer keeps them (rollups, retention, the catch-up,
two replicas writing two months of one year)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from app import db, migrations
from app.config import Settings
from app.rollups import figure_years, repository, service
from app.rollups.days import Granularity
from app.rollups.models import RollupDayPack, RollupFigureYear
from tests.grafana.support import builder_target, query_body, regex
from tests.harness.app import VIEWER_TOKEN, bearer, running_app, settings_for
from tests.harness.replicas import run_replicas
from tests.rollups.test_rendered import SERVICES, day_values

pytestmark = pytest.mark.timeout(240)

FIRST = date(2025, 12, 10)
LAST = date(2026, 4, 10)  # Europe/Berlin: 2026-03-29 has 23 hours
GAPS = {date(2026, 3, 3), date(2026, 1, 1)}  # no day stored
NO_QPS = (date(2026, 4, 2), "search.shop")  # a family missing that day: another layout
RANGES = [
    (FIRST, LAST),  # two years, every month, cut at both ends
    (date(2023, 4, 12), date(2026, 4, 10)),  # three years, two of them without a day
    (date(2025, 12, 25), date(2026, 1, 5)),  # across the new year and its gap
    (date(2026, 3, 29), date(2026, 3, 29)),  # the short day alone
    (date(2026, 3, 1), date(2026, 3, 31)),  # one whole month, with its gap
    (date(2026, 2, 1), date(2026, 4, 1)),
]


def days() -> list[date]:
    every = (FIRST + timedelta(days=k) for k in range((LAST - FIRST).days + 1))
    return [day for day in every if day not in GAPS]


def values_of(day: date) -> list[object]:
    return [
        value
        for index, name in enumerate(SERVICES)
        for value in day_values(day, index, name, qps=(day, name) != NO_QPS)
    ]


async def store(settings: Settings, *, render: bool = True) -> None:
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        for day in days():
            async with sessions.begin() as session:
                renderer = service.renderer(settings) if render else None
                await repository.replace_day(session, day, values_of(day), render=renderer)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (NaN payloads and signs included)."""
    return (
        a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))
    )


async def compare(settings: Settings, entity: str, first: date, last: date) -> int:
    """Every figure of ``entity`` over the range from the year rows against the live series (every
    figure at once); returns how many figures were read from the year rows."""
    engine = db.create_engine(settings.database)
    stored = 0
    try:
        async with db.create_session_factory(engine)() as session:
            service._SERIES.clear()
            live = await service.series_rows(
                session, settings, "service", entity, first, last, Granularity.DAY
            )
            catalog = service.catalog_of(settings)
            for figure in catalog.figure_names("service"):
                found = await service._stored_daily_figure(
                    session, settings, catalog, "service", entity, first, last, figure
                )
                service._SERIES.clear()
                asked = await service.series_rows(
                    session, settings, "service", entity, first, last, Granularity.DAY, only=[figure]
                )
                assert asked.names == live.names
                assert asked.days == live.days
                assert same(asked.starts, live.starts)
                assert same(asked.figures[figure], live.figures[figure]), (entity, first, last, figure)
                if found is not None:
                    stored += 1
                    rows, _ = found
                    assert rows.names == live.names
                    assert rows.days == live.days
                    assert same(rows.figures[figure], live.figures[figure]), (entity, first, last, figure)
    finally:
        await engine.dispose()
    return stored


async def figure_count(settings: Settings) -> int:
    return len(service.catalog_of(settings).figure_names("service"))


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "UTC"])
async def test_a_daily_series_read_from_year_rows_is_the_live_series_bit_for_bit(
    database_url: str, timezone: str
) -> None:
    settings = settings_for(database_url, timezone=timezone)
    await store(settings)
    figures = await figure_count(settings)
    for entity in ("checkout.shop", "cart.shop"):
        for first, last in RANGES:
            assert await compare(settings, entity, first, last) == figures, (entity, first, last)
    # search.shop's April holds two layouts: a range over it is computed live, March is read
    assert await compare(settings, "search.shop", FIRST, LAST) == 0
    assert await compare(settings, "search.shop", date(2026, 2, 1), date(2026, 3, 31)) == figures
    # a day replaced without one service (it has no day left there) and a day of a new month
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine).begin() as session:
            render = service.renderer(settings)
            kept = [v for v in values_of(date(2026, 4, 10)) if v.entity != "cart.shop"]  # type: ignore[attr-defined]
            await repository.replace_day(session, date(2026, 4, 10), kept, render=render)
            await repository.replace_day(session, date(2026, 4, 9), [], render=render)
            await repository.replace_day(
                session, date(2026, 5, 1), day_values(date(2026, 5, 1), 0, "checkout.shop"), render=render
            )
    finally:
        await engine.dispose()
    for entity in ("checkout.shop", "cart.shop"):
        for first, last in [(FIRST, date(2026, 5, 3)), (date(2026, 4, 1), date(2026, 4, 30))]:
            assert await compare(settings, entity, first, last) == figures, (entity, first, last)


async def grafana_answer(settings: Settings, entity: str, first: date, last: date) -> bytes:
    body = query_body(
        [builder_target("A", "service.latency_p99_ms", entity=regex(entity), granularity="day")],
        start=f"{first.isoformat()}T00:00:00.000Z",
        end=f"{last.isoformat()}T23:59:59.999Z",
        max_data_points=2000,
    )
    async with running_app(settings, migrate=False) as (_app, client):
        answer = await client.post("/grafana/query", json=body, headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 200, answer.text
    return answer.content


async def test_grafana_answers_the_same_bytes_from_year_rows_and_live(database_url: str) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin")
    await store(settings)
    service._SERIES.clear()
    stored = await grafana_answer(settings, "checkout.shop", FIRST, LAST)
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine).begin() as session:
            await session.execute(delete(RollupFigureYear))
    finally:
        await engine.dispose()
    service._SERIES.clear()
    assert await grafana_answer(settings, "checkout.shop", FIRST, LAST) == stored
    assert stored.count(b"],[") == len(days()) + len(GAPS) - 1  # a null point for each gap
    assert stored.count(b"[null,") == len(GAPS)


async def test_another_configuration_is_answered_live_until_the_catch_up_writes_its_rows(
    database_url: str,
) -> None:
    berlin = settings_for(database_url, timezone="Europe/Berlin")
    await store(berlin, render=False)  # as stored before migration 0018 (or 0017)
    figures = await figure_count(berlin)
    assert await compare(berlin, "cart.shop", FIRST, LAST) == 0
    engine = db.create_engine(berlin.database)
    try:
        sessions = db.create_session_factory(engine)
        assert await service.render_stale(sessions, berlin) == 3 * 5
        assert await compare(berlin, "cart.shop", FIRST, LAST) == figures
        # rows written for Berlin do not answer UTC, nor other figures, until written for them
        utc = settings_for(database_url, timezone="UTC")
        assert await compare(utc, "cart.shop", FIRST, LAST) == 0
        extra = settings_for(
            database_url,
            timezone="UTC",
            rollups={
                "enabled": False,
                "derived": [{"name": "ok", "entity": "service", "expr": "requests - errors"}],
            },
        )
        assert await service.render_stale(sessions, extra) == 3 * 5
        assert await service.render_stale(sessions, extra) == 0
        assert await compare(extra, "cart.shop", FIRST, LAST) == figures + 1
        async with sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(RollupFigureYear))
            due = await session.scalar(
                select(func.count()).select_from(RollupDayPack).where(RollupDayPack.render_key.is_(None))
            )
        assert stored == 3 * 2 * (figures + 1)  # three services, two years, one row a figure
        assert due == 0
    finally:
        await engine.dispose()


async def test_retention_keeps_the_year_rows_of_what_it_keeps(database_url: str) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin")
    await store(settings)
    figures = await figure_count(settings)
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        async with sessions.begin() as session:
            await repository.delete_before(session, date(2026, 1, 5), render=service.renderer(settings))
        assert await compare(settings, "cart.shop", FIRST, LAST) == figures
        async with sessions.begin() as session:  # Jan and Feb go from 2026's rows, March is cut
            await repository.delete_before(session, date(2026, 3, 10), render=service.renderer(settings))
        for first, last in [(FIRST, LAST), (date(2026, 1, 1), date(2026, 3, 31))]:
            assert await compare(settings, "cart.shop", first, last) == figures
        async with sessions() as session:
            years = set(await session.scalars(select(RollupFigureYear.year).distinct()))
        assert years == {2026}
    finally:
        await engine.dispose()


def test_a_year_row_keeps_each_month_apart() -> None:
    march = figure_years.year_start(2026) + 31 + 28
    row = figure_years.with_month(figure_years.blank(), march, 7, 0b101, np.asarray([1.5, -0.0]))
    found = figure_years.daily_values({2026: row}, [march], march, march + 30)
    assert found is not None
    numbers, values = found
    assert numbers.tolist() == [march, march + 2]
    assert values.tobytes() == np.asarray([1.5, -0.0]).tobytes()  # -0.0 kept, bit for bit
    # a month row the year row does not hold, or a second layout, is not answered
    april = march + 31
    assert figure_years.daily_values({2026: row}, [march, april], march, april + 29) is None
    both = figure_years.with_month(row, april, 8, 1, np.asarray([2.0]))
    assert figure_years.daily_values({2026: both}, [march, april], march, april + 29) is None
    assert figure_years.daily_values({2026: both}, [march, april], april, april + 29) is not None
    emptied = figure_years.with_month(both, march, 0, 0, None)
    assert figure_years.daily_values({2026: emptied}, [april], march, april + 29) is not None
    assert figure_years.daily_values({}, [april], march, april) is None


async def test_two_replicas_storing_two_months_of_one_year_keep_its_rows_whole(postgres_url: str) -> None:
    """Two processes store interleaved days of March and April at the same instant: each
    figure's year row holds every day of both months and is the live series."""
    settings = settings_for(postgres_url, timezone="UTC")
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    spring = [date(2026, 3, 1) + timedelta(days=i) for i in range(61)]
    replicas = [
        {
            "database_url": postgres_url,
            "days": [d.isoformat() for d in (spring[:31][start::2] + spring[31:][1 - start :: 2])],
            "entities": 12,
            "render": True,
        }
        for start in (0, 1)
    ]
    assert sum(await run_replicas("tests.rollups.replica_scenarios:store_days", replicas)) == 61
    figures = await figure_count(settings)
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine)() as session:
            rows = await service.series_rows(
                session,
                settings,
                "service",
                "s007",
                spring[0],
                spring[-1],
                Granularity.DAY,
                only=["requests"],
            )
            found = await service._stored_daily_figure(
                session,
                settings,
                service.catalog_of(settings),
                "service",
                "s007",
                spring[0],
                spring[-1],
                "requests",
            )
    finally:
        await engine.dispose()
    assert found is not None
    assert len(found[0].names) == 61 == len(rows.names)
    assert await compare(settings, "s007", spring[0], spring[-1]) == figures

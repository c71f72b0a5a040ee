"""Each figure's daily values kept per entity and month (``app/rollups/figure_months.py``): a
daily series read from them is the live series bit for bit, for any range, timezone and layout;
what they do not hold is computed live; every writer keeps them (rollups, retention, the
catch-up, two replicas writing days of two months at once)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from app import db, migrations
from app.config import Settings
from app.rollups import figure_months, repository, service
from app.rollups.compute import FamilyValue
from app.rollups.days import Granularity
from app.rollups.layouts import day_number
from app.rollups.models import RollupDayPack, RollupFigureMonth
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


def values_of(day: date) -> list[FamilyValue]:
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
                await repository.replace_day(session, day, values_of(day), render=renderer)
    finally:
        await engine.dispose()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (NaN payloads and signs included)."""
    return (
        a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))
    )


async def compare(settings: Settings, entity: str, first: date, last: date) -> int:
    """Every figure of ``entity`` over the range from its month rows against the live series (every
    figure at once); returns how many figures were read from the month rows."""
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
async def test_a_daily_series_read_from_month_rows_is_the_live_series_bit_for_bit(
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
            kept = [v for v in values_of(date(2026, 4, 10)) if v.entity != "cart.shop"]
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


async def test_grafana_answers_the_same_bytes_from_month_rows_and_live(database_url: str) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin")
    await store(settings)
    service._SERIES.clear()
    stored = await grafana_answer(settings, "checkout.shop", FIRST, LAST)
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine).begin() as session:
            await session.execute(delete(RollupFigureMonth))
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
            stored = await session.scalar(select(func.count()).select_from(RollupFigureMonth))
            due = await session.scalar(
                select(func.count()).select_from(RollupDayPack).where(RollupDayPack.render_key.is_(None))
            )
        assert stored == (3 * 5 - 1) * (
            figures + 1
        )  # a row a figure and month (search.shop's April has none)
        assert due == 0
    finally:
        await engine.dispose()


async def test_retention_keeps_the_figure_rows_of_what_it_keeps(database_url: str) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin")
    await store(settings)
    figures = await figure_count(settings)
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        async with sessions.begin() as session:
            await repository.delete_before(session, date(2026, 1, 5), render=service.renderer(settings))
        assert await compare(settings, "cart.shop", FIRST, LAST) == figures
        async with sessions.begin() as session:  # Jan and Feb go, March is cut
            await repository.delete_before(session, date(2026, 3, 10), render=service.renderer(settings))
        for first, last in [(FIRST, LAST), (date(2026, 1, 1), date(2026, 3, 31))]:
            assert await compare(settings, "cart.shop", first, last) == figures
        async with sessions() as session:
            months = set(await session.scalars(select(RollupFigureMonth.month).distinct()))
        assert months == {day_number(date(2026, m, 1)) for m in (3, 4)}
    finally:
        await engine.dispose()


def test_month_rows_answer_only_the_months_they_hold_and_one_layout() -> None:
    march, april = day_number(date(2026, 3, 1)), day_number(date(2026, 4, 1))
    one = figure_months.encode(7, 0b101, np.asarray([1.5, -0.0]))
    found = figure_months.daily_values([(march, one)], [march], march, march + 30)
    assert found is not None
    numbers, values = found
    assert numbers.tolist() == [march, march + 2]
    assert values.tobytes() == np.asarray([1.5, -0.0]).tobytes()  # -0.0 kept, bit for bit
    found = figure_months.daily_values([(march, one)], [march], march + 1, march + 30)
    assert found is not None
    assert found[0].tolist() == [march + 2]
    # a month row of days without its figure row, or a second layout in the range, is not answered
    assert figure_months.daily_values([(march, one)], [march, april], march, april + 29) is None
    other = figure_months.encode(8, 1, np.asarray([2.0]))
    assert figure_months.daily_values([(march, one), (april, other)], [march, april], march, april) is None
    assert (
        figure_months.daily_values([(march, one), (april, other)], [march, april], april, april) is not None
    )
    with pytest.raises(ValueError, match="values for"):
        figure_months.encode(7, 0b111, np.asarray([1.0]))


async def test_two_replicas_storing_days_of_two_months_keep_every_figure_row(postgres_url: str) -> None:
    """Two processes store interleaved days of March and April at the same instant: each
    figure's month rows hold every day of both months and are the live series."""
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

"""A day stored on rows of its own (``models.RollupDayPack.part``, ``repository.replace_day``):
every reader reads it where it would read it in the month's row, in day order, bit for bit; the
month's row takes it in when its report rows are written (``render_stale``), with the same
answers; a day run again and retention's cut keep every other day."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from app import db, migrations
from app.config import Settings
from app.rollups import repository, service
from app.rollups.compute import FamilyValue
from app.rollups.days import Granularity
from app.rollups.layouts import day_number, encode_day
from app.rollups.models import RollupDayPack
from tests.harness.app import settings_for
from tests.harness.replicas import run_replicas
from tests.rollups.test_rendered import SERVICES, day_values, live_answer

pytestmark = pytest.mark.timeout(180)

FEBRUARY = [date(2026, 2, 20) + timedelta(days=k) for k in range(9)]
MARCH = [date(2026, 3, 1) + timedelta(days=k) for k in range(31)]
FIRST, LAST = FEBRUARY[0], MARCH[-1]


def values_of(day: date, shift: int = 0) -> list[FamilyValue]:
    return [value for index, name in enumerate(SERVICES) for value in day_values(day, index + shift, name)]


async def store(
    sessions: service.Sessions, days: list[date], *, render: Settings | None = None, shift: int = 0
) -> None:
    for day in days:
        async with sessions.begin() as session:
            renderer = None if render is None else service.renderer(render)
            await repository.replace_day(session, day, values_of(day, shift), render=renderer)


async def rows_by_part(sessions: service.Sessions) -> dict[int, int]:
    async with sessions() as session:
        found = await session.execute(
            select(RollupDayPack.part, func.count()).group_by(RollupDayPack.part).order_by(RollupDayPack.part)
        )
        return {int(part): int(count) for part, count in found}


async def stored_figure(sessions: service.Sessions, settings: Settings) -> object:
    """The first service's ``requests`` over the range as read from figure rows (None: computed live)."""
    async with sessions() as session:
        catalog = service.catalog_of(settings)
        return await service._stored_daily_figure(
            session, settings, catalog, "service", SERVICES[0], FIRST, LAST, "requests"
        )


async def answers_of(sessions: service.Sessions, settings: Settings) -> list[object]:
    """What readers answer over the range: each service's daily and monthly series (numbers as
    bytes: bit for bit), the every-service report summed from month sums and days, and one
    service's stored days as read."""
    found: list[object] = []
    async with sessions() as session:
        for name in SERVICES:
            for granularity in (Granularity.DAY, Granularity.MONTH):
                service._SERIES.clear()
                rows = await service.series_rows(session, settings, "service", name, FIRST, LAST, granularity)
                found.append((rows.names, {k: v.tobytes() for k, v in rows.figures.items()}))
        for first, last in ((FIRST, LAST), (MARCH[0], MARCH[-1]), (FEBRUARY[3], MARCH[9])):
            async for rows in service.report_chunks(session, settings, "service", first, last):
                found.append((rows.names, rows.days, {k: v.tobytes() for k, v in rows.figures.items()}))
        stored = await repository.entity_days(session, "service", SERVICES[0], FIRST, LAST)
        found.append((stored.days, stored.layout_ids, stored.blobs))
    return found


async def test_days_on_rows_of_their_own_read_as_the_month_row_and_are_taken_in_after(
    database_url: str,
) -> None:
    """February is stored with its report rows (in month rows); March as nights do, each day on
    rows of its own: readers read them as they read a month's row, and after ``render_stale``
    (one row per entity and month again) every answer is the same, bit for bit. A day earlier
    than one its month holds (a catch-up goes newest first) goes into the month's row at once."""
    settings = settings_for(database_url, timezone="Europe/Berlin")
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        await store(sessions, FEBRUARY, render=settings)
        await store(sessions, MARCH)
        parts = await rows_by_part(sessions)
        assert parts == {0: len(SERVICES), **{day.day: len(SERVICES) for day in MARCH}}
        before = await answers_of(sessions, settings)
        stored = before[-1]
        assert isinstance(stored, tuple)
        assert stored[0] == [day_number(day) for day in FEBRUARY + MARCH]  # day order
        live, joined = await live_answer(settings, SERVICES[0], FIRST, LAST)
        assert joined is None  # March has no report rows yet: answered live
        figure = await stored_figure(sessions, settings)
        assert figure is None  # February's figure rows are there, March's not: computed live

        # a batch counts months, not their rows: two entities' Marches, each of 31 rows, in one
        assert await service.render_stale(sessions, settings, days=MARCH[:1], limit=2) == 2
        assert await rows_by_part(sessions) == {0: len(SERVICES) + 2, **{day.day: 1 for day in MARCH}}
        assert await answers_of(sessions, settings) == before
        assert await service.render_stale(sessions, settings, days=MARCH[:1]) == 1
        assert await rows_by_part(sessions) == {0: 2 * len(SERVICES)}
        assert await answers_of(sessions, settings) == before
        after, joined = await live_answer(settings, SERVICES[0], FIRST, LAST)
        assert after == live == joined
        figure = await stored_figure(sessions, settings)
        assert figure is not None

        april = [date(2026, 4, 10), date(2026, 4, 5), date(2026, 4, 12)]
        await store(sessions, april)
        assert await rows_by_part(sessions) == {0: 3 * len(SERVICES), 12: len(SERVICES)}
        async with sessions() as session:
            stored = await repository.entity_days(session, "service", SERVICES[0], april[1], april[2])
        assert stored.days == [day_number(day) for day in sorted(april)]
    finally:
        await engine.dispose()


async def test_a_day_run_again_replaces_its_own_rows_or_its_place_in_the_month_row(database_url: str) -> None:
    """March 6 run again while it is on rows of its own, then again once the month's row holds it:
    each time one copy of the day is kept, with the new numbers, and the month sums are the sums
    of the days then held (the same as summing them again from scratch)."""
    settings = settings_for(database_url)
    engine = db.create_engine(settings.database)
    day = MARCH[5]
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        await store(sessions, MARCH[:10])
        for shift, fold in ((1, False), (2, True)):
            await store(sessions, [day], shift=shift)
            if fold:
                await service.render_stale(sessions, settings)
                await store(sessions, [day], shift=shift + 1)
                shift += 1
            async with sessions.begin() as session:  # a writer: the sums are summed again below
                stored = await repository.entity_days(session, "service", SERVICES[1], MARCH[0], MARCH[-1])
                ids = [i for i, _ in await repository.entity_list(session, "service")]
                kept = await repository.months_of_entities(session, ids, MARCH[0], MARCH[0])
                await repository.recompute_months(session, day_number(MARCH[0]), ids)
                again = await repository.months_of_entities(session, ids, MARCH[0], MARCH[0])
            assert stored.days == [day_number(d) for d in MARCH[:10]]
            expected = encode_day("service", SERVICES[1], values_of(day, shift)[6:12])
            assert stored.blobs[5] == expected.data
            assert kept == again  # bit for bit
            held = {0: len(SERVICES)} if fold else {d.day: len(SERVICES) for d in MARCH[:10]}
            assert await rows_by_part(sessions) == held
    finally:
        await engine.dispose()


async def test_retention_cut_keeps_the_later_days_on_rows_of_their_own(database_url: str) -> None:
    settings = settings_for(database_url)
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        await store(sessions, MARCH[:10], render=settings)
        await store(sessions, MARCH[10:15])
        async with sessions.begin() as session:
            deleted, _ = await repository.delete_before(session, MARCH[11], render=service.renderer(settings))
        assert deleted == 11 * len(SERVICES)
        async with sessions() as session:
            counts = await repository.day_counts(session)
            stored = await repository.entity_days(session, "service", SERVICES[2], MARCH[0], MARCH[-1])
        assert counts == {day_number(d): len(SERVICES) for d in MARCH[11:15]}
        assert stored.days == [day_number(d) for d in MARCH[11:15]]
        assert (
            np.frombuffer(stored.blobs[0], dtype="<f8").tolist()
            == np.frombuffer(
                encode_day("service", SERVICES[2], values_of(MARCH[11])[12:]).data, dtype="<f8"
            ).tolist()
        )
        assert await rows_by_part(sessions) == {0: len(SERVICES)}
    finally:
        await engine.dispose()


async def test_two_replicas_storing_nights_and_writing_their_rows_at_once_keep_every_day(
    postgres_url: str,
) -> None:
    """Two processes on PostgreSQL at the same instant store interleaved days of one month as
    nights do, each day's report rows written right after it (which packs the days on rows of
    their own into the month's row, under the month's lock, while the other stores): every day of
    every entity is kept, once, the month sums are its days' sums, and the report joined from the
    month's rows is the live answer."""
    settings = settings_for(postgres_url, timezone="UTC")
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        replicas = [
            {
                "database_url": postgres_url,
                "days": [d.isoformat() for d in MARCH[start::2]],
                "entities": 30,
                "after": True,
            }
            for start in (0, 1)
        ]
        assert await run_replicas("tests.rollups.replica_scenarios:store_days", replicas) == [16, 15]
        sessions = db.create_session_factory(engine)
        await service.render_stale(sessions, settings)
        assert await rows_by_part(sessions) == {0: 30}
        async with sessions.begin() as session:
            counts = await repository.day_counts(session)
            ids = [i for i, _ in await repository.entity_list(session, "service")]
            kept = await repository.months_of_entities(session, ids, MARCH[0], MARCH[0])
            await repository.recompute_months(session, day_number(MARCH[0]), ids)
            again = await repository.months_of_entities(session, ids, MARCH[0], MARCH[0])
    finally:
        await engine.dispose()
    assert counts == {day_number(d): 30 for d in MARCH}
    assert kept == again  # bit for bit
    live, joined = await live_answer(settings, "s007", MARCH[0], MARCH[-1])
    assert joined == live

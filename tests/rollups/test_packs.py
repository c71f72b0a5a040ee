"""Stored days packed into one row per entity and month (``layouts.pack_month``,
``models.RollupDayPack``): exact, and kept whole when replicas write days of one month at once."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from app import db, migrations
from app.rollups import frames, repository
from app.rollups.compute import FamilyValue
from app.rollups.layouts import day_number, pack_day, pack_month, unpack_month
from tests.harness.app import settings_for
from tests.harness.replicas import run_replicas
from tests.rollups.replica_scenarios import month_day_values

pytestmark = pytest.mark.timeout(180)


def test_a_packed_month_unpacks_bit_for_bit() -> None:
    vectors = {
        1: (7, np.asarray([math.nan, 5e-324, -0.0], dtype="<f8").tobytes()),
        17: (2**62 + 3, np.asarray([1.0000000115740742], dtype="<f8").tobytes()),
        31: (7, b""),
    }
    mask, data = pack_month(vectors)
    assert mask == 1 | 1 << 16 | 1 << 30
    assert len(data) == 3 * 12 + 4 * 8
    assert unpack_month(mask, data) == vectors
    assert pack_month({}) == (0, b"")
    with pytest.raises(ValueError, match="1–31"):
        pack_month({32: (7, b"")})
    with pytest.raises(ValueError, match="bytes"):
        unpack_month(mask, data[:-1])


async def test_two_replicas_storing_days_of_one_month_at_once_keep_both(postgres_url: str) -> None:
    """Two processes on PostgreSQL store interleaved days of one month, each day in its own
    transaction, at the same instant: every day of every entity is kept (no lost update of the
    month row) and the month sums hold all the days."""
    engine = db.create_engine(settings_for(postgres_url).database)
    await migrations.upgrade(engine)
    async with engine.connect() as connection:
        storage = await connection.scalar(
            text(
                "SELECT attstorage FROM pg_attribute"
                " WHERE attrelid = 'rollup_day_packs'::regclass AND attname = 'data'"
            )
        )
    assert storage in ("e", b"e")  # out of line, never compressed (migration 0015 says why)
    entities = 40
    march = [date(2026, 3, 1) + timedelta(days=i) for i in range(31)]
    replicas = [
        {"database_url": postgres_url, "days": [d.isoformat() for d in march[start::2]], "entities": entities}
        for start in (0, 1)
    ]
    try:
        assert await run_replicas("tests.rollups.replica_scenarios:store_days", replicas) == [16, 15]
        async with db.create_session_factory(engine)() as session:
            counts = await repository.day_counts(session)
            ids = sorted((await repository.ensure_entity_ids(session, [("service", "s000")])).values())
            stored = await repository.entity_days(session, "service", "s007", march[0], march[-1])
            listed = [i for i, _ in await repository.entity_list(session, "service")]
            months = await repository.months_of_entities(session, listed, march[0], march[0])
            days = await repository.days_of_entities(session, listed, march[0], march[-1])
            found = await repository.layouts(session, set(days.layout_ids) | set(months.layout_ids))
    finally:
        await engine.dispose()
    assert counts == {day_number(d): entities for d in march}
    assert len(ids) == 1
    assert stored.days == [day_number(d) for d in march]
    expected = [month_day_values(d, entities)[7].total for d in march]
    assert [np.frombuffer(blob, dtype="<f8")[0] for blob in stored.blobs] == expected  # bit for bit
    assert months.masks == [2**31 - 1] * entities
    summed = frames.reduce(
        frames.frame_of([found[i] for i in days.layout_ids], days.blobs),
        frames.group_starts(np.asarray(days.entity_ids, dtype=np.int64)),
    )
    kept = frames.frame_of([found[i] for i in months.layout_ids], months.blobs)
    # days stored out of order (here interleaved by the two replicas) still sum in day order
    np.testing.assert_array_equal(kept.matrix, summed.matrix)


async def test_the_month_sums_its_days_in_day_order_whatever_order_they_were_stored(
    database_url: str,
) -> None:
    """Day 3 stored before day 2 (a catch-up filling a gap): the month's sum is the days added in
    day order, bit for bit, as if they had been stored night after night. The figures are chosen so
    the order shows: 1e16 + 1 rounds to 1e16, so in day order the month holds 0, out of order 1."""
    engine = db.create_engine(settings_for(database_url).database)
    await migrations.upgrade(engine)
    march = {date(2026, 3, 1): 1e16, date(2026, 3, 2): 1.0, date(2026, 3, 3): -1e16, date(2026, 3, 4): 0.5}
    try:
        sessions = db.create_session_factory(engine)
        for day in (date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 2), date(2026, 3, 4)):
            async with sessions.begin() as session:
                await repository.replace_day(
                    session, day, [FamilyValue("service", "cart", "requests", total=march[day])]
                )
        async with sessions() as session:
            listed = [i for i, _ in await repository.entity_list(session, "service")]
            months = await repository.months_of_entities(session, listed, date(2026, 3, 1), date(2026, 3, 1))
            found = await repository.layouts(session, set(months.layout_ids))
    finally:
        await engine.dispose()
    [total] = frames.frame_of([found[i] for i in months.layout_ids], months.blobs).matrix[:, 0].tolist()
    assert months.masks == [0b1111]
    assert total == ((1e16 + 1.0) + -1e16) + 0.5 == 0.5  # stored order would give 1.5


def test_a_day_packed_alone_is_a_month_holding_that_day() -> None:
    vector = np.asarray([math.nan, 5e-324, -0.0, 1.0000000115740742], dtype="<f8").tobytes()
    for day in (1, 17, 31):
        assert pack_day(2**62 + 3, vector) == pack_month({day: (2**62 + 3, vector)})[1]
    assert pack_day(-7, b"") == pack_month({5: (-7, b"")})[1]
    with pytest.raises(ValueError, match="float64"):
        pack_day(7, b"\0" * 5)

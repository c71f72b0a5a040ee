"""The report's reads on the driver's connection answer what the ORM's reads answered."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.rollups import repository
from app.rollups.compute import FamilyValue
from app.rollups.layouts import day_number
from app.rollups.repository import RunStatus

pytestmark = pytest.mark.timeout(120)

FIRST = date(2026, 3, 1)
LEASE = timedelta(seconds=0)  # every claim below is granted, however young the one before


async def test_partial_days_are_the_days_whose_newest_run_is_partial(migrated_engine: AsyncEngine) -> None:
    sessions = db.create_session_factory(migrated_engine)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    runs = {  # each day's runs, oldest first
        0: [RunStatus.PARTIAL],
        1: [RunStatus.PARTIAL, RunStatus.OK],  # rolled up again, whole: no longer partial
        2: [RunStatus.OK, RunStatus.PARTIAL],
        3: [RunStatus.PARTIAL, RunStatus.FAILED],
        4: [RunStatus.PARTIAL, RunStatus.RUNNING],
        5: [RunStatus.NO_DATA],
        9: [RunStatus.PARTIAL],  # outside the period asked below
    }
    async with sessions.begin() as session:
        for offset, statuses in runs.items():
            for n, status in enumerate(statuses):
                day = FIRST + timedelta(days=offset)
                started = now + timedelta(minutes=n)
                run_id = await repository.claim_day(
                    session, day, trigger="test", worker="test", now=started, lease=LEASE
                )
                assert run_id is not None
                if status != RunStatus.RUNNING:
                    await repository.finish_run(session, run_id, status=status, duration_ms=1.0)
    last = FIRST + timedelta(days=8)
    async with sessions() as session:
        found = await repository.partial_days(session, FIRST, last)
        states = await repository.day_states(session, FIRST, last)
    assert found == [FIRST, FIRST + timedelta(days=2)]
    assert found == sorted(day for day, state in states.items() if state.status == RunStatus.PARTIAL)


async def test_days_read_with_the_generation_are_the_days_and_the_generation_read_apart(
    migrated_engine: AsyncEngine,
) -> None:
    """``entity_days_at`` (one statement: what a cold series reads) answers what ``entity_days``
    and ``generation`` answer read one after the other, and sees a later write's generation; a
    range without any stored month still has the store's generation."""
    sessions = db.create_session_factory(migrated_engine)
    days = [FIRST + timedelta(days=offset) for offset in (0, 1, 30, 31, 45)]  # March and April
    for day in days:
        async with sessions.begin() as session:
            values = [
                FamilyValue("service", name, "requests", total=day.toordinal() * 1.0000000115740742 + n)
                for n, name in enumerate(("checkout", "shop"))
            ]
            await repository.replace_day(session, day, values)
    first, last = FIRST + timedelta(days=1), FIRST + timedelta(days=31)  # cuts both months
    async with sessions() as session:
        apart = await repository.entity_days(session, "service", "shop", first, last)
        generation = await repository.generation(session)
        together, at = await repository.entity_days_at(session, "service", "shop", first, last)
        empty, empty_at = await repository.entity_days_at(
            session, "service", "shop", date(2025, 1, 1), date(2025, 2, 1)
        )
    assert at == generation == empty_at
    assert together.days == apart.days == [day_number(d) for d in days[1:4]]
    assert together.entity_ids == apart.entity_ids
    assert together.layout_ids == apart.layout_ids
    assert together.blobs == apart.blobs  # bit for bit
    assert empty.days == []
    async with sessions.begin() as session:
        shop = [FamilyValue("service", "shop", "requests", total=1.0)]
        await repository.replace_day(session, days[2], shop)
    async with sessions() as session:
        again, later = await repository.entity_days_at(session, "service", "shop", first, last)
    assert later == generation + 1
    assert np.frombuffer(again.blobs[1], dtype="<f8")[0] == 1.0

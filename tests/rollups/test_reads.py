"""The report's reads on the driver's connection answer what the ORM's reads answered."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.rollups import repository
from app.rollups.repository import RunStatus

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
    assert found == sorted(day for day, (status, _) in states.items() if status == RunStatus.PARTIAL)

"""A series kept in memory is answered again only while the store has not changed, on any replica."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.config import DatabaseSettings
from app.rollups import repository, service
from app.rollups.cache import Computed
from app.rollups.compute import FamilyValue
from app.rollups.days import Granularity
from app.rollups.errors import UnknownEntity
from tests.harness.app import settings_for

SERVICE = "cached.test.svc.cluster.local"
DAY = date(2026, 2, 3)


def requests(total: float) -> list[FamilyValue]:
    return [FamilyValue("service", SERVICE, "requests", total=total)]


async def test_a_write_by_another_replica_is_seen_at_the_next_request(
    migrated_engine: AsyncEngine, database_url: str
) -> None:
    settings = settings_for(database_url)
    other = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
    mine, theirs = db.create_session_factory(migrated_engine), db.create_session_factory(other)
    try:
        async with mine.begin() as session:
            await repository.replace_day(session, DAY, requests(100.0))

        async def read() -> float | None:
            async with mine() as session:
                [day] = await service.series(session, settings, "service", SERVICE, DAY, DAY, Granularity.DAY)
            return day.figures["requests"]

        assert await read() == 100.0
        assert await read() == 100.0  # kept: the same answer
        async with theirs.begin() as session:  # another replica rolls the day up again
            await repository.replace_day(session, DAY, requests(250.0))
        assert await read() == 250.0
        async with theirs.begin() as session:  # and retention removes it
            await repository.delete_before(session, date(2026, 3, 1))
        with pytest.raises(UnknownEntity):  # no day left: the service is gone, not kept
            await read()
    finally:
        await other.dispose()


def test_kept_values_answer_only_for_their_generation_and_catalogue() -> None:
    kept: Computed[str] = Computed(max_entries=2)
    catalog, reloaded = object(), object()
    kept.put("a", 7, catalog, "A")
    assert kept.get("a", 7, catalog) == "A"
    assert kept.get("a", 8, catalog) is None  # the store changed since
    kept.put("a", 8, catalog, "A2")
    assert kept.get("a", 8, reloaded) is None  # the configuration was reloaded since
    kept.put("b", 8, catalog, "B")
    kept.put("c", 8, catalog, "C")
    kept.put("d", 8, catalog, "D")
    assert len(kept) == 2
    assert kept.get("b", 8, catalog) is None  # the least recently used left first

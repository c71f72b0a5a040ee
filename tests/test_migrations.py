"""The Alembic migrations, up and down, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import date, timedelta

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

import app.models
from app import db, migrations
from app.config import DatabaseSettings
from app.rollups import repository as rollup_repository
from app.rollups.compute import FamilyValue
from app.rollups.config import FamilyKind
from app.rollups.layouts import day_number, make_layout


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, app.models.Base.metadata))


async def test_upgrade_builds_exactly_the_models(migrated_engine: AsyncEngine) -> None:
    assert await migrations.current_revision(migrated_engine) == migrations.head_revision()
    async with migrated_engine.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []
        tables = await connection.run_sync(_tables)
    assert tables == set(app.models.Base.metadata.tables) | {"alembic_version"}


async def test_downgrade_to_base_and_up_again(migrated_engine: AsyncEngine) -> None:
    await migrations.downgrade(migrated_engine, "base")
    assert await migrations.current_revision(migrated_engine) is None
    async with migrated_engine.connect() as connection:
        assert await connection.run_sync(_tables) <= {"alembic_version"}
    await migrations.upgrade(migrated_engine)
    assert await migrations.current_revision(migrated_engine) == migrations.head_revision()


async def test_upgrade_twice_changes_nothing(migrated_engine: AsyncEngine) -> None:
    await migrations.upgrade(migrated_engine)
    assert await migrations.current_revision(migrated_engine) == migrations.head_revision()


@pytest.mark.postgres
async def test_replicas_migrating_together_on_postgresql_all_succeed(postgres_url: str) -> None:
    """Replicas that start together all run `panorama migrate`; the advisory lock queues them."""
    engines = [db.create_engine(DatabaseSettings.model_validate({"url": postgres_url})) for _ in range(3)]
    try:
        await asyncio.gather(*(migrations.upgrade(engine) for engine in engines))
        for engine in engines:
            assert await migrations.current_revision(engine) == migrations.head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = db.create_engine(DatabaseSettings.model_validate({"url": sqlite_url}))
    try:
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert mode == "wal"
        assert keys == 1
    finally:
        await engine.dispose()


async def test_0005_resolves_open_duplicates_before_the_one_open_incident_index(
    empty_engine: AsyncEngine,
) -> None:
    """Databases of earlier versions may hold a group opened twice (two replicas at once)."""
    await migrations.upgrade(empty_engine, "0004")
    columns = (
        "group_key, receiver, status, title, services, group_labels, common_labels, common_annotations,"
        " created_at, updated_at"
    )
    values = "'{}:{a=\"1\"}', 'r', 'triggered', 't', '[]', '{}', '{}', '{}', '2026-01-01', '2026-01-01'"
    async with empty_engine.begin() as connection:
        for _ in range(2):
            await connection.execute(text(f"INSERT INTO alert_incidents ({columns}) VALUES ({values})"))  # noqa: S608
    await migrations.upgrade(empty_engine, "0005")
    async with empty_engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, status FROM alert_incidents ORDER BY id"))).all()
        with pytest.raises(IntegrityError, match=r"(?i)unique"):
            await connection.execute(text(f"INSERT INTO alert_incidents ({columns}) VALUES ({values})"))  # noqa: S608
    assert [status for _, status in rows] == ["resolved", "triggered"]  # the newest stays open


async def test_0014_gives_stored_incidents_the_digest_of_their_group_key(empty_engine: AsyncEngine) -> None:
    """Incidents stored before 0014 are found by the digest of their groupKey afterwards."""
    await migrations.upgrade(empty_engine, "0013")
    columns = (
        "group_key, receiver, status, title, services, group_labels, common_labels, common_annotations,"
        " created_at, updated_at"
    )
    keys = ['{}:{a="1"}', '{}:{a="2"}']
    async with empty_engine.begin() as connection:
        for key in keys:
            await connection.execute(
                text(
                    f"INSERT INTO alert_incidents ({columns}) VALUES "  # noqa: S608
                    "(:key, 'r', 'triggered', 't', '[]', '{}', '{}', '{}', '2026-01-01', '2026-01-01')"
                ),
                {"key": key},
            )
    await migrations.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        rows = (await connection.execute(text("SELECT group_key, group_digest FROM alert_incidents"))).all()
        with pytest.raises(IntegrityError, match=r"(?i)unique"):
            await connection.execute(
                text(
                    f"INSERT INTO alert_incidents ({columns}, group_digest) VALUES "  # noqa: S608
                    "(:key, 'r', 'triggered', 't', '[]', '{}', '{}', '{}', '2026-01-01', '2026-01-01',"
                    " :digest)"
                ),
                {"key": keys[0], "digest": hashlib.sha256(keys[0].encode()).hexdigest()},
            )
    assert sorted(rows) == sorted((k, hashlib.sha256(k.encode()).hexdigest()) for k in keys)


async def test_0015_packs_stored_days_into_month_rows_and_back(empty_engine: AsyncEngine) -> None:
    """Entity days stored before 0015 read back the same, byte for byte, from month rows, and
    come back as the same day rows on downgrade (months' first and last days, two layouts of
    different widths in one month, NaN, the smallest subnormal)."""
    await migrations.upgrade(empty_engine, "0014")
    narrow = make_layout([("requests", FamilyKind.COUNTER, ())])
    wide = make_layout([("qps", FamilyKind.GAUGE, ()), ("requests", FamilyKind.COUNTER, ())])
    rng = np.random.default_rng(15)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(0, 100, 3)] + [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 1),
    ]
    rows: list[tuple[int, int, int, bytes]] = []
    for entity_id in (1, 2, 3):
        for number, day in enumerate(sorted(set(days))):
            if (entity_id + number) % 5 == 0:
                continue  # a day some entities lack
            layout = wide if number % 4 == 1 else narrow
            vector = rng.standard_normal(layout.width)
            vector[0] = [math.nan, 5e-324, vector[0]][number % 3]
            rows.append((entity_id, day_number(day), layout.id, vector.astype("<f8").tobytes()))
    async with empty_engine.begin() as connection:
        for entity_id in (1, 2, 3):
            await connection.execute(
                text("INSERT INTO rollup_entities (id, kind, name) VALUES (:id, 'service', :name)"),
                {"id": entity_id, "name": f"s{entity_id}"},
            )
        for layout in (narrow, wide):
            await connection.execute(
                text("INSERT INTO rollup_layouts (id, spec) VALUES (:id, :spec)"),
                {"id": layout.id, "spec": layout.spec},
            )
        await connection.execute(
            text("INSERT INTO rollup_days (entity_id, day, layout_id, data) VALUES (:e, :d, :l, :x)"),
            [{"e": e, "d": d, "l": lay, "x": x} for e, d, lay, x in rows],
        )
    await migrations.upgrade(empty_engine)
    async with db.create_session_factory(empty_engine)() as session:
        read: list[tuple[int, int, int, bytes]] = []
        for entity_id in (1, 2, 3):
            stored = await rollup_repository.entity_days(
                session, "service", f"s{entity_id}", date(2024, 1, 1), date(2024, 12, 31)
            )
            read += zip(stored.entity_ids, stored.days, stored.layout_ids, stored.blobs, strict=True)
        middle = await rollup_repository.days_of_entities(
            session, [1, 2, 3], date(2024, 1, 31), date(2024, 3, 1)
        )
        counts = await rollup_repository.day_counts(session)
    assert read == sorted(rows)
    wanted = [
        row for row in sorted(rows) if day_number(date(2024, 1, 31)) <= row[1] <= day_number(date(2024, 3, 1))
    ]
    assert list(zip(middle.entity_ids, middle.days, middle.layout_ids, middle.blobs, strict=True)) == wanted
    assert sum(counts.values()) == len(rows)

    await migrations.downgrade(empty_engine, "0014")
    async with empty_engine.connect() as connection:
        back = (
            await connection.execute(
                text("SELECT entity_id, day, layout_id, data FROM rollup_days ORDER BY entity_id, day")
            )
        ).all()
    assert [(e, d, lay, bytes(x)) for e, d, lay, x in back] == sorted(rows)


async def test_0021_packs_days_on_rows_of_their_own_back_into_month_rows(empty_engine: AsyncEngine) -> None:
    """Days stored on rows of their own (0021's ``part``), beside month rows, come back as one
    month row per entity and month on downgrade, every day byte for byte, and read the same
    after upgrading again."""
    await migrations.upgrade(empty_engine)
    days = [date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 14), date(2026, 2, 2)]
    sessions = db.create_session_factory(empty_engine)
    for number, day in enumerate(days):
        values = [
            FamilyValue("service", name, "requests", total=1000.0000115740742 * (number + 1) + index)
            for index, name in enumerate(("a", "b"))
            if (number, name) != (3, "b")
        ]
        async with sessions.begin() as session:
            await rollup_repository.replace_day(session, day, values)

    async def read() -> list[tuple[list[int], list[int], list[bytes]]]:
        async with db.create_session_factory(empty_engine)() as session:
            found = [
                await rollup_repository.entity_days(session, "service", name, days[0], days[3])
                for name in ("a", "b")
            ]
        return [(one.days, one.layout_ids, one.blobs) for one in found]

    before = await read()
    assert before[0][0] == [day_number(day) for day in sorted(days)]
    await migrations.downgrade(empty_engine, "0020")
    async with empty_engine.connect() as connection:
        keys = (
            await connection.execute(
                text("SELECT entity_id, month FROM rollup_day_packs ORDER BY entity_id, month")
            )
        ).all()
    assert len(keys) == len(set(keys)) == 4  # two entities × two months, one row each
    await migrations.upgrade(empty_engine)
    assert await read() == before

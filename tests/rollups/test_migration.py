"""Migration 0006 carries stored values into entity days and back, bit for bit, on both
databases (through 0015's month rows and back)."""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db, migrations
from app.rollups import service
from app.rollups.days import Granularity
from app.rollups.histograms import quantile
from tests.harness.app import settings_for

REVISION = "0006"
CHECKOUT = "checkout.shop.svc.cluster.local"
BOUNDS = (0.5, 25.0, "+Inf")
COLUMNS = ("entity_kind", "entity", "family", "day", "total", "samples", "peak", "low", "buckets")


INSERT_OLD = (
    "INSERT INTO rollup_values (entity_kind, entity, family, day, total, samples, peak, low, buckets)"
    " VALUES (:entity_kind, :entity, :family, :day, :total, :samples, :peak, :low, :buckets)"
)


def buckets(scale: float) -> str:
    return json.dumps([[b, scale * share] for b, share in zip(BOUNDS, (0.1 + 0.2, 0.7, 1.0), strict=True)])


# Rows as 0004 stored them: counters, a histogram (JSON, "+Inf"), a gauge without its lowest
# sample, a namespace, a user-defined kind, the 25-hour day of Europe/Berlin.
OLD_ROWS: list[tuple[Any, ...]] = [
    ("service", CHECKOUT, "requests", date(2026, 10, 24), 1000.0000115740742, None, None, None, None),
    ("service", CHECKOUT, "errors", date(2026, 10, 24), 5e-324, None, None, None, None),
    ("service", CHECKOUT, "latency", date(2026, 10, 24), None, None, None, None, buckets(1000.0000115740742)),
    ("service", CHECKOUT, "qps", date(2026, 10, 24), 3.3, 288, 0.9, None, None),
    ("service", CHECKOUT, "requests", date(2026, 10, 25), 2000.5, None, None, None, None),
    ("service", CHECKOUT, "latency", date(2026, 10, 25), None, None, None, None, buckets(2000.5)),
    ("namespace", "shop", "cpu_cores", date(2026, 10, 25), 345.6, 300, 2.5, 0.25, None),
    ("probe", "fall", "ticks", date(2026, 10, 25), 1500.0, None, None, None, None),
]


def _before() -> str:
    down = ScriptDirectory.from_config(migrations.alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


async def _insert_old(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for row in OLD_ROWS:
            await connection.execute(
                text(INSERT_OLD),
                dict(zip(COLUMNS, row, strict=True)),
            )


async def _old_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT entity_kind, entity, family, day, total, samples, peak, low, buckets"
                " FROM rollup_values ORDER BY entity_kind, entity, family, day"
            )
        )
        rows = []
        for row in found:
            day = row.day if isinstance(row.day, date) else date.fromisoformat(row.day)
            rows.append((*row[:3], day, *row[4:8], None if row.buckets is None else json.loads(row.buckets)))
        return rows


async def test_stored_values_become_entity_days_and_back(
    empty_engine: AsyncEngine, database_url: str
) -> None:
    await migrations.upgrade(empty_engine, _before())
    await _insert_old(empty_engine)

    await migrations.upgrade(empty_engine, REVISION)
    async with empty_engine.connect() as connection:
        entity_days = (await connection.execute(text("SELECT count(*) FROM rollup_days"))).scalar_one()
    assert entity_days == 4  # checkout on two days, shop, the probe
    await migrations.upgrade(empty_engine)  # and on into month rows (0015), which the app reads
    probe = {
        "name": "ticks",
        "entity": "probe",
        "kind": "counter",
        "query": "sum by (probe) (increase(x[$range]))",
    }
    rollups = {"enabled": False, "entities": [{"name": "probe", "labels": ["probe"]}], "definitions": [probe]}
    settings = settings_for(database_url, timezone="Europe/Berlin", rollups=rollups)
    async with db.create_session_factory(empty_engine)() as session:
        daily = await service.series(
            session, settings, "service", CHECKOUT, date(2026, 10, 24), date(2026, 10, 25), Granularity.DAY
        )
        [both] = await service.report(session, settings, "service", date(2026, 10, 24), date(2026, 10, 25))
        [shop] = await service.report(session, settings, "namespace", date(2026, 10, 25), date(2026, 10, 25))
        [ticks] = await service.report(session, settings, "probe", date(2026, 10, 25), date(2026, 10, 25))
    assert [p.figures["requests"] for p in daily] == [1000.0000115740742, 2000.5]  # bit for bit
    assert daily[0].figures["errors"] == 5e-324
    assert daily[1].figures["errors"] is None  # not stored that day: still no figure, not zero
    assert daily[0].figures["qps_peak"] == 0.9
    assert daily[1].figures["qps_avg"] == 2000.5 / 90_000  # the 25-hour day
    shares = zip((0.5, 25.0, math.inf), (0.1 + 0.2, 0.7, 1.0), strict=True)
    summed = {bound: 1000.0000115740742 * share + 2000.5 * share for bound, share in shares}
    assert both.figures["latency_p99_ms"] == quantile(0.99, summed)  # buckets summed bound by bound
    assert shop.figures["cpu_cores_avg"] == 345.6 / 300
    assert ticks.figures["ticks"] == 1500.0

    await migrations.downgrade(empty_engine, _before())
    assert await _old_rows(empty_engine) == sorted(
        (*row[:8], None if row[8] is None else json.loads(row[8])) for row in OLD_ROWS
    )
    await migrations.upgrade(empty_engine)

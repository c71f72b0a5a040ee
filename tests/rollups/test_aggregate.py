"""Exact re-aggregation over weeks, months and years from stored days, on SQLite and PostgreSQL.

The days are stored through the repository (as a rollup would store them) with values chosen so
that the wrong aggregations (averaging daily percentiles or daily means) give different answers.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.rollups import repository, service
from app.rollups.compute import FamilyValue
from app.rollups.days import Granularity, days_between
from app.rollups.histograms import quantile
from tests.harness.app import settings_for
from tests.harness.database import DIALECTS, engine_for, filled_database

SERVICE = "synthetic.test.svc.cluster.local"
FIRST = date(2026, 1, 1)  # a Thursday
LAST = date(2026, 3, 31)
BOUNDS = (10.0, 100.0, 1000.0, math.inf)


def day_values(day: date) -> list[FamilyValue]:
    """Odd days: 100 fast requests; even days: 10 slow ones. Gauge sample counts differ too."""
    odd = day.toordinal() % 2 == 1
    requests = 100.0 if odd else 10.0
    buckets = dict(zip(BOUNDS, (90.0, 100.0, 100.0, 100.0) if odd else (0.0, 0.0, 9.0, 10.0), strict=True))
    return [
        FamilyValue("service", SERVICE, "requests", total=requests),
        FamilyValue("service", SERVICE, "errors", total=1.0),
        FamilyValue("service", SERVICE, "latency_sum_ms", total=requests * (8 if odd else 700)),
        FamilyValue("service", SERVICE, "latency_count", total=requests),
        FamilyValue("service", SERVICE, "latency", buckets=buckets),
        FamilyValue(
            "service",
            SERVICE,
            "qps",
            total=288 * 2.0 if odd else 144 * 1.0,
            samples=288 if odd else 144,
            peak=5.0 if day.day != 15 else 50.0,
            low=0.5,
        ),
    ]


async def store_the_quarter(engine: AsyncEngine) -> None:
    async with db.create_session_factory(engine).begin() as session:
        for day in days_between(FIRST, LAST):
            await repository.replace_day(session, day, day_values(day))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=DIALECTS)
async def stored_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of each dialect holding the quarter, stored once for the tests that only read it."""
    async with filled_database(request.param, tmp_path_factory, store_the_quarter) as url:
        yield url


def expected(days: list[date]) -> dict[str, float]:
    values = [day_values(d) for d in days]
    requests = sum(v[0].total or 0 for v in values)
    errors = sum(v[1].total or 0 for v in values)
    summed: dict[float, float] = {}
    for v in values:
        for bound, count in (v[4].buckets or {}).items():
            summed[bound] = summed.get(bound, 0.0) + count
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests,
        "availability": 1 - errors / requests,
        "qps_avg": requests / (86400 * len(days)),
        "qps_peak": max(v[5].peak or 0 for v in values),
        "latency_avg_ms": sum(v[2].total or 0 for v in values) / sum(v[3].total or 0 for v in values),
        "latency_p50_ms": quantile(0.5, summed) or math.nan,
        "latency_p99_ms": quantile(0.99, summed) or math.nan,
    }


def assert_figures(found: dict[str, float | None], want: dict[str, float]) -> None:
    for name in (
        "requests",
        "errors",
        "error_rate",
        "availability",
        "qps_avg",
        "qps_peak",
        "latency_avg_ms",
        "latency_p50_ms",
        "latency_p99_ms",
    ):
        assert found[name] == pytest.approx(want[name], rel=1e-12), name


async def test_a_quarter_is_exact(stored_url: str) -> None:
    settings = settings_for(stored_url)
    async with engine_for(stored_url) as stored, db.create_session_factory(stored)() as session:
        [found] = await service.report(session, settings, "service", FIRST, LAST)
    days = list(days_between(FIRST, LAST))
    want = expected(days)
    assert found.entity == SERVICE
    assert found.days == len(days) == 90
    assert_figures(found.figures, want)
    daily_p99 = [quantile(0.99, d[4].buckets or {}) or 0 for d in map(day_values, days)]
    assert abs(sum(daily_p99) / len(daily_p99) - want["latency_p99_ms"]) > 100  # an average of p99s is wrong


@pytest.mark.parametrize(
    "granularity", [Granularity.DAY, Granularity.WEEK, Granularity.MONTH, Granularity.YEAR]
)
async def test_each_period_is_exact(stored_url: str, granularity: Granularity) -> None:
    settings = settings_for(stored_url)
    async with engine_for(stored_url) as stored, db.create_session_factory(stored)() as session:
        periods = await service.series(session, settings, "service", SERVICE, FIRST, LAST, granularity)
    groups: dict[date, list[date]] = {}
    for day in days_between(FIRST, LAST):
        key = {
            Granularity.DAY: day,
            Granularity.WEEK: day - timedelta(days=day.weekday()),
            Granularity.MONTH: day.replace(day=1),
            Granularity.YEAR: day.replace(month=1, day=1),
        }[granularity]
        groups.setdefault(key, []).append(day)
    assert [p.start for p in periods] == sorted(groups)
    for period in periods:
        assert period.days == len(groups[period.start])
        assert_figures(period.figures, expected(groups[period.start]))
    if granularity is Granularity.WEEK:
        assert periods[0].label == "2026-W01"  # ISO week 1 of 2026 starts on Monday 2025-12-29
        assert periods[0].start == date(2025, 12, 29)
        assert periods[0].days == 4
    if granularity is Granularity.MONTH:
        assert [p.label for p in periods] == ["2026-01", "2026-02", "2026-03"]
        assert periods[0].figures["qps_peak"] == 50.0


async def test_gauge_means_are_weighted_by_samples(stored_url: str) -> None:
    """A gauge's mean over a period is the mean of all its samples, not the mean of daily means."""
    settings = settings_for(stored_url)
    async with engine_for(stored_url) as stored, db.create_session_factory(stored)() as session:
        totals = await service.period_totals(
            session, settings, service.catalog_of(settings), "service", FIRST, date(2026, 1, 2)
        )
    gauge = totals[SERVICE].gauges["qps"]
    assert gauge.total / gauge.samples == pytest.approx((288 * 2 + 144) / (288 + 144))
    assert gauge.total / gauge.samples != pytest.approx((2.0 + 1.0) / 2)  # the mean of daily means


async def test_dst_days_count_their_real_length(migrated_engine: AsyncEngine, database_url: str) -> None:
    """In Europe/Berlin, 2026-10-25 lasts 25 hours: qps_avg over it divides by 90,000 seconds."""
    settings = settings_for(database_url, timezone="Europe/Berlin")
    sessions = db.create_session_factory(migrated_engine)
    days = [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
    async with sessions.begin() as session:
        for day in days:
            await repository.replace_day(
                session, day, [FamilyValue("service", SERVICE, "requests", total=900.0)]
            )
    async with sessions() as session:
        [one] = await service.report(session, settings, "service", days[1], days[1])
        [three] = await service.report(session, settings, "service", days[0], days[2])
        daily = await service.series(session, settings, "service", SERVICE, days[0], days[2], Granularity.DAY)
    assert one.figures["qps_avg"] == pytest.approx(900 / 90000)
    assert three.figures["qps_avg"] == pytest.approx(2700 / (86400 * 2 + 90000))
    assert [p.figures["qps_avg"] for p in daily] == pytest.approx([900 / 86400, 900 / 90000, 900 / 86400])

"""Re-aggregation on whole columns gives what the scalar definition (``aggregate.py``) gives.

A year of days is stored through the repository in Europe/Berlin (a 23-hour and a 25-hour day)
with the layouts changing under the reports: errors missing on some days, the latency histogram
switching bucket schemes in the middle of a month, the gauge missing for a week, a day with no
latency at all. Every week, month and the year, and the report of the whole year, must equal the
same days summed one by one with ``aggregate.Totals`` and turned into figures by
``aggregate.figures`` (the definition the columns implement).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from datetime import date

import numpy as np
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db, migrations
from app.config import DatabaseSettings, Settings
from app.rollups import repository, service
from app.rollups.aggregate import Totals, figures
from app.rollups.compute import FamilyValue
from app.rollups.config import FamilyKind
from app.rollups.days import Granularity, day_window, days_between, period_start
from app.rollups.frames import quantiles
from app.rollups.histograms import quantile
from app.rollups.layouts import day_number, make_layout
from tests.harness.app import settings_for
from tests.harness.database import DIALECTS, engine_for, filled_database

SERVICE = "mixed.test.svc.cluster.local"
FIRST, LAST = date(2026, 1, 1), date(2026, 12, 31)
FINE = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, math.inf)
COARSE = (10.0, 100.0, 1000.0, math.inf)
SWITCH = date(2026, 6, 17)  # the histogram's buckets change here, mid-month


def day_values(day: date) -> list[FamilyValue]:
    rng = random.Random(day.toordinal())
    requests = rng.uniform(10, 10_000)
    found = [
        FamilyValue("service", SERVICE, "requests", total=requests * 1.0000000115740742),
        FamilyValue("service", SERVICE, "latency_sum_ms", total=requests * rng.uniform(5, 500)),
        FamilyValue("service", SERVICE, "latency_count", total=requests),
    ]
    if day.day % 3:
        found.append(FamilyValue("service", SERVICE, "errors", total=requests * rng.uniform(0, 0.05)))
    if day != date(2026, 4, 2):
        bounds = FINE if day < SWITCH else COARSE
        shares = sorted(rng.random() for _ in bounds[:-1])
        buckets = {b: requests * s for b, s in zip(bounds, [*shares, 1.0], strict=True)}
        found.append(FamilyValue("service", SERVICE, "latency", buckets=buckets))
    if not date(2026, 9, 1) <= day <= date(2026, 9, 7):
        samples = rng.choice((288, 276, 300))  # 23- and 25-hour days sample more or less
        peak = rng.uniform(1, 50)
        found.append(
            FamilyValue(
                "service", SERVICE, "qps", total=samples * peak / 3, samples=samples, peak=peak, low=peak / 10
            )
        )
    return found


def reference(settings: Settings, days: list[date]) -> dict[str, float | None]:
    """The period's figures as ``aggregate.py`` defines them, day by day."""
    return reference_of(settings, {day: day_values(day) for day in days})


def reference_of(settings: Settings, stored: dict[date, list[FamilyValue]]) -> dict[str, float | None]:
    catalog = service.catalog_of(settings)
    kinds = {d.name: d.kind for d in catalog.families("service")}
    totals = Totals()
    for day, values in sorted(stored.items()):
        totals.days += 1
        totals.seconds += day_window(day, settings.tzinfo).seconds
        for value in values:
            if kinds[value.family] is FamilyKind.HISTOGRAM:
                assert value.buckets is not None
                totals.add_buckets(value.family, value.buckets)
            else:
                totals.add_scalar(
                    value.family, kinds[value.family], value.total, value.samples, value.peak, value.low
                )
    return figures(catalog, "service", totals)


def assert_same(
    found: dict[str, float | None], want: dict[str, float | None], where: str, *, exact: bool = False
) -> None:
    assert list(found) == list(want), where
    for name, value in want.items():
        if value is None:
            assert found[name] is None, f"{where} {name}"
        elif exact:
            assert found[name] == value, f"{where} {name}"
        else:
            assert found[name] == pytest.approx(value, rel=1e-12), f"{where} {name}"


async def store_the_year(engine: AsyncEngine) -> None:
    async with db.create_session_factory(engine).begin() as session:
        for day in days_between(FIRST, LAST):
            await repository.replace_day(session, day, day_values(day))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=DIALECTS)
async def stored_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of each dialect holding the year, stored once for the tests below (they only read it)."""
    async with filled_database(request.param, tmp_path_factory, store_the_year) as url:
        yield url


@pytest.mark.parametrize(
    "granularity", [Granularity.DAY, Granularity.WEEK, Granularity.MONTH, Granularity.YEAR]
)
async def test_periods_over_changing_layouts_equal_the_scalar_definition(
    stored_url: str, granularity: Granularity
) -> None:
    settings = settings_for(stored_url, timezone="Europe/Berlin")
    async with engine_for(stored_url) as stored, db.create_session_factory(stored)() as session:
        periods = await service.series(session, settings, "service", SERVICE, FIRST, LAST, granularity)
    groups: dict[date, list[date]] = {}
    for day in days_between(FIRST, LAST):
        groups.setdefault(period_start(day, granularity), []).append(day)
    assert [p.start for p in periods] == sorted(groups)
    for period in periods:
        assert period.days == len(groups[period.start])
        # days, weeks and months add their days in day order, as the definition does: the same
        # bits (a year adds its months' sums, so its last bits may differ)
        exact = granularity is not Granularity.YEAR
        assert_same(period.figures, reference(settings, groups[period.start]), period.label, exact=exact)
    if granularity is Granularity.DAY:
        by_day = {p.start: p for p in periods}
        assert by_day[date(2026, 3, 29)].figures["qps_avg"] == pytest.approx(
            by_day[date(2026, 3, 29)].figures["requests"] / (23 * 3600)  # type: ignore[operator]
        )
        assert by_day[date(2026, 4, 2)].figures["latency_p99_ms"] is None  # no histogram that day
        assert by_day[date(2026, 9, 3)].figures["qps_peak"] is None  # no gauge that week


async def test_the_year_report_equals_the_scalar_definition(stored_url: str) -> None:
    settings = settings_for(stored_url, timezone="Europe/Berlin")
    async with engine_for(stored_url) as stored, db.create_session_factory(stored)() as session:
        [year] = await service.report(session, settings, "service", FIRST, LAST)
        [autumn] = await service.report(session, settings, "service", date(2026, 10, 20), date(2026, 10, 30))
    assert year.days == 365
    assert_same(year.figures, reference(settings, list(days_between(FIRST, LAST))), "2026")
    assert_same(
        autumn.figures,
        reference(settings, list(days_between(date(2026, 10, 20), date(2026, 10, 30)))),
        "fall",
    )


def test_vector_quantiles_are_the_scalar_quantiles_bit_for_bit() -> None:
    """Random buckets, with the cases the interpolation treats apart: empty, all in +Inf, all in the
    first bucket, a non-positive first bound, float noise making counts non-monotonic."""
    rng = np.random.default_rng(7)
    bounds = (-1.0, 0.0, 0.5, 1.0, 2.5, 10.0, math.inf)
    slot = make_layout([("h", FamilyKind.HISTOGRAM, list(bounds))]).slots[0]
    rows = np.cumsum(rng.integers(0, 5, size=(400, len(bounds))).astype(float), axis=1)
    rows[0] = 0.0
    rows[1, :-1] = 0.0
    rows[2] = rows[2, 0]
    rows[3, 3] -= 1e-9
    rows[4] = 1.0
    rows[4, 0] = 0.0
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 0.999):
        found = quantiles(q, slot, rows)
        for row, value in zip(rows, found.tolist(), strict=True):
            want = quantile(q, dict(zip(bounds, row.tolist(), strict=True)))
            assert (math.isnan(value) and want is None) or value == want, (q, row)


async def test_month_sums_follow_rerun_days_backfills_and_retention(
    migrated_engine: AsyncEngine, database_url: str
) -> None:
    """Days stored newest first, one of them rolled up again with other figures, an entity gone
    from a re-run day, then retention cutting a month in two: the year report (which reads month
    sums) still equals the days summed one by one."""
    settings = settings_for(database_url, timezone="Europe/Berlin")
    sessions = db.create_session_factory(migrated_engine)
    first, last = date(2026, 2, 1), date(2026, 4, 30)
    async with sessions.begin() as session:
        for day in reversed(list(days_between(first, last))):  # a catch-up goes newest first
            await repository.replace_day(session, day, day_values(day))
        await repository.replace_day(
            session, date(2026, 3, 10), day_values(date(2025, 1, 1))
        )  # other figures
        await repository.replace_day(session, date(2026, 3, 11), [])  # nothing that day any more
    stored = {day: day_values(day) for day in days_between(first, last)}
    stored[date(2026, 3, 10)] = day_values(date(2025, 1, 1))
    del stored[date(2026, 3, 11)]

    def want(days: list[date]) -> dict[str, float | None]:
        originals = {day: stored[day] for day in days if day in stored}
        return reference_of(settings, originals)

    async with sessions() as session:
        [whole] = await service.report(session, settings, "service", first, last)
    assert whole.days == len(stored)
    assert_same(whole.figures, want(list(days_between(first, last))), "Feb–Apr")

    async with sessions.begin() as session:
        deleted, _ = await repository.delete_before(session, date(2026, 3, 20))
    assert deleted == len([d for d in stored if d < date(2026, 3, 20)])
    async with sessions() as session:
        [kept] = await service.report(session, settings, "service", first, last)
        [march] = await service.report(session, settings, "service", date(2026, 3, 1), date(2026, 3, 31))
        counts = await repository.day_counts(session)
        daily = await service.series(session, settings, "service", SERVICE, first, last, Granularity.DAY)
    assert sorted(counts) == [day_number(d) for d in sorted(stored) if d >= date(2026, 3, 20)]
    assert [p.start for p in daily] == sorted(d for d in stored if d >= date(2026, 3, 20))
    for period in daily:  # the cut month's row kept its later days, bit for bit
        assert_same(period.figures, want([period.start]), period.label)
    assert kept.days == len([d for d in stored if d >= date(2026, 3, 20)])
    assert_same(kept.figures, want(list(days_between(date(2026, 3, 20), last))), "after retention")
    assert_same(march.figures, want(list(days_between(date(2026, 3, 20), date(2026, 3, 31)))), "March")


@pytest.mark.postgres
async def test_two_replicas_storing_days_of_one_month_at_once_both_count(postgres_url: str) -> None:
    """Two engines (two replicas) store two days of the same month at the same instant: the month
    sum has both (writers of a month queue on an advisory lock)."""
    engines = [db.create_engine(DatabaseSettings.model_validate({"url": postgres_url})) for _ in range(2)]
    try:
        await migrations.upgrade(engines[0])
        days = [date(2026, 5, 6), date(2026, 5, 7)]

        async def store(engine: AsyncEngine, day: date) -> None:
            async with db.create_session_factory(engine).begin() as session:
                await repository.replace_day(session, day, day_values(day))

        for _ in range(3):
            await asyncio.gather(*(store(engine, day) for engine, day in zip(engines, days, strict=True)))
        settings = settings_for(postgres_url, timezone="Europe/Berlin")
        async with db.create_session_factory(engines[0])() as session:
            [may] = await service.report(session, settings, "service", date(2026, 5, 1), date(2026, 5, 31))
        assert may.days == 2
        assert_same(may.figures, reference(settings, days), "May")
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_day_of_one_kind_is_replaced_without_touching_the_others(
    migrated_engine: AsyncEngine, database_url: str
) -> None:
    """Another rollup (incidents per service, say) stores its own kind into the same days and
    month sums: replacing it leaves the Prometheus figures of that day alone, and back."""
    settings = settings_for(database_url, timezone="Europe/Berlin")
    sessions = db.create_session_factory(migrated_engine)
    day = date(2026, 7, 14)
    pages = [FamilyValue("oncall", "payments", "pages", total=3.0)]
    async with sessions.begin() as session:
        await repository.replace_day(session, day, day_values(day), kinds=["service"])
        await repository.replace_day(session, day, pages, kinds=["oncall"])
        await repository.replace_day(
            session, day, [FamilyValue("oncall", "payments", "pages", total=5.0)], kinds=["oncall"]
        )
    async with sessions() as session:
        [july] = await service.report(session, settings, "service", date(2026, 7, 1), date(2026, 7, 31))
        assert await service.entities(session, "oncall") == ["payments"]
    assert_same(july.figures, reference(settings, [day]), "July")
    async with sessions.begin() as session:
        with pytest.raises(ValueError, match="oncall"):
            await repository.replace_day(session, day, pages, kinds=["service"])

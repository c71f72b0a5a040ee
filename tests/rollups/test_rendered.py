"""The daily report's rows stored already written (``app/rollups/rendered.py``): a report joined
from them is the live answer byte for byte, for any range, timezone and configuration; a month
they do not fit is answered live; every writer keeps them (rollups, retention, two replicas)."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import or_, select, text

from app import db, migrations
from app.config import Settings
from app.rollups import answers, rendered, repository, service
from app.rollups.compute import FamilyValue
from app.rollups.days import Granularity
from app.rollups.models import RollupDayPack, RollupEntity
from tests.harness.app import VIEWER_TOKEN, bearer, running_app, settings_for
from tests.harness.prometheus import RunningPrometheus
from tests.harness.replicas import run_replicas
from tests.rollups.support import CHECKOUT, client_for, dataset_of, rollup_settings, utc_days

pytestmark = pytest.mark.timeout(180)

BOUNDS = (5.0, 25.0, 100.0, 250.0, 1000.0, math.inf)
SERVICES = ("checkout.shop", "cart.shop", "search.shop")
FIRST = date(2026, 2, 20)
LAST = date(2026, 4, 10)  # Europe/Berlin: 2026-03-29 has 23 hours
GAP = date(2026, 3, 3)  # no day stored
NO_QPS = (date(2026, 4, 2), "search.shop")  # a family missing that day: another layout


def day_values(day: date, index: int, name: str, *, qps: bool = True) -> list[FamilyValue]:
    """The built-in service families, different every day and service, with awkward numbers."""
    n = day.toordinal() % 97 + 3 * index
    requests = 86_400 * (1.5 + n / 7) * 1.0000000115740742
    counts = [requests * share for share in (0.1, 0.45, 0.8, 0.93, 0.99 - n / 10_000, 1.0)]
    values = [
        FamilyValue("service", name, "requests", total=requests),
        FamilyValue("service", name, "errors", total=requests * (n % 5) / 1000),
        FamilyValue("service", name, "latency_sum_ms", total=requests * (42.5 + n / 3)),
        FamilyValue("service", name, "latency_count", total=requests),
        FamilyValue("service", name, "latency", buckets=dict(zip(BOUNDS, counts, strict=True))),
    ]
    if qps:
        peak = 3.3 + n / 11
        values.append(FamilyValue("service", name, "qps", total=288 * 1.7, samples=288, peak=peak, low=0.1))
    return values


def days() -> list[date]:
    return [
        FIRST + timedelta(days=k) for k in range((LAST - FIRST).days + 1) if FIRST + timedelta(days=k) != GAP
    ]


async def store(settings: Settings, *, render: bool = True) -> None:
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        for day in days():
            values = [
                value
                for index, name in enumerate(SERVICES)
                for value in day_values(day, index, name, qps=(day, name) != NO_QPS)
            ]
            async with sessions.begin() as session:
                renderer = service.renderer(settings) if render else None
                await repository.replace_day(session, day, values, render=renderer)
    finally:
        await engine.dispose()


RANGES = [
    (FIRST, LAST),  # every month, the first and last cut
    (date(2026, 2, 25), date(2026, 3, 31)),
    (date(2026, 3, 29), date(2026, 3, 29)),  # the short day alone
    (date(2026, 3, 1), date(2026, 3, 31)),  # one whole month, with its gap
    (date(2026, 1, 1), date(2026, 2, 19)),  # February's row, none of its days
    (date(2025, 6, 1), date(2026, 3, 2)),
]


async def live_answer(settings: Settings, entity: str, first: date, last: date) -> tuple[bytes, bytes | None]:
    """(the answer computed from the stored numbers, the days joined from the stored rows)."""
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine)() as session:
            service._SERIES.clear()
            rows = await service.series_rows(
                session, settings, "service", entity, first, last, Granularity.DAY
            )
            partial = await service.partial_days(session, first, last)
            stored = await service.stored_daily_json(session, settings, "service", entity, first, last)
    finally:
        await engine.dispose()
    head = {
        "service": entity,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": settings.timezone,
        "granularity": "day",
        "partial_days": [d.isoformat() for d in partial],
    }
    return answers.series_json(head, rows), None if stored is None else answers.series_json_of(head, stored)


async def http_answer(settings: Settings, entity: str, first: date, last: date, **params: str) -> bytes:
    async with running_app(settings, migrate=False) as (_app, client):
        answer = await client.get(
            f"/api/v1/reports/services/{entity}/daily",
            params={"from": first.isoformat(), "to": last.isoformat(), **params},
            headers=bearer(VIEWER_TOKEN),
        )
    assert answer.status_code == 200, answer.text
    return answer.content


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "UTC"])
async def test_a_report_joined_from_stored_rows_is_the_live_answer_byte_for_byte(
    database_url: str, timezone: str
) -> None:
    settings = settings_for(database_url, timezone=timezone)
    await store(settings)
    for entity in ("checkout.shop", "cart.shop"):
        for first, last in RANGES:
            live, joined = await live_answer(settings, entity, first, last)
            assert joined == live, (entity, first, last)
    live, _ = await live_answer(settings, "checkout.shop", FIRST, LAST)
    assert await http_answer(settings, "checkout.shop", FIRST, LAST) == live
    # an answer asked again is kept until the store changes: a day stored since is in the next one
    later = LAST + timedelta(days=5)
    before, joined = await live_answer(settings, "checkout.shop", FIRST, later)
    assert joined == before
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine).begin() as session:
            new_day = LAST + timedelta(days=1)
            await repository.replace_day(
                session, new_day, day_values(new_day, 0, "checkout.shop"), render=service.renderer(settings)
            )
    finally:
        await engine.dispose()
    after, joined = await live_answer(settings, "checkout.shop", FIRST, later)
    assert joined == after != before
    body = orjson.loads(live)
    assert len(body["days"]) == len(days())
    short = next(row for row in body["days"] if row["date"] == "2026-03-29")
    normal = next(row for row in body["days"] if row["date"] == "2026-03-28")
    if timezone == "Europe/Berlin":  # the 23-hour day's rate is per its own seconds
        assert short["qps_avg"] == pytest.approx(short["requests"] / 82_800)
    assert normal["qps_avg"] == pytest.approx(normal["requests"] / 86_400)


async def test_other_layouts_another_timezone_and_other_formats_are_answered_live(database_url: str) -> None:
    berlin = settings_for(database_url, timezone="Europe/Berlin")
    await store(berlin)
    # search.shop lacks a family on April 2nd: its April holds two layouts and has no stored rows,
    # and a range over it is answered live (March alone is joined)
    live, joined = await live_answer(berlin, "search.shop", FIRST, LAST)
    assert joined is None
    assert await http_answer(berlin, "search.shop", FIRST, LAST) == live
    live, joined = await live_answer(berlin, "search.shop", date(2026, 3, 1), date(2026, 3, 31))
    assert joined == live
    # rows written for Berlin do not answer a Panorama configured for UTC: its days are other days' lengths
    utc = settings_for(database_url, timezone="UTC")
    live, joined = await live_answer(utc, "checkout.shop", FIRST, LAST)
    assert joined is None
    assert await http_answer(utc, "checkout.shop", FIRST, LAST) == live
    # nor one whose figures differ
    extra = settings_for(
        database_url,
        timezone="Europe/Berlin",
        rollups={
            "enabled": False,
            "derived": [{"name": "ok", "entity": "service", "expr": "requests - errors"}],
        },
    )
    live, joined = await live_answer(extra, "checkout.shop", FIRST, LAST)
    assert joined is None
    assert b'"ok":' in await http_answer(extra, "checkout.shop", FIRST, LAST) == live
    # other granularities and CSV are computed as before, and another spelling of the name too
    month = await http_answer(berlin, "checkout.shop", FIRST, LAST, granularity="month")
    assert [row["period"] for row in orjson.loads(month)["days"]] == ["2026-02", "2026-03", "2026-04"]
    csv = await http_answer(berlin, "checkout.shop", FIRST, LAST, format="csv")
    assert csv.startswith(b"date,period,days,")
    spelled = await http_answer(berlin, "checkout.shop.svc.cluster.local", FIRST, LAST)
    live, joined = await live_answer(berlin, "checkout.shop", FIRST, LAST)
    assert joined == live
    assert orjson.loads(spelled)["days"] == orjson.loads(live)["days"]


async def test_months_stored_without_rows_are_written_by_render_stale_and_by_retention(
    database_url: str,
) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin")
    await store(settings, render=False)  # as stored before migration 0017
    live, joined = await live_answer(settings, "cart.shop", FIRST, LAST)
    assert joined is None
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        async with sessions.begin() as session:  # a kind no longer configured
            legacy = FamilyValue("legacy", "old", "requests", total=1.5)
            await repository.replace_day(session, FIRST, [legacy])
        # 3 services × 3 months; search.shop's April (two layouts) and the legacy kind's month are
        # marked done without rows
        assert await service.render_stale(sessions, settings) == 10
        assert await service.render_stale(sessions, settings) == 0
        async with sessions() as session:
            stored = (
                await session.execute(
                    select(RollupDayPack.render_key, RollupDayPack.rendered).order_by(RollupDayPack.entity_id)
                )
            ).all()
            key = service.render_key(service.catalog_of(settings), "service", settings.tzinfo)
            if database_url.startswith("sqlite"):  # nothing to do is found from the index alone
                due = or_(RollupDayPack.render_key.is_(None), RollupDayPack.render_key.not_in([key, 7]))
                statement = select(RollupDayPack.entity_id, RollupDayPack.month).where(due).limit(200)
                compiled = statement.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
                plan = (await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
                assert "COVERING INDEX ix_rollup_day_packs_render_key" in str(plan)
        assert [stored_key for stored_key, _ in stored][:9] == [key] * 9
        assert sum(fragment is not None for _, fragment in stored) == 8
    finally:
        await engine.dispose()
    live, joined = await live_answer(settings, "cart.shop", FIRST, LAST)
    assert joined == live
    # retention cuts March: its later days are written again with their rows
    engine = db.create_engine(settings.database)
    try:
        async with db.create_session_factory(engine).begin() as session:
            await repository.delete_before(session, date(2026, 3, 10), render=service.renderer(settings))
    finally:
        await engine.dispose()
    live, joined = await live_answer(settings, "cart.shop", date(2026, 3, 1), LAST)
    assert joined == live
    assert orjson.loads(live)["days"][0]["date"] == "2026-03-10"


def test_a_fragment_cuts_at_its_days_and_rows_join_into_the_whole_answer() -> None:
    objects = [b'{"a":1}', b'{"a":2.5}', b"{}", b'{"a":null}']
    fragment = rendered.encode(42, objects)
    assert rendered.layout_of(fragment) == 42
    assert rendered.objects_text(fragment, 0, 3) == b",".join(objects)
    assert rendered.objects_text(fragment, 1, 2) == b'{"a":2.5},{}'
    assert rendered.objects_text(fragment, 3, 9) == b'{"a":null}'
    assert rendered.objects_text(fragment, 2, 1) == b""
    keys = ["date", "n", "name"]
    for columns in (
        [["2026-01-01", "2026-01-02"], [1.5, math.nan], ["x", "y"]],
        [["2026-01-01", "2026-01-02"], [1, 2], ["a,b", "c"]],  # a comma: written row by row
    ):
        rows: list[Any] = columns
        assert b"[" + b",".join(answers.json_object_rows(keys, rows)) + b"]" == answers.json_objects(
            keys, rows
        )
    assert answers.json_object_rows(keys, [[], [], []]) == []


async def test_two_replicas_storing_days_of_one_month_keep_its_rows_whole(postgres_url: str) -> None:
    """Two processes store interleaved days of one month with their rows at the same instant:
    the month's rows hold every day and are the live answer."""
    settings = settings_for(postgres_url, timezone="UTC")
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
        async with engine.connect() as connection:
            storage = await connection.scalar(
                text(
                    "SELECT attstorage FROM pg_attribute"
                    " WHERE attrelid = 'rollup_day_packs'::regclass AND attname = 'rendered'"
                )
            )
        assert storage in ("e", b"e")  # already compressed: not again (migration 0017)
    finally:
        await engine.dispose()
    march = [date(2026, 3, 1) + timedelta(days=i) for i in range(31)]
    replicas = [
        {
            "database_url": postgres_url,
            "days": [d.isoformat() for d in march[start::2]],
            "entities": 12,
            "render": True,
        }
        for start in (0, 1)
    ]
    assert await run_replicas("tests.rollups.replica_scenarios:store_days", replicas) == [16, 15]
    live, joined = await live_answer(settings, "s007", march[0], march[-1])
    assert joined == live
    assert len(orjson.loads(live)["days"]) == 31


async def test_a_rolled_up_day_is_stored_first_and_its_months_rows_are_written_after(
    prometheus: RunningPrometheus, database_url: str
) -> None:
    """run_day stores the day's numbers (the report answers them live); run_days, the API's and
    the command line's way, then writes the report rows of the months it stored, once: the
    report joined from them is the live answer byte for byte."""
    settings = rollup_settings(prometheus.url, database_url)
    days = utc_days(dataset_of(prometheus))
    engine = db.create_engine(settings.database)
    client = client_for(prometheus)
    try:
        await migrations.upgrade(engine)
        sessions = db.create_session_factory(engine)
        first = await service.run_day(sessions, client, settings, days[0], trigger="test")
        assert first.status == "ok"
        assert first.values > 0
        async with sessions() as session:
            held = (await session.execute(select(RollupDayPack.render_key, RollupDayPack.rendered))).all()
        assert held
        assert {tuple(row) for row in held} == {(None, None)}
        live, joined = await live_answer(settings, CHECKOUT, days[0], days[-1])
        assert joined is None
        assert [day["date"] for day in orjson.loads(live)["days"]] == [days[0].isoformat()]

        outcomes = await service.run_days(sessions, client, settings, days, trigger="test")
        assert [outcome.status for outcome in outcomes] == ["ok"] * len(days)
        key = service.render_key(service.catalog_of(settings), "service", settings.tzinfo)
        async with sessions() as session:
            services = select(RollupEntity.id).where(RollupEntity.kind == "service")
            keys = await session.scalars(
                select(RollupDayPack.render_key).where(RollupDayPack.entity_id.in_(services))
            )
            assert set(keys) == {key}
        assert await service.render_stale(sessions, settings) == 0  # nothing left for the job
    finally:
        await engine.dispose()
    live, joined = await live_answer(settings, CHECKOUT, days[0], days[-1])
    assert joined == live
    assert [day["date"] for day in orjson.loads(live)["days"]] == [day.isoformat() for day in days]

"""A digest's figures from known stored days, computed again here: the scope's requests, error
rate and p99 (from summed buckets), its busiest services, regressions against a week before, the
SLOs, the day's incidents and who is on call; a day not rolled up is said to be missing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.digests import service
from app.errors import InvalidInput, NotFound
from app.rollups import repository as rollup_repository
from app.rollups.compute import FamilyValue
from tests.digests.support import (
    CHECKOUT,
    PAYMENTS,
    PUBLIC,
    SEARCH,
    Sessions,
    digest_config,
    quantile,
    service_day,
    settings,
    store_day,
    store_incident,
)

DAY = date(2026, 11, 18)  # a Wednesday
WEEK_BEFORE = DAY - timedelta(days=7)
CHECKOUT_BEFORE = (900.0, 990.0, 1000.0, 1000.0)
CHECKOUT_NOW = (600.0, 1000.0, 1190.0, 1200.0)
PAYMENTS_DAY = (400.0, 500.0, 500.0, 500.0)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def sessions(migrated_engine: AsyncEngine) -> Sessions:
    return db.create_session_factory(migrated_engine)


async def two_weeks(sessions: Sessions) -> None:
    await store_day(
        sessions,
        WEEK_BEFORE,
        service_day(CHECKOUT, 1000, 10, CHECKOUT_BEFORE)
        + service_day(PAYMENTS, 500, 0, PAYMENTS_DAY)
        + service_day(SEARCH, 200, 0, (200, 200, 200, 200)),
    )
    await store_day(
        sessions,
        DAY,
        service_day(CHECKOUT, 1200, 60, CHECKOUT_NOW)
        + service_day(PAYMENTS, 500, 0, PAYMENTS_DAY)
        + service_day(SEARCH, 300, 30, (0, 0, 0, 300)),
    )


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


async def test_the_digest_of_a_day_has_the_figures_computed_from_the_stored_days(
    sessions: Sessions, database_url: str
) -> None:
    config = digest_config(scope={"namespaces": ["shop"]}, regression={"ratio": 1.5, "min_requests": 100})
    config["slo"] = [{"service": CHECKOUT, "availability": 0.99, "window_days": 7}]
    s = settings(database_url, **config)
    await two_weeks(sessions)
    critical = await store_incident(
        sessions,
        title="Checkout failing",
        severity="critical",
        services=["checkout.shop"],
        created=at(DAY, 10),
        acknowledged=at(DAY, 10, 5),
        resolved=at(DAY, 10, 35),
        alertnames=["HighErrorRate", "HighErrorRate", "HighLatency"],
    )
    await store_incident(
        sessions,
        title="Payments slow",
        severity="warning",
        services=["payments"],  # a bare app name, of a service in the scope
        created=at(DAY, 20),
        acknowledged=at(DAY, 20, 1),
        resolved=None,
        alertnames=["HighLatency"],
    )
    for title, services, created in (
        ("Search down", ["search.web"], at(DAY, 11)),  # another namespace
        ("Yesterday's", ["checkout.shop"], at(DAY, 0) - timedelta(seconds=1)),  # the day before
    ):
        await store_incident(
            sessions,
            title=title,
            severity="critical",
            services=services,
            created=created,
            acknowledged=None,
            resolved=None,
            alertnames=["Other"],
        )

    report = await service.digest(sessions, s, "daily", DAY.isoformat(), now=NOW)

    summed = [c + p for c, p in zip(CHECKOUT_NOW, PAYMENTS_DAY, strict=True)]
    bounds = (10.0, 100.0, 1000.0, float("inf"))
    assert report.scope is not None
    assert report.scope.requests == 1700
    assert report.scope.errors == 60
    assert report.scope.error_rate == pytest.approx(60 / 1700)
    assert report.scope.latency_p99_ms == pytest.approx(
        quantile(0.99, dict(zip(bounds, summed, strict=True)))
    )
    assert report.scope_previous is not None
    assert report.scope_previous.requests == 1500
    assert [x.service for x in report.services] == [CHECKOUT, PAYMENTS]  # search is another namespace
    assert report.services[0].url == f"{PUBLIC}/services/checkout.shop"
    p99_before = quantile(0.99, dict(zip(bounds, CHECKOUT_BEFORE, strict=True)))
    p99_now = quantile(0.99, dict(zip(bounds, CHECKOUT_NOW, strict=True)))
    found = {(r.service, r.figure): r for r in report.regressions}
    assert set(found) == {(CHECKOUT, "latency_p99_ms"), (CHECKOUT, "error_rate")}
    assert found[CHECKOUT, "latency_p99_ms"].before == pytest.approx(p99_before)
    assert found[CHECKOUT, "latency_p99_ms"].after == pytest.approx(p99_now)
    assert found[CHECKOUT, "error_rate"].ratio == pytest.approx((60 / 1200) / (10 / 1000))
    [slo] = report.slo
    assert slo.achieved == pytest.approx(1 - 60 / 1200)
    assert slo.met is False
    assert slo.data_days == 1
    assert slo.error_budget_remaining == pytest.approx(1 - (60 / 1200) / 0.01)
    incidents = report.incidents
    assert incidents.opened == 2
    assert incidents.by_severity == {"critical": 1, "warning": 1}
    assert incidents.mean_ack_seconds == pytest.approx((300 + 60) / 2)
    assert incidents.max_ack_seconds == 300
    assert incidents.resolved == 1
    assert incidents.mean_resolve_seconds == 35 * 60
    assert incidents.still_open == 1
    assert [(n.alertname, n.alerts, n.incidents) for n in incidents.noisiest] == [
        ("HighLatency", 2, 2),
        ("HighErrorRate", 2, 1),
    ]
    assert incidents.listed[0].id == critical
    assert incidents.listed[0].url == f"{PUBLIC}/incidents/{critical}"
    due = at(DAY + timedelta(days=1), 9)
    [on_call] = report.on_call
    assert on_call.user == ("alice", "bob")[(due - datetime(2026, 1, 1, 9, tzinfo=UTC)).days % 2]
    text = report.text
    assert "Daily digest · daily · 2026-11-18 (Wed)" in text
    assert "Requests 1,700 · error rate 3.53%" in text
    assert f"checkout.shop p99 {p99_before:.0f} ms → {p99_now:.0f} ms (×{p99_now / p99_before:.1f})" in text
    assert "checkout.shop error rate 1.00% → 5.00% (×5.0)" in text
    assert "2 new incidents: critical 1 · warning 1" in text
    assert "HighLatency ×2 (2 incidents)" in text
    assert f"sre: {on_call.user}" in text
    assert "search" not in text
    assert f"[checkout.shop]({PUBLIC}/services/checkout.shop)" in report.markdown


def person_day(user: str, pages: int, night: int, acks: int) -> list[FamilyValue]:
    """One person's on-call history of a day, as the daily rollup records it."""
    return [
        FamilyValue("oncall_person", user, "pages", total=pages),
        FamilyValue("oncall_person", user, "night_pages", total=night),
        FamilyValue("oncall_person", user, "acks", total=acks),
    ]


async def test_the_on_call_load_comes_from_the_on_call_history_busiest_first(
    sessions: Sessions, database_url: str
) -> None:
    s = settings(database_url, **digest_config(locale="zh-CN"))
    traffic = service_day(CHECKOUT, 1000, 10, CHECKOUT_BEFORE)
    await store_day(sessions, WEEK_BEFORE, traffic + person_day("alice", 2, 0, 2))
    await store_day(sessions, DAY, traffic + person_day("alice", 3, 1, 2) + person_day("bob", 9, 4, 7))
    quiet = DAY + timedelta(days=1)
    await store_day(sessions, quiet, traffic)  # rolled up, nobody paged

    report = await service.digest(sessions, s, "daily", DAY.isoformat(), now=NOW)
    assert [(p.user, p.pages, p.night_pages, p.acks, p.pages_before) for p in report.load] == [
        ("bob", 9, 4, 7, None),  # not paged the week before
        ("alice", 3, 1, 2, 2),
    ]
    assert "bob：呼叫 9 次（夜间 4）· 确认 7" in report.text
    assert "alice：呼叫 3 次（夜间 1）· 确认 2 · 上周同日 2026-11-11：2 次" in report.text

    calm = await service.digest(sessions, s, "daily", quiet.isoformat(), now=NOW + timedelta(days=1))
    assert calm.load == []
    assert "没有人被呼叫" in calm.text
    unrolled = await service.digest(
        sessions, s, "daily", (quiet + timedelta(days=1)).isoformat(), now=NOW + timedelta(days=2)
    )
    assert unrolled.load == []
    assert "没有人被呼叫" not in unrolled.text  # not rolled up: no data, not "nobody"


async def record_run(sessions: Sessions, day: date, history: str) -> None:
    """A finished run of ``day`` as the rollups record it (``history``: what it did with the
    on-call history)."""
    async with sessions.begin() as session:
        run_id = await rollup_repository.claim_day(
            session, day, trigger="test", worker="test", now=NOW, lease=timedelta(0)
        )
        assert run_id is not None
        await rollup_repository.finish_run(session, run_id, status="ok", duration_ms=1.0, history=history)


async def test_a_day_whose_on_call_history_is_pending_says_so_instead_of_nobody_paged(
    sessions: Sessions, database_url: str
) -> None:
    """The alert journal had not moved past the day: its traffic is rolled up, its on-call
    history is pending; the load says it is incomplete, not that nobody was paged."""
    s = settings(database_url, **digest_config(locale="zh-CN"))
    await store_day(sessions, DAY, service_day(CHECKOUT, 1000, 10, CHECKOUT_BEFORE))
    await record_run(sessions, DAY, "pending")
    pending = await service.digest(sessions, s, "daily", DAY.isoformat(), now=NOW)
    assert pending.scope is not None
    assert pending.load == []
    assert "oncall_history" in pending.missing
    assert "值班历史尚未汇总完（告警日志仍有未处理的 webhook）" in pending.text
    assert "没有人被呼叫" not in pending.text

    async with sessions.begin() as session:  # the history alone, stored once the journal moved
        await rollup_repository.replace_day(
            session, DAY, person_day("alice", 2, 0, 1), kinds=["oncall_person"]
        )
    await record_run(sessions, DAY, "completed")
    completed = await service.digest(sessions, s, "daily", DAY.isoformat(), now=NOW)
    assert "oncall_history" not in completed.missing
    assert [(p.user, p.pages) for p in completed.load] == [("alice", 2)]


async def test_a_day_not_rolled_up_says_so_instead_of_printing_zero(
    sessions: Sessions, database_url: str
) -> None:
    s = settings(database_url, **digest_config(locale="zh-CN"))
    await two_weeks(sessions)
    missing = DAY + timedelta(days=1)
    report = await service.digest(sessions, s, "daily", missing.isoformat(), now=NOW)
    assert report.scope is None
    assert report.services == []
    assert "rollup" in report.missing
    assert "没有 2026-11-19 的汇总数据" in report.text
    assert "请求 0" not in report.text
    assert "0%" not in report.text
    # The day after a rolled-up one: its week-before comparison is what is missing.
    later = await service.digest(
        sessions, s, "daily", (DAY + timedelta(days=7)).isoformat(), now=NOW + timedelta(days=7)
    )
    assert later.scope is None
    assert later.scope_previous is not None
    assert later.scope_previous.requests == 1200 + 500 + 300
    assert "没有 2026-11-25 的汇总数据" in later.text


async def test_the_weekly_digest_covers_seven_days_and_compares_with_the_week_before(
    sessions: Sessions, database_url: str
) -> None:
    s = settings(database_url, **digest_config(weekly="thursday"))
    await two_weeks(sessions)
    report = await service.digest(sessions, s, "daily", DAY.isoformat(), now=NOW)  # sent on a Thursday
    assert report.weekly
    assert (report.first, report.last) == (DAY - timedelta(days=6), DAY)
    assert report.compared_with == (WEEK_BEFORE - timedelta(days=6), WEEK_BEFORE)
    assert report.scope is not None
    assert report.scope.requests == 1200 + 500 + 300
    assert report.scope.days == 1
    assert "Weekly digest · daily · 2026-11-12 to 2026-11-18" in report.text
    assert "Only 1 of 7 days are rolled up" in report.text
    assert "rollup_partial" in report.missing
    daily = await service.digest(sessions, s, "daily", (DAY - timedelta(days=1)).isoformat(), now=NOW)
    assert not daily.weekly


async def test_an_unknown_digest_or_a_bad_day_is_refused_with_its_name(
    sessions: Sessions, database_url: str
) -> None:
    s = settings(database_url, **digest_config())
    with pytest.raises(NotFound, match="no digest 'nightly' \\(known: daily\\)"):
        await service.digest(sessions, s, "nightly", None, now=NOW)
    with pytest.raises(InvalidInput, match="'date': '2026-13-01' is not"):
        await service.digest(sessions, s, "daily", "2026-13-01", now=NOW)
    with pytest.raises(InvalidInput, match="not over yet"):
        await service.digest(sessions, s, "daily", "2026-11-20", now=NOW)
    relative = await service.digest(sessions, s, "daily", "now-2d", now=NOW)
    assert relative.day == date(2026, 11, 18)
    default = await service.digest(sessions, s, "daily", None, now=NOW)
    assert default.day == date(2026, 11, 19)

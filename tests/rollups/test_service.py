"""Running days: stored whole on SQLite and PostgreSQL, idempotent, never partial, caught up,
claimed by one worker at a time, and pruned by retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import db
from app.backends.prometheus import PrometheusClient
from app.config import DatabaseSettings, PrometheusSettings
from app.rollups import repository, service
from app.rollups.layouts import day_number
from app.rollups.models import RollupRun
from app.rollups.repository import RunStatus
from tests.harness.datasets import SESSION_FILES, session_timeline, write_dataset
from tests.harness.prometheus import RunningPrometheus
from tests.harness.proxy import SwitchableProxy
from tests.rollups.support import (
    CHECKOUT,
    client_for,
    dataset_of,
    history_from_noon,
    rollup_settings,
    utc_days,
)

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def sessions(migrated_engine: AsyncEngine) -> Factory:
    return db.create_session_factory(migrated_engine)


async def count_values(sessions: Factory, day: date) -> int:
    """Entity days stored for ``day`` (one row holds every family of an entity's day)."""
    async with sessions() as session:
        return (await repository.day_counts(session)).get(day_number(day), 0)


async def test_a_day_is_stored_and_rerunning_replaces_it(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    settings = rollup_settings(prometheus.url, database_url)
    day = utc_days(dataset_of(prometheus))[1]
    client = client_for(prometheus)
    first = await service.run_day(sessions, client, settings, day, trigger="test")
    assert first.status == RunStatus.OK
    assert first.entities == 5  # checkout and payments, the shop namespace, the cluster, the platform
    stored = await count_values(sessions, day=day)
    assert stored == first.entities
    again = await service.run_day(sessions, client, settings, day, trigger="test")
    assert again.status == RunStatus.OK
    assert await count_values(sessions, day=day) == stored

    async with sessions() as session:
        found = await service.report(session, settings, "service", day, day, entity=CHECKOUT)
        history = (await service.runs(session)).runs
    requests = found[0].figures["requests"]
    assert requests is not None
    assert requests > 1000
    assert found[0].days == 1
    assert [r.status for r in history] == ["ok", "ok"]
    assert history[0].entities == again.entities
    assert history[0].duration_ms is not None


async def test_a_day_whose_queries_fail_stores_nothing_and_keeps_the_old_values(
    prometheus_factory: object, sessions: Factory, tmp_path: Path, database_url: str
) -> None:
    """Prometheus stops answering mid-rollup: the run fails whole; once it is back, the day fills."""
    now = datetime.now(UTC).timestamp()
    files = {"istio.om": SESSION_FILES["istio.om"]}
    dataset = write_dataset(tmp_path / "data", session_timeline(now, days=2), files, now=now)
    own: RunningPrometheus = prometheus_factory(dataset.files)  # type: ignore[operator]
    settings = rollup_settings(own.url, database_url, rollups={"query_timeout_s": 1, "query_concurrency": 1})
    days = [datetime.fromtimestamp(t, UTC).date() for t in dataset.day_starts]
    client = PrometheusClient(own.settings(timeout_s=2, retries=0))

    assert (await service.run_day(sessions, client, settings, days[0], trigger="test")).status == "ok"
    kept = await count_values(sessions, day=days[0])
    assert kept > 0

    own.process.pause()
    try:
        failed = await service.run_day(sessions, client, settings, days[1], trigger="test")
        rerun = await service.run_day(sessions, client, settings, days[0], trigger="test")
    finally:
        own.process.resume()
    assert failed.status == RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("prometheus: ")
    assert await count_values(sessions, day=days[1]) == 0
    assert rerun.status == RunStatus.FAILED
    assert await count_values(sessions, day=days[0]) == kept

    own.process.stop()
    down = await service.run_day(sessions, client, settings, days[1], trigger="test")
    assert down.status == RunStatus.FAILED
    assert down.error is not None
    assert "cannot reach" in down.error

    own.process.start()
    two_days = rollup_settings(own.url, database_url, rollups={"backfill_days": 2})
    after = datetime.combine(days[1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=12
    )
    outcomes = await service.catch_up(sessions, client, two_days, now=after)
    assert [(o.day, o.status) for o in outcomes] == [(days[1], "ok"), (days[0], "ok")]  # failed ones retry
    assert await count_values(sessions, day=days[1]) > 0
    await client.aclose()


async def test_catch_up_goes_back_until_prometheus_has_no_data(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    days = utc_days(dataset_of(prometheus))
    settings = rollup_settings(prometheus.url, database_url, rollups={"backfill_days": 10})
    now = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    client = client_for(prometheus)
    outcomes = await service.catch_up(sessions, client, settings, now=now)
    seen = [(o.day, o.status) for o in outcomes]
    assert seen[:3] == [(days[2], "ok"), (days[1], "ok"), (days[0], "ok")]
    # The history starts with a sample at midnight, which belongs to the day before: that day has
    # no sample inside it, so no data, and the catch-up stops there.
    assert seen[3:] == [(days[0] - timedelta(days=1), "no_data")]
    assert await service.catch_up(sessions, client, settings, now=now) == []


async def test_days_rolled_up_before_prometheus_was_configured_are_computed_again_once_it_is(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    """A first ``make run`` without Prometheus rolls the last days up from the on-call history
    alone (``ok``, nothing queried); once Prometheus is configured, the catch-up computes them
    again from it instead of taking them for done, and then leaves them."""
    days = utc_days(dataset_of(prometheus))
    settings = rollup_settings(prometheus.url, database_url, rollups={"backfill_days": 10})
    now = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    alone = await service.catch_up(sessions, None, settings, now=now)
    assert [o.day for o in alone] == [days[-1] - timedelta(days=n) for n in range(10)]
    assert {o.status for o in alone} == {RunStatus.OK}
    assert await count_values(sessions, day=days[1]) == 0
    async with sessions() as session:
        history = (await service.runs(session)).runs
    assert {r.prometheus for r in history} == {False}
    assert await service.catch_up(sessions, None, settings, now=now) == []  # still done without it

    async with sessions.begin() as session:  # a replica without Prometheus leaves the day alone
        assert (
            await repository.claim_day(
                session,
                days[1],
                trigger="catch_up",
                worker="other",
                now=now,
                lease=service.LEASE,
                prometheus=False,
                unless_settled=True,
            )
            is None
        )

    client = client_for(prometheus)
    with_it = await service.catch_up(sessions, client, settings, now=now)
    seen = [(o.day, o.status) for o in with_it]
    assert seen == [
        (days[2], "ok"),
        (days[1], "ok"),
        (days[0], "ok"),
        (days[0] - timedelta(days=1), "no_data"),
    ]
    assert await count_values(sessions, day=days[1]) == 5
    async with sessions() as session:
        found = await service.report(session, settings, "service", days[1], days[1], entity=CHECKOUT)
        newest = (await service.runs(session)).runs[0]
    assert (found[0].figures["requests"] or 0) > 1000
    assert newest.prometheus is True
    assert await service.catch_up(sessions, client, settings, now=now) == []
    await client.aclose()


async def test_a_query_failing_on_a_day_without_data_leaves_it_no_data_and_fails_a_day_with_data(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    """The day's queries run beside its coverage probe: one Prometheus refuses does not decide a
    day the probe finds empty (it is no_data, as when the queries waited for the probe), and
    still fails a day that has samples."""
    broken = {
        "name": "broken_total",
        "entity": "service",
        "kind": "counter",
        "query": "sum by (destination_service) (increase(istio_requests_total[$range])",  # no ")"
    }
    settings = rollup_settings(prometheus.url, database_url, rollups={"definitions": [broken]})
    first = utc_days(dataset_of(prometheus))[0]
    client = client_for(prometheus)
    empty = await service.run_day(sessions, client, settings, first - timedelta(days=1), trigger="test")
    with_data = await service.run_day(sessions, client, settings, first, trigger="test")
    await client.aclose()
    assert empty.status == RunStatus.NO_DATA
    assert with_data.status == RunStatus.FAILED
    assert with_data.error is not None
    assert with_data.error.startswith("prometheus: ")
    assert await count_values(sessions, day=first) == 0


async def test_a_day_with_only_its_closing_midnight_sample_stores_nothing(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    settings = rollup_settings(prometheus.url, database_url)
    before = utc_days(dataset_of(prometheus))[0] - timedelta(days=1)
    client = client_for(prometheus)
    outcome = await service.run_day(sessions, client, settings, before, trigger="test")
    async with sessions() as session:
        found = await service.report(session, settings, "cluster", before, before)
    assert outcome.status == RunStatus.NO_DATA
    assert outcome.values == 0
    assert await count_values(sessions, day=before) == 0
    assert found == []
    await client.aclose()


async def test_a_day_cut_by_prometheus_retention_is_partial(
    prometheus_factory: object, sessions: Factory, tmp_path: Path, database_url: str
) -> None:
    """History that starts at noon: that day is stored and says ``partial``; the next is ``ok``."""
    dataset, cut, full = history_from_noon(tmp_path / "data")
    own: RunningPrometheus = prometheus_factory(dataset.files)  # type: ignore[operator]
    settings = rollup_settings(own.url, database_url, rollups={"backfill_days": 5})
    client = PrometheusClient(own.settings(timeout_s=30))
    after = datetime.combine(full + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    outcomes = await service.catch_up(sessions, client, settings, now=after)
    async with sessions() as session:
        history = await service.runs(session)
        found = await service.report(session, settings, "service", cut, cut, entity=CHECKOUT)
    assert [(o.day, o.status) for o in outcomes] == [
        (full, RunStatus.OK),
        (cut, RunStatus.PARTIAL),
        (cut - timedelta(days=1), RunStatus.NO_DATA),
    ]
    assert {r.day: r.status for r in history.runs}[cut] == RunStatus.PARTIAL
    assert found[0].days == 1
    assert (found[0].figures["requests"] or 0) > 0
    assert await service.catch_up(sessions, client, settings, now=after) == []  # partial is settled
    await client.aclose()


async def test_one_worker_computes_a_day_at_a_time(
    prometheus: RunningPrometheus, database_url: str, sessions: Factory
) -> None:
    """Two replicas (two engines) claim the same day while the first is computing it: one computes
    it, the other skips. The first reaches Prometheus through a proxy that holds its queries until
    the second has answered, so the first is still computing however fast or slow the machine is;
    the second starts once the first's claim is in the database (seen from a third session)."""
    settings = rollup_settings(prometheus.url, database_url)
    day = utc_days(dataset_of(prometheus))[0]
    other = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
    held = SwitchableProxy(prometheus.port, mode="hang")
    try:
        replica = db.create_session_factory(other)
        async with replica() as warm:  # the replica's connection is open before the race starts
            await warm.execute(select(1))
        through_proxy = PrometheusClient(PrometheusSettings(url=held.url, timeout_s=60))
        first = asyncio.create_task(service.run_day(sessions, through_proxy, settings, day, trigger="a"))
        claimed = select(func.count()).select_from(RollupRun).where(RollupRun.day == day)
        for _ in range(2000):
            async with sessions() as session:
                if await session.scalar(claimed):
                    break
            await asyncio.sleep(0.005)
        second = await service.run_day(replica, client_for(prometheus), settings, day, trigger="b")
        held.mode = "up"
        outcomes = [await first, second]
        await through_proxy.aclose()
    finally:
        held.mode = "up"
        held.close()
        await other.dispose()
    assert [o.status for o in outcomes] == ["ok", "skipped"]
    async with sessions() as session:
        assert len((await service.runs(session)).runs) == 1


async def test_a_catch_up_leaves_a_day_another_replica_finished_since_it_looked(
    prometheus: RunningPrometheus, database_url: str, sessions: Factory
) -> None:
    """A catch-up reads the days' states, then claims each missing day in turn; a day another
    replica finished in between is not computed a second time — the claim checks the day's newest
    run itself. A day asked for by name (CLI, API) is computed again, and a failed one is retried."""
    settings = rollup_settings(prometheus.url, database_url)
    day = utc_days(dataset_of(prometheus))[0]
    client = client_for(prometheus)
    filled = await service.run_day(sessions, client, settings, day, trigger=service.Trigger.CATCH_UP)
    late = await service.run_day(sessions, client, settings, day, trigger=service.Trigger.CATCH_UP)
    asked = await service.run_day(sessions, client, settings, day, trigger=service.Trigger.CLI)
    async with sessions.begin() as session:
        await session.execute(
            update(RollupRun).where(RollupRun.day == day).values(status=RunStatus.FAILED, error="refused")
        )
    retried = await service.run_day(sessions, client, settings, day, trigger=service.Trigger.CATCH_UP)
    await client.aclose()
    assert [o.status for o in (filled, late, asked, retried)] == ["ok", "skipped", "ok", "ok"]
    async with sessions() as session:
        assert len((await service.runs(session)).runs) == 3


async def test_a_stale_claim_is_taken_over(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    """A worker that died mid-run leaves a running claim; after the lease it no longer blocks."""
    settings = rollup_settings(prometheus.url, database_url)
    day = utc_days(dataset_of(prometheus))[0]
    long_ago = datetime.now(UTC) - service.LEASE - timedelta(minutes=1)
    async with sessions.begin() as session:
        session.add(
            RollupRun(day=day, status="running", trigger="dead", started_at=long_ago, worker="gone:1")
        )
    outcome = await service.run_day(sessions, client_for(prometheus), settings, day, trigger="test")
    assert outcome.status == "ok"


async def test_retention_deletes_old_days(
    prometheus: RunningPrometheus, sessions: Factory, database_url: str
) -> None:
    days = utc_days(dataset_of(prometheus))
    settings = rollup_settings(prometheus.url, database_url, rollups={"retention_days": 2})
    client = client_for(prometheus)
    for day in days:
        await service.run_day(sessions, client, settings, day, trigger="test")
    now = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
    deleted_values, deleted_runs = await service.apply_retention(sessions, settings, now=now)
    assert deleted_values > 0
    assert deleted_runs == 1
    assert await count_values(sessions, day=days[0]) == 0
    assert await count_values(sessions, day=days[1]) > 0

"""Drills of the daily rollups with two replicas: Prometheus down across the rollup time, and a
replica stopped with SIGTERM in the middle of a rollup."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.drills.support import (
    Tally,
    drill_config,
    migrate,
    report,
    rollup_runs,
    start_replica,
    stored_values,
    terminate,
    wait_until,
)
from tests.harness.prometheus import RunningPrometheus
from tests.harness.proxy import SwitchableProxy
from tests.rollups.support import dataset_of, utc_days

pytestmark = [pytest.mark.drill, pytest.mark.postgres, pytest.mark.timeout(240)]
DONE = ("ok", "no_data")


@pytest.fixture
def proxy(prometheus: RunningPrometheus) -> Iterator[SwitchableProxy]:
    switch = SwitchableProxy(prometheus.port, mode="down")
    try:
        yield switch
    finally:
        switch.close()


def rollup_config(prometheus_url: str, **server: str) -> dict[str, object]:
    config = drill_config(
        "http://127.0.0.1:9/unused",
        prometheus={"url": prometheus_url, "retries": 0, "timeout_s": 60},
        rollups={"enabled": True, "backfill_days": 2, "retry_interval": "3s"},
        timezone="UTC",
    )
    if server:
        config["server"] = {**config["server"], **server}
    return config


def expected_days(prometheus: RunningPrometheus) -> dict[str, str]:
    """The two days the catch-up covers, and what each should end as (the dataset has them or not)."""
    today = datetime.now(UTC).date()
    with_data = {d.isoformat() for d in utc_days(dataset_of(prometheus))}
    days = [(today - timedelta(days=n)).isoformat() for n in (1, 2)]
    return {day: "ok" if day in with_data else "no_data" for day in days}


def test_prometheus_down_across_the_rollup_time_fills_each_day_once_when_it_returns(
    tmp_path: Path, postgres_url: str, prometheus: RunningPrometheus, proxy: SwitchableProxy
) -> None:
    config = rollup_config(proxy.url)
    migrate(postgres_url, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", postgres_url, tmp_path, config) for n in range(2)]
    days = expected_days(prometheus)
    newest = max(days)
    try:
        wait_until(lambda: any(r[1] == "failed" for r in rollup_runs(postgres_url)), "a failed run", 60)
        time.sleep(4)  # another retry or two fail as well
        failed_while_down = sum(1 for r in rollup_runs(postgres_url) if r[1] == "failed")
        values_while_down = sum(stored_values(postgres_url).values())
        proxy.mode = "up"
        back_at = time.monotonic()

        def settled() -> bool:
            runs = rollup_runs(postgres_url)
            return any(r[0] == newest and r[1] in DONE for r in runs) and all(
                any(r[0] == day and r[1] in DONE for r in runs) for day, end in days.items() if end == "ok"
            )

        wait_until(settled, "the days filled once Prometheus is back", 90)
        filled_after_s = time.monotonic() - back_at
        time.sleep(7)  # two more retry intervals: nothing is computed again
        runs = rollup_runs(postgres_url)
        values = stored_values(postgres_url)
    finally:
        for replica in replicas:
            replica.process.stop()
    completed = Counter(day for day, status, _, _ in runs if status in DONE)
    filled = [day for day, status, _, _ in runs if status == "ok"]
    tally = Tally.of([d for d, end in days.items() if end == "ok"], filled)
    report(
        "prometheus_down_at_rollup_time",
        ["Prometheus unreachable when two replicas' catch-ups run, then back"],
        tally,
        failed_runs_while_down=failed_while_down,
        values_stored_while_down=values_while_down,
        filled_after_s=round(filled_after_s, 1),
        computed_per_day=dict(completed),
    )
    assert failed_while_down >= 1
    assert values_while_down == 0  # no partial day
    assert all(completed[day] == 1 for day in days if days[day] == "ok")  # each day computed once
    assert tally.lost == 0
    for day, end in days.items():
        if end == "ok":
            assert values[day] > 0


def test_sigterm_in_the_middle_of_a_rollup_gives_the_day_to_the_other_replica(
    tmp_path: Path, postgres_url: str, prometheus: RunningPrometheus, proxy: SwitchableProxy
) -> None:
    proxy.mode = "hang"  # replica A's Prometheus answers nothing: its rollup is in flight
    stuck = rollup_config(proxy.url, shutdown_grace="5s")
    direct = rollup_config(prometheus.url)
    migrate(postgres_url, tmp_path, direct)
    days = expected_days(prometheus)
    newest = max(days)
    first = start_replica("replica-a", postgres_url, tmp_path, stuck)
    try:
        wait_until(
            lambda: any(r[1] == "running" for r in rollup_runs(postgres_url)), "A's rollup running", 60
        )
        second = start_replica("replica-b", postgres_url, tmp_path, direct)
        time.sleep(6)  # B's catch-up finds the day claimed and leaves it
        claimed_by_a = [r for r in rollup_runs(postgres_url) if r[1] == "running"]
        took = terminate(first)
        released = [r for r in rollup_runs(postgres_url) if r[3] == "interrupted before the day was computed"]
        wait_until(
            lambda: any(r[0] == newest and r[1] in DONE for r in rollup_runs(postgres_url)),
            "B computing the day",
            60,
        )
        runs = rollup_runs(postgres_url)
    finally:
        first.process.stop()
        second.process.stop()
    completed = Counter(day for day, status, _, _ in runs if status in DONE)
    tally = Tally.of([newest], [day for day, status, _, _ in runs if status in DONE])
    report(
        "sigterm_mid_rollup",
        ["replica A's Prometheus hangs mid-rollup; SIGTERM to A (shutdown_grace 5s); replica B retries"],
        tally,
        exit_after_s=round(took, 1),
        released_runs=len(released),
    )
    assert len(claimed_by_a) == 1
    assert took < 5 + 3
    assert len(released) == 1  # A gave the day back instead of leaving it claimed for 30 minutes
    assert completed[newest] == 1
    assert tally.lost == 0

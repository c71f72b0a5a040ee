"""`panorama rollup` from a shell, and the scheduled jobs inside a running app."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.rollups.repository import RunStatus
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import dataset_of, utc_days

PANORAMA = str(Path(sys.executable).parent / "panorama")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PANORAMA, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def run_at_once(*commands: tuple[list[str], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """:func:`run` for commands that do not depend on each other, all started at once (each
    `panorama` spends most of its time importing the app: together they take the time of two)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda command: run(*command), commands))


@pytest.fixture
def env(tmp_path: Path, prometheus: RunningPrometheus) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PANORAMA_")},
        "PANORAMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "PANORAMA_PROMETHEUS_URL": prometheus.url,
        "PANORAMA_TIMEZONE": "UTC",
        "PANORAMA_CONFIG": str(tmp_path / "none.yaml"),
    }


def test_rollup_from_the_command_line(
    env: dict[str, str], prometheus: RunningPrometheus, tmp_path: Path
) -> None:
    (tmp_path / "none.yaml").write_text("{}\n")
    days = [d.isoformat() for d in utc_days(dataset_of(prometheus))]

    unmigrated = run(["rollup", "--date", days[0]], env)
    assert unmigrated.returncode == 1
    assert "run `panorama migrate`" in unmigrated.stderr

    assert run(["migrate"], env).returncode == 0
    one = run(["rollup", "--date", days[0]], env)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("rolled up 1 day: 1 ok; 19 values in ")

    backfill = run(["rollup", "--from", days[0], "--to", days[-1]], env)
    assert backfill.returncode == 0, backfill.stderr
    assert backfill.stdout.startswith("rolled up 3 days: 3 ok; 57 values in ")
    assert "\r[" not in backfill.stderr  # no progress bar when the output is not a terminal

    future, both, malformed, down = run_at_once(
        (["rollup", "--date", "2999-01-01"], env),
        (["rollup", "--date", days[0], "--from", days[0]], env),
        (["rollup", "--date", "yesterday"], env),
        (["rollup", "--date", days[0]], {**env, "PANORAMA_PROMETHEUS_URL": "http://127.0.0.1:9"}),
    )
    assert future.returncode == 2
    assert "2999-01-01 has not ended yet in UTC" in future.stderr
    assert both.returncode == 2
    assert "give --date DAY, or --from DAY and --to DAY" in both.stderr
    assert malformed.returncode == 2
    assert "option '--date': 'yesterday' is not a time; use " in malformed.stderr

    assert down.returncode == 1
    assert "rolled up 1 day: 1 failed" in down.stdout
    assert "prometheus: cannot reach" in down.stderr


def test_rollup_from_the_command_line_without_prometheus(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "none.yaml").write_text("{}\n")
    without = {k: v for k, v in env.items() if k != "PANORAMA_PROMETHEUS_URL"}
    assert run(["migrate"], without).returncode == 0
    alone = run(["rollup", "--date", "2026-01-01"], without)
    assert alone.returncode == 0, alone.stderr
    assert "rolling up the on-call history only" in alone.stderr
    assert alone.stdout.startswith("rolled up 1 day: 1 ok; 0 values in ")  # no incident that day
    relative = run(["rollup", "--from", "now-3d", "--to", "now-1d/d"], without)  # the time grammar
    assert relative.returncode == 0, relative.stderr
    assert relative.stdout.startswith("rolled up 3 days: 3 ok; ")
    not_over = run(["rollup", "--date", "now"], without)
    assert not_over.returncode == 2
    assert "has not ended yet" in not_over.stderr


async def test_the_scheduler_catches_up_on_start(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    async with app_factory(
        prometheus={"url": prometheus.url},
        timezone="Asia/Shanghai",
        rollups={"enabled": True, "backfill_days": 2, "schedule": "02:45"},
    ) as (app, client):
        scheduler = app.state.context.scheduler
        daily = scheduler.get_job("rollups.daily")
        assert str(daily.trigger.fields[5]) == "2"  # hour
        assert str(daily.trigger.fields[6]) == "45"  # minute
        assert str(daily.trigger.timezone) == "Asia/Shanghai"
        assert scheduler.get_job("rollups.catch_up") is not None
        for _ in range(600):  # until the catch-up is over (two days, or it stopped at one without data)
            runs = (await client.get("/api/v1/rollups/runs", headers=bearer(VIEWER_TOKEN))).json()["runs"]
            settled = runs and all(r["status"] != RunStatus.RUNNING for r in runs)
            if settled and (len(runs) == 2 or any(r["status"] != "ok" for r in runs)):
                break
            await asyncio.sleep(0.05)
    assert runs
    assert {r["trigger"] for r in runs} == {"catch_up"}
    assert len(runs) <= 2
    assert all(r["status"] in ("ok", "no_data") for r in runs)


async def test_without_prometheus_the_scheduler_records_the_on_call_history(app_factory: AppFactory) -> None:
    async with app_factory(timezone="UTC", rollups={"enabled": True, "backfill_days": 2}) as (_app, client):
        for _ in range(600):
            runs = (await client.get("/api/v1/rollups/runs", headers=bearer(VIEWER_TOKEN))).json()["runs"]
            if len(runs) == 2 and all(r["status"] != RunStatus.RUNNING for r in runs):
                break
            await asyncio.sleep(0.05)
    assert [(r["trigger"], r["status"], r["error"]) for r in runs] == [("catch_up", "ok", None)] * 2


async def test_no_jobs_when_disabled(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    async with app_factory(prometheus={"url": prometheus.url}) as (app, _client):
        assert app.state.context.scheduler.get_jobs() == []

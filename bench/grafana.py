"""Latency of Grafana's ``POST /grafana/query`` for one service over three years, daily and monthly.

With N services × D days of rollups stored (default 1,000 × 1,096, about 6.6 million rows),
on SQLite and on PostgreSQL, it times the query a "Service history" panel sends — one
``service.latency_p99_ms`` target over the whole stored range, as Grafana 11 with
simpod-json-datasource 0.6 sends it — through the real app over ASGI (token check,
validation, JSON included), and ``rollups.series`` alone for the same period as the floor.
Goals: p95 ≤ 20 ms daily (1,096 points), ≤ 30 ms monthly (37 points). They are
informational: the table says PASS or MISS and the exit status is 0.

PostgreSQL: a database of its own is created on the server of ``--postgres-url`` (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) and dropped at the end; ``--no-postgres``
skips it.

Run: .venv/bin/python bench/grafana.py            (about 3 minutes on 2 cores)
     .venv/bin/python bench/grafana.py --quick    (a smoke run, seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/, which is not installed

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from app import db, migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.rollups import service as rollups  # noqa: E402
from app.rollups.days import Granularity  # noqa: E402
from bench.rollup_store import fill_postgres, fill_sqlite, service_names  # noqa: E402
from tests.harness.app import VIEWER_TOKEN, bearer, running_app, settings_for  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
GOALS_MS = {Granularity.DAY: 20.0, Granularity.MONTH: 30.0}
WARMUP = 5
FIGURE = "service.latency_p99_ms"
FIGURE_NAME = FIGURE.removeprefix("service.")


@dataclass(frozen=True)
class Options:
    services: int
    days: int
    repeat: int
    postgres_url: str | None
    workdir: Path | None


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--days", type=int, default=rollups.MAX_PERIOD_DAYS)
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per scenario")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workdir", type=Path, help="where the SQLite file goes (default: /tmp)")
    parser.add_argument("--quick", action="store_true", help="50 services × 400 days, 20 calls")
    args = parser.parse_args(argv)
    services, days, repeat = (50, 400, 20) if args.quick else (args.services, args.days, args.repeat)
    if not 1 <= days <= rollups.MAX_PERIOD_DAYS or services < 1 or repeat < 1:
        parser.error(f"--services and --repeat ≥ 1; 1 ≤ --days ≤ {rollups.MAX_PERIOD_DAYS}")
    return Options(services, days, repeat, None if args.no_postgres else args.postgres_url, args.workdir)


# --- one database ---------------------------------------------------------------------------


@dataclass
class Result:
    dialect: str
    rows: int
    fill_s: float
    http_ms: dict[Granularity, list[float]]
    direct_ms: dict[Granularity, list[float]]
    points: dict[Granularity, int]


def grafana_request(first: date, last: date, granularity: Granularity, target: str) -> dict[str, Any]:
    """The body Grafana 11 + simpod-json-datasource 0.6 sends for one builder-mode target."""
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC) - timedelta(milliseconds=1)
    escaped = target.replace(".", "\\.")  # the regex format Grafana interpolates $service with
    return {
        "app": "dashboard",
        "requestId": "Q101",
        "timezone": "browser",
        "panelId": 2,
        "dashboardUID": "panorama-service-history",
        "range": {
            "from": start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "to": end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "raw": {"from": "now-3y", "to": "now"},
        },
        "interval": "1d",
        "intervalMs": 86_400_000,
        "maxDataPoints": 1_920,
        "targets": [
            {
                "refId": "A",
                "datasource": {"type": "simpod-json-datasource", "uid": "panorama"},
                "editorMode": "builder",
                "target": FIGURE,
                "payload": {"entity": escaped, "granularity": granularity.value},
            }
        ],
        "scopedVars": {"__interval": {"text": "1d", "value": "1d"}},
        "startTime": int(time.time() * 1000),
        "rangeRaw": {"from": "now-3y", "to": "now"},
        "filters": [],
        "adhocFilters": [],
    }


async def measure(settings: Settings, dialect: str, rows: int, fill_s: float, opts: Options) -> Result:
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=opts.days - 1)
    target = service_names(opts.services)[opts.services // 2]
    result = Result(dialect, rows, fill_s, {}, {}, {})
    async with running_app(settings, migrate=False) as (app, client):
        sessions: async_sessionmaker[AsyncSession] = app.state.context.sessions
        for granularity in GOALS_MS:
            body = grafana_request(first, last, granularity, target)

            async def over_http(body: dict[str, Any] = body) -> int:
                answer = await client.post("/grafana/query", json=body, headers=bearer(VIEWER_TOKEN))
                if answer.status_code != 200:
                    raise RuntimeError(f"/grafana/query answered {answer.status_code}: {answer.text[:300]}")
                return len(answer.json()[0]["datapoints"])

            async def direct(granularity: Granularity = granularity) -> int:
                async with sessions() as session:
                    found = await rollups.series(
                        session, settings, "service", target, first, last, granularity, only=[FIGURE_NAME]
                    )
                return len(found)

            result.points[granularity] = await over_http()
            result.http_ms[granularity] = await latencies(over_http, opts.repeat)
            result.direct_ms[granularity] = await latencies(direct, opts.repeat)
    return result


async def latencies(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    for _ in range(WARMUP):
        await call()
    found = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        found.append((time.perf_counter() - started) * 1000)
    return found


async def migrate(settings: Settings) -> None:
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


def days_of(opts: Options) -> list[date]:
    last = datetime.now(UTC).date() - timedelta(days=1)
    return [last - timedelta(days=k) for k in reversed(range(opts.days))]


async def on_sqlite(opts: Options, workdir: Path) -> Result:
    database = workdir / "grafana.db"
    settings = settings_for(f"sqlite+aiosqlite:///{database}", timezone="UTC")
    await migrate(settings)
    started = time.perf_counter()
    rows = await asyncio.to_thread(fill_sqlite, database, service_names(opts.services), days_of(opts))
    return await measure(settings, "SQLite", rows, time.perf_counter() - started, opts)


async def on_postgres(opts: Options, server_url: str) -> Result:
    name = f"panorama_bench_grafana_{secrets.token_hex(4)}"
    server = make_url(server_url)
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        settings = settings_for(url, timezone="UTC")
        await migrate(settings)
        started = time.perf_counter()
        rows = await fill_postgres(url, service_names(opts.services), days_of(opts))
        return await measure(settings, "PostgreSQL", rows, time.perf_counter() - started, opts)
    finally:
        connection = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


# --- output ---------------------------------------------------------------------------------


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def print_results(results: Sequence[Result], opts: Options) -> None:
    print(
        f"\n{opts.services:,} services × {opts.days:,} days stored; one service's {FIGURE} over "
        f"the {opts.days} days; {opts.repeat} timed calls each (after {WARMUP} warm-up calls)\n"
    )
    header = (
        "database",
        "granularity",
        "points",
        "p50 ms",
        "p95 ms",
        "goal p95",
        "verdict",
        "series() p50/p95",
    )
    lines = [header]
    for result in results:
        for granularity, goal in GOALS_MS.items():
            http, direct = result.http_ms[granularity], result.direct_ms[granularity]
            lines.append(
                (
                    result.dialect,
                    granularity.value,
                    str(result.points[granularity]),
                    f"{statistics.median(http):.1f}",
                    f"{p95(http):.1f}",
                    f"≤ {goal:g}",
                    "PASS" if p95(http) <= goal else "MISS",
                    f"{statistics.median(direct):.1f} / {p95(direct):.1f}",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))
    for result in results:
        print(f"{result.dialect}: {result.rows:,} rows stored in {result.fill_s:.1f}s")
    print("\nGoals are informational; the exit status is 0 either way.")


async def run(opts: Options, workdir: Path) -> list[Result]:
    results = [await on_sqlite(opts, workdir)]
    if opts.postgres_url:
        results.append(await on_postgres(opts, opts.postgres_url))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    if opts.workdir is not None:
        opts.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="panorama-bench-grafana-", dir=opts.workdir))
    try:
        results = asyncio.run(run(opts, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_results(results, opts)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work skews latencies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

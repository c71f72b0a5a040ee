"""Three years of reports over real HTTP: one service daily and monthly, every service at once.

With N services × D days of rollups stored (default 1,000 × 1,096), on SQLite and on PostgreSQL,
Panorama runs as ``panorama serve`` (uvicorn, one process) and is timed over real HTTP on
127.0.0.1 against ``bench/report_bare.py``, a bare FastAPI app serving the very same answer bytes
from memory, the calls alternating so that other work on the machine weighs on both alike:

- Grafana's ``POST /grafana/query`` for one service's ``service.latency_p99_ms`` over the whole
  stored range, daily (1,096 points) and monthly, as Grafana 11 with simpod-json-datasource 0.6
  sends it; and the ``daily`` report of one service (every figure, about 400 KB of JSON for three
  years), daily and monthly: p95 ≤ 20 ms daily, ≤ 30 ms monthly, and the daily ones within 3× of
  the bare endpoint (median against median);
- ``GET /api/v1/reports/services`` over the three years (every service, every figure), as JSON
  and as CSV: p95 ≤ 2 s, and the server's peak resident memory during the call at most 100 MB
  above what it held before (``VmHWM`` after resetting it through ``/proc/PID/clear_refs``).

Goals are informational: the table says PASS or MISS and the exit status is 0.

PostgreSQL: a database of its own is created on the server of ``--postgres-url`` (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) and dropped at the end; ``--no-postgres``
skips it.

Run: .venv/bin/python bench/grafana.py            (about 4 minutes on 2 cores)
     .venv/bin/python bench/grafana.py --quick    (a smoke run, seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/, which is not installed

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import db, migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.rollups import service as rollups  # noqa: E402
from bench.rollup_store import fill_postgres, fill_sqlite, service_names  # noqa: E402
from tests.harness.app import TOKENS, VIEWER_TOKEN, bearer, settings_for  # noqa: E402
from tests.harness.processes import ManagedProcess, start_on_free_port  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
WARMUP = 5
FIGURE = "service.latency_p99_ms"
RATIO_GOAL = 3.0
ALL_P95_GOAL_MS = 2000.0
RSS_GOAL_MB = 100.0
BARE_SCRIPT = ROOT / "bench" / "report_bare.py"
READY_TIMEOUT_S = 180.0
"""How long a server may take to start: on a 2-core machine shared with other test suites,
Panorama's imports alone have taken more than the harness's 30 s."""


@dataclass(frozen=True)
class Options:
    services: int
    days: int
    repeat: int
    all_repeat: int
    postgres_url: str | None
    workdir: Path | None


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--days", type=int, default=rollups.MAX_PERIOD_DAYS)
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per one-service scenario")
    parser.add_argument("--all-repeat", type=int, default=5, help="timed calls of the every-service report")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workdir", type=Path, help="where the SQLite file goes (default: /tmp)")
    parser.add_argument("--quick", action="store_true", help="50 services × 400 days, 20 calls")
    args = parser.parse_args(argv)
    services, days, repeat, all_repeat = (
        (50, 400, 20, 2) if args.quick else (args.services, args.days, args.repeat, args.all_repeat)
    )
    if not 1 <= days <= rollups.MAX_PERIOD_DAYS or services < 1 or repeat < 1 or all_repeat < 1:
        parser.error(f"--services and --repeat ≥ 1; 1 ≤ --days ≤ {rollups.MAX_PERIOD_DAYS}")
    postgres = None if args.no_postgres else args.postgres_url
    return Options(services, days, repeat, all_repeat, postgres, args.workdir)


# --- the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    url: str
    process: ManagedProcess


def start_panorama(workdir: Path, database_url: str) -> Server:
    """``panorama serve`` on a free loopback port, on the filled database (already migrated)."""
    config = {
        "timezone": "UTC",
        "rollups": {"enabled": False},
        "alerts": {"worker": False},
        "server": {"rate_limit": {"per_token_per_min": None}},  # a bench client is one token, flat out
        "auth": {"tokens": [{"name": f"{r}-bench", "role": r, "token": t} for r, t in TOKENS.items()]},
    }
    settings_for(database_url, **config)  # fails here, with the key named, if invalid
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "panorama.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "PANORAMA_CONFIG": str(config_file),
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_DATA_DIR": str(workdir),
    }
    panorama = Path(sys.executable).parent / "panorama"
    command = [str(panorama)] if panorama.exists() else [sys.executable, "-m", "app.cli"]

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            "panorama",
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            log_path=workdir / "panorama.log",
            ready_url=f"http://127.0.0.1:{port}/readyz",
            ready_timeout_s=READY_TIMEOUT_S,
            env=env,
            cwd=workdir,
        )

    port, process = start_on_free_port(build)
    return Server("panorama", f"http://127.0.0.1:{port}", process)


def start_bare(workdir: Path, bodies: dict[str, bytes]) -> Server:
    """``bench/report_bare.py`` serving ``bodies`` (path → bytes) from memory."""
    arguments = []
    for index, (path, body) in enumerate(bodies.items()):
        file = workdir / f"body-{index}.json"
        file.write_bytes(body)
        arguments += ["--body", f"{path}={file}"]

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            "bare-report",
            [sys.executable, str(BARE_SCRIPT), "--port", str(port), *arguments],
            log_path=workdir / "bare.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            ready_timeout_s=READY_TIMEOUT_S,
            cwd=workdir,
        )

    port, process = start_on_free_port(build)
    return Server("bare", f"http://127.0.0.1:{port}", process)


# --- one database ---------------------------------------------------------------------------


def grafana_request(first: date, last: date, granularity: str, target: str) -> dict[str, Any]:
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
                "payload": {"entity": escaped, "granularity": granularity},
            }
        ],
        "scopedVars": {"__interval": {"text": "1d", "value": "1d"}},
        "startTime": int(time.time() * 1000),
        "rangeRaw": {"from": "now-3y", "to": "now"},
        "filters": [],
        "adhocFilters": [],
    }


@dataclass(frozen=True)
class Call:
    """One timed request: what it asks, its goal, whether it is compared with the bare server."""

    name: str
    method: str
    path: str
    goal_ms: float
    params: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    against_bare: bool = False
    cold: tuple[Call, ...] = ()
    """When given, Panorama is asked each of these in turn (another service each time: nothing
    computed before can answer), the bare server still the bytes of the first."""

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        answer = await client.request(self.method, self.path, params=self.params, json=self.json)
        if answer.status_code != 200:
            raise RuntimeError(
                f"{self.method} {self.path} answered {answer.status_code}: {answer.text[:300]}"
            )
        return answer


def calls(first: date, last: date, target: str, others: Sequence[str]) -> list[Call]:
    period = {"from": first.isoformat(), "to": last.isoformat()}
    daily = f"/api/v1/reports/services/{target}/daily"
    grafana_cold = tuple(
        Call("", "POST", "/grafana/query", 0, json=grafana_request(first, last, "day", other))
        for other in others
    )
    report_cold = tuple(
        Call("", "GET", f"/api/v1/reports/services/{other}/daily", 0, params=period) for other in others
    )
    return [
        Call(
            "grafana day, cold",
            "POST",
            "/grafana/query",
            20.0,
            json=grafana_request(first, last, "day", target),
            against_bare=True,
            cold=grafana_cold,
        ),
        Call("report day, cold", "GET", daily, 20.0, params=period, against_bare=True, cold=report_cold),
        Call(
            "grafana day",
            "POST",
            "/grafana/query",
            20.0,
            json=grafana_request(first, last, "day", target),
            against_bare=True,
        ),
        Call(
            "grafana month",
            "POST",
            "/grafana/query",
            30.0,
            json=grafana_request(first, last, "month", target),
        ),
        Call("report day", "GET", daily, 20.0, params=period, against_bare=True),
        Call("report month", "GET", daily, 30.0, params={**period, "granularity": "month"}),
        Call("report day csv", "GET", daily, 20.0, params={**period, "format": "csv"}),
    ]


@dataclass
class Timing:
    call: Call
    size: int
    panorama_ms: list[float]
    bare_ms: list[float]


@dataclass
class Whole:
    """The every-service report in one format."""

    format: str
    size: int
    rows: int
    ms: list[float]
    rss_growth_mb: list[float]


@dataclass
class Result:
    dialect: str
    rows: int
    fill_s: float
    timings: list[Timing]
    wholes: list[Whole]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


def _rss_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/{pid}/status")


async def whole_report(
    client: httpx.AsyncClient, pid: int, fmt: str, first: date, last: date, repeat: int
) -> Whole:
    """The every-service report ``repeat`` times; each call's time and peak RSS growth."""
    params = {"from": first.isoformat(), "to": last.isoformat(), "format": fmt}
    found = Whole(fmt, 0, 0, [], [])
    for attempt in range(repeat + 1):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # noqa: ASYNC240 - VmHWM (peak RSS) := current RSS
        before = _rss_kib(pid, "VmRSS")
        started = time.perf_counter()
        answer = await client.get("/api/v1/reports/services", params=params)
        spent = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"/api/v1/reports/services answered {answer.status_code}: {answer.text[:300]}")
        growth = (_rss_kib(pid, "VmHWM") - before) / 1024
        if attempt == 0:  # the first call warms caches and pools up; it is not timed
            found.size = len(answer.content)
            found.rows = len(answer.json()["services"]) if fmt == "json" else answer.text.count("\n") - 1
            continue
        found.ms.append(spent)
        found.rss_growth_mb.append(growth)
    return found


async def measure(
    database_url: str, dialect: str, rows: int, fill_s: float, opts: Options, workdir: Path
) -> Result:
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=opts.days - 1)
    target = service_names(opts.services)[opts.services // 2]
    names = service_names(opts.services)
    others = [name for name in names if name != target][: opts.repeat + WARMUP]
    planned = calls(first, last, target, others)
    panorama = start_panorama(workdir / dialect, database_url)
    bare: Server | None = None
    result = Result(dialect, rows, fill_s, [], [])
    headers = bearer(VIEWER_TOKEN)
    try:
        async with httpx.AsyncClient(base_url=panorama.url, headers=headers, timeout=300) as client:
            bodies = {call.path: (await call.send(client)).content for call in planned if call.against_bare}
            bare = start_bare(workdir / dialect, bodies)
            async with httpx.AsyncClient(base_url=bare.url, timeout=300) as plain:
                for call in planned:
                    size = len((await call.send(client)).content)
                    timing = Timing(call, size, [], [])
                    turns = itertools.cycle(call.cold or (call,))

                    async def mine(turns: Iterator[Call] = turns) -> httpx.Response:
                        return await next(turns).send(client)

                    pairs: list[tuple[Callable[[], Awaitable[object]], list[float]]] = [
                        (mine, timing.panorama_ms)
                    ]
                    if call.against_bare:
                        if (await call.send(plain)).content != (await call.send(client)).content:
                            raise RuntimeError(
                                f"{call.name}: the bare server does not serve Panorama's bytes"
                            )
                        pairs.append((partial(call.send, plain), timing.bare_ms))
                    for _ in range(WARMUP):
                        for send, _sink in pairs:
                            await send()
                    for _ in range(opts.repeat):
                        for send, sink in pairs:
                            sink.append(await timed(send))
                    result.timings.append(timing)
            pid = panorama.process.pid
            assert pid is not None
            for fmt in ("json", "csv"):
                result.wholes.append(await whole_report(client, pid, fmt, first, last, opts.all_repeat))
    finally:
        panorama.process.stop()
        if bare is not None:
            bare.process.stop()
    return result


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
    url = f"sqlite+aiosqlite:///{database}"
    await migrate(settings_for(url, timezone="UTC"))
    started = time.perf_counter()
    fill = partial(fill_sqlite, settings=settings_for(url, timezone="UTC"))
    rows = await asyncio.to_thread(fill, database, service_names(opts.services), days_of(opts))
    return await measure(url, "SQLite", rows, time.perf_counter() - started, opts, workdir)


async def on_postgres(opts: Options, server_url: str, workdir: Path) -> Result:
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
        await migrate(settings_for(url, timezone="UTC"))
        started = time.perf_counter()
        settings = settings_for(url, timezone="UTC")
        rows = await fill_postgres(url, service_names(opts.services), days_of(opts), settings=settings)
        return await measure(url, "PostgreSQL", rows, time.perf_counter() - started, opts, workdir)
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


def verdict(value: float, goal: float) -> str:
    return "PASS" if value <= goal else "MISS"


def print_table(lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for n, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def print_results(results: Sequence[Result], opts: Options) -> None:
    print(
        f"\n{opts.services:,} services × {opts.days:,} days stored; one service over the {opts.days} days, "
        f"{opts.repeat} timed calls each after {WARMUP} warm-up calls, over HTTP on 127.0.0.1\n"
    )
    lines: list[tuple[str, ...]] = [
        (
            "database",
            "request",
            "bytes",
            "p50 ms",
            "p95 ms",
            "goal p95",
            "verdict",
            "bare p50/p95",
            "÷ bare p50",
            "goal",
            "verdict",
        )
    ]
    for result in results:
        for t in result.timings:
            mine, bare = t.panorama_ms, t.bare_ms
            cells = [
                result.dialect,
                t.call.name,
                f"{t.size:,}",
                f"{statistics.median(mine):.1f}",
                f"{p95(mine):.1f}",
            ]
            cells += [f"≤ {t.call.goal_ms:g}", verdict(p95(mine), t.call.goal_ms)]
            if bare:
                ratio = statistics.median(mine) / statistics.median(bare)
                cells += [
                    f"{statistics.median(bare):.1f} / {p95(bare):.1f}",
                    f"{ratio:.2f}",
                    f"≤ {RATIO_GOAL:g}",
                    verdict(ratio, RATIO_GOAL),
                ]
            else:
                cells += ["", "", "", ""]
            lines.append(tuple(cells))
    print_table(lines)
    print(
        f"\nevery service over the {opts.days} days (/api/v1/reports/services), "
        f"{opts.all_repeat} timed calls after one\n"
    )
    lines = [
        (
            "database",
            "format",
            "bytes",
            "rows",
            "p50 ms",
            "p95 ms",
            "goal",
            "verdict",
            "peak RSS growth",
            "goal",
            "verdict",
        )
    ]
    for result in results:
        for w in result.wholes:
            growth = max(w.rss_growth_mb)
            lines.append(
                (
                    result.dialect,
                    w.format,
                    f"{w.size:,}",
                    f"{w.rows:,}",
                    f"{statistics.median(w.ms):.0f}",
                    f"{p95(w.ms):.0f}",
                    f"≤ {ALL_P95_GOAL_MS:g}",
                    verdict(p95(w.ms), ALL_P95_GOAL_MS),
                    f"{growth:.1f} MB",
                    f"≤ {RSS_GOAL_MB:g} MB",
                    verdict(growth, RSS_GOAL_MB),
                )
            )
    print_table(lines)
    for result in results:
        print(f"{result.dialect}: {result.rows:,} entity days stored in {result.fill_s:.1f}s")
    print("\nGoals are informational; the exit status is 0 either way.")


async def run(opts: Options, workdir: Path) -> list[Result]:
    results = [await on_sqlite(opts, workdir)]
    if opts.postgres_url:
        results.append(await on_postgres(opts, opts.postgres_url, workdir))
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

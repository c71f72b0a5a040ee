"""Rolling up a day of Istio traffic, and reporting three years of it: Panorama against baselines.

On N services × D UTC days of generated Istio traffic (``istio_requests_total`` 200/503 and
``istio_request_duration_milliseconds`` with Envoy's buckets, ``reporter="destination"``),
backfilled with promtool into a real Prometheus on 127.0.0.1, it measures in the same run:

1. seconds per rolled-up day: ``run_day`` into a fresh SQLite database, and ``compute_day`` alone;
2. their ratio to Prometheus's own time for the same queries (the PromQL ``plan()`` produces, in
   its order, POSTed with plain httpx, same parameters and concurrency, bodies read but not
   parsed). Each Panorama run is timed between two runs of Prometheus alone and judged against
   their mean, so that a machine that changes speed weighs on both sides; a pair whose two
   baselines differ by more than 25% is measured again (at most twice) and printed, never
   dropped silently. The worst day and round is printed beside the median, with the noise of the
   judging itself (Prometheus alone, each inner run judged between the two around it);
3. the ratio of a naive rollup (one query per service per family) to Panorama's batched queries
   for the same service families (``compute_day`` on the catalogue cut to them), the naive one
   timed on a random sample of services and extrapolated to N, each naive run between two
   batched ones;
4. database bytes per stored value row and per reported figure;
5. the latency of a three-year ``daily`` report of one service through the real app over ASGI,
   and through ``service.series`` directly, with ``--report-services`` × ``--report-days`` stored.

Goals are informational: the table says PASS or MISS, and the exit status is 0.

Run: .venv/bin/python bench/rollup.py            (8 to 10 minutes on an idle 2-core machine, of which
                                                  ~2.5 generating and backfilling, ~2 filling the store)
     .venv/bin/python bench/rollup.py --quick    (a smoke run, under 10 seconds)
     .venv/bin/python bench/rollup.py --keep --workdir DIR, then
     .venv/bin/python bench/rollup.py --prometheus-dir DIR/panorama-bench-rollup-*/prometheus --rollups-only
                                                 (parts 1-3 again on the same TSDB: runs of two versions of
                                                  the code can alternate on the same data)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/, which is not installed

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from app import db, heap, migrations  # noqa: E402
from app.backends.prometheus import PrometheusClient, to_epoch_ms  # noqa: E402
from app.backends.promql import matcher  # noqa: E402
from app.config import Settings  # noqa: E402
from app.rollups import service  # noqa: E402
from app.rollups.catalog import Catalog  # noqa: E402
from app.rollups.compute import PlannedQuery, compute_day, gauge_step, plan, planned  # noqa: E402
from app.rollups.config import RollupSettings  # noqa: E402
from app.rollups.days import DayWindow, Granularity, day_window  # noqa: E402
from app.rollups.layouts import unpack_month  # noqa: E402
from bench.rollup_store import (  # noqa: E402
    FAMILIES,
    FAMILIES_PER_DAY,
    INCREASE_EXTRAPOLATION,
    LATENCY_SIGMA,
    fill_sqlite,
    mean_latency_ms,
    normal_cdf,
    service_names,
    traits,
    workload,
)
from tests.harness import prometheus as prometheus_harness  # noqa: E402
from tests.harness.app import VIEWER_TOKEN, bearer, running_app, settings_for  # noqa: E402
from tests.harness.datasets import ENVOY_BUCKETS_MS, NAMESPACE, Edge, session_timeline  # noqa: E402
from tests.harness.openmetrics import Grid, OpenMetricsWriter, format_bound  # noqa: E402
from tests.harness.prometheus import RunningPrometheus, backfill, start_prometheus  # noqa: E402

DAY_S = 86_400
RATIO_GOAL = 1.2
NAIVE_GOAL = 10.0
VALUE_BYTES_GOAL = 100.0
STORE_GIB_GOAL = 0.6
FULL_STORE_ROWS = 1000 * 1096
"""The goal of 0.6 GiB is for 1,000 services × 1,096 days; a smaller store is held to its share."""
REPORT_P95_GOAL_MS = 20.0
WARMUP_CALLS = 3
SERVICE_LABEL = "destination_service"
REPORT_CACHE_MIB = 2048
"""SQLite's page cache while the report store is filled: its indexes stay in memory."""


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    services: int
    days: int
    interval: int
    report_services: int
    report_days: int
    repeat: int
    rounds: int
    naive_sample: int
    seed: int
    workdir: Path | None
    keep: bool
    prometheus_dir: Path | None = None
    rollups_only: bool = False


DEFAULTS = {
    "services": 1000,
    "days": 3,
    "interval": 300,
    "report_services": 1000,
    "report_days": 1096,
    "repeat": 50,
    "rounds": 3,
    "naive_sample": 50,
}
HELP = {
    "services": "services in the Prometheus dataset",
    "days": "whole UTC days of history, each rolled up",
    "interval": "scrape interval in seconds (qps uses rate(...[5m]): keep it at most 300)",
    "report_services": "services in the report store",
    "report_days": "days in the report store, and the length of the timed report",
    "repeat": "timed calls of the report, after a warm-up",
    "rounds": "times each day is rolled up (each round into a fresh database)",
    "naive_sample": "services the naive per-service rollup is timed on",
}
QUICK = {
    "services": 20,
    "days": 1,
    "interval": 300,
    "report_services": 20,
    "report_days": 90,
    "repeat": 10,
    "rounds": 1,
    "naive_sample": 5,
}


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"{HELP[name]} (default {default})")
    parser.add_argument("--seed", type=int, default=1, help="seed of the naive run's service sample")
    parser.add_argument(
        "--workdir", type=Path, help="where the bench's own directory is made (default: /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench's directory")
    parser.add_argument(
        "--prometheus-dir",
        type=Path,
        help="the `prometheus` directory a --keep run left: its TSDB is measured again, not regenerated\n"
        "(its days are read from its blocks; --services must match it)",
    )
    parser.add_argument(
        "--rollups-only",
        action="store_true",
        help="measure rolling up only (parts 1-3), not the report store",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    sizes = {name: getattr(args, name) if getattr(args, name) is not None else base[name] for name in base}
    if any(value < 1 for value in sizes.values()):
        parser.error("every size must be at least 1")
    if sizes["report_days"] > service.MAX_PERIOD_DAYS:
        parser.error(f"--report-days is at most {service.MAX_PERIOD_DAYS} (one report period)")
    return Options(
        **sizes,
        seed=args.seed,
        workdir=args.workdir,
        keep=args.keep,
        prometheus_dir=args.prometheus_dir,
        rollups_only=args.rollups_only,
    )


# --- the Prometheus dataset ---------------------------------------------------------------


def standard_normal_table(size: int) -> list[float]:
    rng = random.Random(0)
    return [rng.gauss(0, 1) for _ in range(size)]


NOISE = standard_normal_table(8191)
"""Standard normal draws shared by every service (offset per service): traffic costs no RNG calls."""


@dataclass(frozen=True)
class Traffic:
    """One service's cumulative counters at every grid time: successful and failed requests, and
    the latency sum (ms) of the successful ones."""

    edge: Edge
    ok: list[float]
    failed: list[float]
    latency_sum: list[float]


def service_edge(index: int) -> Edge:
    """Service ``index`` of bench/rollup_store.py (same draws, same name) as Istio reports it."""
    drawn = traits(index)
    return Edge(
        source=f"caller-{index % 37:02d}",
        destination=workload(index),
        requests_per_s=drawn.requests_per_s,
        error_ratio=drawn.error_ratio,
        median_ms=drawn.median_ms,
    )


def diurnal(t: float) -> float:
    return 1 + 0.5 * math.sin(2 * math.pi * ((t % DAY_S) / DAY_S - 0.375))


def traffic(index: int, grid: Grid, stop: int) -> Traffic:
    """Requests per scrape step up to grid point ``stop``: Poisson-like around a diurnal rate,
    errors at the service's ratio."""
    edge = service_edge(index)
    offset, mean_ms = index * 613, mean_latency_ms(edge.median_ms)
    ok, failed, latency = [0.0], [0.0], [0.0]
    for step, t in enumerate(grid.time_list[1:stop], 1):
        expected = edge.requests_per_s * grid.interval * diurnal(t)
        z1, z2 = NOISE[(offset + step) % len(NOISE)], NOISE[(offset + 7 * step) % len(NOISE)]
        total = max(0, round(expected + math.sqrt(expected) * z1))
        bad = total * edge.error_ratio
        errors = min(total, max(0, round(bad + math.sqrt(bad) * z2)))
        ok.append(ok[-1] + total - errors)
        failed.append(failed[-1] + errors)
        latency.append(round(latency[-1] + (total - errors) * mean_ms * max(0.5, 1 + 0.2 * z2), 3))
    return Traffic(edge, ok, failed, latency)


def bucket_shares(edge: Edge) -> list[tuple[str, float]]:
    """Envoy's ``le`` bounds and the share of a lognormal latency below each (+Inf last)."""
    mu = math.log(edge.median_ms)
    shares = [(format_bound(b), normal_cdf((math.log(b) - mu) / LATENCY_SIGMA)) for b in ENVOY_BUCKETS_MS]
    return [*shares, ("+Inf", 1.0)]


@dataclass(frozen=True)
class Slice:
    """Every series over grid points ``[first, stop)``: one file, one promtool process, blocks that
    do not overlap those of the other slices (Prometheus has nothing to merge while it is measured)."""

    grid: Grid
    first: int
    stop: int
    services: int
    path: Path
    now: float


def write_slice(part: Slice) -> int:
    flows = [traffic(i, part.grid, part.stop) for i in range(part.services)]
    times = part.grid.time_list[part.first : part.stop]
    with OpenMetricsWriter(part.path, now=part.now, keep_values=False) as writer:
        writer.begin_family("istio_requests", "counter")
        for flow in flows:
            for code, values in (("200", flow.ok), ("503", flow.failed)):
                labels = flow.edge.labels("destination", code)
                writer.series(
                    "istio_requests_total", labels, zip(times, values[part.first : part.stop], strict=True)
                )
        writer.begin_family(LATENCY_METRIC, "histogram")
        for flow in flows:
            write_histogram(writer, flow, times, part)
    return writer.samples_written


LATENCY_METRIC = "istio_request_duration_milliseconds"


def write_histogram(writer: OpenMetricsWriter, flow: Traffic, times: list[float], part: Slice) -> None:
    """Cumulative buckets (each a share of the successful requests, rounded), ``_count`` and ``_sum``."""
    labels = flow.edge.labels("destination", "200")
    ok = flow.ok[part.first : part.stop]
    for le, share in bucket_shares(flow.edge):
        counts = [float(round(c * share)) for c in ok]
        writer.series(f"{LATENCY_METRIC}_bucket", {**labels, "le": le}, zip(times, counts, strict=True))
    writer.series(f"{LATENCY_METRIC}_count", labels, zip(times, ok, strict=True))
    writer.series(
        f"{LATENCY_METRIC}_sum", labels, zip(times, flow.latency_sum[part.first : part.stop], strict=True)
    )


def slices(opts: Options, grid: Grid, directory: Path, now: float) -> list[Slice]:
    """Equal slices, two per CPU (the first ones are quicker to write: a worker computes traffic
    from the start of the grid to the end of its slice)."""
    points = len(grid)
    parts = min(points, 2 * (os.cpu_count() or 1))
    bounds = [points * k // parts for k in range(parts + 1)]
    return [
        Slice(grid, first, stop, opts.services, directory / f"istio-{k}.om", now)
        for k, (first, stop) in enumerate(pairwise(bounds))
    ]


def ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which terminates them (SIGTERM) when it leaves the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_dataset(opts: Options, grid: Grid, directory: Path, now: float) -> tuple[list[Path], int]:
    """The OpenMetrics files, written by parallel workers; returns them and their sample count."""
    parts = slices(opts, grid, directory, now)
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1, initializer=ignore_sigint) as pool:
        samples = sum(pool.map(write_slice, parts[::-1], chunksize=1))  # the longest first
    return [part.path for part in parts], samples


@dataclass
class Loaded:
    prometheus: RunningPrometheus
    samples: int
    series: int
    file_bytes: int
    write_s: float
    backfill_s: float


NO_COMPACTION = ("--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h")
"""One block range only: Prometheus does not compact the backfilled blocks while it is measured."""


BACKFILL_TIMEOUT_S = 1800.0
"""Per promtool process; the harness's 300 s suits the test dataset, and a bench file on a busy
machine can take longer."""


def kept_prometheus(directory: Path) -> tuple[Loaded, list[date]]:
    """Prometheus on a TSDB a --keep run left, and the whole UTC days its blocks cover."""
    metas = [orjson.loads(meta.read_bytes()) for meta in (directory / "data").glob("*/meta.json")]
    if not metas:
        raise SystemExit(f"no TSDB blocks under {directory / 'data'}")
    start = min(m["minTime"] for m in metas) // 1000
    end = max(m["maxTime"] for m in metas) // 1000
    days = [datetime.fromtimestamp(t, UTC).date() for t in range(start, end, DAY_S)]
    running = start_prometheus(directory, None, warning_probe=False, extra_args=NO_COMPACTION)
    samples = sum(m["stats"]["numSamples"] for m in metas)
    series = max(m["stats"]["numSeries"] for m in metas)
    return Loaded(running, samples, series, 0, 0.0, 0.0), days


def load_prometheus(opts: Options, workdir: Path, grid: Grid, now: float) -> Loaded:
    prometheus_harness.BACKFILL_TIMEOUT_S = max(prometheus_harness.BACKFILL_TIMEOUT_S, BACKFILL_TIMEOUT_S)
    started = time.perf_counter()
    paths, samples = write_dataset(opts, grid, workdir, now)
    written = time.perf_counter()
    file_bytes = sum(path.stat().st_size for path in paths)
    prometheus_dir = workdir / "prometheus"
    backfill(paths, prometheus_dir / "data")
    filled = time.perf_counter()
    if not opts.keep:
        for path in paths:
            path.unlink()
    running = start_prometheus(prometheus_dir, None, warning_probe=False, extra_args=NO_COMPACTION)
    series = opts.services * (2 + len(ENVOY_BUCKETS_MS) + 3)
    return Loaded(running, samples, series, file_bytes, written - started, filled - written)


# --- rolling up: Panorama, Prometheus alone, the naive way ---------------------------------


def rollup_settings(prometheus_url: str, database: Path) -> Settings:
    return settings_for(
        f"sqlite+aiosqlite:///{database}",
        prometheus={"url": prometheus_url, "timeout_s": 300},
        timezone="UTC",
    )


def seconds(moment: datetime) -> str:
    return f"{to_epoch_ms(moment) / 1000:.3f}"


def query_form(query: PlannedQuery, window: DayWindow, rollups: RollupSettings) -> tuple[str, dict[str, str]]:
    """The endpoint and form Panorama's client sends for ``query`` (see compute_day)."""
    form = {"query": query.promql, "timeout": f"{rollups.query_timeout_s:.3f}"}
    if query.ranged:
        step = gauge_step(query.definition, rollups)
        form.update(
            start=seconds(window.start + step), end=seconds(window.end), step=f"{step.total_seconds():.3f}"
        )
        return "api/v1/query_range", form
    form["time"] = seconds(window.end)
    return "api/v1/query", form


async def bounded(limit: int, calls: Sequence[Callable[[], Awaitable[object]]]) -> None:
    """Runs ``calls`` with at most ``limit`` at once, as compute_day does."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with semaphore:
            await call()

    async with asyncio.TaskGroup() as group:
        for call in calls:
            group.create_task(one(call))


async def prometheus_alone(
    http: httpx.AsyncClient, queries: Sequence[PlannedQuery], window: DayWindow, rollups: RollupSettings
) -> None:
    async def post(query: PlannedQuery) -> None:
        path, form = query_form(query, window, rollups)
        response = await http.post(path, data=form)  # reads the whole body
        response.raise_for_status()

    await bounded(rollups.query_concurrency, [partial(post, q) for q in queries])


SERVICE_KIND = "service"


def naive_queries(
    catalog: Catalog, window: DayWindow, rollups: RollupSettings, services: Sequence[str]
) -> list[PlannedQuery]:
    """Each service family once per service: the same queries, selecting one service."""
    families = catalog.families(SERVICE_KIND)
    return [
        query
        for name in services
        for d in families
        for query in planned(d, window, rollups, str(matcher(SERVICE_LABEL, "=", name)))
    ]


def service_families(catalog: Catalog) -> Catalog:
    """The catalogue cut to the service families: Panorama's batched queries for exactly the
    families the naive rollup sends per service (like is compared with like; the whole
    catalogue also holds platform, namespace and edge families naive never asks for)."""
    return Catalog(
        entities={k: v for k, v in catalog.entities.items() if k == SERVICE_KIND},
        definitions=catalog.families(SERVICE_KIND),
        figures={k: v for k, v in catalog.figures.items() if k == SERVICE_KIND},
    )


async def naive(
    client: PrometheusClient, queries: Sequence[PlannedQuery], window: DayWindow, rollups: RollupSettings
) -> None:
    """What a per-service rollup would send, through Panorama's own client (answers parsed)."""

    async def send(query: PlannedQuery) -> None:
        if query.ranged:
            step = gauge_step(query.definition, rollups)
            await client.query_range_values(
                query.promql, start=window.start + step, end=window.end, step=step
            )
        else:
            await client.query(query.promql, at=window.end)

    await bounded(rollups.query_concurrency, [partial(send, q) for q in queries])


async def timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


NOISY = 0.25
"""A pair whose two Prometheus-alone times differ by more than this share of their mean is measured
again: the machine changed while it ran. It is set aside and printed, never dropped silently."""
REMEASURE = 2
"""How many times a noisy pair is measured again; the last attempt is kept, noisy or not."""


@dataclass(frozen=True)
class Pair:
    """Panorama's time for a day between Prometheus alone on the same queries before and after it."""

    panorama: float
    before: float
    after: float

    @property
    def baseline(self) -> float:
        return (self.before + self.after) / 2

    @property
    def ratio(self) -> float:
        return self.panorama / self.baseline

    @property
    def noisy(self) -> bool:
        return abs(self.before - self.after) > NOISY * self.baseline

    def describe(self) -> str:
        return f"{self.panorama:.2f} s between {self.before:.2f} and {self.after:.2f} s: {self.ratio:.2f}"


@dataclass
class DayTimes:
    day: date
    run_day: list[Pair] = field(default_factory=list)
    compute_day: list[Pair] = field(default_factory=list)
    prometheus: list[float] = field(default_factory=list)
    alone: list[list[float]] = field(default_factory=list)
    """Each round: Prometheus alone's times for the day, in the order they were measured."""
    set_aside: list[tuple[str, int, Pair]] = field(default_factory=list)
    """(what, round, pair): the noisy pairs measured again."""
    run_parts: list[tuple[float, float]] = field(default_factory=list)
    """Every run_day: (seconds in all, seconds computing): the rest is claiming and storing."""
    render: list[float] = field(default_factory=list)
    """Each round: writing the report rows of the day's month after its run_days (not in run_day)."""
    plan: float = 0.0
    naive: list[float] = field(default_factory=list)
    naive_queries: int = 0
    service_compute: list[float] = field(default_factory=list)  # the service families alone (what naive does)
    entities: int = 0
    values: int = 0


@dataclass
class Store:
    path: Path
    rows: int
    figures: int
    numbers: int
    bytes: int
    empty: int


@dataclass
class RollupBench:
    opts: Options
    prometheus_url: str
    workdir: Path
    days: list[date]
    services: list[str]

    def settings(self, database: Path) -> Settings:
        return rollup_settings(self.prometheus_url, database)

    async def fresh_database(self, database: Path) -> AsyncEngine:
        engine = db.create_engine(self.settings(database).database)
        await migrations.upgrade(engine)
        return engine


async def measure_round(
    bench: RollupBench,
    round_index: int,
    client: PrometheusClient,
    http: httpx.AsyncClient,
    times: list[DayTimes],
) -> Path:
    """Each day: Prometheus alone, then run_day and compute_day (their order alternating by day and
    round), each followed by Prometheus alone again; into a fresh database."""
    database = bench.workdir / f"rollup-{round_index}.db"
    settings = bench.settings(database)
    engine = await bench.fresh_database(database)
    sessions = db.create_session_factory(engine)
    try:
        for index, slot in enumerate(times):
            alone, panorama = await day_steps(settings, sessions, client, http, slot)
            if (round_index + index) % 2:
                panorama.reverse()
            before = await timed(alone())
            slot.prometheus.append(before)
            first = len(slot.prometheus) - 1
            for what, sink, call in panorama:
                before = await measure_pair(round_index, slot, what, sink, call, alone, before)
            slot.alone.append(slot.prometheus[first:])
            # what the callers of run_day do after their days (service.run_days), between pairs
            slot.render.append(await timed(service.render_stale(sessions, settings, days=[slot.day])))
    finally:
        await engine.dispose()
    return database


Call = Callable[[], Awaitable[object]]


async def measure_pair(
    round_index: int, slot: DayTimes, what: str, sink: list[Pair], call: Call, alone: Call, before: float
) -> float:
    """Panorama's call then Prometheus alone, between which and ``before`` it is judged; a noisy pair
    is set aside and measured again (at most ``REMEASURE`` times). Returns the last time alone."""
    for attempt in range(REMEASURE + 1):
        panorama = await timed(call())
        after = await timed(alone())
        slot.prometheus.append(after)
        pair = Pair(panorama, before, after)
        before = after
        if not pair.noisy or attempt == REMEASURE:
            sink.append(pair)
            break
        slot.set_aside.append((what, round_index, pair))
    return before


async def day_steps(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    client: PrometheusClient,
    http: httpx.AsyncClient,
    slot: DayTimes,
) -> tuple[Call, list[tuple[str, list[Pair], Call]]]:
    """What is timed for one day: Prometheus alone, and Panorama's run_day and compute_day."""
    catalog, rollups = service.catalog_of(settings), settings.rollups
    window = day_window(slot.day, settings.tzinfo)
    queries = await plan(client, catalog, rollups, window)
    return (
        lambda: prometheus_alone(http, queries, window, rollups),
        [
            ("run_day", slot.run_day, lambda: run_and_check(sessions, client, settings, slot.day, slot)),
            ("compute_day", slot.compute_day, lambda: compute_day(client, catalog, rollups, window)),
        ],
    )


async def run_and_check(
    sessions: async_sessionmaker[AsyncSession],
    client: PrometheusClient,
    settings: Settings,
    day: date,
    slot: DayTimes,
) -> None:
    started = time.perf_counter()
    outcome = await service.run_day(sessions, client, settings, day, trigger="bench")
    if outcome.status != "ok":
        raise RuntimeError(f"run_day({day}) ended {outcome.status}: {outcome.error}")
    slot.run_parts.append((time.perf_counter() - started, outcome.duration_ms / 1000))
    slot.entities, slot.values = outcome.entities, outcome.values


async def measure_naive(bench: RollupBench, client: PrometheusClient, times: list[DayTimes]) -> int:
    """Per day: plan() alone, and the naive per-service queries for a random sample of services,
    twice, each between two of Panorama's batched queries for the same families."""
    settings = bench.settings(bench.workdir / "unused.db")
    catalog, rollups = service.catalog_of(settings), settings.rollups
    sample = random.Random(bench.opts.seed).sample(
        bench.services, min(bench.opts.naive_sample, len(bench.services))
    )
    services_only = service_families(catalog)
    for day, slot in zip(bench.days, times, strict=True):
        window = day_window(day, settings.tzinfo)
        slot.plan = await timed(plan(client, catalog, rollups, window))
        queries = naive_queries(catalog, window, rollups, sample)
        slot.service_compute.append(await timed(compute_day(client, services_only, rollups, window)))
        for _ in range(2):
            slot.naive.append(await timed(naive(client, queries, window, rollups)))
            slot.service_compute.append(await timed(compute_day(client, services_only, rollups, window)))
        slot.naive_queries = len(queries)
    return len(sample)


def measure_store(database: Path, catalog: Catalog, empty: int) -> Store:
    """Size of the SQLite file (WAL checkpointed into it), its entity days, the family values they
    hold (what was one row each before entity days), reported figures and numbers."""
    size = checkpointed_size(database)
    with closing(sqlite3.connect(database)) as connection:
        families = dict(connection.execute("SELECT id, json_array_length(spec) FROM rollup_layouts"))
        kinds = dict(connection.execute("SELECT id, kind FROM rollup_entities"))
        rows = numbers = 0
        days_of_kind: Counter[str] = Counter()
        for entity_id, mask, data in connection.execute(
            "SELECT entity_id, day_mask, data FROM rollup_day_packs"
        ):
            for layout, vector in unpack_month(mask, data).values():
                rows += families[layout]
                numbers += len(vector) // 8
            days_of_kind[kinds[entity_id]] += mask.bit_count()
        entity_days = list(days_of_kind.items())
    figures = sum(count * len(catalog.figure_names(kind)) for kind, count in entity_days)
    return Store(database, rows, figures, numbers, size, empty)


def checkpointed_size(database: Path) -> int:
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database.stat().st_size + wal_size(database)


async def empty_size(bench: RollupBench) -> int:
    """The size of a database with the schema and nothing stored."""
    database = bench.workdir / "empty.db"
    engine = await bench.fresh_database(database)
    await engine.dispose()
    return checkpointed_size(database)


def wal_size(database: Path) -> int:
    wal = database.with_name(database.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def measure_rollups(bench: RollupBench) -> tuple[list[DayTimes], Store, int]:
    times = [DayTimes(day) for day in bench.days]
    settings = bench.settings(bench.workdir / "unused.db")
    client = PrometheusClient(settings.prometheus)
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=20)
    http = httpx.AsyncClient(base_url=bench.prometheus_url + "/", timeout=300, limits=limits)
    try:
        await warm_up(bench, client, http)
        database = bench.workdir / "rollup-0.db"
        for round_index in range(bench.opts.rounds):
            database = await measure_round(bench, round_index, client, http, times)
        sample = await measure_naive(bench, client, times)
        empty = await empty_size(bench)
    finally:
        await http.aclose()
        await client.aclose()
    return times, measure_store(database, service.catalog_of(settings), empty), sample


async def warm_up(bench: RollupBench, client: PrometheusClient, http: httpx.AsyncClient) -> None:
    """Every day's queries once (Prometheus's pages in memory), and one compute_day (imports, pools)."""
    settings = bench.settings(bench.workdir / "unused.db")
    catalog, rollups = service.catalog_of(settings), settings.rollups
    for day in bench.days:
        window = day_window(day, settings.tzinfo)
        await prometheus_alone(http, await plan(client, catalog, rollups, window), window, rollups)
    await compute_day(client, catalog, rollups, day_window(bench.days[0], settings.tzinfo))


# --- the three-year report store ------------------------------------------------------------


@dataclass
class ReportTimes:
    rows: int
    bytes: int
    fill_s: float
    http_ms: list[float]
    direct_ms: list[float]
    periods: int


def measure_report(opts: Options, workdir: Path) -> ReportTimes:
    """Fills the report store (in this thread: Ctrl-C stops it at once), then times the report."""
    database = workdir / "report.db"
    settings = settings_for(f"sqlite+aiosqlite:///{database}", timezone="UTC")
    stored = {d.name for d in service.catalog_of(settings).families("service")}
    if stored != set(FAMILIES):
        raise RuntimeError(f"the built-in service families are now {sorted(stored)}: update rollup_store.py")
    asyncio.run(migrate(settings))
    last = datetime.now(UTC).date() - timedelta(days=1)
    days = [last - timedelta(days=k) for k in reversed(range(opts.report_days))]
    names = service_names(opts.report_services, NAMESPACE)
    started = time.perf_counter()
    rows = fill_sqlite(
        database,
        names,
        days,
        extrapolation=INCREASE_EXTRAPOLATION,
        cache_mib=REPORT_CACHE_MIB,
        analyze=False,
        settings=settings,
    )
    fill_s = time.perf_counter() - started
    size = checkpointed_size(database)
    measuring = report_latencies(settings, names, days[0], days[-1], opts.repeat)
    http_ms, direct_ms, periods = asyncio.run(measuring)
    return ReportTimes(rows, size, fill_s, http_ms, direct_ms, periods)


async def migrate(settings: Settings) -> None:
    engine = db.create_engine(settings.database)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


async def report_latencies(
    settings: Settings, targets: Sequence[str], first: date, last: date, repeat: int
) -> tuple[list[float], list[float], int]:
    """``daily`` over ``[first, last]``: through HTTP over ASGI, and through service.series_rows.

    Each call asks for another service (``targets`` in turn): nothing computed before answers
    it (a repeated request is answered from the kept series: bench/grafana.py times both)."""
    async with running_app(settings, migrate=False) as (app, client):
        params = {"from": first.isoformat(), "to": last.isoformat()}
        headers = bearer(VIEWER_TOKEN)
        over_http_turns = itertools.cycle(targets[: len(targets) // 2])
        direct_turns = itertools.cycle(targets[len(targets) // 2 :])

        async def over_http() -> httpx.Response:
            path = f"/api/v1/reports/services/{next(over_http_turns)}/daily"
            response = await client.get(path, params=params, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
            return response  # the body is read; the client's JSON decoding is not timed

        sessions: async_sessionmaker[AsyncSession] = app.state.context.sessions

        async def direct() -> int:
            async with sessions() as session:
                found = await service.series_rows(
                    session, settings, "service", next(direct_turns), first, last, Granularity.DAY
                )
            return len(found)

        periods = len((await over_http()).json()["days"])
        http_ms, direct_ms = await latencies([over_http, direct], repeat)
        return http_ms, direct_ms, periods


async def latencies(calls: Sequence[Callable[[], Awaitable[object]]], repeat: int) -> list[list[float]]:
    """Milliseconds of each call, ``repeat`` times after a warm-up; the calls alternate, so that
    whatever else the machine does weighs on them alike."""
    for _ in range(WARMUP_CALLS):
        for call in calls:
            await call()
    found: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for call, sink in zip(calls, found, strict=True):
            started = time.perf_counter()
            await call()
            sink.append((time.perf_counter() - started) * 1000)
    return found


# --- output -------------------------------------------------------------------------------

Line = tuple[str, str, str, str]
"""(figure, value, goal, verdict)"""


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def mean_of_medians(times: Sequence[DayTimes], pick: Callable[[DayTimes], Sequence[float]]) -> float:
    return statistics.fmean(statistics.median(pick(t)) for t in times)


def panorama_times(pairs: Sequence[Pair]) -> list[float]:
    return [pair.panorama for pair in pairs]


def paired_ratio(times: Sequence[DayTimes], pick: Callable[[DayTimes], list[Pair]]) -> float:
    """The median, over every day and round, of that time over Prometheus's measured around it."""
    return statistics.median(pair.ratio for t in times for pair in pick(t))


def worst_ratio(times: Sequence[DayTimes], pick: Callable[[DayTimes], list[Pair]]) -> float:
    return max(pair.ratio for t in times for pair in pick(t))


def alone_pairs(times: Sequence[DayTimes]) -> list[Pair]:
    """Prometheus alone judged as Panorama is: each of its inner runs between the two around it
    (what the ratios read for a Panorama exactly as fast as Prometheus: the noise of the judging)."""
    return [
        Pair(run[k + 1], run[k], run[k + 2]) for t in times for run in t.alone for k in range(len(run) - 2)
    ]


def naive_ratio(slot: DayTimes) -> float:
    """The naive time (of the sample) over the mean of Panorama's two batched times around it."""
    batched = slot.service_compute
    return statistics.fmean(naive / ((batched[k] + batched[k + 1]) / 2) for k, naive in enumerate(slot.naive))


def line(
    figure: str,
    value: str,
    goal: float | None = None,
    measured: float = 0.0,
    unit: str = "",
    *,
    at_least: bool = False,
) -> Line:
    if goal is None:
        return (figure, value, "", "")
    if at_least:
        return (figure, value, f"≥ {goal:g}{unit}", "PASS" if measured >= goal else "MISS")
    return (figure, value, f"≤ {goal:g}{unit}", "PASS" if measured <= goal else "MISS")


def print_table(rows: Sequence[Line]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def print_context(opts: Options, loaded: Loaded, bench: RollupBench) -> None:
    print(
        f"dataset: {opts.services} services × {len(bench.days)} UTC day(s) "
        f"({bench.days[0]} … {bench.days[-1]}), "
        f"scrape interval {opts.interval}s; {loaded.series:,} series, {loaded.samples:,} samples, "
        f"{loaded.file_bytes / 2**30:.2f} GiB of OpenMetrics"
    )
    print(
        f"generation {loaded.write_s:.1f}s ({os.cpu_count()} worker processes), "
        f"promtool backfill {loaded.backfill_s:.1f}s; Prometheus at {loaded.prometheus.url}",
        flush=True,
    )


def print_days(times: Sequence[DayTimes], rounds: int) -> None:
    print(
        f"\nper day: median of {rounds} round(s), each into a fresh SQLite database; Prometheus alone "
        "before and after each of run_day and compute_day (their order alternating), each judged "
        "against the mean of the two around it; ratios are medians of the per-round ratios"
    )
    rows = [
        (
            "day",
            "run_day s",
            "compute_day s",
            "Prometheus s",
            "run_day/Prom",
            "worst",
            "compute/Prom",
            "values",
        )
    ]
    for t in times:
        run, comp, prom = (
            statistics.median(x)
            for x in (panorama_times(t.run_day), panorama_times(t.compute_day), t.prometheus)
        )
        cells = (
            f"{run:.3f}",
            f"{comp:.3f}",
            f"{prom:.3f}",
            f"{paired_ratio([t], lambda d: d.run_day):.2f}",
            f"{worst_ratio([t], lambda d: d.run_day):.2f}",
            f"{paired_ratio([t], lambda d: d.compute_day):.2f}",
        )
        rows.append((str(t.day), *cells, f"{t.values:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    set_aside = [(t.day, entry) for t in times for entry in t.set_aside]
    print(
        f"pairs measured again (Prometheus alone moved by more than {NOISY:.0%} around them): "
        f"{len(set_aside) or 'none'}"
    )
    for day, (what, round_index, pair) in set_aside:
        print(f"  {day} round {round_index + 1} {what}: {pair.describe()}")
    for t in times:
        pairs = ", ".join(pair.describe() for pair in t.run_day)
        print(f"  {t.day} run_day pairs: {pairs}")
    same = alone_pairs(times)
    if same:
        ratios = [pair.ratio for pair in same]
        print(
            f"Prometheus alone judged the same way, between its runs around it (a Panorama exactly as "
            f"fast would read this): median {statistics.median(ratios):.2f}, worst {max(ratios):.2f}, "
            f"best {min(ratios):.2f} ({len(ratios)} runs)"
        )
    beyond = [total - computing for t in times for total, computing in t.run_parts]
    print(
        f"run_day beyond computing (claiming, storing, finishing): median {statistics.median(beyond):.3f} s, "
        f"max {max(beyond):.3f} s"
    )
    written = [seconds for t in times for seconds in t.render]
    print(
        "then the month's report rows, written after the day (service.run_days; not in run_day): "
        f"median {statistics.median(written):.3f} s, max {max(written):.3f} s"
    )


def rollup_lines(opts: Options, times: Sequence[DayTimes], sample: int) -> list[Line]:
    run = mean_of_medians(times, lambda t: panorama_times(t.run_day))
    comp = mean_of_medians(times, lambda t: panorama_times(t.compute_day))
    prom = mean_of_medians(times, lambda t: t.prometheus)
    run_ratio = paired_ratio(times, lambda t: t.run_day)
    comp_ratio = paired_ratio(times, lambda t: t.compute_day)
    worst = worst_ratio(times, lambda t: t.run_day)
    worst_compute = worst_ratio(times, lambda t: t.compute_day)
    scale = opts.services / sample
    naive_s = mean_of_medians(times, lambda t: t.naive) * scale
    queries = times[0].naive_queries * opts.services // sample
    service_comp = mean_of_medians(times, lambda t: t.service_compute)
    naive_x = statistics.fmean(naive_ratio(t) for t in times) * scale
    return [
        line("1. run_day, seconds per rolled-up day", f"{run:.3f} s"),
        line("   compute_day alone, seconds per day", f"{comp:.3f} s"),
        line("   of which plan() (label values lookup)", f"{statistics.fmean(t.plan for t in times):.3f} s"),
        line("2. Prometheus alone, same queries (httpx)", f"{prom:.3f} s"),
        line("   run_day ÷ Prometheus (median of days × rounds)", f"{run_ratio:.2f}", RATIO_GOAL, run_ratio),
        line("   run_day ÷ Prometheus, worst day and round", f"{worst:.2f}", RATIO_GOAL, worst),
        line("   compute_day ÷ Prometheus", f"{comp_ratio:.2f}", RATIO_GOAL, comp_ratio),
        line(
            "   compute_day ÷ Prometheus, worst day and round",
            f"{worst_compute:.2f}",
            RATIO_GOAL,
            worst_compute,
        ),
        line(
            f"3. naive, 1 query/service/family ({sample} services timed, × {opts.services / sample:g})",
            f"{naive_s:.1f} s/day, {queries:,} queries (extrapolated)",
        ),
        line(
            "   Panorama on the same service families (compute_day, services only)",
            f"{service_comp:.2f} s/day",
        ),
        line(
            "   naive ÷ Panorama, same families (each naive run against the two batched around it)",
            f"{naive_x:.1f}",
            NAIVE_GOAL,
            naive_x,
            at_least=True,
        ),
        line("   naive ÷ compute_day of the whole catalogue (for the record)", f"{naive_s / comp:.1f}"),
    ]


def report_store_lines(opts: Options, report: ReportTimes) -> list[Line]:
    per_value = report.bytes / (report.rows * FAMILIES_PER_DAY)
    return [
        line(
            f"4. report store, {opts.report_services} services × {opts.report_days} days: B per family value",
            f"{per_value:.0f} B",
            VALUE_BYTES_GOAL,
            per_value,
            " B",
        ),
        line(
            "   the whole report store (SQLite file, month sums included)",
            f"{report.bytes / 2**30:.3f} GiB",
            STORE_GIB_GOAL * report.rows / FULL_STORE_ROWS,
            report.bytes / 2**30,
            " GiB",
        ),
        line(
            "   bytes per entity day (one row: every family of a service's day)",
            f"{report.bytes / report.rows:.0f} B",
        ),
    ]


def day_store_lines(days: int, store: Store) -> list[Line]:
    return [
        line("   rolled-up days: SQLite bytes per family value", f"{store.bytes / store.rows:.0f} B"),
        line("   bytes per reported figure", f"{store.bytes / store.figures:.1f} B"),
        line("   bytes per stored number", f"{store.bytes / store.numbers:.1f} B"),
        line(
            f"   ({days} day(s): {store.rows:,} rows, {store.figures:,} figures, "
            f"{store.numbers:,} numbers; the empty schema {store.empty / 2**20:.2f} MiB)",
            f"{store.bytes / 2**20:.1f} MiB",
        ),
    ]


def report_lines(report: ReportTimes) -> list[Line]:
    http50, http95 = statistics.median(report.http_ms), p95(report.http_ms)
    direct50, direct95 = statistics.median(report.direct_ms), p95(report.direct_ms)
    return [
        line(
            f"5. daily report of one service (another each call), {report.periods} days, HTTP over ASGI: p50",
            f"{http50:.1f} ms",
        ),
        line("   HTTP over ASGI: p95", f"{http95:.1f} ms", REPORT_P95_GOAL_MS, http95, " ms"),
        line("   service.series_rows directly: p50 / p95", f"{direct50:.1f} / {direct95:.1f} ms"),
        line("   HTTP overhead (difference of the p50s)", f"{http50 - direct50:.1f} ms"),
    ]


# --- main ---------------------------------------------------------------------------------


def make_workdir(opts: Options) -> Path:
    parent = opts.workdir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="panorama-bench-rollup-", dir=parent))


def run(opts: Options, workdir: Path) -> None:
    now = time.time()
    grid = session_timeline(now, days=opts.days, interval=opts.interval)
    print(f"load average at the start: {load_average()}", flush=True)
    if opts.prometheus_dir is not None:
        loaded, days = kept_prometheus(opts.prometheus_dir)
    else:
        loaded = load_prometheus(opts, workdir, grid, now)
        days = [datetime.fromtimestamp(grid.start + k * DAY_S, UTC).date() for k in range(opts.days)]
    try:
        bench = RollupBench(
            opts, loaded.prometheus.url, workdir, days, service_names(opts.services, NAMESPACE)
        )
        print_context(opts, loaded, bench)
        with heap.collector_for_serving():  # as the app rolls up its days (app/heap.py)
            times, store, sample = asyncio.run(measure_rollups(bench))
    finally:
        loaded.prometheus.stop()
    print_days(times, opts.rounds)
    header = ("figure", "value", "goal", "verdict")
    if opts.rollups_only:
        print()
        print_table([header, *rollup_lines(opts, times, sample), *day_store_lines(len(days), store)])
    else:
        report = measure_report(opts, workdir)  # Prometheus stopped: the machine is quieter
        print(
            f"\nreport store filled in {report.fill_s:.1f}s ({report.rows:,} rows); "
            f"latencies over {opts.repeat} calls"
        )
        print()
        print_table(
            [
                header,
                *rollup_lines(opts, times, sample),
                *report_store_lines(opts, report),
                *day_store_lines(len(days), store),
                *report_lines(report),
            ]
        )
    print(f"\nload average at the end: {load_average()} (other work on the machine widens the spread)")
    print("Goals are informational; the exit status is 0 either way.")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM is taken as Ctrl-C (which asyncio.run turns into a clean cancellation)."""
    signal.raise_signal(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored (`&`)
    signal.signal(signal.SIGTERM, interrupt)  # `kill` cleans up as Ctrl-C does
    workdir = make_workdir(opts)
    try:
        run(opts, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; every process this bench started is stopped", file=sys.stderr)
        return 130
    finally:
        if opts.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Years of stored rollups for the benchmarks: N services × D days, as nightly rollups store them.

Each service-day holds the six families of the built-in service definitions
(``requests``, ``errors``, ``latency_sum_ms``, ``latency_count``, the ``latency``
histogram with Envoy's buckets, the ``qps`` gauge), with values drawn from a
per-service profile so that percentiles, error rates and peaks differ between
services and days. The rows go straight into a migrated database: SQLite with
``sqlite3.executemany`` in one transaction, PostgreSQL with asyncpg's binary COPY;
both take well under a minute for 1,000 services × 1,096 days.

A service's profile comes from the same draws (``traits()``) as its Istio traffic in
bench/rollup.py's Prometheus dataset. Used by bench/grafana.py and bench/rollup.py.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from app.rollups.repository import encode_buckets

DAY_S = 86_400
GAUGE_SAMPLES = DAY_S // 300
ENVOY_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
VARIANTS = 8
"""Distinct latency histograms per service (the days take them in turn)."""
LATENCY_SIGMA = 0.7
COLUMNS = ("entity_kind", "entity", "family", "day", "total", "samples", "peak", "low", "buckets")
FAMILIES = ("requests", "errors", "latency_sum_ms", "latency_count", "latency", "qps")
"""The built-in service families, as ``day_rows()`` stores them."""
FAMILIES_PER_DAY = len(FAMILIES)
INCREASE_EXTRAPOLATION = 86_400 / 86_399.999
"""What ``increase()`` over a day multiplies counts by (it stretches to the window's edges), so
that counts stored by ``run_day`` are not whole; ``extrapolation=`` of ``profile()`` and the fills."""

Day = TypeVar("Day", date, str)
"""A day as asyncpg's COPY takes it (a date) or as SQLite stores it (ISO text)."""
Row = tuple[str, str, str, Day, float | None, int | None, float | None, float | None, str | None]


def workload(index: int) -> str:
    return f"svc-{index:04d}"


def service_names(count: int, namespace: str = "bench") -> list[str]:
    """Names as Istio's ``destination_service`` label gives them."""
    return [f"{workload(index)}.{namespace}.svc.cluster.local" for index in range(count)]


@dataclass(frozen=True)
class Traits:
    """A service's traffic: mean rate, error ratio and median latency."""

    requests_per_s: float
    error_ratio: float
    median_ms: float


def traits(index: int) -> Traits:
    """The draws of service ``index``, the same for the report store and the Istio dataset."""
    rng = random.Random(f"bench-service:{index}")
    return Traits(
        requests_per_s=min(2.0, rng.lognormvariate(math.log(0.05), 1.0)),
        error_ratio=rng.uniform(0.001, 0.03),
        median_ms=rng.lognormvariate(math.log(40), 0.8),
    )


def mean_latency_ms(median_ms: float) -> float:
    """The mean of a lognormal latency of that median and ``LATENCY_SIGMA``."""
    return math.exp(math.log(median_ms) + LATENCY_SIGMA**2 / 2)


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@dataclass(frozen=True)
class Profile:
    """One service of the store: its name, error ratio and a few days' latency histograms."""

    name: str
    error_ratio: float
    variants: list[tuple[float, float, str]]
    """(successful requests, latency sum in ms, buckets as the repository stores them)."""


def profile(index: int, name: str, extrapolation: float = 1.0) -> Profile:
    """Service ``index`` under ``name``; its daily counts multiplied by ``extrapolation``."""
    drawn = traits(index)
    mu, mean_ms = math.log(drawn.median_ms), mean_latency_ms(drawn.median_ms)
    variants = []
    for k in range(VARIANTS):
        count = drawn.requests_per_s * DAY_S * (0.7 + 0.6 * k / (VARIANTS - 1)) * extrapolation
        buckets = {float(b): count * normal_cdf((math.log(b) - mu) / LATENCY_SIGMA) for b in ENVOY_BUCKETS_MS}
        buckets[math.inf] = count
        variants.append((count, count * mean_ms, encode_buckets(buckets)))
    return Profile(name, drawn.error_ratio, variants)


def day_rows(day: Day, day_index: int, index: int, p: Profile) -> list[Row[Day]]:
    """The six service families of one service-day, as replace_day would store them."""
    ok, latency_sum, buckets = p.variants[(day_index * 5 + index) % VARIANTS]
    errors = ok * p.error_ratio * (0.5 + ((day_index * 31 + index * 17) % 100) / 100)
    requests = ok + errors
    qps = requests / DAY_S
    name = p.name
    return [
        ("service", name, "requests", day, requests, None, None, None, None),
        ("service", name, "errors", day, errors, None, None, None, None),
        ("service", name, "latency_sum_ms", day, latency_sum, None, None, None, None),
        ("service", name, "latency_count", day, ok, None, None, None, None),
        ("service", name, "latency", day, None, None, None, None, buckets),
        ("service", name, "qps", day, qps * GAUGE_SAMPLES, GAUGE_SAMPLES, qps * 1.8, qps * 0.3, None),
    ]


def rows(services: Sequence[str], days: Sequence[Day], extrapolation: float = 1.0) -> Iterator[Row[Day]]:
    """Day after day, as nightly rollups would have stored them."""
    profiles = [profile(i, name, extrapolation) for i, name in enumerate(services)]
    for day_index, day in enumerate(days):
        for index, p in enumerate(profiles):
            yield from day_rows(day, day_index, index, p)


def fill_sqlite(
    database: Path,
    services: Sequence[str],
    days: Sequence[date],
    *,
    extrapolation: float = 1.0,
    cache_mib: int = 512,
    analyze: bool = True,
) -> int:
    """Into a migrated SQLite file: one transaction, executemany; returns the rows stored.

    With ``analyze``, ANALYZE after, and the WAL checkpointed into the file; without, the
    database is left as the insert left it. ``cache_mib`` is SQLite's page cache meanwhile.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO rollup_values (entity_kind, entity, family, day, total, samples, peak, low, buckets)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(services, [day.isoformat() for day in days], extrapolation),
        )
        connection.execute("COMMIT")
        if analyze:
            connection.execute("ANALYZE")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored: int = connection.execute("SELECT count(*) FROM rollup_values").fetchone()[0]
    finally:
        connection.close()
    return stored


async def fill_postgres(url: str, services: Sequence[str], days: Sequence[date]) -> int:
    """Into a migrated PostgreSQL database (SQLAlchemy URL): binary COPY, then ANALYZE."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        await connection.copy_records_to_table("rollup_values", records=rows(services, days), columns=COLUMNS)
        await connection.execute("ANALYZE rollup_values")
        stored: int = await connection.fetchval("SELECT count(*) FROM rollup_values")
    finally:
        await connection.close()
    return stored

"""Years of stored rollups for the benchmarks: N services × D days, as nightly rollups store them.

Each service-day holds the six families of the built-in service definitions
(``requests``, ``errors``, ``latency_sum_ms``, ``latency_count``, the ``latency``
histogram with Envoy's buckets, the ``qps`` gauge), with values drawn from a
per-service profile so that percentiles, error rates and peaks differ between
services and days. The rows go straight into a migrated database: SQLite with
``sqlite3.executemany`` in one transaction, PostgreSQL with asyncpg's binary COPY;
both take well under a minute for 1,000 services × 1,096 days.

Used by bench/grafana.py; bench/rollup.py fills the same shape for SQLite.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

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
FAMILIES_PER_DAY = 6

Row = tuple[str, str, str, date, float | None, int | None, float | None, float | None, str | None]


def service_names(count: int) -> list[str]:
    return [f"svc-{index:04d}.bench.svc.cluster.local" for index in range(count)]


@dataclass(frozen=True)
class Profile:
    name: str
    error_ratio: float
    variants: list[tuple[float, float, str]]
    """(successful requests, latency sum in ms, buckets as the repository stores them)."""


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def profile(index: int, name: str) -> Profile:
    rng = random.Random(f"bench-service:{index}")  # the draws of bench/rollup.py's service_edge()
    rate = min(2.0, rng.lognormvariate(math.log(0.05), 1.0))
    error_ratio = rng.uniform(0.001, 0.03)
    median_ms = rng.lognormvariate(math.log(40), 0.8)
    mu, mean_ms = math.log(median_ms), math.exp(math.log(median_ms) + LATENCY_SIGMA**2 / 2)
    variants = []
    for k in range(VARIANTS):
        count = rate * DAY_S * (0.7 + 0.6 * k / (VARIANTS - 1))
        buckets = {
            float(b): count * _normal_cdf((math.log(b) - mu) / LATENCY_SIGMA) for b in ENVOY_BUCKETS_MS
        }
        buckets[math.inf] = count
        variants.append((count, count * mean_ms, encode_buckets(buckets)))
    return Profile(name, error_ratio, variants)


def day_rows(day: date, day_index: int, index: int, p: Profile) -> list[Row]:
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


def rows(services: Sequence[str], days: Sequence[date]) -> Iterator[Row]:
    """Day after day, as nightly rollups would have stored them."""
    profiles = [profile(i, name) for i, name in enumerate(services)]
    for day_index, day in enumerate(days):
        for index, p in enumerate(profiles):
            yield from day_rows(day, day_index, index, p)


def fill_sqlite(database: Path, services: Sequence[str], days: Sequence[date]) -> int:
    """Into a migrated SQLite file: one transaction, executemany; returns the rows stored."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-524288")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO rollup_values (entity_kind, entity, family, day, total, samples, peak, low, buckets)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((*row[:3], row[3].isoformat(), *row[4:]) for row in rows(services, days)),
        )
        connection.execute("COMMIT")
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

"""Years of stored rollups for the benchmarks: N services × D days, as nightly rollups store them.

Each service-day is one vector holding the six families of the built-in service definitions
(``requests``, ``errors``, ``latency_sum_ms``, ``latency_count``, the ``latency``
histogram with Envoy's buckets, the ``qps`` gauge), with values drawn from a
per-service profile so that percentiles, error rates and peaks differ between
services and days; a service's days of one month are one ``rollup_day_packs`` row
(``layouts.pack_month``), as the store keeps them once their report rows are written
(``repository.render_months``). The rows go straight into a migrated database: SQLite with
``sqlite3.executemany`` in one transaction, PostgreSQL with asyncpg's binary COPY; both take
well under a minute for 1,000 services × 1,096 days. The vectors are laid out by
``layouts.encode_day`` itself (``profile()`` checks it), so the store is what rollups write.

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

import asyncpg
import numpy as np
import numpy.typing as npt
from sqlalchemy.engine import make_url

from app.config import Settings
from app.rollups import figure_months, frames, service
from app.rollups.compute import FamilyValue
from app.rollups.config import FamilyKind
from app.rollups.layouts import day_number, decode, encode_day, make_layout, pack_month
from app.rollups.repository import MonthWritten, Renderer

DAY_S = 86_400
GAUGE_SAMPLES = DAY_S // 300
ENVOY_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
VARIANTS = 8
"""Distinct latency histograms per service (the days take them in turn)."""
LATENCY_SIGMA = 0.7
COLUMNS = ("entity_id", "month", "day_mask", "data", "render_key", "rendered")
MONTH_COLUMNS = ("entity_id", "month", "layout_id", "day_mask", "data")
FIGURE_COLUMNS = ("entity_id", "figure", "month", "render_key", "data")
FAMILIES = ("requests", "errors", "latency_sum_ms", "latency_count", "latency", "qps")
"""The built-in service families, as ``day_rows()`` stores them."""
FAMILIES_PER_DAY = len(FAMILIES)
INCREASE_EXTRAPOLATION = 86_400 / 86_399.999
"""What ``increase()`` over a day multiplies counts by (it stretches to the window's edges), so
that counts stored by ``run_day`` are not whole; ``extrapolation=`` of ``profile()`` and the fills."""

Row = tuple[int, int, int, bytes]
"""(entity id, day number, layout id, numbers): one entity day."""
PackRow = tuple[int, int, int, bytes, int | None, bytes | None]
"""(entity id, month's day number, day mask, packed days, render key, daily report rows) as
``rollup_day_packs`` stores them."""


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
    """One service of the store: its id, error ratio, and a few days' stored vectors to vary."""

    entity_id: int
    error_ratio: float
    variants: list[npt.NDArray[np.float64]]
    """(the day's numbers as ``layouts.encode_day`` lays them out, errors and qps to be set)."""


LAYOUT = make_layout(
    [
        ("requests", FamilyKind.COUNTER, []),
        ("errors", FamilyKind.COUNTER, []),
        ("latency_sum_ms", FamilyKind.COUNTER, []),
        ("latency_count", FamilyKind.COUNTER, []),
        ("latency", FamilyKind.HISTOGRAM, [*map(float, ENVOY_BUCKETS_MS), math.inf]),
        ("qps", FamilyKind.GAUGE, []),
    ]
)
_AT = {slot.family: slot.offset for slot in LAYOUT.slots}


def profile(index: int, entity_id: int, extrapolation: float = 1.0) -> Profile:
    """Service ``index`` stored as ``entity_id``; its daily counts multiplied by ``extrapolation``."""
    drawn = traits(index)
    mu, mean_ms = math.log(drawn.median_ms), mean_latency_ms(drawn.median_ms)
    variants = []
    for k in range(VARIANTS):
        count = drawn.requests_per_s * DAY_S * (0.7 + 0.6 * k / (VARIANTS - 1)) * extrapolation
        buckets = {float(b): count * normal_cdf((math.log(b) - mu) / LATENCY_SIGMA) for b in ENVOY_BUCKETS_MS}
        buckets[math.inf] = count
        values = [
            FamilyValue("service", "-", "requests", total=0.0),
            FamilyValue("service", "-", "errors", total=0.0),
            FamilyValue("service", "-", "latency_sum_ms", total=count * mean_ms),
            FamilyValue("service", "-", "latency_count", total=count),
            FamilyValue("service", "-", "latency", buckets=buckets),
            FamilyValue("service", "-", "qps", total=0.0, samples=GAUGE_SAMPLES, peak=0.0, low=0.0),
        ]
        encoded = encode_day("service", "-", values)
        assert encoded.layout.spec == LAYOUT.spec
        variants.append(decode(LAYOUT, encoded.data).copy())
    return Profile(entity_id, drawn.error_ratio, variants)


def day_row(number: int, day_index: int, index: int, p: Profile) -> Row:
    """One service-day, as replace_day would store it: its six families in one vector."""
    numbers = p.variants[(day_index * 5 + index) % VARIANTS]
    ok = numbers[_AT["latency_count"]]
    errors = ok * p.error_ratio * (0.5 + ((day_index * 31 + index * 17) % 100) / 100)
    requests = ok + errors
    qps = requests / DAY_S
    numbers[_AT["requests"]] = requests
    numbers[_AT["errors"]] = errors
    gauge = _AT["qps"]
    numbers[gauge : gauge + 4] = (qps * GAUGE_SAMPLES, GAUGE_SAMPLES, qps * 1.8, qps * 0.3)
    return (p.entity_id, number, LAYOUT.id, numbers.tobytes())


MonthRow = tuple[int, int, int, int, bytes]
"""(entity id, month's day number, layout id, day mask, sums) as ``rollup_months`` stores them."""


FigureRow = tuple[int, str, int, int, bytes]
"""(entity id, figure, month's day number, render key, values) as ``rollup_figure_months`` stores them."""


def months(
    services: Sequence[str],
    days: Sequence[date],
    extrapolation: float = 1.0,
    render: Renderer | None = None,
) -> Iterator[tuple[list[PackRow], list[MonthRow], list[FigureRow]]]:
    """Month after month: the entity days as nightly rollups stored them (entity ids 1…N in name
    order), packed a row per entity with, given ``render`` (``service.renderer``), its daily
    report rows and its figure rows (``figure_months.py``), and the month sums they kept
    (computed by ``frames.reduce``, as rollups do)."""
    profiles = [profile(i, i + 1, extrapolation) for i in range(len(services))]
    by_month: dict[date, list[tuple[int, date]]] = {}
    for day_index, day in enumerate(days):
        by_month.setdefault(day.replace(day=1), []).append((day_index, day))
    for month, in_month in by_month.items():
        day_rows = [
            day_row(day_number(day), day_index, index, p)
            for index, p in enumerate(profiles)
            for day_index, day in in_month
        ]
        matrix = np.frombuffer(b"".join(row[3] for row in day_rows), dtype=np.float64).reshape(
            len(day_rows), -1
        )
        starts = np.arange(0, len(day_rows), len(in_month), dtype=np.int64)
        summed = frames.reduce(frames.Frame(LAYOUT, matrix), starts)
        mask = sum(1 << (day.day - 1) for _, day in in_month)
        sums = [
            (p.entity_id, day_number(month), LAYOUT.id, mask, summed.matrix[index].tobytes())
            for index, p in enumerate(profiles)
        ]
        n = len(in_month)
        entity_days = {
            p.entity_id: {
                day.day: (row[2], row[3])
                for (_, day), row in zip(in_month, day_rows[index * n : (index + 1) * n], strict=True)
            }
            for index, p in enumerate(profiles)
        }
        written: dict[int, MonthWritten] = {}
        if render is not None:
            written = render(
                day_number(month), {i: ("service", d) for i, d in entity_days.items()}, {LAYOUT.id: LAYOUT}
            )
        packs = []
        figures: list[FigureRow] = []
        for entity_id, d in entity_days.items():
            mine = written.get(entity_id)
            packs.append(
                (
                    entity_id,
                    day_number(month),
                    *pack_month(d),
                    None if mine is None else mine.key,
                    None if mine is None else mine.fragment,
                )
            )
            if mine is not None and mine.figures is not None:
                mask = sum(1 << (k - 1) for k in d)
                for name, values in mine.figures.items():
                    encoded = figure_months.encode(mine.layout_id, mask, values)
                    figures.append((entity_id, name, day_number(month), mine.key, encoded))
        yield packs, sums, figures


def entity_rows(services: Sequence[str]) -> list[tuple[int, str, str]]:
    return [(i + 1, "service", name) for i, name in enumerate(services)]


def fill_sqlite(
    database: Path,
    services: Sequence[str],
    days: Sequence[date],
    *,
    extrapolation: float = 1.0,
    cache_mib: int = 512,
    analyze: bool = True,
    settings: Settings | None = None,
) -> int:
    """Into a migrated SQLite file: one transaction, executemany; returns the rows stored.
    With ``settings``, each month row gets its daily report rows as rollups write them.

    With ``analyze``, ANALYZE after, and the WAL checkpointed into the file; without, the
    database is left as the insert left it. ``cache_mib`` is SQLite's page cache meanwhile.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO rollup_entities (id, kind, name) VALUES (?, ?, ?)", entity_rows(services)
        )
        connection.execute("INSERT INTO rollup_layouts (id, spec) VALUES (?, ?)", (LAYOUT.id, LAYOUT.spec))
        stored = 0
        for packs, sums, figures in months(services, days, extrapolation, _renderer(settings)):
            connection.executemany(
                "INSERT INTO rollup_day_packs (entity_id, month, day_mask, data, render_key, rendered)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                packs,
            )
            stored += sum(pack[2].bit_count() for pack in packs)
            connection.executemany(
                "INSERT INTO rollup_months (entity_id, month, layout_id, day_mask, data)"
                " VALUES (?, ?, ?, ?, ?)",
                sums,
            )
            connection.executemany(
                "INSERT INTO rollup_figure_months (entity_id, figure, month, render_key, data)"
                " VALUES (?, ?, ?, ?, ?)",
                figures,
            )
        connection.execute("COMMIT")
        if analyze:
            connection.execute("ANALYZE")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return stored


def _renderer(settings: Settings | None) -> Renderer | None:
    return None if settings is None else service.renderer(settings)


async def fill_postgres(
    url: str, services: Sequence[str], days: Sequence[date], *, settings: Settings | None = None
) -> int:
    """Into a migrated PostgreSQL database (SQLAlchemy URL): binary COPY, then ANALYZE; with
    ``settings``, each month row gets its daily report rows as rollups write them."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        await connection.copy_records_to_table(
            "rollup_entities", records=entity_rows(services), columns=("id", "kind", "name")
        )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('rollup_entities', 'id'), $1)", len(services)
        )
        await connection.execute(
            "INSERT INTO rollup_layouts (id, spec) VALUES ($1, $2)", LAYOUT.id, LAYOUT.spec
        )
        stored = 0
        for packs, sums, figures in months(services, days, render=_renderer(settings)):
            await connection.copy_records_to_table("rollup_day_packs", records=packs, columns=COLUMNS)
            stored += sum(pack[2].bit_count() for pack in packs)
            await connection.copy_records_to_table("rollup_months", records=sums, columns=MONTH_COLUMNS)
            await connection.copy_records_to_table(
                "rollup_figure_months", records=figures, columns=FIGURE_COLUMNS
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return stored

"""Computing one local day's figures from Prometheus.

One query per family covers every entity of the day (a family with more
entities than ``entities_per_query`` is split by its entity label, and so is a histogram family of
100 entities or more, into up to ``query_concurrency`` queries: below); queries run
with bounded concurrency, and the first failure cancels the rest: a day is
computed whole or not at all.

Why a gauge is read as samples only when its figures use the mean, and otherwise asked for its
extremes (measured on a day of 1,000 services, 2 cores, December 2026; ``bench/rollup.py`` times
the whole): a gauge's samples are one range query, for ``qps`` 288,000 points, 9 MB of JSON that
Panorama decodes (0.25-0.3 s of CPU, after everything else, as its query is the day's longest).
Its sum and count need every sample: aggregating on the server
(``sum/count/max/min_over_time((expr)[1d:5m])``) evaluates the inner expression once per
aggregation (no common subexpressions across ``or``), the four together 2.3 times the range query,
and ``sum_over_time``'s Kahan sum is not ``math.fsum`` bit for bit. The highest and the lowest
sample are another matter: ``max_over_time`` of the subquery over the day's steps (``[day-1ms:
step]``, whose steps are multiples of ``step`` since the epoch: the range query's own instants when
the day's midnights are, else the samples are read, :func:`extremes_of`) is the same number bit for
bit, costs Prometheus 40-60% of the range query and answers 0.1 MB. So a gauge whose figures use
no mean, as the built-in ``qps`` (its peak alone), is asked for each extreme it reports, and the
day of 1,000 services went from 1.48 s of Prometheus alone to 1.11 s, Panorama's from 2.29 s to
1.35 s (same TSDB, runs alternating). The price: a mean configured later has no values for the
days stored before it (README). Read as samples, the values come without ``(timestamp, value)``
tuples (``PrometheusClient.query_range_values``), the strings become floats in one C-level pass,
with the collector paused.

Why a day is first probed (:func:`probe_coverage`): the day is ``(start, end]``, so a sample at its
closing midnight belongs to it, and a gauge's last point reads it. A day before Prometheus's
oldest sample would then be stored from that one instant, and a day that Prometheus's retention
has half cut off would look whole. One instant query over the entity kinds' ``selector`` series
in the day's first minutes says whether the samples start with the day (then the day is whole);
only when they do not does a range query over the whole day say whether any sample lies strictly
inside it (else the day has no data) or the day is ``partial``. The probe must stay cheap beside
the day's queries (``bench/rollup.py`` compares Panorama with Prometheus alone on them): a range
query over every selector series for the whole day would read all of the day's samples once more.

Why the probe, the entity lookups and the queries overlap, and go longest first (measured on the
same day of 1,000 services, December 2026, against Prometheus alone on the same queries at the same
concurrency; ``bench/rollup.py`` times the whole): a day was three heavy queries (the ``qps`` range
query, 1.7 s of Prometheus and a 9 MB answer, before its peak was asked for instead; the service and
the platform bucket increases, 1.0-1.7 s each over 20,000 bucket series) and ten light ones
(0.03-0.15 s). Anything Panorama does before its first query or after Prometheus's last answer adds
to the day; what it does while Prometheus works on another query costs only CPU. So the probe and
the lookups (15-60 ms each) no longer wait for each other nor hold the queries back: the probe takes
the first of the ``query_concurrency`` slots, the queries the others as soon as the lookups answer,
and a day the probe finds empty drops its (then empty and cheap) answers — and its failed queries or
lookups: such a day stays ``no_data``, as when nothing ran before the probe had answered. The
queries go gauges first, histograms next, counters last (:data:`SCHEDULE_ORDER`): the largest answer
is decoded (0.2 s of CPU) while the bucket queries still run, instead of last, and the short counter
queries fill the slots at the end. Together these save tens of milliseconds a day, less than a
shared 2-core machine at load 6-9 resolves (six alternating runs of this and the code before:
README, "Performance").

Why a histogram family of many entities is split into ``query_concurrency`` queries by entity
(:func:`per_query`, of at least :data:`HISTOGRAM_PART_MIN` entities each; measured on the same day
of 1,000 services, quiet 2-core machine, December 2026): Prometheus evaluates one query on one core,
and the services' bucket increases (20,000 series, 2.4 MB answered) took it 0.58-0.64 s, the day's
longest query, while every other service family together took 0.4 s on the other core. In two parts
by entity they took 0.30-0.38 s each, 0.40 s side by side; in four, 0.35-0.38 s. The services' six
families went from 0.82-0.94 s to 0.70-0.80 s in ``compute_day`` (the per-service "naive" rollup
from 8.4-9.4 to 9.6-11.9 times slower, in ten runs), and a whole day did not get slower (run_day
over Prometheus alone, the same queries, 1.09-1.15 against 1.12-1.16): the first parts' answers are
decoded while the last ones run. The parts are whole entities, so every entity's sums are
Prometheus's own, bit for bit (tests compare both). A family that is one query goes before the parts
of a split one (the platform's bucket increases, 0.5 s over the same 20,000 series, no entity label
to split by). Splitting every family, counters and gauges too, was measured earlier on a loaded
machine (the cores busy anyway: 3.5 s as 6 queries, 3.5 s as 12, 3.8 s as 24) and is not done: a
counter is one series per entity and its query tens of milliseconds, and every query adds its own
overhead; on the quiet machine a ``qps`` peak in two parts measured no better either.

Measured and not kept (December 2026, docs/performance.md, while ``qps`` was read as samples: its peak
is now asked for, above): the ``qps`` answer arrived last, and its
decode (0.25-0.3 s) follows everything Prometheus did. Reading the gauge's day in six four-hour
chunks, each asked for before the previous one is decoded, left 0.05-0.1 s after the last answer,
the same values bit for bit; but six chunks one after the other took Prometheus longer than the
one query beside the bucket queries (2.6 s against 2.25 s for the day, Prometheus alone), and a
day took longer in all (compute_day 2.9-3.2 s against 2.7-2.8 s): the ratio to a slower
baseline looked better, the day did not get faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from app.backends.prometheus import PrometheusClient, Sample, ValueSeries
from app.backends.promql import matcher, regex_escape_literal
from app.rollups.catalog import Catalog
from app.rollups.config import Definition, EntityKind, FamilyKind, RollupSettings
from app.rollups.days import DayWindow
from app.rollups.errors import RollupQueryError
from app.rollups.histograms import Buckets


@dataclass(frozen=True)
class FamilyValue:
    """The additive figures of one family for one entity on one day."""

    entity_kind: str
    entity: str
    family: str
    total: float | None = None
    samples: int | None = None
    peak: float | None = None
    low: float | None = None
    buckets: Buckets | None = None


@dataclass(frozen=True)
class Coverage:
    """What the probe saw of a day: samples strictly inside it, and from its beginning on."""

    inside: bool
    whole: bool


@dataclass(frozen=True)
class DayFigures:
    window: DayWindow
    values: list[FamilyValue]
    coverage: Coverage | None = None
    """None: not probed (no entity kind has a ``selector``)."""

    @property
    def entities(self) -> int:
        return len({(v.entity_kind, v.entity) for v in self.values})


@dataclass(frozen=True)
class PlannedQuery:
    definition: Definition
    promql: str
    statistic: str | None = None
    """A gauge's one statistic (``peak`` or ``min``) that Prometheus computes over the day's
    samples (an instant query); None for a gauge's samples (a range query) and other families."""

    @property
    def ranged(self) -> bool:
        """Whether the query is a range query over the day's steps (else instant, at the day's end)."""
        return self.definition.kind is FamilyKind.GAUGE and self.statistic is None


def range_literal(window: DayWindow) -> str:
    """The day as a range selector that stops 1 ms short of its start: ``(start, end]``."""
    return f"{window.seconds * 1000 - 1}ms"


def render(definition: Definition, window: DayWindow, filter_matcher: str = "") -> str:
    return definition.query.replace("$range", range_literal(window)).replace("$filter", filter_matcher)


EXTREMES = {"peak": "max_over_time", "min": "min_over_time"}
"""The gauge statistics Prometheus computes exactly over a subquery, and its function for each."""


def gauge_step(definition: Definition, settings: RollupSettings) -> timedelta:
    return definition.step or settings.step


def extremes_of(definition: Definition, window: DayWindow, step: timedelta) -> list[str]:
    """The statistics of a gauge to ask Prometheus for one by one (see the module); none when its
    figures use the mean (its samples are read: sum and count need them all) or when the day's
    ends are not on the subquery's steps (a subquery's steps are multiples of ``step`` since the
    epoch, a range query's start at the day's start: the samples would differ)."""
    wanted = set(definition.reported().values())
    step_ms = _ms(step)
    aligned = all(_ms(moment - EPOCH) % step_ms == 0 for moment in (window.start, window.end))
    if not aligned or not wanted <= EXTREMES.keys():
        return []
    return sorted(wanted)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def planned(
    definition: Definition, window: DayWindow, settings: RollupSettings, filter_matcher: str = ""
) -> list[PlannedQuery]:
    """The queries of one family (one split of it) for the day: one, or one per statistic for a
    gauge whose figures use only its highest and lowest samples."""
    promql = render(definition, window, filter_matcher)
    if definition.kind is not FamilyKind.GAUGE:
        return [PlannedQuery(definition, promql)]
    step = gauge_step(definition, settings)
    extremes = extremes_of(definition, window, step)
    if not extremes:
        return [PlannedQuery(definition, promql)]
    over = f"[{range_literal(window)}:{_ms(step)}ms]"
    return [PlannedQuery(definition, f"{EXTREMES[name]}(({promql}){over})", name) for name in extremes]


def entity_key(kind: EntityKind, labels: dict[str, str]) -> str | None:
    """The entity a result series belongs to; None when it lacks a naming label."""
    if not kind.labels:
        return kind.name
    if len(kind.labels) == 1:  # the usual case, 25,000 times a day for a thousand services
        return labels.get(kind.labels[0]) or None
    values = [labels.get(label, "") for label in kind.labels]
    if any(value == "" for value in values):
        return None
    return "/".join(values)


async def entity_names(prometheus: PrometheusClient, kind: EntityKind, window: DayWindow) -> list[str]:
    """The values of ``kind``'s first label in its ``selector`` series over the day, which split
    its families (:func:`entity_filters`); none for a kind without labels or selector."""
    if not kind.labels or kind.selector is None:
        return []
    return await prometheus.label_values(
        kind.labels[0], match=[kind.selector], start=window.start, end=window.end
    )


def entity_filters(kind: EntityKind, names: Sequence[str], per_query: int) -> list[str]:
    """The ``$filter`` matchers that split a family of ``kind`` into queries of at most
    ``per_query`` of ``names``; one empty filter when the family is one query."""
    if len(names) <= per_query:
        return [""]
    label = kind.labels[0]
    return [
        str(matcher(label, "=~", "|".join(regex_escape_literal(v) for v in names[i : i + per_query])))
        for i in range(0, len(names), per_query)
    ]


HISTOGRAM_PART_MIN = 50
"""The fewest entities a part of a split histogram family covers: a family of fewer than twice as
many stays one query (its bucket increases take Prometheus tens of milliseconds, and every query
adds its own overhead), and a high ``query_concurrency`` does not cut it into slivers."""


def per_query(definition: Definition, entities: int, settings: RollupSettings) -> int:
    """How many of ``entities`` one query of ``definition``'s family covers: ``entities_per_query``,
    and for a histogram family its share of up to ``query_concurrency`` queries of at least
    :data:`HISTOGRAM_PART_MIN` entities (see the module)."""
    parts = min(settings.query_concurrency, entities // HISTOGRAM_PART_MIN)
    if definition.kind is FamilyKind.HISTOGRAM and parts > 1:
        return min(settings.entities_per_query, math.ceil(entities / parts))
    return settings.entities_per_query


async def plan(
    prometheus: PrometheusClient, catalog: Catalog, settings: RollupSettings, window: DayWindow
) -> list[PlannedQuery]:
    """The day's queries, the longest first: by kind (:data:`SCHEDULE_ORDER`), then a family that is
    one query before the parts of a split one; the entity lookups of the kinds that split their
    families run at once."""
    split = [name for name in catalog.entities if any("$filter" in d.query for d in catalog.families(name))]
    lookups = [entity_names(prometheus, catalog.entities[name], window) for name in split]
    names = dict(zip(split, await asyncio.gather(*lookups), strict=True))
    families: list[tuple[Definition, list[str]]] = []
    for definition in catalog.definitions:
        filters = [""]
        if "$filter" in definition.query:
            kind, known = catalog.entities[definition.entity], names[definition.entity]
            filters = entity_filters(kind, known, per_query(definition, len(known), settings))
        families.append((definition, filters))
    families.sort(key=lambda family: (SCHEDULE_ORDER[family[0].kind], len(family[1])))
    return [
        query
        for definition, filters in families
        for one in filters
        for query in planned(definition, window, settings, one)
    ]


SCHEDULE_ORDER = {FamilyKind.GAUGE: 0, FamilyKind.HISTOGRAM: 1, FamilyKind.COUNTER: 2}
"""The order a day's queries are sent in: gauges first (a range query, the longest for Prometheus
and the largest answer to decode: decoded while the others still run), histograms (one series
per bucket), counters last (small answers that fill the slots as the long ones end)."""


def coverage_query(catalog: Catalog, window: timedelta) -> str | None:
    """How many of the queried kinds' ``selector`` series have samples in each ``window``; None
    when no queried kind has a selector (nothing to probe)."""
    queried = [catalog.entities[name] for name in catalog.queried_kinds]
    selectors = sorted({kind.selector for kind in queried if kind.selector})
    return " or ".join(f"count(count_over_time({s}[{_ms(window)}ms]))" for s in selectors) or None


def _ms(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1000)


START_SLACK_WINDOWS = 2
"""A day whose samples start within this many probe windows (of ``rollups.step``) is whole: one
late scrape at midnight is not a gap."""


async def probe_coverage(
    prometheus: PrometheusClient, catalog: Catalog, settings: RollupSettings, window: DayWindow
) -> Coverage | None:
    """Whether the day has samples strictly inside it, and from its start on (see the module).

    The usual day is whole: one instant query over the day's first ``START_SLACK_WINDOWS`` windows
    (minus its opening midnight, the day before's) says so, reading minutes of samples, not the
    day's. Only a day without samples there is probed over its whole length."""
    step = settings.step
    slack = START_SLACK_WINDOWS * step
    head = coverage_query(catalog, slack - timedelta(milliseconds=1))
    if head is None:
        return None
    early = await prometheus.query(head, at=window.start + slack, timeout=settings.query_timeout_s)
    if any(sample.value > 0 for sample in early.samples):
        return Coverage(inside=True, whole=True)
    query = coverage_query(catalog, step) or head
    found = await prometheus.query_range(
        query, start=window.start + step, end=window.end, step=step, timeout=settings.query_timeout_s
    )
    times = sorted(t for series in found.series for t, value in series.points if value > 0)
    if not times:
        return Coverage(inside=False, whole=False)
    start, end = window.start.timestamp(), window.end.timestamp()
    whole = times[0] <= start + START_SLACK_WINDOWS * step.total_seconds()
    if times[0] < end:
        return Coverage(inside=True, whole=whole)
    # Only the last window, (end - step, end], has samples: are they all at the closing midnight?
    before_end = await prometheus.query(
        coverage_query(catalog, step - timedelta(milliseconds=1)) or query,
        at=window.end - timedelta(milliseconds=1),
        timeout=settings.query_timeout_s,
    )
    inside = any(sample.value > 0 for sample in before_end.samples)
    return Coverage(inside=inside, whole=inside and whole)


async def compute_day(
    prometheus: PrometheusClient, catalog: Catalog, settings: RollupSettings, window: DayWindow
) -> DayFigures:
    """Every family of the catalogue for every entity of ``window``'s day; nothing when the probe
    finds no sample inside the day.

    The probe, the entity lookups and the day's queries overlap (see the module): at most
    ``query_concurrency`` of the probe's and the family queries at once, the probe first."""
    limit = asyncio.Semaphore(settings.query_concurrency)

    async def probe() -> Coverage | None:
        async with limit:
            return await probe_coverage(prometheus, catalog, settings, window)

    async def day_is_empty() -> bool:
        """Whether the probe finds no sample inside the day: a query failing on such a day is not
        the day's outcome (before the queries overlapped the probe, they never ran on it)."""
        coverage = await probing
        return coverage is not None and not coverage.inside

    async def run(query: PlannedQuery) -> list[FamilyValue]:
        try:
            return await values_of(query)
        except Exception:
            if await day_is_empty():
                return []
            raise

    async def values_of(query: PlannedQuery) -> list[FamilyValue]:
        async with limit:  # released before a failure waits for the probe, which needs a slot
            kind = catalog.entities[query.definition.entity]
            if query.ranged:
                step = gauge_step(query.definition, settings)
                series = await prometheus.query_range_values(
                    query.promql,
                    start=window.start + step,
                    end=window.end,
                    step=step,
                    timeout=settings.query_timeout_s,
                )
                return gauge_values(query.definition, kind, series)
            instant = await prometheus.query(query.promql, at=window.end, timeout=settings.query_timeout_s)
            if query.statistic is not None:
                return extreme_values(query.definition, kind, instant.samples, query.statistic)
            if query.definition.kind is FamilyKind.HISTOGRAM:
                return histogram_values(query.definition, kind, instant.samples)
            return counter_values(query.definition, kind, instant.samples)

    with first_failure():
        async with asyncio.TaskGroup() as group:
            probing = group.create_task(probe())
            try:
                queries = await plan(prometheus, catalog, settings, window)
            except Exception:
                if not await day_is_empty():
                    raise
                queries = []
            tasks = [group.create_task(run(query)) for query in queries]
    coverage = probing.result()
    if coverage is not None and not coverage.inside:
        return DayFigures(window, [], coverage)
    values = _extremes_joined([value for task in tasks for value in task.result()])
    return DayFigures(window, values, coverage)


@contextlib.contextmanager
def first_failure() -> Iterator[None]:
    """Around a TaskGroup: its first failure raised as itself (the others were cancelled with it),
    not wrapped in an ExceptionGroup, so callers catch BackendError and RollupQueryError as such."""
    try:
        yield
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


def _once(definition: Definition, seen: set[str], entity: str) -> None:
    if entity in seen:
        raise RollupQueryError(
            f"{definition.name!r} returned several series for {definition.entity} {entity!r}; "
            f"aggregate its query by the entity's labels"
        )
    seen.add(entity)


def scalar_values(
    definition: Definition, kind: EntityKind, samples: Iterable[Sample]
) -> Iterator[tuple[str, float]]:
    """(entity, value) of a vector with one number per entity: a NaN is no value."""
    seen: set[str] = set()
    for sample in samples:
        entity = entity_key(kind, sample.labels)
        if entity is None or math.isnan(sample.value):
            continue
        _once(definition, seen, entity)
        yield entity, sample.value


def counter_values(definition: Definition, kind: EntityKind, samples: Iterable[Sample]) -> list[FamilyValue]:
    return [
        FamilyValue(definition.entity, entity, definition.name, total=value)
        for entity, value in scalar_values(definition, kind, samples)
    ]


def histogram_values(
    definition: Definition, kind: EntityKind, samples: Iterable[Sample]
) -> list[FamilyValue]:
    per_entity: dict[str, Buckets] = {}
    bounds: dict[str, float] = {}  # the same few "le" texts on every entity: parsed once
    for sample in samples:
        entity = entity_key(kind, sample.labels)  # reads the kind's labels only (never "le")
        le = sample.labels.get("le")
        if entity is None or math.isnan(sample.value):
            continue
        if le is None:
            raise RollupQueryError(
                f"histogram {definition.name!r} lost its 'le' label; keep it in `by (le, ...)`"
            )
        buckets = per_entity.setdefault(entity, {})
        bound = bounds.get(le)
        if bound is None:
            bound = bounds[le] = float(le)
        if bound in buckets:
            raise RollupQueryError(
                f"{definition.name!r} returned bucket le={le} twice for {definition.entity} {entity!r}; "
                f"aggregate its query by (le, ...) and the entity's labels"
            )
        buckets[bound] = sample.value
    return [
        FamilyValue(definition.entity, entity, definition.name, buckets=buckets)
        for entity, buckets in per_entity.items()
    ]


def extreme_values(
    definition: Definition, kind: EntityKind, samples: Iterable[Sample], statistic: str
) -> list[FamilyValue]:
    """One statistic of a gauge (``peak`` or ``min``), computed by Prometheus."""
    found = scalar_values(definition, kind, samples)
    if statistic == "peak":
        return [
            FamilyValue(definition.entity, entity, definition.name, peak=value) for entity, value in found
        ]
    return [FamilyValue(definition.entity, entity, definition.name, low=value) for entity, value in found]


def _extremes_joined(values: list[FamilyValue]) -> list[FamilyValue]:
    """A gauge's peak and low, asked for in two queries (:func:`extreme_values`), as one value per
    entity and family; every other value as it is."""
    others: list[FamilyValue] = []
    extremes: dict[tuple[str, str, str], FamilyValue] = {}
    for value in values:
        if value.total is not None or value.samples is not None or value.buckets is not None:
            others.append(value)
            continue
        key = (value.entity_kind, value.entity, value.family)
        held = extremes.get(key)
        extremes[key] = (
            value
            if held is None
            else replace(
                held,
                peak=held.peak if held.peak is not None else value.peak,
                low=held.low if held.low is not None else value.low,
            )
        )
    return [*others, *extremes.values()]


def gauge_values(
    definition: Definition, kind: EntityKind, series: Sequence[ValueSeries]
) -> list[FamilyValue]:
    values: list[FamilyValue] = []
    seen: set[str] = set()
    for one in series:
        entity = entity_key(kind, one.labels)
        points = one.values  # floats already: 288,000 of them a day for a thousand services
        total = math.fsum(points)
        if math.isnan(total):  # NaN samples (a division by zero) are not samples: leave them out
            points = [value for value in points if not math.isnan(value)]
            total = math.fsum(points)
        if entity is None or not points:
            continue
        _once(definition, seen, entity)
        values.append(
            FamilyValue(
                definition.entity,
                entity,
                definition.name,
                total=total,
                samples=len(points),
                peak=max(points),
                low=min(points),
            )
        )
    return values

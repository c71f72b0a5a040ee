"""Computing days against the real Prometheus: the stored figures against the generated truth
and against Prometheus's own answers over the same window."""

from __future__ import annotations

import math
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from app.backends.prometheus import PrometheusClient
from app.rollups.catalog import build_catalog
from app.rollups.compute import (
    HISTOGRAM_PART_MIN,
    SCHEDULE_ORDER,
    FamilyValue,
    compute_day,
    per_query,
    plan,
    range_literal,
)
from app.rollups.config import FamilyKind
from app.rollups.days import day_window
from app.rollups.histograms import quantile
from app.rollups.service import catalog_of
from tests.harness.datasets import DST_REQUESTS_PER_MINUTE, DST_ZONE, dst_days
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import (
    CHECKOUT,
    NAMESPACE,
    PAYMENTS,
    PROBE_ROLLUPS,
    client_for,
    dataset_of,
    requests_truth,
    rollup_settings,
    utc_days,
)

UTC_ZONE = ZoneInfo("UTC")


def by_key(values: list[FamilyValue]) -> dict[tuple[str, str, str], FamilyValue]:
    return {(v.entity_kind, v.entity, v.family): v for v in values}


@pytest.fixture
async def client(prometheus: RunningPrometheus) -> PrometheusClient:
    return client_for(prometheus)


async def instant(client: PrometheusClient, promql: str, at: float) -> dict[str, float]:
    result = await client.query(promql, at=at)
    return {
        s.labels.get("destination_service", s.labels.get("namespace", "")): s.value for s in result.samples
    }


@pytest.mark.parametrize("day_index", [0, 1, 2])
async def test_service_figures_match_truth_and_prometheus(
    prometheus: RunningPrometheus, client: PrometheusClient, day_index: int
) -> None:
    """Day 1 holds the payments incident and a counter reset of its sidecar."""
    dataset = dataset_of(prometheus)
    day = utc_days(dataset)[day_index]
    settings = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db")
    window = day_window(day, UTC_ZONE)
    computed = await compute_day(client, catalog_of(settings), settings.rollups, window)
    values = by_key(computed.values)
    t0, t1 = window.start.timestamp(), window.end.timestamp()

    for service in (CHECKOUT, PAYMENTS):
        requests = values[("service", service, "requests")].total
        errors = values[("service", service, "errors")].total
        assert requests == pytest.approx(requests_truth(dataset, service, t0, t1), rel=2e-3)
        assert errors == pytest.approx(requests_truth(dataset, service, t0, t1, code="503"), rel=2e-2, abs=2)

    window_literal = range_literal(window)
    for q in (0.5, 0.95, 0.99):
        theirs = await instant(
            client,
            f"histogram_quantile({q}, sum by (le, destination_service) "
            f'(increase(istio_request_duration_milliseconds_bucket{{reporter="destination"}}[{window_literal}])))',
            t1,
        )
        for service in (CHECKOUT, PAYMENTS):
            buckets = values[("service", service, "latency")].buckets
            assert buckets is not None
            assert quantile(q, buckets) == theirs[service]

    peaks = await instant(
        client,
        "max_over_time((sum by (destination_service) "
        f'(rate(istio_requests_total{{reporter="destination"}}[5m])))[{window_literal}:5m])',
        t1,
    )
    for service in (CHECKOUT, PAYMENTS):
        qps = values[("service", service, "qps")]
        assert qps.peak == peaks[service]
        # The built-in qps reports its peak alone: Prometheus computes it, no sample is read.
        assert (qps.total, qps.samples, qps.low) == (None, None, None)


async def test_namespace_and_cluster_figures(prometheus: RunningPrometheus, client: PrometheusClient) -> None:
    """Day 1 has a counter reset of one app container, day 2 a 15-minute gap of node-2."""
    dataset = dataset_of(prometheus)
    settings = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db")
    for day in utc_days(dataset)[1:]:
        window = day_window(day, UTC_ZONE)
        values = by_key((await compute_day(client, catalog_of(settings), settings.rollups, window)).values)
        t1 = window.end.timestamp()
        w = range_literal(window)
        cores = (
            'sum by (namespace) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[5m]))'
        )
        avg = await instant(client, f"avg_over_time(({cores})[{w}:5m])", t1)
        peak = await instant(client, f"max_over_time(({cores})[{w}:5m])", t1)
        cpu = values[("namespace", NAMESPACE, "cpu_cores")]
        assert cpu.samples is not None
        assert cpu.total is not None
        assert cpu.total / cpu.samples == pytest.approx(avg[NAMESPACE], rel=1e-9)
        assert cpu.peak == peak[NAMESPACE]
        # The pods' app and sidecar containers only: 1.15 cores on average over a day.
        assert cpu.total / cpu.samples == pytest.approx(0.95 + 4 * 0.05, rel=0.02)

        memory = values[("namespace", NAMESPACE, "memory_bytes")]
        assert memory.peak is not None
        assert memory.peak < 2e9  # the pod totals (container="") would double it

        utilization = values[("cluster", "cluster", "cpu_utilization")]
        expected = await instant(
            client, f'avg_over_time((1 - avg(rate(node_cpu_seconds_total{{mode="idle"}}[5m])))[{w}:5m])', t1
        )
        assert utilization.total is not None
        assert utilization.samples is not None
        assert utilization.total / utilization.samples == pytest.approx(expected[""], rel=1e-9)
        memory_use = values[("cluster", "cluster", "memory_utilization")]
        assert memory_use.low is not None
        assert memory_use.peak is not None
        assert 0 < memory_use.low <= memory_use.peak < 1


async def test_splitting_large_families_changes_nothing(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    dataset = dataset_of(prometheus)
    window = day_window(utc_days(dataset)[1], UTC_ZONE)
    whole = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db")
    split = rollup_settings(
        prometheus.url, "sqlite+aiosqlite:///unused.db", rollups={"entities_per_query": 1}
    )
    one = await compute_day(client, catalog_of(whole), whole.rollups, window)
    many = await compute_day(client, catalog_of(split), split.rollups, window)
    assert by_key(one.values) == by_key(many.values)
    assert len(one.values) == len(many.values) > 10


async def test_a_days_queries_go_longest_first(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    """Gauges (range queries, the largest answers) first, then histograms, counters last; each
    family's queries in the catalogue's order within its kind."""
    dataset = dataset_of(prometheus)
    settings = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db")
    catalog = catalog_of(settings)
    window = day_window(utc_days(dataset)[1], UTC_ZONE)
    planned = await plan(client, catalog, settings.rollups, window)
    kinds = [query.definition.kind for query in planned]
    assert kinds == sorted(kinds, key=SCHEDULE_ORDER.__getitem__)
    assert kinds[0] is FamilyKind.GAUGE
    assert kinds[-1] is FamilyKind.COUNTER
    gauges = [query.definition.name for query in planned if query.definition.kind is FamilyKind.GAUGE]
    assert gauges == [d.name for d in catalog.definitions if d.kind is FamilyKind.GAUGE]


async def test_a_family_in_one_query_goes_before_the_parts_of_a_split_one(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    """Split by entity, the services' bucket increases are parts of a family: the platform's,
    one query over every bucket series, is the longer and goes first."""
    dataset = dataset_of(prometheus)
    settings = rollup_settings(
        prometheus.url, "sqlite+aiosqlite:///unused.db", rollups={"entities_per_query": 1}
    )
    window = day_window(utc_days(dataset)[1], UTC_ZONE)
    planned = await plan(client, catalog_of(settings), settings.rollups, window)
    histograms = [query for query in planned if query.definition.kind is FamilyKind.HISTOGRAM]
    assert [query.definition.entity for query in histograms] == ["platform"] + ["service"] * (
        len(histograms) - 1
    )
    assert len(histograms) > 2
    assert all("destination_service=~" in query.promql for query in histograms[1:])
    assert "destination_service=~" not in histograms[0].promql


def test_a_histogram_family_of_many_entities_is_shared_among_the_concurrent_queries() -> None:
    """One series per bucket and entity: Prometheus, which evaluates a query on one core, gets the
    family in up to ``query_concurrency`` parts of at least ``HISTOGRAM_PART_MIN`` entities; a
    counter or gauge stays whole up to ``entities_per_query``, and so does a histogram of few
    entities."""
    settings = rollup_settings("http://127.0.0.1:9", "sqlite+aiosqlite:///unused.db")
    catalog = catalog_of(settings)
    latency = next(d for d in catalog.families("service") if d.kind is FamilyKind.HISTOGRAM)
    requests = next(d for d in catalog.families("service") if d.name == "requests")
    rollups = settings.rollups
    assert rollups.query_concurrency == 4
    assert per_query(latency, 1000, rollups) == 250
    assert per_query(latency, 1001, rollups) == 251  # four queries, the last one short
    assert per_query(latency, 2 * HISTOGRAM_PART_MIN - 1, rollups) == rollups.entities_per_query
    assert per_query(latency, 2 * HISTOGRAM_PART_MIN, rollups) == HISTOGRAM_PART_MIN  # two parts
    many_at_once = rollups.model_copy(update={"query_concurrency": 64})
    assert per_query(latency, 1000, many_at_once) == HISTOGRAM_PART_MIN  # 20 parts, not 64 slivers
    assert per_query(requests, 1000, rollups) == rollups.entities_per_query
    one_at_a_time = rollups.model_copy(update={"query_concurrency": 1})
    assert per_query(latency, 1000, one_at_a_time) >= 1000  # one query
    small = rollups.model_copy(update={"entities_per_query": 100})
    assert per_query(latency, 1000, small) == 100


async def test_a_sample_at_midnight_counts_once(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    """Consecutive days add up to the increase over both: midnight's sample is in one day only."""
    dataset = dataset_of(prometheus)
    days = utc_days(dataset)
    settings = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db")
    catalog = catalog_of(settings)
    first = by_key(
        (await compute_day(client, catalog, settings.rollups, day_window(days[0], UTC_ZONE))).values
    )
    second = by_key(
        (await compute_day(client, catalog, settings.rollups, day_window(days[1], UTC_ZONE))).values
    )
    start = day_window(days[0], UTC_ZONE).start.timestamp()
    end = day_window(days[1], UTC_ZONE).end.timestamp()
    both = first[("service", CHECKOUT, "requests")].total + second[("service", CHECKOUT, "requests")].total  # type: ignore[operator]
    assert both == pytest.approx(requests_truth(dataset, CHECKOUT, start, end), rel=2e-3)


@pytest.mark.parametrize("kind", ["spring", "fall"])
async def test_dst_days_are_23_and_25_hours(
    prometheus: RunningPrometheus, client: PrometheusClient, kind: str
) -> None:
    """A user-defined entity kind, counter and gauge, over the days around a DST change."""
    dataset = dataset_of(prometheus)
    day = dst_days(dataset.end)[kind]
    tz = ZoneInfo(DST_ZONE)
    settings = rollup_settings(prometheus.url, "sqlite+aiosqlite:///unused.db", rollups=PROBE_ROLLUPS)
    catalog = build_catalog(settings.rollups)
    assert catalog.figure_names("probe") == ["ticks", "tick_rate_avg", "tick_rate_peak", "ticks_per_s"]
    for offset, hours in ((-1, 24), (0, 23 if kind == "spring" else 25), (1, 24)):
        window = day_window(day + timedelta(days=offset), tz)
        assert window.seconds == hours * 3600
        values = by_key((await compute_day(client, catalog, settings.rollups, window)).values)
        ticks = values[("probe", kind, "ticks")].total
        assert ticks == pytest.approx(hours * 60 * DST_REQUESTS_PER_MINUTE, rel=1e-4)
        rate = values[("probe", kind, "tick_rate")]
        assert rate.samples == hours * 12
        assert math.isclose(rate.peak or 0, DST_REQUESTS_PER_MINUTE / 60, rel_tol=1e-9)


def _cores_gauge(figures: dict[str, str], step: str = "5m") -> dict[str, object]:
    """The built-in namespace CPU gauge under another name, with these figures and step."""
    return {
        "name": "cores",
        "entity": "namespace",
        "kind": "gauge",
        "step": step,
        "query": 'sum by (namespace) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",'
        "$filter}[5m]))",
        "figures": figures,
    }


async def test_a_gauge_of_extremes_only_gets_them_from_prometheus_bit_for_bit(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    """A gauge whose figures use only its peak and its low asks Prometheus for each over the day's
    steps (two instant queries) instead of reading every sample: the same two numbers, bit for
    bit, as the samples a gauge with a mean reads; no count and no sum are kept."""
    dataset = dataset_of(prometheus)
    window = day_window(utc_days(dataset)[1], UTC_ZONE)
    extremes = rollup_settings(
        prometheus.url,
        "sqlite+aiosqlite:///unused.db",
        rollups={"definitions": [_cores_gauge({"cores_peak": "peak", "cores_low": "min"})]},
    )
    samples = rollup_settings(
        prometheus.url,
        "sqlite+aiosqlite:///unused.db",
        rollups={
            "definitions": [_cores_gauge({"cores_avg": "avg", "cores_peak": "peak", "cores_low": "min"})]
        },
    )
    queries = [
        q
        for q in await plan(client, catalog_of(extremes), extremes.rollups, window)
        if q.definition.name == "cores"
    ]
    assert [(q.statistic, q.ranged, q.promql.split("(", 1)[0]) for q in queries] == [
        ("min", False, "min_over_time"),
        ("peak", False, "max_over_time"),
    ]
    read = [
        q
        for q in await plan(client, catalog_of(samples), samples.rollups, window)
        if q.definition.name == "cores"
    ]
    assert [(q.statistic, q.ranged) for q in read] == [(None, True)]

    asked = by_key((await compute_day(client, catalog_of(extremes), extremes.rollups, window)).values)
    counted = by_key((await compute_day(client, catalog_of(samples), samples.rollups, window)).values)
    cores = [key for key in asked if key[2] == "cores"]
    assert cores
    assert cores == [key for key in counted if key[2] == "cores"]
    for key in cores:
        one, other = asked[key], counted[key]
        assert (one.peak, one.low) == (other.peak, other.low)
        assert other.samples == 288
        assert other.total is not None
        assert (one.samples, one.total) == (None, None)
        assert one.low is not None
        assert one.peak is not None
        assert 0 < one.low < one.peak


async def test_a_gauge_whose_steps_miss_the_days_ends_reads_its_samples(
    prometheus: RunningPrometheus, client: PrometheusClient
) -> None:
    """A subquery's steps are multiples of its step since the epoch, a range query's start at the
    day's start: with a 7-minute step the two would sample other instants, so the gauge's day is
    read as samples (a range query), whatever its figures."""
    dataset = dataset_of(prometheus)
    window = day_window(utc_days(dataset)[1], UTC_ZONE)
    assert window.start.timestamp() % 420 != 0
    settings = rollup_settings(
        prometheus.url,
        "sqlite+aiosqlite:///unused.db",
        rollups={"definitions": [_cores_gauge({"cores_peak": "peak"}, step="7m")]},
    )
    queries = [
        q
        for q in await plan(client, catalog_of(settings), settings.rollups, window)
        if q.definition.name == "cores"
    ]
    assert [(q.statistic, q.ranged) for q in queries] == [(None, True)]
    values = by_key((await compute_day(client, catalog_of(settings), settings.rollups, window)).values)
    cores = [value for key, value in values.items() if key[2] == "cores"]
    assert cores
    assert all(value.samples == 205 for value in cores)

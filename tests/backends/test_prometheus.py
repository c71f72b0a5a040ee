"""The Prometheus client against the real session Prometheus (2.42) and its known dataset."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.backends.errors import BackendError, BackendErrorKind
from app.backends.prometheus import MAX_POINTS_PER_SERIES, PrometheusClient, split_range
from app.backends.promql import selector
from app.config import PrometheusSettings
from tests.backends.support import Calls
from tests.harness.datasets import APP_RESTART, EDGES, ENVOY_BUCKETS_MS, NODE_GAP, PODS, Dataset
from tests.harness.openmetrics import Grid, OpenMetricsWriter, format_bound
from tests.harness.processes import free_port
from tests.harness.prometheus import WARNING_MATCHER, RunningPrometheus

CHECKOUT_POD = PODS[2].name


@pytest.fixture
async def client(prometheus: RunningPrometheus, calls: Calls) -> AsyncIterator[PrometheusClient]:
    prom = PrometheusClient(prometheus.settings(retries=0), observer=calls)
    yield prom
    await prom.aclose()


@pytest.fixture
def data(session_dataset: Dataset) -> Dataset:
    return session_dataset


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# --- instant queries ---------------------------------------------------------------------------


async def test_instant_query_returns_the_written_value(client: PrometheusClient, data: Dataset) -> None:
    truth = data.one("container_memory_working_set_bytes", pod=CHECKOUT_POD, container="app")
    at = data.start + 7 * 3600 + 60

    result = await client.query(
        selector("container_memory_working_set_bytes", pod=CHECKOUT_POD, container="app"), at=at
    )

    assert result.result_type == "vector"
    assert result.warnings == []
    [sample] = result.samples
    assert sample.labels == truth.full_labels
    assert sample.value == truth.value_at(at)
    assert sample.timestamp == at


async def test_instant_vector_of_several_series(client: PrometheusClient, data: Dataset) -> None:
    at = data.start + 30 * 3600 + 17 * 60 + 30  # between two scrapes: the lookback finds the older
    result = await client.query('istio_requests_total{reporter="destination"}', at=at)

    expected = {
        _key(s.full_labels): s.latest(at) for s in data.select("istio_requests_total", reporter="destination")
    }
    assert len(expected) == 2 * len(EDGES)
    assert len(data.day_starts) == 3
    assert all(day % 86400 == 0 for day in data.day_starts)
    assert {_key(s.labels): s.value for s in result.samples} == expected


async def test_times_as_aware_datetimes_in_any_zone_and_naive_ones_refused(
    client: PrometheusClient, data: Dataset
) -> None:
    at = data.start + 3600
    query = selector("node_memory_MemAvailable_bytes", instance="node-1")
    by_epoch = await client.query(query, at=at)
    in_utc = await client.query(query, at=datetime.fromtimestamp(at, tz=UTC))
    in_shanghai = await client.query(query, at=datetime.fromtimestamp(at, tz=ZoneInfo("Asia/Shanghai")))

    assert by_epoch.samples == in_utc.samples == in_shanghai.samples
    assert by_epoch.samples[0].value == data.one(
        "node_memory_MemAvailable_bytes", instance="node-1"
    ).value_at(at)
    with pytest.raises(ValueError, match="naive datetime"):
        await client.query(query, at=datetime(2024, 1, 1, 12))


async def test_range_selector_in_an_instant_query_gives_the_raw_samples(
    client: PrometheusClient, data: Dataset
) -> None:
    truth = data.one("container_cpu_usage_seconds_total", pod=CHECKOUT_POD, container="istio-proxy")
    at = data.start + 12 * 3600
    result = await client.query(
        selector("container_cpu_usage_seconds_total", pod=CHECKOUT_POD, container="istio-proxy") + "[10m]",
        at=at,
    )

    assert result.result_type == "matrix"
    [series] = result.series
    assert series.points == truth.between(at - 600, at)
    assert len(series.points) == 11  # both ends included in 2.x


async def test_scalars_strings_and_special_float_values(client: PrometheusClient) -> None:
    nan = await client.query("NaN")
    plus = await client.query("vector(+Inf)")
    minus = await client.query("-Inf")
    text = await client.query('"hello"')

    assert nan.result_type == "scalar"
    assert nan.scalar is not None
    assert math.isnan(nan.scalar)
    assert plus.result_type == "vector"
    assert plus.samples[0].value == math.inf
    assert minus.scalar == -math.inf
    assert text.result_type == "string"
    assert text.string == "hello"


async def test_the_datasets_restart_and_scrape_gap_are_in_prometheus(
    client: PrometheusClient, data: Dataset
) -> None:
    pod, container, offset = APP_RESTART
    node, gap_from, gap_to = NODE_GAP
    restarted = selector("container_cpu_usage_seconds_total", pod=pod, container=container)
    at = data.end

    resets = await client.query(f"resets({restarted}[3d])", at=at)
    raw = await client.query(f"{restarted}[1d]", at=data.start + offset + 3600)
    gap = await client.query(
        f"count_over_time({selector('node_memory_MemTotal_bytes', instance=node)}[1d])",
        at=data.start + gap_to + 3600,
    )

    truth = data.one("container_cpu_usage_seconds_total", pod=pod, container=container)
    window = (data.start + offset + 3600 - 86400, data.start + offset + 3600)
    [sample] = resets.samples
    assert sample.value == 1
    points = raw.series[0].points
    grown = sum(b - a if b >= a else b for (_, a), (_, b) in itertools.pairwise(points))
    assert grown == pytest.approx(truth.counter_increase(*window))
    assert truth.counter_increase(*window) > points[-1][1] - points[0][1] + 1  # the reset matters
    assert gap.samples[0].value == 1441 - (gap_to - gap_from) // 60


# --- range queries -----------------------------------------------------------------------------


async def test_range_query_returns_the_written_values(client: PrometheusClient, data: Dataset) -> None:
    truth = data.one("node_memory_MemAvailable_bytes", instance="node-2")
    start, end = data.start + 86400, data.start + 86400 + 2 * 3600

    result = await client.query_range(
        selector("node_memory_MemAvailable_bytes", instance="node-2"),
        start=start,
        end=end,
        step=timedelta(minutes=1),
    )

    [series] = result.series
    assert series.labels == truth.full_labels
    assert series.points == truth.between(start, end)
    assert len(series.points) == 121


async def test_histogram_buckets_come_back_as_written(client: PrometheusClient, data: Dataset) -> None:
    edge = EDGES[0]
    histogram = data.histogram("istio_request_duration_milliseconds", destination_workload=edge.destination)
    at = data.end
    result = await client.query(
        selector("istio_request_duration_milliseconds_bucket", destination_workload=edge.destination),
        at=at,
    )

    by_le = {s.labels["le"]: s.value for s in result.samples}
    assert by_le == {le: series.value_at(at) for le, series in histogram.buckets.items()}
    assert by_le["+Inf"] == histogram.count.value_at(at)
    assert histogram.count.value_at(at) == data.one(
        "istio_requests_total",
        reporter="destination",
        destination_workload=edge.destination,
        response_code="200",
    ).value_at(at)
    assert set(by_le) == {format_bound(b) for b in ENVOY_BUCKETS_MS} | {"+Inf"}
    assert {"0.5", "600000", "3.6e+06"} <= set(by_le)  # Go float formatting


async def test_range_beyond_11000_points_is_split_and_merged(
    client: PrometheusClient, data: Dataset, calls: Calls, prometheus: RunningPrometheus
) -> None:
    query = 'sum by (pod) (rate(container_cpu_usage_seconds_total{container="app"}[5m]))'
    step = 15.0
    start = data.start + 600
    end = start + 2 * 86400 + 1234  # 11,603 evaluation points: two chunks
    points = int((end - start) // step) + 1
    assert points > MAX_POINTS_PER_SERIES

    async with httpx.AsyncClient(base_url=prometheus.url) as raw:
        refused = await raw.post(
            "/api/v1/query_range", data={"query": query, "start": start, "end": end, "step": step}
        )
    assert refused.status_code == 400
    assert "11,000 points" in refused.json()["error"]

    merged = await client.query_range(query, start=start, end=end, step=step)
    assert calls.outcomes == ["ok"] * math.ceil(points / MAX_POINTS_PER_SERIES)

    direct: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    piece = 4000
    for first in range(0, points, piece):
        last = min(first + piece, points) - 1
        part = await client.query_range(query, start=start + first * step, end=start + last * step, step=step)
        for series in part.series:
            direct.setdefault(_key(series.labels), []).extend(series.points)

    assert {_key(s.labels): s.points for s in merged.series} == direct
    assert len(merged.series) == len(PODS)
    for series in merged.series:
        stamps = [t for t, _ in series.points]
        assert stamps == sorted(set(stamps))  # no duplicated boundary points
        assert stamps[0] == start
        assert stamps[-1] == start + (points - 1) * step
    assert [s.labels for s in merged.series] == sorted(
        (s.labels for s in merged.series), key=lambda labels: sorted(labels.items())
    )


async def test_range_values_are_the_range_querys_values(client: PrometheusClient, data: Dataset) -> None:
    """The values-only reading (rollups' gauges) of a split range, NaN values included: the same
    series in the same order, the same floats bit for bit."""
    step = 15.0
    start = data.start + 600
    end = start + 2 * 86400 + 1234  # two chunks
    for query in (
        'sum by (pod) (rate(container_cpu_usage_seconds_total{container="app"}[5m]))',
        'sum by (pod) (rate(container_cpu_usage_seconds_total{container="app"}[5m])) / 0 * 0',  # NaN
    ):
        full = await client.query_range(query, start=start, end=end, step=step)
        values = await client.query_range_values(query, start=start, end=end, step=step)
        assert len(full.series) == len(PODS)
        assert [v.labels for v in values] == [s.labels for s in full.series]
        for one, series in zip(values, full.series, strict=True):
            assert len(one.values) == len(series.points) > MAX_POINTS_PER_SERIES
            assert [struct.pack("<d", v) for v in one.values] == [
                struct.pack("<d", v) for _, v in series.points
            ]


@pytest.mark.parametrize(
    "result",
    [
        [{"metric": {}, "values": [[1, 2]]}],  # a number where the API sends a string
        [{"metric": {}, "values": [[1, "x"]]}],
        [{"metric": {}, "values": [[1]]}],
        [{"metric": {"a": 1}, "values": [[1, "2"]]}],
        [{"metric": {}, "histograms": [[1, {"count": "1"}]]}],
        ["not a series"],
    ],
)
async def test_range_values_refuse_what_the_range_query_refuses(result: list[Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    prom = _client_answering(handler)
    try:
        for read in (prom.query_range, prom.query_range_values):
            with pytest.raises(BackendError) as caught:
                await read("up", start=1700000000, end=1700003600, step=60)
            assert caught.value.kind is BackendErrorKind.BAD_RESPONSE
            assert "unexpected answer shape" in str(caught.value)
    finally:
        await prom.aclose()


def test_split_range_covers_the_grid_exactly_once() -> None:
    start, step = 1_000_000, 15_000
    for count in (1, 2, 10_999, 11_000, 11_001, 22_000, 22_001, 50_000):
        end = start + (count - 1) * step + 7_000  # an end between two grid points
        chunks = split_range(start, end, step)
        grid = [t for a, b in chunks for t in range(a, b + 1, step)]
        assert grid == list(range(start, end + 1, step))
        assert all((b - a) // step + 1 <= MAX_POINTS_PER_SERIES for a, b in chunks)
        assert len(chunks) == math.ceil(count / MAX_POINTS_PER_SERIES)


async def test_range_query_refuses_bad_steps_and_reversed_ranges_before_sending(
    client: PrometheusClient, data: Dataset, calls: Calls
) -> None:
    for step in (0, -60, timedelta(0), 0.0001):
        with pytest.raises(BackendError) as bad_step:
            await client.query_range("up", start=data.start, end=data.end, step=step)
        assert bad_step.value.kind is BackendErrorKind.BAD_QUERY
        assert "step must be positive" in bad_step.value.message
    with pytest.raises(BackendError) as reversed_range:
        await client.query_range("up", start=data.end, end=data.start, step=60)
    assert reversed_range.value.kind is BackendErrorKind.BAD_QUERY
    assert "reversed" in reversed_range.value.message
    assert calls.seen == []


# --- warnings and errors -----------------------------------------------------------------------


async def test_warnings_are_kept(client: PrometheusClient, data: Dataset) -> None:
    query = f"count(up{{{WARNING_MATCHER}}}) or vector(42)"
    instant = await client.query(query, at=data.end)
    ranged = await client.query_range(query, start=data.end - 600, end=data.end, step=60)

    assert instant.samples[0].value == 42
    assert len(instant.warnings) == 1
    assert "remote_read" in instant.warnings[0]
    assert len(ranged.warnings) == 1
    assert "remote_read" in ranged.warnings[0]
    assert len(ranged.series[0].points) == 11


async def test_bad_promql_is_a_bad_query_with_prometheus_own_message(
    client: PrometheusClient, prometheus: RunningPrometheus, calls: Calls
) -> None:
    async with httpx.AsyncClient(base_url=prometheus.url) as raw:
        answer = (await raw.post("/api/v1/query", data={"query": "sum(rate(x[5m]"})).json()

    with pytest.raises(BackendError) as caught:
        await client.query("sum(rate(x[5m]")

    error = caught.value
    assert error.kind is BackendErrorKind.BAD_QUERY
    assert error.status == 400
    assert error.message == answer["error"]
    assert "parse error" in error.message
    assert calls.outcomes == ["bad_query"]


async def test_execution_error_is_a_bad_query(client: PrometheusClient) -> None:
    with pytest.raises(BackendError) as caught:
        await client.query('label_replace(vector(1), "dst", "x", "src", "(")')
    assert caught.value.kind is BackendErrorKind.BAD_QUERY
    assert caught.value.status == 422
    assert caught.value.message.startswith("invalid regular expression in label_replace()")


async def test_prometheus_query_timeout_is_a_timeout(client: PrometheusClient) -> None:
    with pytest.raises(BackendError) as caught:
        await client.query("count_over_time(vector(time())[30d:1s])", timeout=0.001)
    assert caught.value.kind is BackendErrorKind.TIMEOUT
    assert caught.value.status == 503
    assert caught.value.message == "query timed out in expression evaluation"


async def test_bad_queries_are_not_retried(prometheus: RunningPrometheus, calls: Calls) -> None:
    prom = PrometheusClient(prometheus.settings(retries=3, retry_backoff_s=0), observer=calls)
    try:
        with pytest.raises(BackendError):
            await prom.query("sum(")
    finally:
        await prom.aclose()
    assert calls.outcomes == ["bad_query"]


# --- metadata ----------------------------------------------------------------------------------


async def test_series_lists_label_sets(client: PrometheusClient, data: Dataset) -> None:
    found = await client.series(
        ['istio_requests_total{reporter="source"}', "node_memory_MemTotal_bytes"],
        start=data.start,
        end=data.end,
    )
    expected = data.select("istio_requests_total", reporter="source") + data.select(
        "node_memory_MemTotal_bytes"
    )
    assert sorted(map(_key, found)) == sorted(_key(s.full_labels) for s in expected)

    long_before = await client.series(
        ["istio_requests_total"], start=data.start - 30 * 86400, end=data.start - 29 * 86400
    )
    assert long_before == []


async def test_label_values(client: PrometheusClient, data: Dataset) -> None:
    pods = await client.label_values("pod", start=data.start, end=data.end)
    containers = await client.label_values(
        "container",
        match=[selector("container_memory_working_set_bytes", pod=CHECKOUT_POD)],
        start=data.start,
        end=data.end,
    )
    names = await client.label_values("__name__", start=data.start, end=data.end)

    assert pods == sorted(p.name for p in PODS)
    assert containers == ["POD", "app", "istio-proxy"]  # container="" is no label at all
    assert {"istio_requests_total", "node_cpu_seconds_total"} <= set(names)


async def test_metadata_calls_refuse_bad_arguments_before_sending(
    client: PrometheusClient, calls: Calls
) -> None:
    with pytest.raises(BackendError) as bad_label:
        await client.label_values("not-a-label")
    with pytest.raises(BackendError) as no_match:
        await client.series([])
    assert bad_label.value.kind is no_match.value.kind is BackendErrorKind.BAD_QUERY
    assert calls.seen == []


async def test_buildinfo_readiness_and_probe(client: PrometheusClient, prometheus: RunningPrometheus) -> None:
    info = await client.buildinfo()
    status = await client.probe(timeout_s=5)

    assert info.version.startswith("2.42.")
    assert info.go_version.startswith("go")
    assert await client.ready() is True
    assert status.ok
    assert status.configured
    assert status.version == info.version
    assert status.name == "prometheus"
    assert status.url == prometheus.url


# --- reachability, retries, observer -------------------------------------------------------------


async def test_closed_port_is_unreachable_and_retries_are_bounded(calls: Calls) -> None:
    settings = PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", retries=2, retry_backoff_s=0)
    prom = PrometheusClient(settings, observer=calls)
    try:
        with pytest.raises(BackendError) as caught:
            await prom.query("up")
        attempts = list(calls.seen)
        status = await prom.probe(timeout_s=5)
    finally:
        await prom.aclose()

    assert caught.value.kind is BackendErrorKind.UNREACHABLE
    assert [(b, o) for b, o, _ in attempts] == [("prometheus", "unreachable")] * 3  # 1 try + 2 retries
    assert calls.outcomes[3:] == ["unreachable"]  # a probe does not retry
    assert not status.ok
    assert "cannot reach" in (status.error or "")


async def test_a_stopped_server_is_unreachable_and_a_restarted_one_answers_again(
    prometheus_factory: Callable[..., RunningPrometheus], calls: Calls
) -> None:
    own = prometheus_factory()
    prom = PrometheusClient(own.settings(retries=0), observer=calls)
    try:
        assert (await prom.query("vector(1)")).samples[0].value == 1
        own.stop()
        with pytest.raises(BackendError) as caught:
            await prom.query("vector(1)")
        down = await prom.probe(timeout_s=2)
        own.restart()
        assert (await prom.query("vector(2)")).samples[0].value == 2
    finally:
        await prom.aclose()
    assert caught.value.kind is BackendErrorKind.UNREACHABLE
    assert not down.ok
    assert calls.outcomes[:2] == ["ok", "unreachable"]
    assert calls.outcomes[-1] == "ok"


async def test_observer_sees_every_outcome(client: PrometheusClient, calls: Calls) -> None:
    await client.query("vector(1)")
    with pytest.raises(BackendError):
        await client.query("vector(")
    assert [(backend, outcome) for backend, outcome, _ in calls.seen] == [
        ("prometheus", "ok"),
        ("prometheus", "bad_query"),
    ]
    assert all(seconds >= 0 for _, _, seconds in calls.seen)


# --- answers a real Prometheus gives only when something is off (wire-level doubles) -----------


def _client_answering(
    handler: Callable[[httpx.Request], httpx.Response], **settings: Any
) -> PrometheusClient:
    return PrometheusClient(
        PrometheusSettings(url="http://prometheus.invalid:9090", retries=0, **settings),
        transport=httpx.MockTransport(handler),
    )


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, {"status": "error", "errorType": "bad_data", "error": "boom"}, BackendErrorKind.BAD_QUERY),
        (503, {"status": "error", "errorType": "unavailable", "error": "x"}, BackendErrorKind.BAD_RESPONSE),
        (500, {"status": "error", "errorType": "internal", "error": "x"}, BackendErrorKind.BAD_RESPONSE),
        (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
            BackendErrorKind.BAD_RESPONSE,
        ),
        (
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "histogram": [1, {"count": "1"}]}],
                },
            },
            BackendErrorKind.BAD_RESPONSE,
        ),
        (200, ["not", "an", "envelope"], BackendErrorKind.BAD_RESPONSE),
        (401, None, BackendErrorKind.UNAUTHORIZED),
        (404, None, BackendErrorKind.BAD_RESPONSE),
        (504, None, BackendErrorKind.TIMEOUT),
    ],
)
async def test_unusual_answers_map_onto_error_kinds(status: int, body: Any, kind: BackendErrorKind) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text="<html>proxy says no</html>")
        return httpx.Response(status, json=body)

    prom = _client_answering(handler)
    try:
        with pytest.raises(BackendError) as caught:
            await prom.query("up")
    finally:
        await prom.aclose()
    assert caught.value.kind is kind
    if status != 200:
        assert caught.value.status == status


async def test_query_sends_a_form_body_with_millisecond_times_and_its_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    prom = _client_answering(handler)
    try:
        await prom.query("up", at=1700000000.2504, timeout=12.5)
        await prom.query_range("up", start=1700000000, end=1700003600, step=timedelta(seconds=30))
    finally:
        await prom.aclose()
    instant, ranged = (dict(httpx.QueryParams(r.content.decode())) for r in seen)
    assert [r.method for r in seen] == ["POST", "POST"]
    assert {r.headers["content-type"] for r in seen} == {"application/x-www-form-urlencoded"}
    assert instant == {"query": "up", "time": "1700000000.250", "timeout": "12.500"}
    assert ranged["start"] == "1700000000.000"
    assert ranged["end"] == "1700003600.000"
    assert ranged["step"] == "30.000"
    assert ranged["timeout"] == "29.000"  # configured 30s for the HTTP call, 1s less for Prometheus


async def test_prometheus_gives_up_before_the_http_call_does() -> None:
    forms: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
        )

    prom = _client_answering(handler, timeout_s=0.5)
    try:
        await prom.query("1")
        await prom.query("1", timeout=60)
        with pytest.raises(ValueError, match="positive"):
            await prom.query("1", timeout=0)
    finally:
        await prom.aclose()
    assert [form["timeout"] for form in forms] == ["0.400", "60.000"]


# --- the backfill harness these tests stand on ---------------------------------------------------


def test_writer_refuses_samples_in_the_last_three_hours(tmp_path: Path) -> None:
    now = 1_700_000_000
    with (
        pytest.raises(ValueError, match="within 3h of now"),
        OpenMetricsWriter(tmp_path / "x.om", now=now) as writer,
    ):
        writer.gauge("g", {}, Grid(now - 4 * 3600, now - 2 * 3600, 60), lambda t: 1.0)


def test_writer_keeps_families_together_and_ends_with_eof(tmp_path: Path) -> None:
    now = 1_700_000_000
    grid = Grid(now - 5 * 3600, now - 4 * 3600, 600)
    path = tmp_path / "x.om"
    with OpenMetricsWriter(path, now=now) as writer:
        writer.counter("a_total", {"k": 'v"\\\n'}, grid, lambda t: 1.0)
        writer.gauge("b", {}, grid, lambda t: math.nan)
        with pytest.raises(ValueError, match="already written"):
            writer.counter("a_total", {"k": "other"}, grid, lambda t: 1.0)
    lines = path.read_text().splitlines()
    assert lines[0] == "# TYPE a counter"
    assert lines[1] == f'a_total{{k="v\\"\\\\\\n"}} 0.0 {int(grid.start)}'
    assert "# TYPE b gauge" in lines
    assert f"b NaN {int(grid.start)}" in lines
    assert lines[-1] == "# EOF"

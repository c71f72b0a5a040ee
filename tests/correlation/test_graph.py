"""GET /api/v1/graph against real Prometheus servers holding Istio series whose truth is known."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.backends.traces import DependencyLink
from tests.correlation import mesh
from tests.correlation.support import backend
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.datasets import DAY_S, EDGES, NAMESPACE, Dataset
from tests.harness.prometheus import RunningPrometheus, start_prometheus

AUTH = bearer(VIEWER_TOKEN)
HOUR = 3600


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


async def _graph(client: httpx.AsyncClient, t0: float, t1: float, **params: str) -> dict[str, Any]:
    answer = await client.get(
        "/api/v1/graph", params={"from": _iso(t0), "to": _iso(t1), **params}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _edges(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["source"], e["target"]): e for e in body["edges"]}


def _nodes(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in body["nodes"]}


def _p99(histogram: Any, t0: float, t1: float) -> float:
    return mesh.histogram_quantile(
        0.99, [(float(le), series.counter_increase(t0, t1)) for le, series in histogram.buckets.items()]
    )


# --- the session Prometheus: in-mesh edges reported by both sidecars ------------------------------


@pytest.fixture
async def session_client(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(prometheus=backend(prometheus.url)) as (_app, http):
        yield http


def _truth(
    data: Dataset, source: str, destination: str, reporter: str, t0: float, t1: float
) -> tuple[float, float]:
    """(requests per second, errors per second) of an edge as ``reporter`` counted them."""
    total = errors = 0.0
    for series in data.select(
        "istio_requests_total", reporter=reporter, source_workload=source, destination_workload=destination
    ):
        grown = series.counter_increase(t0, t1) / (t1 - t0)
        total += grown
        if series.labels["response_code"].startswith("5"):
            errors += grown
    return total, errors


@pytest.mark.parametrize(
    "offset",
    [
        30 * HOUR,  # an ordinary hour
        DAY_S + 10 * HOUR,  # checkout→payments' incident: 30% errors
        DAY_S + 14 * HOUR + 1800,  # across the checkout→payments sidecar's restart (counters reset)
    ],
)
async def test_edges_and_rates_match_the_written_traffic_counted_once(
    session_client: httpx.AsyncClient, session_dataset: Dataset, offset: int
) -> None:
    data = session_dataset
    t0 = data.start + offset
    t1 = t0 + HOUR
    body = await _graph(session_client, t0, t1, namespace=NAMESPACE)
    edges = _edges(body)

    assert set(edges) == {(f"{e.source}.{NAMESPACE}", f"{e.destination}.{NAMESPACE}") for e in EDGES}
    for edge in EDGES:
        shown = edges[(f"{edge.source}.{NAMESPACE}", f"{edge.destination}.{NAMESPACE}")]
        total, errors = _truth(data, edge.source, edge.destination, "source", t0, t1)
        assert shown["reporter"] == "source"
        assert shown["protocol"] == "http"
        assert shown["requests_per_s"] == pytest.approx(total, rel=1e-9)
        assert shown["error_rate"] == pytest.approx(errors / total, rel=1e-9)
        histogram = data.histogram(
            "istio_request_duration_milliseconds", destination_workload=edge.destination
        )
        assert shown["latency_p99_ms"] == pytest.approx(_p99(histogram, t0, t1), rel=1e-9)
        assert shown["trace_calls"] is None
    payments = edges[(f"checkout.{NAMESPACE}", f"payments.{NAMESPACE}")]
    if offset == DAY_S + 10 * HOUR:
        assert 0.25 < payments["error_rate"] < 0.35
    else:
        assert payments["error_rate"] < 0.1

    nodes = _nodes(body)
    checkout = nodes[f"checkout.{NAMESPACE}"]
    into_checkout = edges[(f"frontend.{NAMESPACE}", f"checkout.{NAMESPACE}")]
    assert checkout["service"] == "checkout"
    assert checkout["namespace"] == NAMESPACE
    assert checkout["requests_per_s"] == pytest.approx(into_checkout["requests_per_s"], rel=1e-12)
    assert checkout["latency_p99_ms"] == pytest.approx(into_checkout["latency_p99_ms"], rel=1e-9)
    assert nodes[f"frontend.{NAMESPACE}"]["requests_per_s"] == 0.0
    assert nodes[f"frontend.{NAMESPACE}"]["error_rate"] is None


async def test_whole_mesh_and_empty_namespaces(
    session_client: httpx.AsyncClient, session_dataset: Dataset
) -> None:
    t0 = session_dataset.start + 30 * HOUR
    shop = await _graph(session_client, t0, t0 + HOUR, namespace=NAMESPACE)
    everything = await _graph(session_client, t0, t0 + HOUR)
    nothing = await _graph(session_client, t0, t0 + HOUR, namespace="no-such-namespace")

    assert _edges(shop).items() <= _edges(everything).items()
    assert nothing["nodes"] == []
    assert nothing["edges"] == []
    assert shop["partial"] == {"jaeger": None}  # Jaeger not configured: nothing failed
    assert shop["errors"] == {"jaeger": None}
    assert shop["from"] == _iso(t0).replace("+00:00", "Z")
    assert shop["namespace"] == NAMESPACE


async def test_prometheus_is_needed(app_factory: AppFactory, prometheus_factory: Any) -> None:
    async with app_factory() as (_app, client):
        missing = await client.get("/api/v1/graph", headers=AUTH)
    assert missing.status_code == 503
    assert missing.json()["backend"] == "prometheus"

    running = prometheus_factory()
    running.stop()
    async with app_factory(prometheus=backend(running.url)) as (_app, client):
        down = await client.get("/api/v1/graph", headers=AUTH)
    assert down.status_code == 503
    assert down.json()["backend"] == "prometheus"
    assert "cannot reach" in down.json()["message"]


async def test_bad_windows_are_400s(session_client: httpx.AsyncClient) -> None:
    answer = await session_client.get("/api/v1/graph", params={"from": "now", "to": "now-1h"}, headers=AUTH)
    assert answer.status_code == 400
    assert "from" in answer.json()["message"]


async def test_windows_in_every_form_of_the_time_grammar(
    session_client: httpx.AsyncClient, session_dataset: Dataset
) -> None:
    """``/graph?from=2026-12-06`` was a 400 ("has no time zone") before the one time grammar."""
    midnight = session_dataset.start - session_dataset.start % DAY_S + DAY_S
    day = datetime.fromtimestamp(midnight, UTC).date().isoformat()

    async def graph(**params: str) -> httpx.Response:
        return await session_client.get("/api/v1/graph", params=params, headers=AUTH)

    by_date = await graph(**{"from": day, "to": day})
    by_iso = await _graph(session_client, midnight, midnight + DAY_S - 0.001)
    from_only = await graph(**{"from": day})
    naive = await graph(**{"from": f"{day}T10:00:00", "to": f"{day} 11:00"})
    zoned = await _graph(session_client, midnight + 10 * HOUR, midnight + 11 * HOUR)
    epoch_ms = await graph(
        **{"from": str(int(midnight + 10 * HOUR) * 1000), "to": str(int(midnight + 11 * HOUR))}
    )

    assert by_date.status_code == 200, by_date.text
    assert (by_date.json()["from"], by_date.json()["to"]) == (by_iso["from"], by_iso["to"])
    assert by_date.json()["to"].startswith(f"{day}T23:59:59.999")  # a date ending a range includes the day
    assert _edges(by_date.json()) == _edges(by_iso)
    assert from_only.status_code == 200, from_only.text  # `to` defaults to now
    assert naive.status_code == 200, naive.text  # without an offset: the configured zone (UTC here)
    assert _edges(naive.json()) == _edges(zoned)
    assert (naive.json()["from"], naive.json()["to"]) == (zoned["from"], zoned["to"])
    assert _edges(epoch_ms.json()) == _edges(zoned)


# --- a Prometheus of mesh-boundary traffic ------------------------------------------------------------


@pytest.fixture(scope="module")
def boundary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningPrometheus, mesh.MeshData]]:
    directory = tmp_path_factory.mktemp("mesh-boundary")
    data = mesh.write(directory / "mesh.om", time.time())
    running = start_prometheus(directory / "prometheus", data.file)
    try:
        yield running, data
    finally:
        running.process.stop()


@pytest.fixture
async def boundary_client(
    app_factory: AppFactory, boundary: tuple[RunningPrometheus, mesh.MeshData]
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(prometheus=backend(boundary[0].url)) as (_app, http):
        yield http


def _window(data: mesh.MeshData) -> tuple[float, float]:
    return data.grid.end - 2 * HOUR, data.grid.end


async def test_callers_outside_the_mesh_are_the_unknown_node_counted_by_the_destination(
    boundary_client: httpx.AsyncClient, boundary: tuple[RunningPrometheus, mesh.MeshData]
) -> None:
    t0, t1 = _window(boundary[1])
    body = await _graph(boundary_client, t0, t1)
    edges, nodes = _edges(body), _nodes(body)

    ingress = edges[("unknown", "frontend.mesh")]
    assert ingress["reporter"] == "destination"
    assert ingress["requests_per_s"] == pytest.approx(60 / 60)  # not the 7 a minute of odd source telemetry
    assert ingress["error_rate"] == pytest.approx(1 / 60)
    ingress_flow = mesh.FLOWS[0]
    assert ingress["latency_p99_ms"] == pytest.approx(_p99(boundary[1].histograms[ingress_flow], t0, t1))
    assert nodes["unknown"] == {
        "id": "unknown",
        "service": "unknown",
        "namespace": None,
        "requests_per_s": None,
        "error_rate": None,
        "latency_p99_ms": None,
    }
    assert nodes["frontend.mesh"]["requests_per_s"] == pytest.approx(1.0)


async def test_in_mesh_edges_use_the_source_reporter_which_sees_failures_that_never_arrived(
    boundary_client: httpx.AsyncClient, boundary: tuple[RunningPrometheus, mesh.MeshData]
) -> None:
    t0, t1 = _window(boundary[1])
    data = boundary[1]
    edges, nodes = (
        _edges(await _graph(boundary_client, t0, t1)),
        _nodes(await _graph(boundary_client, t0, t1)),
    )

    ratings = edges[("reviews.mesh", "ratings.mesh")]  # canonical names, not reviews-v1 / ratings-v2
    assert ratings["reporter"] == "source"
    assert ratings["requests_per_s"] == pytest.approx(36 / 60)  # 66/60 if both reporters were added up
    assert ratings["error_rate"] == pytest.approx(6 / 36)
    source_side, destination_side = mesh.FLOWS[2], mesh.FLOWS[3]
    assert ratings["latency_p99_ms"] == pytest.approx(_p99(data.histograms[source_side], t0, t1))
    assert nodes["ratings.mesh"]["latency_p99_ms"] == pytest.approx(
        _p99(data.histograms[destination_side], t0, t1)
    )
    assert ratings["latency_p99_ms"] > nodes["ratings.mesh"]["latency_p99_ms"]  # the caller waits longer

    grpc = edges[("frontend.mesh", "catalog.mesh")]
    assert grpc["protocol"] == "grpc"
    assert grpc["requests_per_s"] == pytest.approx(22 / 60)
    assert grpc["error_rate"] == pytest.approx(2 / 22)
    assert grpc["latency_p99_ms"] is None

    dropped = edges[("cron.mesh", "reports.mesh")]  # the platform drops this edge's source telemetry
    assert dropped["reporter"] == "destination"
    assert dropped["requests_per_s"] == pytest.approx(3 / 60)
    assert nodes["cron.mesh"]["requests_per_s"] == 0.0


async def test_traffic_leaving_the_mesh_is_counted_by_the_source(
    boundary_client: httpx.AsyncClient, boundary: tuple[RunningPrometheus, mesh.MeshData]
) -> None:
    t0, t1 = _window(boundary[1])
    body = await _graph(boundary_client, t0, t1)
    egress = _edges(body)[("payments.mesh", "api.bank.example")]

    assert egress["reporter"] == "source"
    assert egress["requests_per_s"] == pytest.approx(7 / 60)
    assert egress["error_rate"] == pytest.approx(1 / 7)
    assert egress["latency_p99_ms"] == pytest.approx(_p99(boundary[1].histograms[mesh.FLOWS[8]], t0, t1))
    bank = _nodes(body)["api.bank.example"]
    assert bank["namespace"] is None
    assert bank["latency_p99_ms"] is None
    assert bank["requests_per_s"] == pytest.approx(7 / 60)


async def test_a_namespace_shows_traffic_into_out_of_and_within_it(
    boundary_client: httpx.AsyncClient, boundary: tuple[RunningPrometheus, mesh.MeshData]
) -> None:
    t0, t1 = _window(boundary[1])
    other = _edges(await _graph(boundary_client, t0, t1, namespace="other"))
    in_mesh = _edges(await _graph(boundary_client, t0, t1, namespace="mesh"))

    assert set(other) == {("frontend.mesh", "search.other"), ("indexer.other", "search.other")}
    assert ("indexer.other", "search.other") not in in_mesh
    assert ("frontend.mesh", "search.other") in in_mesh
    assert ("unknown", "frontend.mesh") in in_mesh
    assert ("payments.mesh", "api.bank.example") in in_mesh
    assert other[("frontend.mesh", "search.other")]["requests_per_s"] == pytest.approx(4 / 60)


async def test_jaeger_call_counts_are_added_and_its_failure_is_only_a_note(
    app_factory: AppFactory,
    boundary: tuple[RunningPrometheus, mesh.MeshData],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Jaeger answering 500, then not reachable at all: the graph without its call counts,
    `partial.jaeger` saying why in English and `errors.jaeger` the same as data."""
    jaeger, url = fake_jaeger
    jaeger.extra_dependencies = [
        DependencyLink("frontend.mesh", "reviews.mesh", 120),  # Istio sidecars' span service names
        DependencyLink("reviews", "ratings", 30),  # an instrumented app's own names
        DependencyLink("legacy-batch", "reports.mesh", 5),  # a caller outside the mesh, traced
    ]
    t0, t1 = _window(boundary[1])
    async with app_factory(prometheus=backend(boundary[0].url), jaeger=backend(url)) as (_app, client):
        body = await _graph(client, t0, t1)
        jaeger.fail_with(500)
        failed = await _graph(client, t0, t1)
        jaeger.stop()
        gone = await _graph(client, t0, t1)

    edges = _edges(body)
    assert edges[("frontend.mesh", "reviews.mesh")]["trace_calls"] == 120
    assert edges[("reviews.mesh", "ratings.mesh")]["trace_calls"] == 30
    assert edges[("frontend.mesh", "catalog.mesh")]["trace_calls"] is None
    legacy = edges[("legacy-batch", "reports.mesh")]
    assert legacy["trace_calls"] == 5
    assert legacy["requests_per_s"] is None
    assert legacy["reporter"] is None
    assert _nodes(body)["legacy-batch"]["requests_per_s"] is None
    assert body["partial"] == {"jaeger": None}
    assert body["errors"] == {"jaeger": None}
    dependencies = jaeger.requests_to("/api/dependencies")[0]
    assert dict(dependencies.params) == {"endTs": str(int(t1 * 1000)), "lookback": str(2 * HOUR * 1000)}

    assert failed["partial"] == {"jaeger": "jaeger: HTTP 500: simulated failure 500"}
    assert failed["errors"] == {
        "jaeger": {
            "backend": "jaeger",
            "kind": "bad_response",
            "status": 500,
            "message": "HTTP 500: simulated failure 500",
        }
    }
    assert _edges(failed)[("frontend.mesh", "reviews.mesh")]["trace_calls"] is None
    assert len(failed["edges"]) == len(body["edges"]) - 1

    unreachable = gone["errors"]["jaeger"]
    assert (unreachable["backend"], unreachable["kind"]) == ("jaeger", "unreachable")
    assert unreachable["status"] is None  # it never answered
    assert unreachable["message"].startswith(f"cannot reach {url}")
    assert gone["partial"] == {"jaeger": f"jaeger: {unreachable['message']}"}
    assert _edges(gone) == _edges(failed)

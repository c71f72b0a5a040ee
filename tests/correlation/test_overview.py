"""GET /api/v1/services/{service}/overview: RED from the real Prometheus, logs and traces from the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.correlation.mesh import histogram_quantile
from tests.correlation.support import at, backend, cri_line, json_line, span, store_logs, store_trace
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.datasets import EDGES, NAMESPACE, Dataset
from tests.harness.intake import applied
from tests.harness.prometheus import RunningPrometheus

AUTH = bearer(VIEWER_TOKEN)
HOUR = 3600


@dataclass
class Scene:
    t0: float
    t1: float
    es: FakeElasticsearch
    jaeger: FakeJaeger
    logs: dict[str, str]
    settings: dict[str, Any]

    @property
    def params(self) -> dict[str, str]:
        return {"from": _iso(self.t0), "to": _iso(self.t1)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@pytest.fixture
def scene(
    session_dataset: Dataset,
    prometheus: RunningPrometheus,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> Scene:
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    t0 = session_dataset.start + 30 * HOUR
    start = datetime.fromtimestamp(t0, UTC)
    docs = {
        "app_error": json_line(at(start, 60_000), "checkout", {"level": "ERROR", "msg": "db timeout"}),
        "proxy_503": json_line(
            at(start, 120_000),
            "checkout",
            {"response_code": 503, "method": "POST", "path": "/orders"},
            text='[2024] "POST /orders HTTP/1.1" 503 UF',
        ),
        "fatal": cri_line(at(start, 180_000), "panic: nil map", "checkout", level="FATAL"),
        "info": json_line(at(start, 240_000), "checkout", {"level": "info", "msg": "ok"}),
        "proxy_200": json_line(at(start, 250_000), "checkout", {"response_code": 200}),
        "other_service": json_line(at(start, 300_000), "payments", {"level": "error", "msg": "declined"}),
        "too_early": json_line(start - timedelta(minutes=5), "checkout", {"level": "error", "msg": "old"}),
    }
    ids = store_logs(es, *docs.values())
    for n, duration in enumerate((120, 900, 40, 300)):
        trace_id = f"{n + 1}" * 32
        store_trace(
            jaeger,
            span(
                trace_id,
                "a1" * 8,
                None,
                "frontend.shop",
                "GET /cart",
                at(start, 600_000 * (n + 1)),
                duration + 5,
            ),
            span(
                trace_id,
                "b2" * 8,
                "a1" * 8,
                "checkout.shop",
                "POST /orders",
                at(start, 600_000 * (n + 1) + 2),
                duration,
                error=n == 2,
            ),
        )
    settings = {
        "prometheus": backend(prometheus.url),
        "elasticsearch": backend(es_url),
        "jaeger": backend(jaeger_url),
    }
    return Scene(t0, t0 + HOUR, es, jaeger, dict(zip(ids, docs, strict=True)), settings)


@pytest.fixture
async def client(app_factory: AppFactory, scene: Scene) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(**scene.settings) as (_app, http):
        yield http


def _red_truth(data: Dataset, t0: float, t1: float) -> dict[str, float]:
    into_checkout = next(e for e in EDGES if e.destination == "checkout" and e.source != "unknown")
    total = errors = 0.0
    for series in data.select(
        "istio_requests_total", reporter="destination", destination_service_name="checkout"
    ):
        grown = series.counter_increase(t0, t1) / (t1 - t0)
        total += grown
        errors += grown if series.labels["response_code"].startswith("5") else 0.0
    histogram = data.histogram(
        "istio_request_duration_milliseconds", destination_workload=into_checkout.destination
    )
    buckets = [(float(le), s.counter_increase(t0, t1)) for le, s in histogram.buckets.items()]
    return {
        "requests_per_s": total,
        "error_rate": errors / total,
        "latency_p50_ms": histogram_quantile(0.5, buckets),
        "latency_p95_ms": histogram_quantile(0.95, buckets),
        "latency_p99_ms": histogram_quantile(0.99, buckets),
    }


async def test_overview_of_a_service(
    client: httpx.AsyncClient, scene: Scene, session_dataset: Dataset
) -> None:
    answer = await client.get("/api/v1/services/checkout/overview", params=scene.params, headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["partial"] == {"red": None, "error_logs": None, "traces": None, "incidents": None}
    assert body["incidents"] == []
    assert body["service"] == "checkout"
    assert body["namespace"] is None
    truth = _red_truth(session_dataset, scene.t0, scene.t1)
    assert body["red"] == {name: pytest.approx(value, rel=1e-9) for name, value in truth.items()}
    assert [scene.logs[log["id"]] for log in body["error_logs"]] == ["fatal", "proxy_503", "app_error"]
    assert [t["trace_id"][0] for t in body["slowest_traces"]] == ["2", "4", "1", "3"]
    assert [t["trace_id"][0] for t in body["failed_traces"]] == ["3"]
    assert body["failed_traces"][0]["error_count"] == 1


async def test_istio_names_and_namespaces(client: httpx.AsyncClient, scene: Scene) -> None:
    dotted = (
        await client.get("/api/v1/services/checkout.shop/overview", params=scene.params, headers=AUTH)
    ).json()
    other_ns = (
        await client.get(
            "/api/v1/services/checkout/overview",
            params={**scene.params, "namespace": "staging"},
            headers=AUTH,
        )
    ).json()

    assert dotted["namespace"] == NAMESPACE
    assert dotted["red"]["requests_per_s"] > 0
    assert len(dotted["error_logs"]) == 3
    assert len(dotted["slowest_traces"]) == 4
    assert other_ns["red"] is None
    assert (
        other_ns["partial"]["red"]
        == "prometheus: no Istio requests to service checkout in namespace staging in the window"
    )
    assert other_ns["error_logs"] == []


async def test_each_part_fails_on_its_own(client: httpx.AsyncClient, scene: Scene) -> None:
    scene.es.fail_with(503)
    answer = await client.get("/api/v1/services/checkout/overview", params=scene.params, headers=AUTH)

    assert answer.status_code == 200
    body = answer.json()
    assert body["partial"]["error_logs"].startswith("elasticsearch: HTTP 503")
    assert body["partial"]["red"] is None
    assert body["partial"]["traces"] is None
    assert body["error_logs"] == []
    assert body["red"]["requests_per_s"] > 0
    assert body["slowest_traces"]

    scene.es.clear_faults()
    scene.jaeger.stop()
    body = (await client.get("/api/v1/services/checkout/overview", params=scene.params, headers=AUTH)).json()
    assert body["partial"]["traces"].startswith("jaeger: cannot reach")
    assert body["slowest_traces"] == []
    assert len(body["error_logs"]) == 3


async def test_every_part_failing_is_an_error_naming_each_backend(
    app_factory: AppFactory, scene: Scene
) -> None:
    scene.es.stop()
    scene.jaeger.stop()
    settings = {**scene.settings, "prometheus": {}}
    async with app_factory(**settings) as (_app, client):
        answer = await client.get("/api/v1/services/checkout/overview", headers=AUTH)

    assert answer.status_code == 503
    body = answer.json()
    assert body["error"] == "backends_failed"
    assert set(body["backends"]) == {"prometheus", "elasticsearch", "jaeger"}
    assert body["backends"]["prometheus"]["kind"] == "not_configured"


async def test_open_incidents_and_the_incident_context(app_factory: AppFactory, scene: Scene) -> None:
    """An incident from Alertmanager about checkout shows in its overview, and its context covers
    checkout from ten minutes before the alert started."""
    from tests.alerts.support import alert, alerting_config, bearer_webhook, payload

    started = datetime.fromtimestamp(scene.t0, UTC) + timedelta(minutes=30)
    async with app_factory(**scene.settings, **alerting_config()) as (_app, client):
        body = payload("CheckoutErrors", [alert("CheckoutErrors", service="checkout", started=started)])
        incident_id = await applied(
            client, await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
        )
        overview = (
            await client.get("/api/v1/services/checkout/overview", params=scene.params, headers=AUTH)
        ).json()
        context = await client.get(f"/api/v1/incidents/{incident_id}/context", headers=AUTH)
        missing = await client.get("/api/v1/incidents/999/context", headers=AUTH)
    assert [i["id"] for i in overview["incidents"]] == [incident_id]
    assert overview["incidents"][0]["status"] == "triggered"
    assert context.status_code == 200
    found = context.json()
    assert found["incident"]["id"] == incident_id
    assert datetime.fromisoformat(found["from"]) == started - timedelta(minutes=10)
    [checkout] = found["services"]
    assert checkout["service"] == "checkout"
    assert checkout["red"] is not None
    assert missing.status_code == 404


async def test_incident_context_without_any_backend_still_shows_the_incident(app_factory: AppFactory) -> None:
    """No Prometheus, Elasticsearch or Jaeger configured: the incident is in the database, so its
    context answers 200 with it, each missing part marked (not a 503 hiding the incident)."""
    from tests.alerts.support import alert, alerting_config, bearer_webhook, payload

    started = datetime.now(UTC) - timedelta(minutes=5)
    async with app_factory(**alerting_config()) as (_app, client):
        body = payload("CheckoutErrors", [alert("CheckoutErrors", service="checkout", started=started)])
        incident_id = await applied(
            client, await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
        )
        context = await client.get(f"/api/v1/incidents/{incident_id}/context", headers=AUTH)

    assert context.status_code == 200
    found = context.json()
    assert found["incident"]["id"] == incident_id
    [checkout] = found["services"]
    assert checkout["service"] == "checkout"
    assert checkout["red"] is None
    assert checkout["error_logs"] == []
    assert checkout["slowest_traces"] == []
    for part, backend_name in (("red", "prometheus"), ("error_logs", "elasticsearch"), ("traces", "jaeger")):
        assert checkout["partial"][part].startswith(f"{backend_name}: not configured")
    assert checkout["partial"]["incidents"] is None
    assert [i["id"] for i in checkout["incidents"]] == [incident_id]


async def test_timed_out_log_shards_are_a_partial_note(client: httpx.AsyncClient, scene: Scene) -> None:
    """Elasticsearch answering 200 with `timed_out: true` is reported, not taken for "no error lines"."""
    scene.es.time_out_shards("logstash-*")

    answer = await client.get("/api/v1/services/checkout/overview", params=scene.params, headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["error_logs"] == []
    assert body["partial"]["error_logs"] == (
        "elasticsearch: partial answer: the search timed out (matching lines there are missing)"
    )
    assert body["partial"]["red"] is None

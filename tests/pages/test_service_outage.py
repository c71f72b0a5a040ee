"""The service page in an outage: the backends fail one, two or all three at a time (the real
Prometheus stopped or pointed at a closed port, the Elasticsearch and Jaeger fakes failing), and
the page still shows what Panorama's database knows (the service's open and recent incidents, who
is on call for it), each backend-fed part naming its backend and what happened to it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of
from tests.harness.processes import free_port
from tests.harness.prometheus import RunningPrometheus
from tests.pages.support import store_checkout_trace

VIEWER = bearer(VIEWER_TOKEN)
JAEGER_TIMEOUT_S = 0.5  # the fake hangs far longer: the client gives up first


def _closed_port() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def _stopped(prometheus_factory: Callable[..., RunningPrometheus]) -> str:
    """The URL of a real Prometheus that ran and was stopped (as in an outage)."""
    running = prometheus_factory()
    running.process.stop()
    return running.url


async def _incidents(client: httpx.AsyncClient) -> tuple[int, int]:
    """One open incident of payments.shop and one resolved; (open id, resolved id)."""
    ids = []
    for name in ("PaymentsDown", "PaymentsSlow"):
        body = payload(name, [alert(name, started=None, service="payments", namespace="shop")])
        ids.append(await incident_of(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook())))
    resolved = alert("PaymentsSlow", status="resolved", service="payments", namespace="shop")
    body = payload("PaymentsSlow", [resolved])
    await applied(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
    return ids[0], ids[1]


def _failures(page: str) -> dict[str, tuple[str, str]]:
    """Each part the page says failed: part → (backend, kind)."""
    found = re.findall(r'data-part="(\w+)" data-backend="(\w+)" data-kind="(\w+)"', page)
    return {part: (name, kind) for part, name, kind in found}


def _incident_links(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/incidents/(\d+)"', page)]


async def test_with_every_backend_failing_the_page_shows_the_database_and_names_each_failure(
    app_factory: AppFactory,
    database_url: str,
    prometheus_factory: Callable[..., RunningPrometheus],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Prometheus stopped (unreachable), Elasticsearch answering 503, Jaeger hanging (timeout):
    the page is a 200 with the open and the resolved incident, who is on call, and three parts
    each saying which backend failed and how, in both languages."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    sections: dict[str, Any] = {
        "prometheus": backend(_stopped(prometheus_factory)),
        "elasticsearch": backend(es_url),
        "jaeger": {**backend(jaeger_url), "timeout_s": JAEGER_TIMEOUT_S},
    }
    async with app_factory(database_url=database_url, **alerting_config(), **sections) as (_app, client):
        opened, resolved = await _incidents(client)
        es.fail_with(503)
        jaeger.hang(30)
        chinese = await client.get("/services/payments.shop", headers=VIEWER)
        english = await client.get("/services/payments.shop?lang=en", headers=VIEWER)
        strict = await client.get("/api/v1/services/payments.shop/overview", headers=VIEWER)
        partial = await client.get(
            "/api/v1/services/payments.shop/overview", params={"allow_partial": "true"}, headers=VIEWER
        )
        on_call = (await client.get("/api/v1/schedules/sre/oncall", headers=VIEWER)).json()
    for page in (chinese, english):
        assert page.status_code == 200, page.text
        assert _failures(page.text) == {
            "red": ("prometheus", "unreachable"),
            "traces": ("jaeger", "timeout"),
            "error_logs": ("elasticsearch", "bad_response"),
        }
        assert _incident_links(page.text) == [opened, resolved]  # the open one, then the resolved
        assert f'<span class="who">{on_call["user"]}</span>' in page.text
        assert 'href="/oncall?schedule=sre"' in page.text
        assert 'href="/incidents?service=payments.shop"' in page.text
    assert "请求指标暂时无法获取：无法连接 Prometheus（cannot reach " in chinese.text
    assert "链路暂时无法获取：Jaeger 未在时限内应答（no answer from " in chinese.text
    assert "错误日志暂时无法获取：Elasticsearch 的应答有误（HTTP 503: " in chinese.text
    assert "部分数据暂时无法获取（请求指标、链路、错误日志）" in chinese.text
    assert "Request figures temporarily unavailable: Prometheus is unreachable (cannot reach " in english.text
    assert "Traces temporarily unavailable: Jaeger did not answer in time (no answer from " in english.text
    assert "Error logs temporarily unavailable: Elasticsearch answered badly (HTTP 503: " in english.text
    # the API keeps its contract (every backend failed: an error naming each, 502 as they disagree) …
    assert strict.status_code == 502, strict.text
    assert {name: b["kind"] for name, b in strict.json()["backends"].items()} == {
        "prometheus": "unreachable",
        "elasticsearch": "bad_response",
        "jaeger": "timeout",
    }
    # … and answers what the database knows when asked to
    assert partial.status_code == 200, partial.text
    body = partial.json()
    assert [i["id"] for i in body["incidents"]] == [opened]
    assert body["errors"]["red"]["kind"] == "unreachable"
    assert body["errors"]["error_logs"] == {
        "backend": "elasticsearch",
        "kind": "bad_response",
        "status": 503,
        "message": body["errors"]["error_logs"]["message"],
    }
    assert body["errors"]["traces"]["backend"] == "jaeger"
    assert body["errors"]["incidents"] is None
    assert body["partial"]["red"].startswith("prometheus: cannot reach")


async def test_one_backend_failing_leaves_the_other_parts_whole(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Prometheus at a closed port; Elasticsearch and Jaeger answer: only the figures are missing."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    sections = {
        "prometheus": backend(_closed_port()),
        "elasticsearch": backend(es_url),
        "jaeger": backend(jaeger_url),
    }
    async with app_factory(**alerting_config(), **sections) as (_app, client):
        opened, _resolved = await _incidents(client)
        page = await client.get("/services/payments.shop?lang=en", headers=VIEWER)
        api = await client.get("/api/v1/services/payments.shop/overview", headers=VIEWER)
    assert page.status_code == 200
    assert _failures(page.text) == {"red": ("prometheus", "unreachable")}
    assert "Some parts are temporarily unavailable (Request figures)" in page.text
    assert "card processor timed out after 300ms" in page.text  # payments' error line
    assert 'href="/traces/0af7651916cd43dd8448eb211c80319c"' in page.text
    assert opened in _incident_links(page.text)
    assert api.status_code == 200
    assert api.json()["errors"] == {
        "red": api.json()["errors"]["red"],
        "error_logs": None,
        "traces": None,
        "incidents": None,
    }
    assert api.json()["errors"]["red"]["kind"] == "unreachable"


async def test_two_backends_failing_are_each_named_beside_the_one_that_answers(
    app_factory: AppFactory,
    database_url: str,
    prometheus: RunningPrometheus,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """The real Prometheus answers; Elasticsearch answers 500 and Jaeger is gone."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    sections = {
        "prometheus": backend(prometheus.url),
        "elasticsearch": backend(es_url),
        "jaeger": backend(jaeger_url),
    }
    async with app_factory(database_url=database_url, **alerting_config(), **sections) as (_app, client):
        opened, resolved = await _incidents(client)
        es.fail_with(500)
        jaeger.stop()
        page = await client.get("/services/payments.shop", headers=VIEWER)
    assert page.status_code == 200
    assert _failures(page.text) == {
        "traces": ("jaeger", "unreachable"),
        "error_logs": ("elasticsearch", "bad_response"),
    }
    assert "链路暂时无法获取：无法连接 Jaeger（cannot reach " in page.text
    assert "错误日志暂时无法获取：Elasticsearch 的应答有误（HTTP 500: " in page.text
    assert "请求指标暂时无法获取" not in page.text
    assert _incident_links(page.text) == [opened, resolved]


async def test_without_any_backend_configured_the_page_says_so_per_part(app_factory: AppFactory) -> None:
    """A first `make run`: no backend at all is not an outage, but each part still says why it is
    empty: plainly "not configured" and how to configure it, never "temporarily unavailable"."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    async with app_factory(**alerting_config()) as (_app, client):
        body = payload("PaymentsDown", [alert("PaymentsDown", started=started, service="payments")])
        opened = await incident_of(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        page = await client.get("/services/payments?lang=en", headers=VIEWER)
        chinese = await client.get("/services/payments?lang=zh-CN", headers=VIEWER)
    assert page.status_code == chinese.status_code == 200
    for answer in (page, chinese):
        assert _failures(answer.text) == {
            "red": ("prometheus", "not_configured"),
            "traces": ("jaeger", "not_configured"),
            "error_logs": ("elasticsearch", "not_configured"),
        }
    assert (
        "Request figures: Prometheus is not configured (set prometheus.url or PANORAMA_PROMETHEUS_URL)"
        in page.text
    )
    assert "Error logs: Elasticsearch is not configured (set elasticsearch.url or " in page.text
    assert (
        '<p class="alert alert-warn break" id="backends-failed"> Not configured: Prometheus, Jaeger, '
        "Elasticsearch; those parts are not shown (Request figures, Traces, Error logs). Incidents, on "
        "call and the trend come from Panorama&#39;s own database and are shown as usual.</p>" in page.text
    )
    assert "链路：未配置 Jaeger（请设置 jaeger.url 或环境变量 PANORAMA_JAEGER_URL）" in chinese.text
    assert (
        "未配置 Prometheus、Jaeger、Elasticsearch，所以不显示这些部分（请求指标、链路、错误日志）。"
        "事件、值班和趋势来自 Panorama 的数据库，照常显示。</p>" in chinese.text
    )
    for said in ("temporarily", "unavailable"):
        assert said not in page.text, said
    for said in ("暂时", "暂不"):
        assert said not in chinese.text, said
    assert _incident_links(page.text) == [opened]


async def test_who_is_on_call_for_a_service_without_incidents_comes_from_the_routes_naming_it(
    app_factory: AppFactory,
) -> None:
    """No incident yet: the schedules a route pages for an alert naming the service alone are shown;
    a service no route names alone says so (routes needing other labels are not guessed at)."""
    config = alerting_config()
    config["routes"].insert(0, {"matchers": ['service="cart"', 'namespace="shop"'], "escalation": "default"})
    async with app_factory(**config) as (_app, client):
        routed = await client.get("/services/cart.shop?lang=en", headers=VIEWER)
        elsewhere = await client.get("/services/cart.staging?lang=en", headers=VIEWER)
        on_call = (await client.get("/api/v1/schedules/sre/oncall", headers=VIEWER)).json()
    assert routed.status_code == elsewhere.status_code == 200
    assert f'<span class="who">{on_call["user"]}</span>' in routed.text
    assert 'href="/oncall?schedule=sre"' in routed.text
    assert "No route pages a schedule for this service alone" in elsewhere.text
    assert '<span class="who">' not in elsewhere.text


async def test_a_hanging_backend_is_waited_for_only_web_part_timeout(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Elasticsearch accepts the connection and never answers (its client would wait 5 s, twice):
    the page stops waiting at ``web.part_timeout`` and says the logs timed out; the traces are there."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    sections = {
        "elasticsearch": {**backend(es_url), "retries": 1},
        "jaeger": backend(jaeger_url),
        "web": {"part_timeout": "0.5s"},
    }
    async with app_factory(**alerting_config(), **sections) as (_app, client):
        es.hang(60)
        page = await client.get("/services/payments.shop?lang=en", headers=VIEWER)
        es.clear_faults()
    assert page.status_code == 200
    assert _failures(page.text) == {
        "red": ("prometheus", "not_configured"),
        "error_logs": ("elasticsearch", "timeout"),
    }
    assert (
        "Error logs temporarily unavailable: Elasticsearch did not answer in time (no answer within 0.5s)"
        in page.text
    )
    # the failure and the backend not configured, each said in its own words
    assert (
        "Some parts are temporarily unavailable (Error logs); each says why below. Not configured: "
        "Prometheus; those parts are not shown (Request figures). Incidents, on call" in page.text
    )
    assert "Request figures: Prometheus is not configured (set prometheus.url" in page.text
    assert 'href="/traces/0af7651916cd43dd8448eb211c80319c"' in page.text

"""The service page in a real browser (Debian's Chromium) while every backend fails: Prometheus at
a closed port, Elasticsearch answering 503, Jaeger gone. At a phone's size and a desktop's the page
shows the service's incidents, who is on call and the 30-day trend from Panorama's database, and
each backend-fed part names its failure. Screenshots go to artifacts/pages/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from bench.rollup_store import fill_sqlite
from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, bearer, settings_for
from tests.harness.browser import BROWSER, DESKTOP, PHONE, OpenPage, panorama_port, serve_panorama
from tests.harness.intake import incident_of
from tests.harness.processes import free_port

pytestmark = BROWSER

ENTITY = "payments.shop.svc.cluster.local"


@dataclass
class Outage:
    url: str
    incident: int


@pytest_asyncio.fixture(loop_scope="session")
async def outage(
    tmp_path: Path,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> AsyncIterator[Outage]:
    """Panorama served with every backend failing, one open incident of payments.shop and 30 days
    of its daily rollups in the database."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    port = panorama_port()
    database = tmp_path / "panorama.db"
    settings = settings_for(
        f"sqlite+aiosqlite:///{database}",
        **alerting_config(public_url=f"http://127.0.0.1:{port}"),
        prometheus=backend(f"http://127.0.0.1:{free_port()}"),  # nothing listens there
        elasticsearch=backend(es_url),
        jaeger=backend(jaeger_url),
        grafana={"url": "https://grafana.example.com"},
    )
    async with serve_panorama(settings, port) as url:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        days = [yesterday - timedelta(days=d) for d in range(30)]
        await asyncio.to_thread(fill_sqlite, database, [ENTITY], days)
        started = datetime.now(UTC) - timedelta(minutes=7)
        body = payload(
            "PaymentsDown", [alert("PaymentsDown", started=started, service="payments", namespace="shop")]
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answer = await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
            incident = await incident_of(client, answer)
        es.fail_with(503)
        jaeger.stop()
        yield Outage(url, incident)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_service_page_in_an_outage_shows_the_database_and_each_failure(
    outage: Outage, open_page: OpenPage, viewport: dict[str, int]
) -> None:
    phone = viewport is PHONE
    page = await open_page(viewport, extra_http_headers=bearer(VIEWER_TOKEN))
    p = page.page
    answer = await page.goto(f"{outage.url}/services/payments.shop{'' if phone else '?lang=en'}")
    assert answer.status == 200
    await p.wait_for_selector(".chart canvas")
    assert await p.locator(".chart canvas").count() == 2  # the trend, from the daily rollups
    failed = await p.locator(".part-failed").evaluate_all(
        "parts => parts.map(p => [p.dataset.part, p.dataset.backend, p.dataset.kind])"
    )
    assert failed == [
        ["red", "prometheus", "unreachable"],
        ["traces", "jaeger", "unreachable"],
        ["error_logs", "elasticsearch", "bad_response"],
    ]
    texts = await p.locator(".part-failed p").all_inner_texts()
    expected = (
        [
            "请求指标暂时无法获取：无法连接 Prometheus（cannot reach ",
            "链路暂时无法获取：无法连接 Jaeger（cannot reach ",
            "错误日志暂时无法获取：Elasticsearch 的应答有误（HTTP 503: ",
        ]
        if phone
        else [
            "Request figures temporarily unavailable: Prometheus is unreachable (cannot reach ",
            "Traces temporarily unavailable: Jaeger is unreachable (cannot reach ",
            "Error logs temporarily unavailable: Elasticsearch answered badly (HTTP 503: ",
        ]
    )
    assert len(texts) == len(expected)
    assert all(text.startswith(start) for text, start in zip(texts, expected, strict=True)), texts
    incident = p.locator(f"#service-incidents a[href='/incidents/{outage.incident}']")
    assert "PaymentsDown" in await incident.inner_text()
    assert await p.locator("#service-oncall .who").first.inner_text() in ("alice", "bob")
    if phone:
        await page.assert_no_horizontal_scroll()
    name = f"service-outage-{'phone' if phone else 'desktop'}"
    await page.shot("pages", name)
    await page.shot("pages", f"{name}-first-screen", full_page=False)
    await incident.click()
    await p.wait_for_load_state()
    assert p.url.startswith(f"{outage.url}/incidents/{outage.incident}")


async def test_without_backends_configured_the_pages_say_so_plainly_on_a_phone(
    tmp_path: Path, open_page: OpenPage
) -> None:
    """A first `make run` (no Prometheus, Elasticsearch or Jaeger configured): the service page's
    banner and each part, an incident's context, and the trace page say "not configured" and how to
    configure it, never "temporarily unavailable" nor "failed"."""
    port = panorama_port()
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
        **alerting_config(public_url=f"http://127.0.0.1:{port}"),
    )
    async with serve_panorama(settings, port) as url:
        page = await open_page(PHONE, extra_http_headers=bearer(VIEWER_TOKEN))
        answer = await page.goto(f"{url}/services/payments.shop")
        assert answer.status == 200
        banner = await page.page.locator("#backends-failed").inner_text()
        parts = await page.page.locator(".part-failed p").all_inner_texts()
        await page.assert_no_horizontal_scroll()
        await page.shot("pages", "service-not-configured-phone-first-screen", full_page=False)
        body = payload("PaymentsDown", [alert("PaymentsDown", service="payments", namespace="shop")])
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            posted = await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
            incident = await incident_of(client, posted)
        await page.goto(f"{url}/incidents/{incident}/context")
        context = await page.page.locator("[data-partial]").all_inner_texts()
        await page.assert_no_horizontal_scroll()
        await page.shot("pages", "context-not-configured-phone")
        page.allow(r"status of 503 .*/traces/")  # the trace page's own answer, expected
        trace = await page.goto(f"{url}/traces/4bf92f3577b34da6a3ce929d0e0e4736")
        assert trace.status == 503
        heading = await page.page.locator("h1").inner_text()
        said = await page.page.locator("main").inner_text()
        await page.shot("pages", "trace-not-configured-phone", full_page=False)
    assert banner.startswith("未配置 Prometheus、Jaeger、Elasticsearch，所以不显示这些部分"), banner
    assert parts == [
        "请求指标：未配置 Prometheus（请设置 prometheus.url 或环境变量 PANORAMA_PROMETHEUS_URL）",
        "链路：未配置 Jaeger（请设置 jaeger.url 或环境变量 PANORAMA_JAEGER_URL）",
        "错误日志：未配置 Elasticsearch（请设置 elasticsearch.url 或环境变量 PANORAMA_ELASTICSEARCH_URL）",
    ]
    assert sorted(context) == sorted(parts)  # the context's parts in the same words
    assert heading == "后端未配置"
    assert "所需的后端都没有配置：未配置 Jaeger：请设置 jaeger.url" in said
    for text in (banner, *parts, *context, said):
        assert "暂时" not in text, text
        assert "出错" not in text, text

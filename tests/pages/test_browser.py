"""The pages in a real browser (Debian's Chromium), at a phone's size and a desktop's.

One served Panorama with the Elasticsearch and Jaeger fakes, a DingTalk robot sink and the
alert worker; an incident comes in through the webhook over HTTP, the robot gets the page,
and the test taps the link in it — as the on-call engineer does at 3 a.m. Screenshots go to
artifacts/pages/.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from app.signing import Purpose, sign
from app.web.auth import incidents_scope, view_url
from bench.rollup_store import fill_sqlite
from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.correlation.support import (
    backend,
)
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, bearer, settings_for
from tests.harness.browser import (
    BROWSER,
    DESKTOP,
    PHONE,
    CheckedPage,
    OpenPage,
    panorama_port,
    serve_panorama,
)
from tests.harness.intake import applied, incident_of
from tests.pages.support import (
    SPANS,
    SPELLINGS,
    TRACE,
    dst_week_page,
    next_spring_forward,
    store_checkout_trace,
)

pytestmark = BROWSER

SIGNING_KEY = "browser-test-signing-key-0123456789"
WAIT_S = 30.0


@dataclass
class World:
    url: str
    robot: DingTalkSink
    database: Path

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


@asynccontextmanager
async def _served_world(
    tmp_path: Path,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]],
    **schedule: Any,
) -> AsyncIterator[World]:
    """Panorama served with the fakes, the robot and the worker; ``schedule``: more keys for the
    schedule ``sre`` (e.g. ``notices``: its hand-over and swap notices go to the robot too)."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET))
    port = panorama_port()
    public = f"http://127.0.0.1:{port}"
    config = alerting_config(worker=True, worker_interval="0.2s", public_url=public, signing_key=SIGNING_KEY)
    config["channels"][0] = {
        "name": "ops-robot",
        "type": "dingtalk",
        "url": robot.url,
        "secret": DINGTALK_SECRET,
    }
    config["schedules"][0].update(schedule)
    database = tmp_path / "panorama.db"
    settings = settings_for(
        f"sqlite+aiosqlite:///{database}",
        **config,
        elasticsearch=backend(es_url),
        jaeger=backend(jaeger_url),
        grafana={"url": "https://grafana.example.com"},
    )
    async with serve_panorama(settings, port) as url:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        days = [yesterday - timedelta(days=d) for d in range(30)]
        await asyncio.to_thread(fill_sqlite, database, ["payments.shop.svc.cluster.local"], days)
        yield World(url, robot.sink, database)


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    tmp_path: Path,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]],
) -> AsyncIterator[World]:
    async with _served_world(tmp_path, fake_elasticsearch, fake_jaeger, serve_sink) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def noticed_world(
    tmp_path: Path,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]],
) -> AsyncIterator[World]:
    """The same, with the schedule's notices (hand-overs, swaps) sent to the robot's chat."""
    async with _served_world(
        tmp_path, fake_elasticsearch, fake_jaeger, serve_sink, notices=["ops-robot"]
    ) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def berlin_world(
    tmp_path: Path,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]],
) -> AsyncIterator[World]:
    """The same, with the schedule in Europe/Berlin (daylight saving)."""
    async with _served_world(
        tmp_path, fake_elasticsearch, fake_jaeger, serve_sink, timezone="Europe/Berlin"
    ) as served:
        yield served


async def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)
    return found


async def _page_incident(world: World) -> str:
    """Posts an Alertmanager webhook and returns the incident link the robot was sent."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    body = payload(
        "PaymentsDown",
        [
            alert(
                "PaymentsDown",
                started=started,
                service="payments",
                namespace="shop",
                pod="payments-7d9f8b-x2x4z",
            ),
            alert(
                "PaymentsDown",
                started=started,
                service="payments",
                namespace="shop",
                pod="payments-7d9f8b-q8k2m",
            ),
        ],
    )
    async with world.http() as client:
        stored = await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
        await applied(client, stored)
        await incident_of(client, stored)

    async def robot_messages() -> Any:
        return world.robot.messages

    async def delivered() -> bool:
        return "notified" in await _timeline_kinds(world, 1)

    messages = await _until(robot_messages, "the DingTalk page")
    text = messages[0].json["markdown"]["text"]
    link = re.search(r"\((http://127\.0\.0\.1:\d+/incidents/\d+\?view=[A-Za-z0-9._-]+)\)", text)
    assert link is not None, text
    await _until(delivered, "the delivery in the timeline")  # recorded right after the robot answered
    return link.group(1)


async def _timeline_kinds(world: World, incident_id: int) -> list[str]:
    async with world.http() as client:
        found = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))).json()
    return [e["kind"] for e in found["timeline"]]


async def _sign_in(page: CheckedPage, world: World, token: str, target: str) -> None:
    await page.goto(f"{world.url}/login?next={target}")
    await page.page.fill("#token", token)
    await page.page.click("form.stack button[type=submit]")
    await page.page.wait_for_load_state()


async def test_the_engineer_taps_the_page_sees_the_timeline_and_acknowledges(
    world: World, open_page: OpenPage
) -> None:
    link = await _page_incident(world)

    # 3 a.m.: the link in DingTalk opens the incident read-only on the phone, no login
    phone = await open_page(PHONE)
    await phone.goto(link)
    p = phone.page
    assert "PaymentsDown" in await p.title()
    assert await p.locator(".incident-head .badge.status-triggered").inner_text() == "未确认"
    kinds = await p.locator(".timeline li").evaluate_all("items => items.map(i => i.dataset.kind)")
    assert kinds[:3] == ["received", "routed", "escalated"], kinds
    assert "notified" in kinds
    assert "已送达 ops-robot" in await p.locator(".timeline").inner_text()
    assert await p.locator(".oncall .who").first.inner_text() in ("alice", "bob")
    assert await p.locator(".readonly-bar").is_visible()
    assert await p.locator("form[action$='/ack']").count() == 0  # a view link never acts
    # the correlated context arrives after the page, with links that open under the same view link
    await p.wait_for_selector(".trace-list a", timeout=15_000)
    assert "card processor timed out" in await p.locator("main").inner_text()
    grafana = await p.locator("a[href^='https://grafana.example.com/d/panorama-overview']").get_attribute(
        "href"
    )
    assert grafana is not None
    assert "var-namespace=shop" in grafana
    silence = await p.locator("a[href^='http://alertmanager:9093/#/silences/new?filter=']").get_attribute(
        "href"
    )
    assert silence is not None
    assert "alertname%3D%22PaymentsDown%22" in silence
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "incident-phone-view-link")
    await p.evaluate("window.scrollTo(0, 0)")
    await phone.shot("pages", "incident-phone-first-screen", full_page=False)
    await phone.shot("pages", "readme-incident-phone", full_page=False, small=True)

    await p.locator(".trace-list a").first.click()
    await p.wait_for_load_state()
    assert p.url.startswith(f"{world.url}/traces/{TRACE}?view=")
    assert await p.locator(".wf-row").count() == 4

    # signed in as an operator, the same phone acknowledges from the page
    await _sign_in(phone, world, OPERATOR_TOKEN, "/incidents/1")
    assert p.url == f"{world.url}/incidents/1"
    await p.click("form[action$='/ack'] button")
    await p.wait_for_load_state()
    assert await p.locator(".incident-head .badge.status-acknowledged").inner_text() == "已确认"
    last = p.locator(".timeline li").last
    assert await last.get_attribute("data-kind") == "acknowledged"
    assert "operator-test 确认了事件" in await last.inner_text()
    assert (await _timeline_kinds(world, 1))[-1] == "acknowledged"
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "incident-phone-acknowledged")

    desktop = await open_page(DESKTOP)
    d = desktop.page
    await _sign_in(desktop, world, VIEWER_TOKEN, "/incidents/1?lang=en")
    await d.wait_for_selector(".trace-list a", timeout=15_000)
    assert (await d.locator("h1").first.inner_text()).startswith("PaymentsDown")
    assert "Acknowledged by operator-test" in await d.locator(".timeline").inner_text()
    assert "operator" in await d.locator(".action-bar").inner_text()  # a viewer is told why it cannot act
    await desktop.shot("pages", "incident-desktop-en")
    await desktop.goto(f"{world.url}/incidents")
    assert await d.locator(".incident-list a.item").count() == 1
    await desktop.shot("pages", "incidents-desktop")
    await desktop.goto(f"{world.url}/services/payments.shop")
    await d.wait_for_selector(".chart canvas")
    assert "payments.shop.svc.cluster.local" in await d.locator("main").inner_text()
    await desktop.shot("pages", "service-desktop")
    # a link in another site (Grafana, a chat app) arrives without the SameSite=Strict session cookie:
    # the page asks again from Panorama, and the signed-in reader lands on the incident
    await desktop.goto(world.url.replace("127.0.0.1", "localhost") + "/login")  # another site
    await d.set_content(f'<a id="elsewhere" href="{world.url}/incidents/1">#1</a>')
    answers: list[int] = []
    d.on("response", lambda r: answers.append(r.status) if r.url == f"{world.url}/incidents/1" else None)
    await d.click("#elsewhere")
    await d.wait_for_selector("#incident-title")
    assert (await d.locator("#incident-title").inner_text()).startswith("PaymentsDown")
    assert answers == [200, 200]  # "asking again" (no cookie yet), then the page (with it)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_trace_page_shows_every_span_and_every_log_line_for_any_spelling_of_the_id(
    world: World, open_page: OpenPage, viewport: dict[str, int]
) -> None:
    page = await open_page(viewport, color_scheme="dark" if viewport is PHONE else "light")  # 3 a.m.
    p = page.page
    await _sign_in(page, world, VIEWER_TOKEN, "/incidents")
    seen = []
    for name, spelling in SPELLINGS.items():
        await page.goto(f"{world.url}/traces/{spelling}")
        assert await p.locator("code.ids").inner_text() == TRACE, name
        rows = p.locator(".wf-row")
        assert await rows.count() == 4, name
        services = await rows.locator(".wf-label .svc").all_inner_texts()
        assert services == ["frontend.shop", "checkout.shop", "checkout", "payments.shop"], name
        assert await p.locator(".wf-row.is-error").count() == 1
        seen.append(await p.locator("#logs-title ~ ul.logs > li .log-msg").all_inner_texts())
    assert all(lines == seen[0] for lines in seen)
    assert len(seen[0]) == 4  # ECS lower case, JSON upper case, traceparent and uber-trace-id in the text
    assert "card processor timed out after 300ms" in seen[0][1]
    # the failing span opens to its tags and its own log line
    await p.locator(f"#span-{SPANS['pay']} > summary").click()
    detail = await p.locator(f"#span-{SPANS['pay']} .wf-detail").inner_text()
    assert "http.status_code" in detail
    assert "card processor" in detail
    if viewport is PHONE:
        await page.assert_no_horizontal_scroll()
    await page.shot("pages", f"trace-{'phone' if viewport is PHONE else 'desktop'}")
    if viewport is PHONE:  # the other pages at a phone's width, in its dark mode
        for name, path in (("incidents", "/incidents"), ("service", "/services/payments.shop")):
            await page.goto(f"{world.url}{path}")
            await page.assert_no_horizontal_scroll()
            await page.shot("pages", f"{name}-phone-dark")
        assert await p.locator(".chart canvas").count() == 2
        await _assert_the_bar_keeps_its_links_whole(page, f"{world.url}/incidents?lang=en")
    if viewport is DESKTOP:
        await p.set_viewport_size({"width": 1180, "height": 760})
        await page.shot("pages", "readme-trace-desktop", full_page=False)


async def test_a_trace_whose_logs_came_in_part_says_so_in_chinese_on_a_phone(
    world: World, fake_elasticsearch: tuple[FakeElasticsearch, str], open_page: OpenPage
) -> None:
    """An older day's shard fails and the cluster refuses `prefix` queries: the trace page shows the
    trace and the lines found, and its note says both in Chinese, wrapped within a phone's width."""
    es, _url = fake_elasticsearch
    es.add_document("logstash-1999.01.01", {"@timestamp": "1999-01-01T00:00:00Z", "log": "x"})
    es.fail_shards("logstash-1999.*", reason="failed to create query: field [log] is not searchable")
    es.allow_expensive_queries = False
    page = await open_page(PHONE)
    p = page.page
    await _sign_in(page, world, VIEWER_TOKEN, "/incidents")
    await page.goto(f"{world.url}/traces/{TRACE}?from=1999-01-01T00:00:00Z&lang=zh-CN")
    note = await p.locator('[data-partial="logs"]').inner_text()
    assert note.startswith("Elasticsearch — 日志可能不全：Elasticsearch 只给出了部分结果：")
    assert "（索引 logstash-1999.01.01：query_shard_exception: failed to create query" in note
    assert "；这个 Elasticsearch 集群的 search.allow_expensive_queries 为 false" in note
    assert await p.locator(".wf-row").count() == 4
    assert len(await p.locator("#logs-title ~ ul.logs > li").all()) >= 1
    await page.assert_no_horizontal_scroll()
    await page.shot("pages", "trace-partial-phone")


# Each link of the top bar: how many lines its text takes, and its box (to find two that overlap).
BAR_LINKS = """() => [...document.querySelectorAll('.topbar a, .topbar button')].map(a => {
    const text = document.createRange(); text.selectNodeContents(a);
    const box = a.getBoundingClientRect();
    return {text: a.textContent.trim(), lines: text.getClientRects().length,
            left: box.left, right: box.right, top: box.top, bottom: box.bottom};
})"""


async def _assert_the_bar_keeps_its_links_whole(page: CheckedPage, url: str) -> None:
    """English words are longer: at a phone's width no link of the bar breaks inside ("Incident|s")
    and none overlaps another; the brand is two boxes (its mark and its name), the rest one each."""
    await page.goto(url)
    links = await page.page.evaluate(BAR_LINKS)
    assert [link["text"] for link in links] == ["Panorama", "Incidents", "On call", "中文", "Sign out"]
    assert [link["lines"] for link in links] == [2, 1, 1, 1, 1], links
    for i, a in enumerate(links):
        for b in links[i + 1 :]:
            apart = a["right"] <= b["left"] or b["right"] <= a["left"]
            assert apart or a["bottom"] <= b["top"] or b["bottom"] <= a["top"], (a, b)
    await page.assert_no_horizontal_scroll()


async def test_a_robot_that_refuses_the_page_is_said_in_chinese_on_a_phone_with_its_own_words(
    world: World, open_page: OpenPage
) -> None:
    """The robot answers HTTP 503 once, then refuses the retry with its errcode: the timeline says
    both in zh-CN, the robot's own words quoted as they came, and in English with ``?lang=en``."""
    world.robot.fail_with(503, times=1)
    world.robot.fail_with_code(310000, "keywords not in content", times=1)
    async with world.http() as client:
        body = payload("PaymentsDown", [alert("PaymentsDown", service="payments", namespace="shop")])
        stored = await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
        await applied(client, stored)
        incident = await incident_of(client, stored)

    async def dead_lettered() -> bool:
        return "dead_lettered" in await _timeline_kinds(world, incident)

    await _until(dead_lettered, "the dead letter in the timeline")  # after one backoff of ~5 s
    page = await open_page(PHONE)
    p = page.page
    await _sign_in(page, world, VIEWER_TOKEN, f"/incidents/{incident}")
    timeline = p.locator(".timeline")
    failed = await timeline.locator("li[data-kind=delivery_failed] .detail").inner_text()
    dead = await timeline.locator("li[data-kind=dead_lettered] .detail").inner_text()
    # (the quotation marks around the robot's words are the <q>'s own, drawn by the browser)
    assert failed.startswith("对方应答 HTTP 503 · 原文：<html><body><h1>503</h1></body></html> · "), failed
    assert (
        dead == "重试也无法成功，共尝试 2 次 · 对方拒绝了消息，错误码 310000"
        "（安全校验未通过：签名、时间戳（请检查时钟）、关键词或 IP 白名单） · 原文：keywords not in content"
    )
    assert await timeline.locator("li[data-kind=dead_lettered] q").inner_text() == "keywords not in content"
    await page.assert_no_horizontal_scroll()
    await page.shot("pages", "incident-delivery-failed-phone")
    desktop = await open_page(DESKTOP)
    await _sign_in(desktop, world, VIEWER_TOKEN, f"/incidents/{incident}")
    await desktop.shot("pages", "incident-delivery-failed-desktop", full_page=False)
    await page.goto(f"{world.url}/incidents/{incident}?lang=en")
    dead = await timeline.locator("li[data-kind=dead_lettered] .detail").inner_text()
    assert dead == (
        "not retryable, after 2 attempts · refused with code 310000 (security check failed: signature, "
        "timestamp (check the clock), keyword or IP allow-list) · in its words: keywords not in content"
    )
    await page.shot("pages", "incident-delivery-failed-phone-en")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_a_bad_service_filter_keeps_the_incidents_page_with_the_problem_beside_the_form(
    world: World, open_page: OpenPage, viewport: dict[str, int]
) -> None:
    """The reader types a Kubernetes-style ``shop/payments``: the page stays, the filter keeps what
    was typed, the problem is said above the form in the page's language and marks the field."""
    page = await open_page(viewport)
    p = page.page
    # Chromium logs the document's own 400 as "Failed to load resource"; nothing else may appear
    page.allow(
        rf"status of 400 \(Bad Request\) \({re.escape(world.url)}/incidents\?[^)]*service=shop%2Fpayments"
    )
    await _sign_in(page, world, VIEWER_TOKEN, "/incidents")
    await p.fill("#f-service", "shop/payments")
    async with p.expect_navigation() as navigation:
        await p.locator("form.filters button[type=submit]").click()
    answer = await navigation.value
    assert answer is not None
    assert answer.status == 400
    assert "service=shop%2Fpayments" in p.url
    problem = p.locator("#form-problem")
    assert await problem.get_attribute("role") == "alert"
    said = await problem.inner_text()
    assert "参数“service”：“shop/payments”：命名空间中的服务写作“payments.shop”" in said, said
    assert await p.input_value("#f-service") == "shop/payments"
    assert await p.get_attribute("#f-service", "aria-invalid") == "true"
    assert await p.get_attribute("#f-service", "aria-describedby") == "form-problem"
    assert await p.locator("#open-title").count() == 0  # nothing listed under a filter it cannot read
    if viewport is PHONE:
        await page.assert_no_horizontal_scroll()
    kind = "phone" if viewport is PHONE else "desktop"
    await page.shot("pages", f"incidents-bad-filter-{kind}")
    # two bad values, in English: both said at once; corrected from the page itself, the list is back
    await page.goto(f"{world.url}/incidents?service=shop%2Fpayments&status=open&lang=en")
    said = await problem.inner_text()
    assert "Parameter 'status': 'open' is not a status; use triggered, acknowledged or resolved" in said
    assert "Parameter 'service': 'shop/payments': write a service in a namespace as 'payments.shop'" in said
    assert await p.get_attribute("#f-status", "aria-invalid") == "true"  # each field it names is marked
    assert await p.get_attribute("#f-service", "aria-invalid") == "true"
    if viewport is PHONE:
        await page.assert_no_horizontal_scroll()
    await page.shot("pages", f"incidents-bad-filter-{kind}-en")
    await p.select_option("#f-status", "")
    await p.fill("#f-service", "payments.shop")
    async with p.expect_navigation() as navigation:
        await p.locator("form.filters button[type=submit]").click()
    answer = await navigation.value
    assert answer is not None
    assert answer.status == 200
    assert await problem.count() == 0
    assert await p.locator("#open-title").count() == 1
    # the same name as a service page's address: the page says so and leads to the service
    await page.goto(f"{world.url}/services/shop/payments?lang=zh-CN")
    notice = p.locator("#kubectl-form")
    assert "这是 kubectl 的“命名空间/名称”写法" in await notice.inner_text()
    if viewport is PHONE:
        await page.assert_no_horizontal_scroll()
    await page.shot("pages", f"service-kubectl-form-{kind}")
    async with p.expect_navigation():
        await notice.locator("a").click()
    assert p.url.endswith("/services/payments.shop")
    assert await p.locator("h1").inner_text() == "payments.shop"
    assert await notice.count() == 0


async def test_a_swap_offer_that_ends_before_it_starts_comes_back_filled_in_on_a_phone(
    world: World, open_page: OpenPage
) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    start = (datetime.now(UTC) + timedelta(hours=3)).astimezone(zone)
    phone = await open_page(PHONE)
    p = phone.page
    phone.allow(
        rf"status of 400 \(Bad Request\) \({re.escape(world.url)}/oncall/sre/swaps\)"
    )  # the document's own
    await _sign_in(phone, world, OPERATOR_TOKEN, "/oncall")
    await p.fill("#o-start-sre", start.strftime("%Y-%m-%dT%H:%M"))
    await p.fill("#o-end-sre", (start - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    await p.fill("#o-note-sre", "dentist")
    async with p.expect_navigation() as navigation:
        await p.locator("form.swap-form button[type=submit]").click()
    answer = await navigation.value
    assert answer is not None
    assert answer.status == 400
    said = await p.locator("#form-problem").inner_text()
    assert "参数“end”：结束时间须晚于开始时间" in said, said
    assert await p.get_attribute("#o-end-sre", "aria-invalid") == "true"
    assert await p.input_value("#o-start-sre") == start.strftime("%Y-%m-%dT%H:%M")
    assert await p.input_value("#o-note-sre") == "dentist"
    assert await p.get_attribute("a.lang", "href") == "/oncall?schedule=sre&lang=en"
    await phone.assert_no_horizontal_scroll()
    await p.locator("#form-problem").scroll_into_view_if_needed()
    await phone.shot("pages", "oncall-swap-problem-phone", full_page=False)


async def test_a_tampered_or_expired_view_link_is_refused(world: World, open_page: OpenPage) -> None:
    link = await _page_incident(world)
    page = await open_page(PHONE)
    p = page.page
    page.allow(r"status of 40[01]|status of 410")
    base, _, token = link.partition("?view=")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    answer = await page.goto(f"{base}?view={forged}")
    assert answer.status == 401
    assert await p.locator("h1").inner_text() == "链接无效"
    assert await p.locator("#token").is_visible()  # the login form, to sign in instead
    assert "PaymentsDown" not in await p.content()

    expired = sign(SIGNING_KEY.encode(), Purpose.VIEW, "incident:1", datetime.now(UTC) - timedelta(seconds=1))
    answer = await page.goto(f"{base}?view={expired}")
    assert answer.status == 410
    assert await p.locator("h1").inner_text() == "链接已过期"
    assert "PaymentsDown" not in await p.content()
    await page.assert_no_horizontal_scroll()
    await page.shot("pages", "view-link-expired")

    other = sign(SIGNING_KEY.encode(), Purpose.VIEW, "incident:2", datetime.now(UTC) + timedelta(hours=1))
    assert (await page.goto(f"{base}?view={other}")).status == 401  # genuine, but for another incident
    ack = sign(SIGNING_KEY.encode(), Purpose.ACK, "1", datetime.now(UTC) + timedelta(hours=1))
    assert (await page.goto(f"{base}?view={ack}")).status == 401  # an ack link's token is no view link


async def test_the_oncall_page_swaps_a_shift_with_its_small_form(world: World, open_page: OpenPage) -> None:
    now = datetime.now(UTC)
    async with world.http() as client:
        window = {"from": now.isoformat(), "to": (now + timedelta(days=8)).isoformat()}
        shifts = (
            await client.get("/api/v1/schedules/sre/shifts", params=window, headers=bearer(VIEWER_TOKEN))
        ).json()
    current = shifts["shifts"][0]
    holder = current["user"]
    taker = "bob" if holder == "alice" else "alice"
    zone = ZoneInfo(shifts["timezone"])
    start = (now + timedelta(minutes=2)).astimezone(zone)
    end = min(now + timedelta(minutes=40), datetime.fromisoformat(current["end"])).astimezone(zone)

    phone = await open_page(PHONE)
    await _sign_in(phone, world, OPERATOR_TOKEN, "/oncall")
    p = phone.page
    assert p.url.endswith("/oncall")
    assert await p.locator("[data-oncall='sre']").inner_text() == holder
    await p.select_option("#o-user-sre", holder)
    await p.fill("#o-start-sre", start.strftime("%Y-%m-%dT%H:%M"))
    await p.fill("#o-end-sre", end.strftime("%Y-%m-%dT%H:%M"))
    await p.select_option("#o-taker-sre", taker)
    await p.fill("#o-note-sre", "dentist")
    await p.locator("form.swap-form button[type=submit]").click()
    await p.wait_for_load_state()
    assert "done=swapped" in p.url
    assert await p.locator("[role=status]").inner_text() == "已换班。"
    rows = await p.locator("table.shifts tbody tr").all_inner_texts()
    assert any(row.startswith(f"{taker} 代班") for row in rows), rows
    # the shifts are in the schedule's zone (Asia/Shanghai), and so says the footer (the
    # configured timezone is UTC); every other page keeps the configured zone
    assert await p.locator("[data-zone='Asia/Shanghai']").inner_text() == "时区 Asia/Shanghai (UTC+08:00)"
    assert await p.locator("[data-times-in]").inner_text() == "时间均为 Asia/Shanghai (UTC+08:00)"
    assert await one_line_times(phone) == []
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "oncall-phone")
    await phone.goto(f"{world.url}/oncall?schedule=sre&lang=en")
    assert await p.locator("[data-times-in]").inner_text() == "Times in Asia/Shanghai (UTC+08:00)"
    assert (await p.locator("[data-until]").inner_text()).startswith("until ")
    # the last of the two weeks' shifts runs past them: it shows its real end, not the cut
    async with world.http() as client:
        window = {"from": now.isoformat(), "to": (now + timedelta(days=28)).isoformat()}
        later = (
            await client.get("/api/v1/schedules/sre/shifts", params=window, headers=bearer(VIEWER_TOKEN))
        ).json()["shifts"]
    cut = now + timedelta(days=14)
    last = [s for s in later if datetime.fromisoformat(s["start"]) < cut][-1]
    real_end = datetime.fromisoformat(last["end"])
    assert real_end > cut
    last_row = p.locator("table.shifts tbody tr").last.locator("td")
    assert await last_row.nth(2).inner_text() == f"{real_end.astimezone(zone):%Y-%m-%d %H:%M}"
    assert await one_line_times(phone) == []
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "oncall-phone-en")
    desktop = await open_page(DESKTOP)
    await _sign_in(desktop, world, VIEWER_TOKEN, "/oncall?schedule=sre&lang=en")
    assert await one_line_times(desktop) == []
    await desktop.shot("pages", "oncall-desktop-en")
    await phone.goto(f"{world.url}/incidents")
    assert await p.locator("[data-times-in]").inner_text() == "Times in UTC"
    await phone.goto(f"{world.url}/incidents?lang=zh-CN")
    assert await p.locator("[data-times-in]").inner_text() == "时间均为 UTC"
    async with world.http() as client:
        swaps = (await client.get("/api/v1/schedules/sre/swaps", headers=bearer(VIEWER_TOKEN))).json()
    assert [(s["user"], s["taken_by"], s["status"]) for s in swaps] == [(holder, taker, "taken")]


async def test_a_berlin_schedule_over_the_night_the_clocks_go_forward_reads_well_on_a_phone(
    berlin_world: World, open_page: OpenPage
) -> None:
    """Europe/Berlin, a shift offered over the spring-forward night: the time at another offset
    than the zone's now carries it, the card says from when, the footer names Europe/Berlin."""
    world = berlin_world
    sunday = next_spring_forward(datetime.now(UTC))
    night = datetime(sunday.year, sunday.month, sunday.day, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    async with world.http() as client:
        window = {"from": night.isoformat(), "to": (night + timedelta(hours=6)).isoformat()}  # 00:00-07:00
        shifts = (
            await client.get("/api/v1/schedules/sre/shifts", params=window, headers=bearer(VIEWER_TOKEN))
        ).json()["shifts"]
        swap = {"user": shifts[0]["user"], "start": window["from"], "end": window["to"], "note": "wedding"}
        offered = await client.post("/api/v1/schedules/sre/swaps", json=swap, headers=bearer(OPERATOR_TOKEN))
    assert offered.status_code == 201, offered.text
    phone = await open_page(PHONE)
    await _sign_in(phone, world, VIEWER_TOKEN, "/oncall?schedule=sre")
    p = phone.page
    summer = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")).utcoffset() == timedelta(hours=2)
    offer = await p.locator(".swap-list li").first.inner_text()
    shown = f"{sunday} 00:00 +01:00 – {sunday} 07:00" if summer else f"{sunday} 00:00 – {sunday} 07:00 +02:00"
    assert offer.startswith(shown), offer  # the time at the other offset than now carries it
    assert f"{sunday} 03:00 起为 UTC+02:00" in await p.locator("[data-zone='Europe/Berlin']").inner_text()
    assert (await p.locator("[data-times-in]").inner_text()).startswith("时间均为 Europe/Berlin (UTC+0")
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "oncall-phone-dst")
    await phone.goto(f"{world.url}/oncall?schedule=sre&lang=en")
    assert f"UTC+02:00 from {sunday} 03:00" in await p.locator("[data-zone='Europe/Berlin']").inner_text()
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "oncall-phone-dst-en")


async def test_a_swap_notice_opens_the_oncall_page_on_a_phone_without_signing_in(
    noticed_world: World, open_page: OpenPage
) -> None:
    """A swap is agreed through the API; the robot's chat gets the notice, and its link opens the
    schedule's on-call page on a phone that holds no token: read-only, the swap in the shifts."""
    world = noticed_world
    now = datetime.now(UTC)
    async with world.http() as client:
        holder = (await client.get("/api/v1/schedules/sre/oncall", headers=bearer(VIEWER_TOKEN))).json()[
            "user"
        ]
        window = {"from": now.isoformat(), "to": (now + timedelta(days=8)).isoformat()}
        shifts = (
            await client.get("/api/v1/schedules/sre/shifts", params=window, headers=bearer(VIEWER_TOKEN))
        ).json()["shifts"]
        following = next(s for s in shifts if s["user"] != holder)  # the next shift: all of it ahead
        start = datetime.fromisoformat(following["start"]) + timedelta(hours=1)
        swap = {
            "user": following["user"],
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "taken_by": holder,
            "note": "dentist",
        }
        agreed = await client.post("/api/v1/schedules/sre/swaps", json=swap, headers=bearer(OPERATOR_TOKEN))
    assert agreed.status_code == 201, agreed.text

    async def swap_link() -> str | None:
        for message in world.robot.messages:
            text = message.json["markdown"]["text"]
            found = re.search(r"\((http://127\.0\.0\.1:\d+/oncall\?[^)\s]+)\)", text)
            if found is not None and "dentist" in text:
                return html.unescape(found.group(1))
        return None

    link = await _until(swap_link, "the swap notice in the robot's chat")
    assert "schedule=sre" in link
    assert "view=" in link

    phone = await open_page(PHONE)
    answer = await phone.goto(link)
    p = phone.page
    assert answer.status == 200
    assert await p.locator("h1#s-sre").inner_text() == "sre"
    assert await p.locator("[data-oncall='sre']").inner_text() == holder
    assert await p.locator(".readonly-bar").is_visible()  # read-only, and says until when
    assert await p.locator("form[action*='/swaps']").count() == 0  # a view link never offers or takes
    rows = await p.locator("table.shifts tbody tr").all_inner_texts()
    assert any(row.startswith(f"{holder} 代班") for row in rows), rows  # the swap, as an override
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "oncall-phone-view-link")
    # The link opens that page only: the same link on the incidents list asks to sign in.
    phone.allow(r"status of 401")
    refused = await phone.goto(link.replace("/oncall?", "/incidents?"))
    assert refused.status == 401


async def test_the_incidents_list_opened_by_a_digests_view_link_lists_and_opens_without_signing_in(
    world: World, open_page: OpenPage
) -> None:
    """The incidents list as a digest links it (the list's view scope, a period's filter): a phone
    with no token sees the incidents, read-only, and taps one open through the link the list gave
    it; the filter form keeps the view link."""
    await _page_incident(world)
    since = datetime.now(UTC).date() - timedelta(days=1)
    link = view_url(
        world.url,
        f"/incidents?from={since.isoformat()}",
        SIGNING_KEY.encode(),
        incidents_scope(),
        datetime.now(UTC) + timedelta(hours=1),
    )
    phone = await open_page(PHONE)
    p = phone.page
    answer = await phone.goto(link)
    assert answer.status == 200
    assert "/login" not in p.url
    assert "PaymentsDown" in await p.locator("span.title").first.inner_text()
    assert await p.locator("form input[name=view]").count() == 1  # filtering keeps the view link
    await phone.assert_no_horizontal_scroll()
    await phone.shot("pages", "incidents-phone-view-link")
    await p.locator("a[href*='/incidents/'][href*='view=']").first.click()
    await p.wait_for_load_state()
    assert re.search(r"/incidents/\d+\?view=", p.url), p.url
    assert "PaymentsDown" in await p.locator("h1").inner_text()
    assert await p.locator("form[action*='/ack']").count() == 0  # read-only: no acknowledging


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_shift_table_over_the_change_keeps_each_time_on_one_line_on_a_phone(
    world: World, open_page: OpenPage, locale: str
) -> None:
    """The week the clocks go forward (rendered at a fixed moment, in Panorama's stylesheet): on a
    phone each time keeps to one line and its offset goes below it; on a desktop beside it."""
    for viewport, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        page = await open_page(viewport)
        await page.goto(f"{world.url}/login")  # the page's origin: its stylesheet is Panorama's
        await page.page.set_content(dst_week_page(locale), wait_until="load")
        offsets = page.page.locator("table.shifts .offset")
        assert await offsets.count() == 3
        assert await one_line_times(page) == []
        display = await offsets.first.evaluate("e => getComputedStyle(e).display")
        assert display == ("block" if viewport == PHONE else "inline")
        await page.assert_no_horizontal_scroll()
        await page.shot("pages", f"oncall-{name}-dst-table-{locale}", full_page=False)


async def one_line_times(page: CheckedPage) -> list[str]:
    """The shift table's start and end times that take more than one line (none should)."""
    found: list[str] = await page.page.evaluate(
        """() => [...document.querySelectorAll('table.shifts tbody td + td:not([data-runs-on])')]
                   .filter(td => { const range = document.createRange();
                                   range.selectNodeContents(td.firstChild);
                                   const tops = [...range.getClientRects()].map(r => Math.round(r.top));
                                   return new Set(tops).size > 1; })
                   .map(td => td.textContent)"""
    )
    return found

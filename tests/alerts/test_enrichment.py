"""Actionable pages: a page for a service with failing requests carries its top error lines, its
slowest and failed traces and a dashboard link, fetched when the page is sent (never in the webhook),
and goes out on time without them when Elasticsearch or Jaeger do not answer."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from app import db
from app.alerts import delivery
from app.alerts.enrichment import Enricher
from app.alerts.runtime import AlertRuntime
from app.backends.registry import Backends
from tests.alerts.support import alert, alerting_config, outbox, payload
from tests.alerts.test_pipeline import post
from tests.correlation.support import (
    at,
    backend,
    cri_line,
    json_line,
    kubernetes,
    span,
    store_logs,
    store_trace,
)
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink, SlackSink
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer, settings_for
from tests.harness.processes import free_port

FAILED = "f0" * 16
SLOW = "5e" * 16
QUICK = "9a" * 16
PUBLIC = "https://panorama.example.com"
JAEGER_UI = "https://jaeger.example.com"
GRAFANA = "https://grafana.example.com"


def scene(es: FakeElasticsearch, jaeger: FakeJaeger) -> datetime:
    """checkout (namespace shop) failing for the last minutes: three kinds of error line (3, 2 and 1
    of them), info lines, another service's errors; a failed, a slow and a quick trace."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    store_logs(
        es,
        *(
            json_line(
                at(t0, 10_000 * n),
                "checkout",
                {"level": "ERROR"},
                text=f"order {8810 + n} timed out after {300 + n}ms",
            )
            for n in range(3)
        ),
        *(
            cri_line(
                at(t0, 40_000 + n), f"db connection to 10.0.0.{n + 3}:5432 refused", "checkout", level="error"
            )
            for n in range(2)
        ),
        cri_line(at(t0, 50_000), "panic: assignment to entry in nil map", "checkout", level="FATAL"),
        json_line(at(t0, 55_000), "checkout", {"level": "info", "msg": "order 8813 received"}),
        json_line(at(t0, 56_000), "payments", {"level": "error", "msg": "card declined 4411"}),
    )
    for trace_id, offset, duration, error in (
        (FAILED, 20_000, 480, True),
        (SLOW, 30_000, 2_300, False),
        (QUICK, 35_000, 12, False),
    ):
        front = trace_id[:16]
        store_trace(
            jaeger,
            span(trace_id, front, None, "checkout.shop", "POST /orders", at(t0, offset), duration),
            span(
                trace_id,
                "c" * 16,
                front,
                "payments.shop",
                "charge",
                at(t0, offset + 5),
                duration - 10,
                error=error,
            ),
        )
    return t0


def config(
    robot: Served[DingTalkSink],
    slack: Served[SlackSink],
    es_url: str,
    jaeger_url: str,
    *,
    enrich_timeout: str = "3s",
    locale: str = "zh-CN",
    route_enrich: bool = True,
) -> dict[str, Any]:
    found = alerting_config(enrich_timeout=enrich_timeout, locale=locale)
    found["channels"][0] = {
        "name": "ops-robot",
        "type": "dingtalk",
        "url": robot.url,
        "secret": DINGTALK_SECRET,
    }
    found["channels"].append({"name": "ops-slack", "type": "slack", "url": slack.url})
    found["escalations"][0]["steps"][0]["notify"]["channels"] = ["ops-robot", "ops-slack"]
    found["routes"][-1]["enrich"] = route_enrich
    found["elasticsearch"] = backend(es_url)
    found["jaeger"] = {**backend(jaeger_url), "ui_url": JAEGER_UI}
    found["grafana"] = {"url": GRAFANA}
    return found


def checkout_alert(t0: datetime) -> dict[str, Any]:
    return payload(
        "HighErrorRate", [alert("HighErrorRate", service="checkout", namespace="shop", started=t0)]
    )


def searches(es: FakeElasticsearch) -> list[Any]:
    return [r for r in es.requests if r.path.endswith("/_search")]


def runtime(app: Any) -> AlertRuntime:
    found: AlertRuntime = app.state.context.alerts
    return found


def dingtalk_text(robot: Served[DingTalkSink]) -> str:
    [message] = robot.sink.messages
    text: str = message.json["markdown"]["text"]
    return text


def slack_text(slack: Served[SlackSink]) -> str:
    [message] = slack.sink.messages
    return "\n".join(block.get("text", {}).get("text", "") for block in message.json["blocks"])


async def test_a_page_carries_the_services_error_lines_and_trace_links_that_open(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    database_url: str,
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = scene(es, jaeger)
    settings = config(dingtalk_robot, slack_robot, es_url, jaeger_url)
    async with app_factory(database_url=database_url, **settings) as (app, client):
        await post(client, checkout_alert(t0))
        stored = [json.loads(d.payload) for d in await outbox(app.state.context.sessions)]
        searched_at_intake = len(es.requests) + len(jaeger.requests)
        assert await runtime(app).run_once() == 2
        fetched = len(searches(es))
        text = dingtalk_text(dingtalk_robot)
        links = re.findall(r"\((https://panorama\.example\.com/traces/[0-9a-f]{32}\?view=[^)]+)\)", text)
        opened = [await client.get(urlsplit(link).path + "?" + urlsplit(link).query) for link in links]
        unsigned = await client.get(f"/traces/{FAILED}")
        service_link = re.search(
            r"\[服务概览\]\((https://panorama\.example\.com/services/checkout\.shop\?view=[^)]+)\)", text
        )
        assert service_link is not None, text
        service_page = await client.get(service_link.group(1).removeprefix(PUBLIC))
        kept = [json.loads(d.payload) for d in await outbox(app.state.context.sessions)]
    # Nothing was fetched in the webhook: the outbox held the bare page, context came at delivery.
    assert searched_at_intake == 0
    assert all(p["enrich"] and p["context"] is None for p in stored)
    # The top error lines grouped by message pattern, most frequent first, at most three.
    assert "#### 🔎 排查线索：checkout.shop" in text
    errors = re.findall(r"^- (\d+)× (.+)$", text, re.M)
    assert [(int(n), line.split()[0]) for n, line in errors] == [(3, "order"), (2, "db"), (1, "panic:")]
    assert "order 8812 timed out after 302ms" in text  # the newest line of its group
    assert "payments" not in "".join(line for _, line in errors)  # another service's error is not there
    # The failed and the slowest traces, each to Panorama's page and Jaeger's UI.
    assert [urlsplit(link).path for link in links] == [
        f"/traces/{FAILED}",
        f"/traces/{SLOW}",
        f"/traces/{QUICK}",
    ]
    assert f"[Jaeger]({JAEGER_UI}/trace/{FAILED})" in text
    assert "失败" in text
    assert f"]({GRAFANA}/d/panorama-service-history?" in text
    assert "var-service=checkout" in text
    # Following a trace link from the message opens the trace page without signing in.
    assert [r.status_code for r in opened] == [200, 200, 200]
    assert FAILED in opened[0].text
    assert unsigned.status_code != 200
    assert service_page.status_code == 200
    assert "checkout" in service_page.text
    # Slack shows the same context in its blocks, links in Slack's syntax.
    blocks = slack_text(slack_robot)
    assert "*🔎 排查线索：checkout.shop*" in blocks
    assert "3× order 8812 timed out after 302ms" in blocks
    assert f"<{PUBLIC}/traces/{FAILED}?view=" in blocks
    assert f"<{JAEGER_UI}/trace/{SLOW}|Jaeger>" in blocks
    # The page as sent is kept on the row (a retry would send it again without fetching).
    assert all([s["service"] for s in p["context"]["services"]] == ["checkout.shop"] for p in kept)
    # The two channels paged together shared one fetch.
    assert fetched == 1


@pytest.mark.timeout(60)
async def test_with_elasticsearch_hanging_the_page_goes_out_with_traces_and_says_logs_are_missing(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = scene(es, jaeger)
    es.hang(30)
    settings = config(dingtalk_robot, slack_robot, es_url, jaeger_url, enrich_timeout="500ms")
    async with app_factory(**settings) as (app, client):
        await post(client, checkout_alert(t0))
        assert await runtime(app).run_once() == 2
        rows = await outbox(app.state.context.sessions)
    text = dingtalk_text(dingtalk_robot)
    assert [r.status for r in rows] == ["delivered", "delivered"]
    assert "⚠️ 未附上：错误日志（Elasticsearch 超时）" in text
    assert not re.search(r"^- \d+× ", text, re.M)
    assert f"{PUBLIC}/traces/{FAILED}?view=" in text  # Jaeger answered: its part is there
    assert "⚠️ 未附上：错误日志（Elasticsearch 超时）" in slack_text(slack_robot)


async def test_with_both_backends_down_the_page_says_so_in_english(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = config(dingtalk_robot, slack_robot, closed, closed, enrich_timeout="2s", locale="en")
    async with app_factory(**settings) as (app, client):
        await post(client, checkout_alert(datetime.now(UTC) - timedelta(minutes=2)))
        assert await runtime(app).run_once() == 2
        rows = await outbox(app.state.context.sessions)
    text = dingtalk_text(dingtalk_robot)
    assert [r.status for r in rows] == ["delivered", "delivered"]
    assert "#### 🔎 Where to look: checkout.shop" in text
    assert "⚠️ Not included: error logs (Elasticsearch unreachable), traces (Jaeger unreachable)" in text
    assert f"[Grafana dashboard]({GRAFANA}/d/" in text
    assert "Sent by Panorama" in text


async def test_english_pages_name_their_parts_in_english(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = scene(es, jaeger)
    async with app_factory(**config(dingtalk_robot, slack_robot, es_url, jaeger_url, locale="en")) as (
        app,
        client,
    ):
        await post(client, checkout_alert(t0))
        await runtime(app).run_once()
    text = dingtalk_text(dingtalk_robot)
    assert "**Top error logs**" in text
    assert "**Slowest and failed traces**" in text
    assert "· failed" in text
    assert "[Service overview](https://panorama.example.com/services/checkout.shop?view=" in text
    assert "排查" not in text


async def test_a_route_can_switch_enrichment_off(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = scene(es, jaeger)
    settings = config(dingtalk_robot, slack_robot, es_url, jaeger_url, route_enrich=False)
    async with app_factory(**settings) as (app, client):
        await post(client, checkout_alert(t0))
        assert await runtime(app).run_once() == 2
        rows = await outbox(app.state.context.sessions)
    text = dingtalk_text(dingtalk_robot)
    assert [r.status for r in rows] == ["delivered", "delivered"]
    assert "HighErrorRate" in text
    assert "排查线索" not in text
    assert "/traces/" not in text
    assert es.requests == []  # nothing was asked for it
    assert jaeger.requests == []


async def test_a_retried_page_is_sent_again_as_it_was_without_fetching_again(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = scene(es, jaeger)
    dingtalk_robot.sink.fail_with(503, times=1)
    async with app_factory(**config(dingtalk_robot, slack_robot, es_url, jaeger_url)) as (app, client):
        await post(client, checkout_alert(t0))
        worker = runtime(app)
        await worker.run_once()
        first = {d.channel: d.status for d in await outbox(app.state.context.sessions)}
        fetched = len(searches(es)), len(jaeger.requests)
        await worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1))
        final = {d.channel: d.status for d in await outbox(app.state.context.sessions)}
    assert first == {"ops-robot": "pending", "ops-slack": "delivered"}
    assert final == {"ops-robot": "delivered", "ops-slack": "delivered"}
    assert (len(searches(es)), len(jaeger.requests)) == fetched
    assert fetched[0] == 1
    text = dingtalk_text(dingtalk_robot)
    assert "3× order 8812 timed out after 302ms" in text
    assert f"{PUBLIC}/traces/{FAILED}?view=" in text


async def test_a_claims_lease_counts_the_context_fetch_of_channels_that_show_it(sqlite_url: str) -> None:
    """A claim outlasts the fetch and the send, so another replica never sends the page meanwhile."""
    channels = [
        {"name": "robot", "type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t"},
        {"name": "hook", "type": "webhook", "url": "https://hooks.example.com/panorama"},
    ]
    settings = settings_for(sqlite_url, alerts={"enrich_timeout": "20s"}, channels=channels)
    engine = db.create_engine(settings.database)
    try:
        enricher = Enricher(Backends, db.create_session_factory(engine))
        robot, hook = settings.channels
        extra = delivery.context_limit_s(settings, robot, enricher)
        assert delivery.lease(robot, extra) - delivery.lease(robot) == timedelta(seconds=20.5)
        assert delivery.context_limit_s(settings, hook, enricher) == 0  # nothing is fetched for it
        assert delivery.context_limit_s(settings, robot, None) == 0
    finally:
        await engine.dispose()


def cascade(es: FakeElasticsearch, jaeger: FakeJaeger) -> tuple[datetime, dict[str, Any]]:
    """:func:`scene`, a ``checkout`` of namespace ``staging`` failing its own way, and one alert group
    across five services: payments named by two alerts, checkout (shop), checkout (staging), cart
    and shipping by one each."""
    t0 = scene(es, jaeger)
    store_logs(
        es,
        {
            **cri_line(at(t0, 45_000), "staging config missing key 7", "checkout", level="error"),
            "kubernetes": kubernetes("checkout", namespace="staging"),
        },
    )
    alerts = [
        alert("HighErrorRate", service="payments", namespace="shop", instance="a", started=t0),
        alert("HighErrorRate", service="payments", namespace="shop", instance="b", started=t0),
        alert("HighErrorRate", service="checkout", namespace="shop", started=t0),
        alert("HighErrorRate", service="checkout", namespace="staging", started=t0),
        alert("HighErrorRate", service="cart", namespace="shop", started=t0),
        alert("HighErrorRate", service="shipping", namespace="shop", started=t0),
    ]
    return t0, payload("HighErrorRate", alerts)


def sections(text: str) -> dict[str, str]:
    """The DingTalk text's context sections by service."""
    parts = re.split(r"^#### 🔎 [^：:]+[：:] ?(\S+)$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


async def test_a_group_across_services_carries_the_context_of_those_most_alerts_name_and_counts_the_rest(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
    database_url: str,
) -> None:
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    _, group = cascade(es, jaeger)
    settings = config(dingtalk_robot, slack_robot, es_url, jaeger_url)
    async with app_factory(database_url=database_url, **settings) as (app, client):
        await post(client, group)
        assert await runtime(app).run_once() == 2
        fetched = len(searches(es))
        text = dingtalk_text(dingtalk_robot)
        context = text[text.index("#### 🔎") :]
        links = re.findall(r"\]\((https?://[^)\s]+)\)", context)
        opened = {}
        for link in links:
            if link.startswith(PUBLIC):
                parts = urlsplit(link)
                opened[parts.path] = (await client.get(f"{parts.path}?{parts.query}")).status_code
        every = (await client.get("/api/v1/incidents/1/context", headers=bearer(VIEWER_TOKEN))).json()
    found = sections(text)
    # The incident's context page (the link for the services left out) has all five, each in its
    # own namespace, in the page's order.
    assert [(o["service"], o["namespace"]) for o in every["services"]] == [
        ("payments", "shop"),
        ("checkout", "shop"),
        ("checkout", "staging"),
        ("cart", "shop"),
        ("shipping", "shop"),
    ]
    staging = every["services"][2]["error_logs"]
    assert [line["message"] for line in staging] == ["staging config missing key 7"]
    # The three services most alerts name, each in its own namespace, in that order; the rest counted.
    assert list(found) == ["payments.shop", "checkout.shop", "checkout.staging"], text
    assert "1× level=error msg=card declined 4411" in found["payments.shop"]
    assert "3× order 8812 timed out after 302ms" in found["checkout.shop"]
    assert "staging config" not in found["checkout.shop"]  # same name, another namespace: apart
    assert "1× staging config missing key 7" in found["checkout.staging"]
    assert "order 8812" not in found["checkout.staging"]
    assert "var-service=checkout&var-namespace=staging" in found["checkout.staging"]
    assert "另有 2 个服务未展开：cart.shop，shipping.shop · [全部服务的排查线索](" in text
    # Every link of the context opens something real: Panorama's pages (signed view links), Jaeger's
    # trace UI and Grafana's dashboard by their configured addresses.
    assert all(link.startswith((PUBLIC, JAEGER_UI, GRAFANA)) for link in links), links
    assert {"/services/payments.shop", "/services/checkout.shop", "/services/checkout.staging"} <= set(opened)
    assert "/incidents/1/context" in opened
    assert set(opened.values()) == {200}, opened
    assert [urlsplit(link).path for link in links if link.startswith(JAEGER_UI)] == [
        f"/trace/{t}" for t in (FAILED, SLOW, QUICK)
    ] * 2  # payments' and checkout's spans share the three traces; staging has none
    # Slack: a section per service, then the count with its link.
    [sent] = slack_robot.sink.messages
    blocks = sent.json["blocks"]
    titles = [b["text"]["text"].splitlines()[0] for b in blocks if "🔎" in b.get("text", {}).get("text", "")]
    assert titles == [
        "*🔎 排查线索：payments.shop*",
        "*🔎 排查线索：checkout.shop*",
        "*🔎 排查线索：checkout.staging*",
    ]
    more = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert any(m.startswith("另有 2 个服务未展开：cart.shop，shipping.shop · <https://") for m in more), more
    # One search per service shown, shared by both channels.
    assert fetched == 3


@pytest.mark.timeout(60)
async def test_with_elasticsearch_hanging_every_service_goes_out_within_the_one_bound(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """The services are fetched side by side, so three hanging searches cost one bound, not three: each
    section says its logs timed out and still shows its traces, and the page is delivered."""
    (es, es_url), (jaeger, jaeger_url) = fake_elasticsearch, fake_jaeger
    _, group = cascade(es, jaeger)
    es.hang(30)
    settings = config(dingtalk_robot, slack_robot, es_url, jaeger_url, enrich_timeout="500ms", locale="en")
    async with app_factory(**settings) as (app, client):
        await post(client, group)
        assert await runtime(app).run_once() == 2
        rows = await outbox(app.state.context.sessions)
        hung = len(searches(es))
    text = dingtalk_text(dingtalk_robot)
    found = sections(text)
    assert [r.status for r in rows] == ["delivered", "delivered"]
    assert hung == 3  # each service asked, each search abandoned at the bound
    assert list(found) == ["payments.shop", "checkout.shop", "checkout.staging"]
    for service, section in found.items():
        assert "⚠️ Not included: error logs (Elasticsearch timed out)" in section, service
    assert f"{PUBLIC}/traces/{FAILED}?view=" in found["payments.shop"]
    assert "2 more services not shown: cart.shop, shipping.shop" in text


async def test_counts_read_from_a_full_sample_say_they_are_of_the_newest_lines(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    slack_robot: Served[SlackSink],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """300 timeouts, then a burst of 250 refused connections: the newest 200 lines are all the
    burst, and the page says its counts are of those, not of the window."""
    (es, es_url), (_, jaeger_url) = fake_elasticsearch, fake_jaeger
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    store_logs(
        es,
        *(cri_line(at(t0, 100 * n), f"order {n} timed out", "checkout", level="error") for n in range(300)),
        *(
            cri_line(
                at(t0, 60_000 + 10 * n),
                f"db connection to 10.0.0.{n % 200}:5432 refused",
                "checkout",
                level="error",
            )
            for n in range(250)
        ),
    )
    async with app_factory(**config(dingtalk_robot, slack_robot, es_url, jaeger_url)) as (app, client):
        await post(client, checkout_alert(t0))
        assert await runtime(app).run_once() == 2
    text = dingtalk_text(dingtalk_robot)
    assert "**高频错误日志（按最近 200 条统计）**" in text
    assert re.findall(r"^- (\d+)× (\S+)", text, re.M) == [("200", "db")]

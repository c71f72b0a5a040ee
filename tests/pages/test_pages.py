"""The pages over HTTP: who may see and do what, what each page shows, errors as pages."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.alerts import repository as alerts_repository
from app.web import auth
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.alerts.test_delivery import robot_config, runtime
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import DingTalkSink
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import history_from_noon

SAME_SITE = {"Sec-Fetch-Site": "same-origin"}
# No data in them (the wall screen's page is a shell; its data needs a token: tests/screen/).
PUBLIC_PAGES = {"/login", "/logout", "/static/{path:path}", "/ack/{token}", "/", "/screen"}


async def _incident(client: httpx.AsyncClient, name: str = "PaymentsDown", **labels: str) -> int:
    body = payload(name, [alert(name, started=None, service="payments", namespace="shop", **labels)])
    answer = await client.post(WEBHOOK, json=body, headers=bearer_webhook())
    await applied(client, answer)
    incident_id: int = await incident_of(client, answer)
    return incident_id


async def _view_link(app: FastAPI, scope: str, hours: float = 1) -> str:
    key = await app.state.context.alerts.signing_key()
    return auth.view_token(key, scope, datetime.now(UTC) + timedelta(hours=hours))


def _flat(routes: list[Any]) -> list[Any]:
    """Routes, with those of included routers (FastAPI keeps them in ``original_router``)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found.extend(_flat(included.routes) if included is not None else [route])
    return found


def _page_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every HTML route (not in the API document): (method, path)."""
    return [
        (method, route.path)
        for route in _flat(app.routes)
        if isinstance(route, APIRoute) and not route.include_in_schema
        for method in route.methods or ()
    ]


async def test_no_page_shows_anything_without_a_token_a_session_or_a_view_link(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        await _incident(client)
        checked = []
        for method, path in _page_routes(app):
            if path in PUBLIC_PAGES or path.startswith(("/docs", "/openapi", "/redoc")):
                continue
            url = re.sub(r"\{incident_id\}", "1", path)
            url = re.sub(r"\{action\}", "ack", url)
            url = re.sub(r"\{[^}]+\}", "4bf92f3577b34da6a3ce929d0e0e4736", url)
            answer = await client.request(method, url, headers=SAME_SITE)
            checked.append((method, path))
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "PaymentsDown" not in answer.text, path
            assert answer.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/incidents/1", headers=bearer("not-a-real-token-0000"))
        [stored] = (await client.get("/api/v1/incidents", headers=bearer(VIEWER_TOKEN))).json()["incidents"]
    assert {path for _, path in checked} >= {
        "/incidents",
        "/incidents/{incident_id}",
        "/incidents/{incident_id}/context",
        "/incidents/{incident_id}/{action}",
        "/traces/{trace_id}",
        "/services/{name:path}",
    }
    assert wrong.status_code == 401
    assert stored["status"] == "triggered"  # the refused POST changed nothing


async def test_a_view_link_opens_its_incident_read_only_and_nothing_else(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        first = await _incident(client)
        second = await _incident(client, "CheckoutSlow")
        view = await _view_link(app, auth.incident_scope(first))
        page = await client.get(f"/incidents/{first}?view={view}")
        context = await client.get(f"/incidents/{first}/context?fragment=1&view={view}")
        other = await client.get(f"/incidents/{second}?view={view}")
        listing = await client.get(f"/incidents?view={view}")
        acted = await client.post(f"/incidents/{first}/ack?view={view}", headers=SAME_SITE)
        service_link = await client.get(
            f"/services/payments?view={await _view_link(app, 'service:payments')}"
        )
        detail = (await client.get(f"/api/v1/incidents/{first}", headers=bearer(VIEWER_TOKEN))).json()
    assert page.status_code == 200
    assert "PaymentsDown" in page.text
    assert "只读链接" in page.text
    assert 'action="/incidents/1/ack"' not in page.text  # no buttons for a view link
    assert "/login?next=" in page.text  # but a way to sign in and act
    # links the page makes for this reader carry a view link for their own scope, never the incident's
    context_href = re.search(r'href="(/incidents/1/context\?view=[^"]+)"', page.text)
    assert context_href is not None
    service_href = re.search(r'href="/services/payments\?view=([^"]+)"', page.text)
    assert service_href is not None
    assert service_href.group(1) != view
    assert context.status_code == 200
    assert other.status_code == 401
    assert "CheckoutSlow" not in other.text
    assert listing.status_code == 401
    assert acted.status_code == 401
    assert detail["status"] == "triggered"
    assert service_link.status_code == 200


async def test_every_link_of_a_service_page_opened_by_a_view_link_opens_without_signing_in(
    app_factory: AppFactory,
) -> None:
    """A service page opened through its view link (a digest's) links its open and recent
    incidents, the service's incident list and the schedules on call for it: each link carries a
    view link of its own scope, and each opens read-only, none sends the reader to sign in. The
    page of every schedule, which that scope does not open, is offered to signed-in readers only."""
    async with app_factory(**alerting_config()) as (app, client):
        opened = await _incident(client)
        resolved = await _incident(client, "PaymentsSlow")
        done = await client.post(f"/api/v1/incidents/{resolved}/resolve", headers=bearer(OPERATOR_TOKEN))
        view = await _view_link(app, "service:payments.shop")
        page = await client.get(f"/services/payments.shop?view={view}")
        main = page.text[page.text.index("<main") : page.text.index("</main>")]  # not the shell's nav
        links = sorted(
            {
                html.unescape(href)
                for href in re.findall(r'href="(/[^"]*)"', main)
                if not href.startswith(("/static/", "/login", "/services/payments.shop?"))
            }
        )
        answers = {link: await client.get(link) for link in links}
        signed_in = await client.get("/services/payments.shop", headers=bearer(VIEWER_TOKEN))
    assert done.status_code == 200, done.text
    assert page.status_code == 200
    assert {link.split("?")[0] for link in links} >= {
        f"/incidents/{opened}",
        f"/incidents/{resolved}",
        "/incidents",
        "/oncall",  # the schedule on call for the service: ?schedule=sre
    }
    assert all("view=" in link for link in links), links
    assert {link: answer.status_code for link, answer in answers.items()} == dict.fromkeys(links, 200)
    assert 'class="button" href="/oncall"' not in page.text
    assert 'class="button" href="/oncall"' in signed_in.text


async def test_acting_from_the_page_needs_an_operator_and_changes_state_and_timeline(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        incident = await _incident(client)
        as_viewer = await client.post(
            f"/incidents/{incident}/ack", headers={**bearer(VIEWER_TOKEN), **SAME_SITE}
        )
        operator = {**bearer(OPERATOR_TOKEN), **SAME_SITE}
        cross_site = await client.post(
            f"/incidents/{incident}/ack", headers={**bearer(OPERATOR_TOKEN), "Sec-Fetch-Site": "cross-site"}
        )
        acked = await client.post(f"/incidents/{incident}/ack", headers=operator)
        bad_snooze = await client.post(
            f"/incidents/{incident}/snooze", data={"minutes": "7"}, headers=operator
        )
        snoozed = await client.post(f"/incidents/{incident}/snooze", data={"minutes": "30"}, headers=operator)
        resolved = await client.post(f"/incidents/{incident}/resolve", headers=operator)
        after = await client.post(f"/incidents/{incident}/ack", headers=operator)
        page = await client.get(f"/incidents/{incident}?done=resolve", headers=operator)
        unknown = await client.post(f"/incidents/{incident}/delete", headers=operator)
        detail = (await client.get(f"/api/v1/incidents/{incident}", headers=bearer(VIEWER_TOKEN))).json()
    assert as_viewer.status_code == 403
    assert "operator" in as_viewer.text
    assert cross_site.status_code == 403
    assert acked.status_code == 303
    assert acked.headers["location"] == f"/incidents/{incident}?done=ack"
    assert bad_snooze.status_code == 400
    assert snoozed.headers["location"] == f"/incidents/{incident}?done=snooze"
    assert resolved.headers["location"] == f"/incidents/{incident}?done=resolve"
    assert after.headers["location"] == f"/incidents/{incident}?done=closed"
    assert "已标记为恢复" in page.text
    assert 'class="action-bar"' not in page.text  # nothing left to do
    assert unknown.status_code == 400
    kinds = [(e["kind"], e["actor"]) for e in detail["timeline"]]
    assert kinds[-3:] == [
        ("acknowledged", "operator-test"),
        ("snoozed", "operator-test"),
        ("resolved", "operator-test"),
    ]
    timeline = re.findall(r'data-kind="(\w+)"', page.text)
    assert timeline[-3:] == ["acknowledged", "snoozed", "resolved"]


async def test_the_incident_page_shows_alerts_timeline_on_call_and_links(app_factory: AppFactory) -> None:
    config: dict[str, Any] = alerting_config(locale="en")
    async with app_factory(**config, grafana={"url": "https://grafana.example.com/"}) as (_app, client):
        incident = await _incident(client, pod="payments-1")
        page = await client.get(f"/incidents/{incident}?lang=en", headers=bearer(OPERATOR_TOKEN))
    text = page.text
    assert page.status_code == 200
    assert "PaymentsDown on payments" in text  # the alert's summary
    assert "pod</b>=payments-1" in text
    assert re.findall(r'data-kind="(\w+)"', text) == ["received", "routed", "escalated"]
    assert "Step 1: paging" in text
    assert re.search(r'class="who">(alice|bob)<', text)
    assert 'href="https://grafana.example.com/d/panorama-overview?from=' in text
    assert "var-namespace=shop&amp;var-service=payments" in text
    silence = re.search(r'href="(http://alertmanager:9093/#/silences/new\?filter=[^"]+)"', text)
    assert silence is not None
    assert "%7Balertname%3D%22PaymentsDown%22%2Cnamespace%3D%22shop%22" in silence.group(1)
    assert 'action="/incidents/1/ack"' in text
    assert 'data-fragment="/incidents/1/context?fragment=1"' in text


async def test_the_incidents_list_shows_open_ones_first_then_pages_through_the_rest(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        for n in range(28):
            name = f"Flapping{n:02d}"
            await _incident(client, name)
            body = payload(name, [alert(name, status="resolved", service="payments", namespace="shop")])
            await applied(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        await _incident(client, "StillDown")
        auth_header = bearer(VIEWER_TOKEN)  # the polls above spent their own token's rate limit
        first = await client.get("/incidents", headers=auth_header)
        cursor = re.search(r'href="(/incidents\?before=[^"]+)" rel|rel="next" href="([^"]+)"', first.text)
        assert cursor is not None
        older = await client.get(
            (cursor.group(1) or cursor.group(2)).replace("&amp;", "&"), headers=auth_header
        )
        resolved = await client.get("/incidents?status=resolved&service=payments", headers=auth_header)
        nothing = await client.get("/incidents?service=cart", headers=auth_header)
        recent = await client.get("/incidents?from=now-1h", headers=auth_header)
        bad = await client.get("/incidents?from=yesterday", headers=auth_header)
    titles = re.findall(r'<span class="title break">([^<]+)</span>', first.text)
    assert titles[0] == "StillDown"  # the open one, first
    assert titles[1:] == [f"Flapping{n:02d}" for n in range(27, 2, -1)]  # then 25 resolved, newest first
    older_titles = re.findall(r'<span class="title break">([^<]+)</span>', older.text)
    assert older_titles == ["Flapping02", "Flapping01", "Flapping00"]
    assert 'rel="next"' not in older.text
    assert len(re.findall(r'class="title break"', resolved.text)) == 25
    assert "StillDown" not in resolved.text
    assert "没有符合条件的事件" in nothing.text
    assert len(re.findall(r'class="title break"', recent.text)) == 26
    assert bad.status_code == 400
    assert "from" in bad.text


async def test_errors_are_answered_as_pages_in_the_readers_language(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        missing = await client.get("/incidents/42?lang=en", headers=bearer(VIEWER_TOKEN))
        malformed = await client.get("/traces/not-a-trace-id", headers=bearer(VIEWER_TOKEN))
        malformed_anonymous = await client.get("/traces/not-a-trace-id")
        no_backends = await client.get(
            "/traces/4bf92f3577b34da6a3ce929d0e0e4736", headers=bearer(VIEWER_TOKEN)
        )
        service = await client.get("/services/payments?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
    assert missing.status_code == 404
    assert "<h1>Not found</h1>" in missing.text
    assert "no incident 42" in missing.text
    assert malformed.status_code == 400
    assert "traceparent" in malformed.text  # the message lists the accepted forms
    assert malformed_anonymous.status_code == 401  # only a signed-in reader learns more
    assert no_backends.status_code == 503
    assert "not configured" in no_backends.text
    assert service.status_code == 200  # every part says what is missing, the page still opens
    assert "请求指标：未配置 Prometheus（请设置 prometheus.url" in service.text
    assert "还没有这个服务的每日汇总" in service.text


async def test_what_the_context_misses_is_said_with_each_languages_colon(app_factory: AppFactory) -> None:
    """No backend configured (a first `make run`): each part of the context says what it misses."""
    async with app_factory(**alerting_config()) as (_app, client):
        incident = await _incident(client)
        chinese = await client.get(f"/incidents/{incident}/context?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get(f"/incidents/{incident}/context?lang=en", headers=bearer(VIEWER_TOKEN))
    assert chinese.status_code == english.status_code == 200
    assert (
        "请求指标：未配置 Prometheus（请设置 prometheus.url 或环境变量 PANORAMA_PROMETHEUS_URL）"
        in chinese.text
    )
    assert "错误日志：未配置 Elasticsearch（请设置 elasticsearch.url" in chinese.text
    assert "链路：未配置 Jaeger（" in chinese.text
    assert "not configured" not in chinese.text  # the API's English stays in the API
    assert "暂时" not in chinese.text  # not configured is no failure: nothing to wait for
    assert "temporarily" not in english.text
    assert "Traces: Jaeger is not configured (set jaeger.url or PANORAMA_JAEGER_URL)" in english.text
    assert "Request figures: Prometheus is not configured (set prometheus.url" in english.text


async def test_a_note_after_a_time_is_in_each_languages_brackets(app_factory: AppFactory) -> None:
    """How long ago, how long it lasted: full-width brackets in Chinese, as the alerts' "开始（…前）"
    beside them, never "08:00:00 (5 秒前)"; " (… ago)" in English."""
    async with app_factory(**alerting_config()) as (_app, client):
        incident = await _incident(client)
        resolved = await client.post(f"/api/v1/incidents/{incident}/resolve", headers=bearer(OPERATOR_TOKEN))
        pages = {
            (path, lang): (await client.get(f"{path}?lang={lang}", headers=bearer(VIEWER_TOKEN))).text
            for path in (f"/incidents/{incident}", "/incidents")
            for lang in ("zh-CN", "en")
        }
    assert resolved.status_code == 200
    chinese, english = pages[(f"/incidents/{incident}", "zh-CN")], pages[(f"/incidents/{incident}", "en")]
    started = r'\d{2}:\d{2}:\d{2}<span class="muted">'
    assert re.search(started + r"（[^（）<]+前）</span>", chinese), chinese
    assert re.search(started + r"（持续 [^（）<]+）</span>", chinese), chinese
    assert re.search(started + r" \([^()<]+ ago\)</span>", english), english
    assert re.search(started + r" \(lasted [^()<]+\)</span>", english), english
    assert re.search(r"\d{2}:\d{2}（[^（）<]+前）", pages[("/incidents", "zh-CN")])
    assert re.search(r"\d{2}:\d{2} \([^()<]+ ago\)", pages[("/incidents", "en")])
    assert not re.search(r" \([^()<]*前\)", chinese + pages[("/incidents", "zh-CN")])


async def test_the_context_lists_no_part_whose_backend_failed_as_empty(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """A part whose backend failed says so in its note and nothing else: no "0", no "None", no
    "No error lines." under it, which would say the service had none. A part whose backend
    answered with nothing still says "None" and "No error lines."."""
    async with app_factory(**alerting_config()) as (_app, client):
        incident = await _incident(client)
        unconfigured = {
            lang: await client.get(f"/incidents/{incident}/context?lang={lang}", headers=bearer(VIEWER_TOKEN))
            for lang in ("en", "zh-CN")
        }
    backends = {"elasticsearch": backend(fake_elasticsearch[1]), "jaeger": backend(fake_jaeger[1])}
    async with app_factory(**alerting_config(), **backends) as (_app, client):
        incident = await _incident(client)
        answered = await client.get(f"/incidents/{incident}/context?lang=en", headers=bearer(VIEWER_TOKEN))

    english, chinese = unconfigured["en"], unconfigured["zh-CN"]
    assert english.status_code == chinese.status_code == answered.status_code == 200
    assert "Error logs: Elasticsearch is not configured" in english.text
    assert "Traces: Jaeger is not configured" in english.text
    for said in ("No error lines.", "<h3>Error logs", "Failed traces", "Slowest traces", ">None<"):
        assert said not in english.text, said
    for said in ("没有错误日志", "<h3>错误日志", "失败的链路", "最慢的链路", ">无<"):
        assert said not in chinese.text, said
    # Elasticsearch and Jaeger answered, with nothing: that is said
    assert "Elasticsearch is not configured" not in answered.text
    assert "Jaeger is not configured" not in answered.text
    assert "No error lines." in answered.text
    assert answered.text.count(">None<") == 2  # no failed traces, no slow ones
    assert "Request figures: Prometheus is not configured" in answered.text


async def test_the_oncall_page_starts_with_the_shift_under_way_at_its_real_start(
    app_factory: AppFactory,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    async with app_factory(**alerting_config()) as (_app, client):
        created = await client.post(
            "/api/v1/schedules/sre/overrides",
            json={"user": "bob", "start": start.isoformat(), "end": (start + timedelta(hours=6)).isoformat()},
            headers=bearer(OPERATOR_TOKEN),
        )
        page = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
        chinese = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
    assert created.status_code == 201, created.text
    assert page.status_code == 200
    # the calendar line in each language's punctuation (a full-width colon in Chinese)
    assert "Subscribe in a calendar: GET /api/v1/schedules/sre/calendar" in page.text
    assert "订阅日历：用 GET /api/v1/schedules/sre/calendar" in chinese.text
    rows = re.findall(r"<tr><td>(\w+).*?</td><td>([^<]+)</td><td>([^<]+)</td></tr>", page.text)
    local = start.astimezone(ZoneInfo("Asia/Shanghai"))
    end = local + timedelta(hours=6)
    assert rows[0] == ("bob", local.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M"))  # not "now"


async def test_the_oncall_page_without_schedules_says_so_instead_of_being_blank(
    app_factory: AppFactory,
) -> None:
    """A first `make run` has no schedules: the page says where to configure them."""
    async with app_factory() as (_app, client):
        chinese = await client.get("/oncall", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?lang=en", headers=bearer(VIEWER_TOKEN))
    assert chinese.status_code == english.status_code == 200
    assert "还没有配置值班表" in chinese.text
    assert "No schedules are configured" in english.text
    assert "<h1" in english.text  # a heading, as every page has


async def test_the_ack_link_page_is_on_the_shell_and_links_to_the_incident(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        await _incident(client)
        context = app.state.context
        async with context.sessions() as session:
            from app.alerts.models import Delivery

            delivery = await session.get(Delivery, 1)
            assert delivery is not None
        ack_path = re.search(r"/ack/[A-Za-z0-9._-]+", delivery.payload)
        assert ack_path is not None
        page = await client.get(ack_path.group(0))
        done = await client.post(ack_path.group(0))
        view = re.search(r'href="(/incidents/1\?view=[^"]+)"', done.text)
        assert view is not None
        opened = await client.get(view.group(1))
        english = await client.get(view.group(1) + "&lang=en")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert 'href="/static/web/panorama.css?v=' in page.text
    assert "确认此告警" in page.text
    assert "已确认，升级已停止" in done.text
    assert opened.status_code == 200
    assert "已确认" in opened.text
    # a group's link names nobody: the pages say so in their words, never the stored "ack link"
    assert "确认人：确认链接" in done.text
    assert "确认链接 确认了事件" in opened.text
    assert "Acknowledged by the ack link" in english.text
    assert "ack link" not in done.text + opened.text


async def test_why_an_incident_pages_nobody_is_said_in_the_pages_language(app_factory: AppFactory) -> None:
    """The stored reasons (English, as the API answers them) read in the page's words, times local."""
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    window = {"matchers": ['alertname="DiskFull"'], "start": datetime.now(UTC).isoformat(),
              "end": until.isoformat(), "comment": "db upgrade"}  # fmt: skip
    async with app_factory(**alerting_config()) as (app, client):
        zone = app.state.context.settings.tzinfo
        made = await client.post("/api/v1/maintenance", json=window, headers=bearer(OPERATOR_TOKEN))
        assert made.status_code == 201
        maintained = await _incident(client, "DiskFull")
        page = await client.get(f"/incidents/{maintained}", headers=bearer(VIEWER_TOKEN))
        english = await client.get(f"/incidents/{maintained}?lang=en", headers=bearer(VIEWER_TOKEN))
    async with app_factory() as (_app, client):  # no routes at all: a first `make run`
        body = payload("PaymentsDown", [alert("PaymentsDown", started=None, service="payments")])
        answer = await client.post(WEBHOOK, json=body, headers=bearer(OPERATOR_TOKEN))
        unrouted = await client.get(
            f"/incidents/{await incident_of(client, answer)}", headers=bearer(VIEWER_TOKEN)
        )
    local = until.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    assert f"维护窗口中，至 {local}：db upgrade" in page.text
    assert f"maintenance until {local}: db upgrade" in english.text
    assert "没有配置通知任何人的路由" in unrouted.text
    assert "no route pages anybody" not in unrouted.text
    assert until.isoformat() not in page.text + english.text


async def test_a_storm_of_alerts_stays_readable_on_the_incident_page(app_factory: AppFactory) -> None:
    alerts = [alert("NodeDown", started=None, instance=f"node-{n:03d}") for n in range(60)]
    async with app_factory(**alerting_config()) as (_app, client):
        answer = await client.post(WEBHOOK, json=payload("NodeDown", alerts), headers=bearer_webhook())
        await applied(client, answer)
        page = await client.get(
            f"/incidents/{(await incident_of(client, answer))}", headers=bearer(VIEWER_TOKEN)
        )
    assert page.status_code == 200
    assert len(re.findall(r"<b>instance</b>=node-", page.text)) == 50
    assert "另有 10 条告警未列出" in page.text


async def test_the_service_page_names_its_partial_days(
    app_factory: AppFactory, prometheus_factory: Callable[..., RunningPrometheus], tmp_path: Path
) -> None:
    """A day Prometheus's retention cut is stored ``partial``; the trend says which, in both languages."""
    dataset, cut, full = history_from_noon(tmp_path / "data")
    own = prometheus_factory(dataset.files)
    period = {"from": cut.isoformat(), "to": full.isoformat(), "wait": True}
    async with app_factory(prometheus={"url": own.url}, timezone="UTC") as (_app, client):
        ran = await client.post("/api/v1/rollups/run", json=period, headers=bearer(OPERATOR_TOKEN))
        english = await client.get("/services/checkout.shop?lang=en", headers=bearer(VIEWER_TOKEN))
        chinese = await client.get("/services/checkout?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
    assert [r["status"] for r in ran.json()["runs"]] == ["partial", "ok"]
    assert english.status_code == chinese.status_code == 200
    assert f"Partial days (Prometheus&#39;s retention covered only part of them): {cut}" in english.text
    assert f"<dt>{cut} (partial)</dt>" in english.text
    assert f"<dt>{full}</dt>" in english.text
    assert f"这些天的数据不全（Prometheus 的保留期只覆盖了一部分）：{cut}" in chinese.text
    assert f"<dt>{cut}（数据不全）</dt>" in chinese.text


async def test_the_service_page_of_a_name_holding_a_slash_opens_from_its_incidents_link(
    app_factory: AppFactory,
) -> None:
    """Alerts may call a service `frontend/api`: the incident page links `/services/frontend/api`,
    which opens that service's page listing the incident (it was "no page at this address"), as
    the link with the slash encoded does."""
    async with app_factory(**alerting_config(locale="en")) as (_app, client):
        body = payload("ApiDown", [alert("ApiDown", started=None, service="frontend/api")])
        incident = await incident_of(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        viewer = bearer(VIEWER_TOKEN)
        incident_page = await client.get(f"/incidents/{incident}?lang=en", headers=viewer)
        linked = re.search(r'href="(/services/[^"?]+)[?"]', incident_page.text)
        assert linked is not None, incident_page.text
        opened = await client.get(f"{linked.group(1)}?lang=en", headers=viewer)
        encoded = await client.get("/services/frontend%2Fapi?lang=en", headers=viewer)
    assert linked.group(1) == "/services/frontend/api"
    for page in (opened, encoded):
        assert page.status_code == 200
        assert '<h1 class="break">frontend/api</h1>' in page.text
        assert f'href="/incidents/{incident}"' in page.text
        assert 'id="kubectl-form"' not in page.text  # a service Panorama knows, whatever its spelling


async def test_a_service_written_as_kubectl_writes_it_leads_to_the_service(app_factory: AppFactory) -> None:
    """``/services/shop/payments`` (kubectl's namespace/name), a name Panorama knows nothing
    under: the page says so, in the reader's language, and links ``payments.shop``, which opens."""
    async with app_factory(**alerting_config()) as (_app, client):
        viewer = bearer(VIEWER_TOKEN)
        english = await client.get("/services/shop/payments?lang=en", headers=viewer)
        chinese = await client.get("/services/shop/payments?lang=zh-CN", headers=viewer)
        linked = re.search(r'id="kubectl-form">[^<]*<a href="([^"]+)">payments\.shop</a>', english.text)
        assert linked is not None, english.text
        spelled = await client.get(linked.group(1), headers=viewer)
        plain = await client.get("/services/payments.shop?lang=en", headers=viewer)
    assert english.status_code == chinese.status_code == 200
    assert "Panorama knows no service called &#39;shop/payments&#39;. That is kubectl&#39;s" in english.text
    assert "这是 kubectl 的“命名空间/名称”写法" in chinese.text
    assert linked.group(1) == "/services/payments.shop"
    assert spelled.status_code == plain.status_code == 200
    assert '<h1 class="break">payments.shop</h1>' in spelled.text
    assert 'id="kubectl-form"' not in plain.text


async def test_a_service_with_an_odd_stored_name_shows_its_open_incidents_where_panorama_links_it(
    app_factory: AppFactory,
    database_url: str,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Alerts name services as they like (``service=My App``, an external host ``api.Example.com``):
    the incident page links such a service by its stored name, digests and chat messages by its key
    (``api.Example``) or in its alerts' namespace (``My App.shop``); every one of those opens a
    service page that lists the open incident, and the API's ``?service=`` finds it. A name no
    incident holds is still read strictly (400 naming the parameter)."""
    backends = {"elasticsearch": backend(fake_elasticsearch[1]), "jaeger": backend(fake_jaeger[1])}
    config = alerting_config(locale="en")
    async with app_factory(database_url=database_url, **config, **backends) as (_app, client):
        ids = {}
        for name, labels in [
            ("MyAppDown", {"service": "My App", "namespace": "shop"}),
            ("ExternalSlow", {"service": "api.Example.com"}),
        ]:
            body = payload(name, [alert(name, started=None, **labels)])
            ids[name] = await incident_of(
                client, await client.post(WEBHOOK, json=body, headers=bearer_webhook())
            )
        viewer = bearer(VIEWER_TOKEN)
        incident_page = await client.get(f"/incidents/{ids['MyAppDown']}?lang=en", headers=viewer)
        linked = re.search(r'href="(/services/My%20App)[?"]', incident_page.text)
        pages = {
            shown: await client.get(f"/services/{quote(shown, safe='')}?lang=en", headers=viewer)
            for shown in ("My App", "My App.shop", "api.Example.com", "api.Example")
        }
        listed = {
            shown: await client.get("/api/v1/incidents", params={"service": shown}, headers=viewer)
            for shown in ("My App", "My App.shop", "My App.other", "api.Example.com", "api.Example")
        }
        malformed = await client.get("/api/v1/incidents", params={"service": "Your App"}, headers=viewer)
        incidents_page = await client.get("/incidents?service=My%20App.shop&lang=en", headers=viewer)
    assert linked is not None
    for shown, page in pages.items():
        expected = ids["ExternalSlow"] if shown.startswith("api.") else ids["MyAppDown"]
        other = ids["MyAppDown"] if shown.startswith("api.") else ids["ExternalSlow"]
        assert page.status_code == 200, shown
        assert f'href="/incidents/{expected}"' in page.text, shown
        assert f'href="/incidents/{other}"' not in page.text, shown
        assert "Open incidents" in page.text
    found = {shown: [i["id"] for i in answer.json()["incidents"]] for shown, answer in listed.items()}
    assert found == {
        "My App": [ids["MyAppDown"]],
        "My App.shop": [ids["MyAppDown"]],
        "My App.other": [],  # its alert says namespace shop
        "api.Example.com": [ids["ExternalSlow"]],
        "api.Example": [ids["ExternalSlow"]],
    }
    assert re.findall(r'<span class="title break">([^<]+)</span>', incidents_page.text) == ["MyAppDown"]
    assert malformed.status_code == 400
    assert (
        malformed.json()["message"]
        == "query parameter 'service': 'Your App' holds a space or a control character"
    )


async def test_why_a_delivery_failed_is_said_in_the_pages_language_with_the_robots_words_as_they_came(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    """A robot that refuses a page with its errcode, answers HTTP 503, then is gone: the incident
    pages say each failure in zh-CN (by default) or English, with what the robot (or the network
    stack) said verbatim and marked as theirs; the API keeps its English ``error`` and ``reason``.
    An entry recorded before failures were kept as data shows its English text as it is."""
    robot = dingtalk_robot.sink
    async with app_factory(**robot_config(dingtalk_robot)) as (app, client):
        worker = runtime(app)
        robot.fail_with_code(310000, "keywords not in content", times=1)
        refused = await _incident(client, "KeywordMissing")
        await worker.run_once()
        robot.fail_with(503, times=1)
        unavailable = await _incident(client, "RobotBusy")
        await worker.run_once()
        robot.stop()
        unreachable = await _incident(client, "RobotGone")
        await worker.run_once()
        async with app.state.context.sessions.begin() as session:
            legacy = {"channel": "ops-robot", "kind": "trigger", "attempt": 7, "error": "dingtalk: old words"}
            alerts_repository.add_timeline(session, unreachable, datetime.now(UTC), "delivery_failed", legacy)
        pages = {
            (incident, lang): (
                await client.get(f"/incidents/{incident}{lang}", headers=bearer(VIEWER_TOKEN))
            ).text
            for lang in ("", "?lang=en")  # the default first: ?lang= is remembered in a cookie
            for incident in (refused, unavailable, unreachable)
        }
        api = (await client.get(f"/api/v1/incidents/{refused}", headers=bearer(VIEWER_TOKEN))).json()

    def details(page: str, kind: str) -> list[str]:
        found = re.findall(
            rf'data-kind="{kind}">.*?<span class="detail break">(.*?)</span>\s*</li>', page, re.S
        )
        return [html.unescape(re.sub(r"<[^>]+>", "", d)) for d in found]

    [dead_zh] = details(pages[refused, ""], "dead_lettered")
    [dead_en] = details(pages[refused, "?lang=en"], "dead_lettered")
    assert (
        dead_zh == "重试也无法成功，共尝试 1 次 · 对方拒绝了消息，错误码 310000"
        "（安全校验未通过：签名、时间戳（请检查时钟）、关键词或 IP 白名单） · 原文：keywords not in content"
    )
    assert (
        dead_en
        == "not retryable, after 1 attempt · refused with code 310000 (security check failed: signature, "
        "timestamp (check the clock), keyword or IP allow-list) · in its words: keywords not in content"
    )
    assert "<q>keywords not in content</q>" in pages[refused, ""]  # the robot's words, quoted as theirs
    [busy_zh] = details(pages[unavailable, ""], "delivery_failed")
    [busy_en] = details(pages[unavailable, "?lang=en"], "delivery_failed")
    assert re.fullmatch(
        r"对方应答 HTTP 503 · 原文：<html><body><h1>503</h1></body></html> · [\d.]+ 秒后重试", busy_zh
    )
    assert re.fullmatch(
        r"answered HTTP 503 · in its words: <html><body><h1>503</h1></body></html> · retry in [\d.]+ s",
        busy_en,
    )
    gone_zh = details(pages[unreachable, ""], "delivery_failed")
    gone_en = details(pages[unreachable, "?lang=en"], "delivery_failed")
    assert re.fullmatch(
        r"网络错误，未能连接 · 原文：All connection attempts failed · [\d.]+ 秒后重试", gone_zh[0]
    )
    assert re.fullmatch(
        r"network error · in its words: All connection attempts failed · retry in [\d.]+ s", gone_en[0]
    )
    assert gone_zh[1] == gone_en[1] == "dingtalk: old words"  # recorded before: as it is
    for incident in (refused, unavailable, unreachable):  # no English word of Panorama's on the zh page
        zh = re.sub(r"<q>.*?</q>", "", pages[incident, ""])  # (the robot's words are theirs)
        for english in ("network error", "not retryable", "answered HTTP", "refused with code", "errcode",
                        "gave up", "in its words", "retry in", "attempt"):  # fmt: skip
            assert english not in zh, (incident, english)
    [dead] = [e for e in api["timeline"] if e["kind"] == "dead_lettered"]
    assert dead["detail"]["reason"] == "not retryable"  # the API keeps its English
    assert dead["detail"]["error"].startswith("dingtalk errcode 310000 (security check failed")
    assert dead["detail"]["failure"] == {
        "kind": "refused",
        "code": 310000,
        "robot": "dingtalk",
        "said": "keywords not in content",
    }

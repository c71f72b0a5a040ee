"""The digest routes over the real app: see a day's digest, send it once (200 with
``already_sent`` the second time), force a resend, and the DingTalk robot receiving it."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.alerts.models import Delivery
from app.alerts.runtime import AlertRuntime
from tests.digests.support import (
    CHECKOUT,
    PAYMENTS,
    SEARCH,
    Sessions,
    digest_config,
    service_day,
    store_day,
    store_incident,
)
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer

DAY = date(2026, 11, 18)


def config(robot: Served[DingTalkSink], **digest: Any) -> dict[str, Any]:
    found = digest_config(robot.url, locale="zh-CN", **digest)
    found["channels"][0]["secret"] = DINGTALK_SECRET
    return found


async def stored(sessions: Sessions) -> None:
    await store_day(
        sessions,
        DAY,
        service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200))
        + service_day(PAYMENTS, 500, 0, (400, 500, 500, 500))
        + service_day(SEARCH, 300, 3, (300, 300, 300, 300)),
    )


async def digests_in_outbox(sessions: Sessions) -> list[Delivery]:
    async with sessions() as session:
        return list((await session.scalars(select(Delivery).where(Delivery.kind == "notice"))).all())


async def test_a_digest_is_shown_sent_once_and_resent_on_force_and_the_robot_gets_its_markdown(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink], database_url: str
) -> None:
    async with app_factory(database_url=database_url, **config(dingtalk_robot)) as (app, client):
        sessions = app.state.context.sessions
        runtime: AlertRuntime = app.state.context.alerts
        await stored(sessions)
        shown = await client.get(f"/api/v1/digests/daily?date={DAY}", headers=bearer(VIEWER_TOKEN))
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["scope"]["requests"] == 2000
        assert body["sent"] is None
        assert "请求 2,000" in body["text"]
        assert body["markdown"].startswith("### 📊 运维日报 · daily · 2026-11-18（周三）")
        assert await digests_in_outbox(sessions) == []  # showing sends nothing

        path = f"/api/v1/digests/daily/send?date={DAY}"
        first = await client.post(path, headers=bearer(OPERATOR_TOKEN))
        again = await client.post(path, headers=bearer(OPERATOR_TOKEN))
        assert first.status_code == 200, first.text
        assert (first.json()["sent"], first.json()["already_sent"], first.json()["sends"]) == (True, False, 1)
        assert again.status_code == 200
        assert (again.json()["sent"], again.json()["already_sent"], again.json()["sends"]) == (False, True, 1)
        assert len(await digests_in_outbox(sessions)) == 1
        assert await runtime.run_once() == 1
        forced = await client.post(f"{path}&force=true", headers=bearer(OPERATOR_TOKEN))
        assert (forced.json()["sent"], forced.json()["sends"]) == (True, 2)
        assert await runtime.run_once() == 1
        deliveries = await digests_in_outbox(sessions)
        later = await client.get(f"/api/v1/digests/daily?date={DAY}", headers=bearer(VIEWER_TOKEN))
        assert later.json()["sent"] is not None
    assert [d.status for d in deliveries] == ["delivered", "delivered"]
    first_message, second_message = dingtalk_robot.sink.messages
    sent = first_message.json
    assert second_message.json["markdown"]["title"] == sent["markdown"]["title"]
    assert _without_view_links(second_message.json["markdown"]["text"]) == _without_view_links(
        sent["markdown"]["text"]
    )
    assert sent["msgtype"] == "markdown"
    assert sent["markdown"]["title"].startswith("📊 运维日报 · daily · 2026-11-18")
    assert _without_view_links(sent["markdown"]["text"]) == body["markdown"]
    assert "1. checkout.shop：请求 1,200 · 错误率 5.00%" in sent["markdown"]["text"]
    assert "[checkout.shop](https://panorama.example.com/services/checkout.shop)" in body["markdown"]


async def test_the_sent_digest_links_open_their_pages_without_signing_in(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink], database_url: str
) -> None:
    """A digest goes to a chat whose members may hold no token: its service, incident and
    incidents-list links carry a view link (read-only, that page only), as a notification's
    incident link does; the list opened so links each incident it shows the same way."""
    async with app_factory(database_url=database_url, **config(dingtalk_robot)) as (app, client):
        await stored(app.state.context.sessions)
        opened_at = datetime(2026, 11, 18, 11, 0, tzinfo=UTC)  # on the digest's day (its zone: UTC)
        incident = await store_incident(
            app.state.context.sessions,
            title="CheckoutErrors",
            severity="critical",
            services=[CHECKOUT],
            created=opened_at,
            acknowledged=None,
            resolved=None,
            alertnames=["CheckoutErrors"],
        )
        sent = await client.post(f"/api/v1/digests/daily/send?date={DAY}", headers=bearer(OPERATOR_TOKEN))
        assert sent.status_code == 200, sent.text
        assert await app.state.context.alerts.run_once() == 1
        text = dingtalk_robot.sink.messages[0].json["markdown"]["text"]
        links = dict(re.findall(r"\[([^\]]+)\]\((https://panorama\.example\.com[^)\s]+)\)", text))
        assert {"checkout.shop", "payments.shop", "search.web"} <= set(links), text
        opened = {}
        for label, link in links.items():
            parts = urlsplit(link)
            answer = await client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
            opened[label] = (parts.path, "view=" in parts.query, answer.status_code)
        for name in ("checkout.shop", "payments.shop", "search.web"):
            assert opened[name] == (f"/services/{name}", True, 200), opened
            other = "payments.shop" if name != "payments.shop" else "checkout.shop"
            borrowed = urlsplit(links[name]).query  # a service's link opens that service only
            assert (await client.get(f"/services/{other}?{borrowed}")).status_code in (401, 403)
        assert opened[f"#{incident}"] == (f"/incidents/{incident}", True, 200), opened
        assert opened["事件列表"][1:] == (True, 200), opened
        listing = urlsplit(links["事件列表"])
        assert listing.path == "/incidents"
        assert parse_qs(listing.query)["from"] == ["2026-11-18"]
        page = (await client.get(f"{listing.path}?{listing.query}")).text
        shown = re.findall(rf'href="(/incidents/{incident}\?view=[^"]+)"', page)
        assert shown, page  # the incident on the list opens through a link of its own
        assert (await client.get(html.unescape(shown[0]))).status_code == 200
        borrowed = parse_qs(listing.query)["view"][0]  # the list's link opens the list only
        assert (await client.get(f"/incidents/{incident}?view={borrowed}")).status_code in (401, 403)


def _without_view_links(text: str) -> str:
    return re.sub(r"[?&]view=[^)\s]+", "", text)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/v1/digests/nightly", 404, "no digest 'nightly' (known: daily)"),
        ("/api/v1/digests/daily?date=18-11-2026", 400, "query parameter 'date': '18-11-2026' is not"),
        ("/api/v1/digests/daily?date=2999-01-01", 400, "is not over yet in UTC"),
    ],
)
async def test_an_unknown_digest_or_a_bad_day_is_a_clear_4xx(
    app_factory: AppFactory, path: str, status: int, words: str
) -> None:
    async with app_factory(**digest_config()) as (app, client):
        shown = await client.get(path, headers=bearer(VIEWER_TOKEN))
        sent = await client.post(
            path.replace("?", "/send?") if "?" in path else f"{path}/send", headers=bearer(OPERATOR_TOKEN)
        )
        assert await digests_in_outbox(app.state.context.sessions) == []
    assert shown.status_code == status
    assert words in shown.json()["message"]
    assert sent.status_code == status
    assert words in sent.json()["message"]


async def test_a_day_rolled_up_without_prometheus_says_prometheus_is_not_configured(
    app_factory: AppFactory,
) -> None:
    """A first `make run` has no Prometheus: its days are rolled up from the on-call history alone,
    and the digest says that is why it has no traffic figures, not "not run, or failed"."""
    async with app_factory(**digest_config(locale="zh-CN")) as (_app, client):
        run = await client.post(
            "/api/v1/rollups/run", json={"date": DAY.isoformat()}, headers=bearer(OPERATOR_TOKEN)
        )
        assert run.status_code == 200
        rolled = (await client.get(f"/api/v1/digests/daily?date={DAY}", headers=bearer(VIEWER_TOKEN))).json()
        before = f"/api/v1/digests/daily?date={DAY.replace(day=17)}"
        never = (await client.get(before, headers=bearer(VIEWER_TOKEN))).json()
    assert rolled["missing"][:2] == ["rollup", "prometheus"]
    assert f"没有 {DAY} 的流量数据：未配置 Prometheus（只汇总了值班历史）" in rolled["text"]
    assert "rollup 未运行或失败" not in rolled["text"]
    assert "prometheus" not in never["missing"]  # the day before was never rolled up: said as such
    assert "2026-11-17 的汇总数据（rollup 未运行或失败）" in never["text"]


async def test_the_incidents_link_of_a_digest_in_its_own_time_zone_starts_at_its_local_midnight(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    """Pages read a plain date in Panorama's zone (UTC here): a digest kept in Shanghai links the
    list from its own midnight as an instant, and the page reads it."""
    async with app_factory(**config(dingtalk_robot, timezone="Asia/Shanghai")) as (app, client):
        await stored(app.state.context.sessions)
        shown = await client.get(f"/api/v1/digests/daily?date={DAY}", headers=bearer(VIEWER_TOKEN))
        assert shown.status_code == 200, shown.text
        link = urlsplit(shown.json()["incidents"]["url"])
        assert parse_qs(link.query) == {"from": ["2026-11-18T00:00:00+08:00"]}
        page = await client.get(f"{link.path}?{link.query}", headers=bearer(VIEWER_TOKEN))
        assert page.status_code == 200, page.text
        assert "2026-11-18T00:00:00+08:00" in html.unescape(page.text)  # the filter shows what it read

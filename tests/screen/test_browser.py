"""The wall screen in a real browser (Debian's Chromium), against Panorama and a real Prometheus
scraping a live exporter, with 30 days of history rolled up by the real rollups.

The wall is opened as a kiosk opens it (``/screen?token=<screen token>``) at 1920×1080 and at
3840×2160: the token leaves the address bar, every panel shows the exporter's numbers, nothing
scrolls; a critical incident posted to the webhook raises the banner and acknowledging it takes
it down; then Prometheus is stopped and the wall keeps its numbers, marked stale. A wall whose
Prometheus is not configured or unreachable says so in its language (zh-CN, en), in the words the
other pages use. Screenshots go to artifacts/screen/ (and one small one for the README).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Locator

from app.alerts import ack
from app.errors import Phrase
from app.web.i18n import Locale, Translator
from tests.harness.app import OPERATOR_TOKEN, SCREEN_TOKEN, VIEWER_TOKEN, bearer, settings_for
from tests.harness.browser import BROWSER, CheckedPage, OpenPage, serve_panorama
from tests.harness.processes import free_port
from tests.harness.prometheus import RunningPrometheus
from tests.screen.platform import expected
from tests.screen.support import (
    FULL_HD,
    SIGNING_KEY,
    UHD,
    ZONE,
    Wall,
    memory,
    no_placeholders_leak,
    no_scrollbars,
    open_wall,
    post_incident,
    served_wall,
    shows,
    sparkline,
    tile,
    until,
)

pytestmark = [BROWSER, pytest.mark.timeout(300)]


@pytest_asyncio.fixture(loop_scope="session")
async def wall(tmp_path: Path, prometheus_factory: Callable[..., RunningPrometheus]) -> AsyncIterator[Wall]:
    async with served_wall(tmp_path, prometheus_factory) as found:
        yield found


async def test_the_wall_shows_the_platform_raises_the_banner_and_survives_prometheus_going_away(
    wall: Wall, open_page: OpenPage
) -> None:
    want = expected()
    acked = await post_incident(wall, "CheckoutLatencyHigh", "warning", "checkout", 42)
    linked = await post_incident(wall, "NodeDiskFillingUp", "info", "node", 180)
    link = ack.sign(SIGNING_KEY.encode(), linked, datetime.now(UTC) + timedelta(hours=1))
    async with wall.http() as client:
        answer = await client.post(f"/api/v1/incidents/{acked}/ack", headers=bearer(OPERATOR_TOKEN))
        assert answer.status_code == 200
        answer = await client.post(f"/ack/{link}")  # a group chat's link: it names nobody
        assert answer.status_code == 200

    page = await open_wall(open_page, wall, FULL_HD)
    p = page.page
    assert "token=" not in p.url  # taken out of the address bar, kept in this tab only
    assert await p.evaluate("() => sessionStorage.getItem('panorama.screen.token')") == SCREEN_TOKEN
    assert await p.locator("html").get_attribute("lang") == "zh-CN"
    assert await p.locator("#panel-health-title").inner_text() == "平台健康"

    # platform health: the exporter's nodes, pods (completed jobs are not "not ready") and usage
    assert await tile(page, "health", "nodes") == (str(want.nodes_ready), f"/ {want.nodes}")
    assert await tile(page, "health", "pods_not_ready") == (str(want.pods_not_ready), "")
    assert str(want.pods) in await p.locator('[data-figure="pods_not_ready"] [data-sub]').inner_text()
    assert await tile(page, "health", "cpu_utilization") == (f"{want.cpu_utilization * 100:.1f}", "%")
    assert await tile(page, "health", "memory_utilization") == (f"{want.memory_utilization * 100:.1f}", "%")
    # live traffic: one reporter's requests (the exporter reports each one twice), 5xx share, p99
    p99, unit = await tile(page, "traffic", "latency_p99_ms")
    assert unit == "ms"
    assert shows(p99, want.latency_p99_ms), (p99, want.latency_p99_ms)
    assert await sparkline(page, 1)
    # top services, coloured by the thresholds
    top = p.locator('[data-list="by_traffic"] tbody tr:not([hidden])')
    assert await top.count() == 5
    first = top.nth(0).locator("td")
    assert await first.nth(0).inner_text() == "frontend.shop"
    assert shows(await first.nth(1).inner_text(), want.services["frontend.shop"][0])
    worst = p.locator('[data-list="by_error_rate"] tbody tr:not([hidden])').nth(0).locator("td")
    assert await worst.nth(0).inner_text() == "payments.shop"
    assert await worst.nth(2).inner_text() == "6.00%"
    assert await worst.nth(2).get_attribute("class") == "lv-critical"
    # the dependency graph: every service of the mesh and the ingress that calls into it
    nodes = await p.evaluate(
        """() => echarts.getInstanceByDom(document.querySelector('[data-graph]'))
                   .getOption().series[0].data.map(node => node.id).sort()"""
    )
    assert nodes == sorted(["istio-ingressgateway.istio-system", *want.services])
    # on call: the schedule's person now, and the next one
    assert await p.locator(".oncall-rows .who").first.inner_text() in ("alice", "bob")
    # open incidents: the acknowledged one shows who acknowledged it, ages tick
    rows = p.locator(".incident-rows > li:not([hidden])")
    assert await rows.count() == 2
    listed = await rows.nth(0).inner_text() + await rows.nth(1).inner_text()
    assert "operator-test 已确认" in listed
    assert "确认链接 已确认" in listed  # the wall's words, not the stored "ack link"
    assert "ack link" not in listed
    # the 30-day trends are the rollups' daily figures of the platform
    first_day, last_day = wall.days
    async with wall.http() as client:
        daily = (
            await client.get(
                "/api/v1/reports/kinds/platform/platform/daily",
                params={"from": first_day.isoformat(), "to": last_day.isoformat()},
                headers=bearer(VIEWER_TOKEN),
            )
        ).json()
    charted = await p.evaluate(
        """() => echarts.getInstanceByDom(document.querySelector('[data-trend="traffic"]'))
                   .getOption().series[0].data"""
    )
    rolled = {d["date"]: d["requests"] for d in daily["days"]}
    assert len(rolled) >= 25
    # The wall charts its own 30 local days up to yesterday; the history (which ends hours before
    # now) may stop a day earlier, just after local midnight: a day not rolled up is a gap.
    today = datetime.now(ZoneInfo(ZONE)).date()
    shown = [(today - timedelta(days=len(charted) - i)).isoformat() for i in range(len(charted))]
    assert dict(zip(shown, charted, strict=True)) == {day: rolled.get(day) for day in shown}
    assert sum(day in rolled for day in shown) >= 25
    assert not await p.locator('[data-panel="trends"]').evaluate("e => e.classList.contains('is-empty')")

    # the clock names its zone, discreetly beside it
    zone = p.locator("#zone")
    assert await zone.inner_text() == "Asia/Shanghai (UTC+08:00)"
    assert await zone.get_attribute("title") == "时间均为 Asia/Shanghai (UTC+08:00)"
    assert await beside_the_clock(page)

    await no_scrollbars(page)
    await no_placeholders_leak(page)
    assert await p.locator("#banner").evaluate("e => e.classList.contains('hidden')")
    await until(lambda: sparkline(page, 6), "some of the live line")
    await page.shot("screen", "wall-1920x1080", full_page=False)
    settled = await memory(page)

    # a critical incident raises the banner, across the wall, until it is acknowledged
    critical = await post_incident(wall, "PaymentsErrorRateCritical", "critical", "payments", 3)
    await until(
        lambda: p.locator("#banner").evaluate("e => !e.classList.contains('hidden')"), "the critical banner"
    )
    banner = await p.locator("#banner").inner_text()
    assert "PaymentsErrorRateCritical" in banner
    assert "payments" in banner
    assert re.search(r"值班 (alice|bob)", banner), banner
    assert await p.locator("#summary").get_attribute("data-level") == "critical"
    await no_scrollbars(page)
    await page.shot("screen", "wall-1920x1080-critical", full_page=False)
    async with wall.http() as client:
        answer = await client.post(f"/api/v1/incidents/{critical}/ack", headers=bearer(OPERATOR_TOKEN))
        assert answer.status_code == 200
    await until(
        lambda: p.locator("#banner").evaluate("e => e.classList.contains('hidden')"), "the banner to go away"
    )
    assert await p.locator("#summary").get_attribute("data-level") == "warning"

    # 4K: the same wall, twice the size, nothing scrolls
    big = await open_wall(open_page, wall, UHD)
    await no_scrollbars(big)
    await no_placeholders_leak(big)
    assert await big.page.locator("#zone").inner_text() == "Asia/Shanghai (UTC+08:00)"
    assert await beside_the_clock(big)
    await big.shot("screen", "wall-3840x2160", full_page=False)
    readme = await open_wall(open_page, wall, {"width": 1024, "height": 576})
    await readme.shot("screen", "readme-wall", full_page=False, small=True)
    english = await open_wall(open_page, wall, FULL_HD, "&lang=en")
    assert await english.page.locator("#panel-health-title").inner_text() == "Platform health"
    assert await english.page.locator("#zone").inner_text() == "Asia/Shanghai (UTC+08:00)"
    assert await english.page.locator("#zone").get_attribute("title") == "Times in Asia/Shanghai (UTC+08:00)"
    assert await beside_the_clock(english)
    await no_scrollbars(english)
    await english.shot("screen", "wall-1920x1080-en", full_page=False)

    # Prometheus goes away: the wall keeps its numbers, marked stale with their age
    wall.prometheus.process.stop()
    await until(
        lambda: p.locator('[data-panel="health"]').evaluate("e => e.classList.contains('is-stale')"),
        "the health panel marked stale",
    )
    # Prometheus answers 503 while it shuts down: a refresh then may mark the panels stale with
    # that answer; the next one, once the port is closed, says it cannot be reached (in the
    # wall's language, with what Panorama saw of the connection as it came).
    await until(
        lambda: p.locator('[data-panel="health"] [data-problem]').evaluate(
            "e => e.textContent.startsWith('无法连接 Prometheus（cannot reach')"
        ),
        "the health panel saying Prometheus cannot be reached",
    )
    for panel in ("traffic", "services", "graph"):  # each refreshed on its own: stale at its next refresh
        marked = p.locator(f'[data-panel="{panel}"]')
        stale = partial(marked.evaluate, "e => e.classList.contains('is-stale')")
        await until(stale, f"the {panel} panel marked stale")
    for panel in ("incidents", "oncall", "trends"):  # the database still answers
        assert not await p.locator(f'[data-panel="{panel}"]').evaluate(
            "e => e.classList.contains('is-stale')"
        )
    assert (await p.locator('[data-panel="health"] [data-state]').inner_text()).startswith("数据已过期")
    problem = await p.locator('[data-panel="health"] [data-problem]').inner_text()
    assert problem.startswith("无法连接 Prometheus（cannot reach"), problem
    # the numbers shown are the last good ones Panorama kept (Prometheus, shutting down, may have
    # answered one more refresh after the wall was last looked at: whatever it answered last stays)
    async with wall.http() as client:
        kept = (await client.get("/api/v1/screen", headers=bearer(SCREEN_TOKEN))).json()["panels"]["health"]
    assert kept["status"] == "stale"
    figures = {f["key"]: f["value"] for f in kept["data"]["figures"]}
    assert await tile(page, "health", "nodes") == (
        str(round(figures["nodes_ready"])),
        f"/ {round(figures['nodes'])}",
    )
    cpu = figures["cpu_utilization"] * 100
    assert await tile(page, "health", "cpu_utilization") == (f"{cpu:.1f}" if cpu >= 10 else f"{cpu:.2f}", "%")
    assert (await tile(page, "traffic", "requests_per_s"))[0] != "—"
    await no_placeholders_leak(page)
    await no_scrollbars(page)
    await page.shot("screen", "wall-1920x1080-prometheus-down", full_page=False)
    # after dozens of refreshes, a banner up and down and an outage: no element or listener more
    # (the heap is measured over minutes by tests/drills/test_screen_soak.py)
    now = await memory(page)
    assert now["live_nodes"] <= settled["live_nodes"] * 1.1, (settled, now)  # one incident more
    assert now["listeners"] == settled["listeners"], (settled, now)


async def test_the_wall_reloads_itself_at_the_quiet_hour_and_keeps_its_token(
    tmp_path: Path, open_page: OpenPage
) -> None:
    zone = ZoneInfo(ZONE)
    quiet = (datetime.now(zone) + timedelta(seconds=8)).time().replace(microsecond=0)
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
        timezone=ZONE,
        screen={"refresh_seconds": 1, "reload_at": quiet.isoformat()},
    )
    async with serve_panorama(settings) as url:
        page = await open_page(FULL_HD)
        await page.goto(f"{url}/screen?token={SCREEN_TOKEN}")
        p = page.page
        async with p.expect_event("load", timeout=40_000):
            pass  # the page's own reload, at the quiet hour
        assert await p.evaluate("() => performance.getEntriesByType('navigation')[0].type") == "reload"
        assert "token=" not in p.url
        # the token came back from sessionStorage: the data still loads after the reload
        message = p.locator('[data-panel="incidents"] [data-message]')
        await until(
            lambda: message.evaluate("e => e.textContent === '没有未恢复的事件'"), "data after the reload"
        )


async def beside_the_clock(page: CheckedPage) -> bool:
    """The zone's name is on the clock's line, right of it, smaller, and inside the wall."""
    found: bool = await page.page.evaluate(
        """() => { const c = document.getElementById('clock').getBoundingClientRect();
                   const z = document.getElementById('zone').getBoundingClientRect();
                   const size = e => parseFloat(getComputedStyle(document.getElementById(e)).fontSize);
                   return z.left >= c.right && z.right <= window.innerWidth && z.top < c.bottom
                     && z.bottom > c.top && size('zone') < size('clock') / 2; }"""
    )
    return found


@pytest.mark.parametrize(("lang", "title"), [("zh-CN", "时间均为"), ("en", "Times in")])
async def test_the_zone_beside_the_clock_changes_with_it_at_daylight_saving(
    tmp_path: Path, open_page: OpenPage, lang: str, title: str
) -> None:
    """Europe/Berlin springs forward at 01:00 UTC on 2027-03-28: the browser's clock is set just
    before, and the wall (no token: no server answer sets its clock) runs past the change."""
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
        timezone="Europe/Berlin",
        screen={"refresh_seconds": 1},
    )
    async with serve_panorama(settings) as url:
        page = await open_page(FULL_HD)
        page.allow("401")  # no token: the wall says so, and its clock runs on the browser's time
        p = page.page
        await p.clock.install(time=datetime(2027, 3, 28, 0, 59, 50, tzinfo=UTC))
        await page.goto(f"{url}/screen?lang={lang}")
        await p.clock.run_for(1500)
        zone, clock = p.locator("#zone"), p.locator("#clock")
        assert (await clock.inner_text()).startswith("01:59:5")
        assert await zone.inner_text() == "Europe/Berlin (UTC+01:00)"
        assert await zone.get_attribute("title") == f"{title} Europe/Berlin (UTC+01:00)"
        await p.clock.run_for(10_000)
        assert (await clock.inner_text()).startswith("03:00:0")
        assert await zone.inner_text() == "Europe/Berlin (UTC+02:00)"
        assert await zone.get_attribute("title") == f"{title} Europe/Berlin (UTC+02:00)"
        assert await beside_the_clock(page)
        await page.shot("screen", f"wall-dst-{lang}", full_page=False)


@pytest.mark.parametrize(
    ("lang", "missing", "no_data"),
    [("zh-CN", "需要令牌", "暂无数据"), ("en", "A token is needed", "No data")],
)
async def test_a_wall_opened_without_its_token_says_so_in_the_header_not_fetching_for_ever(
    tmp_path: Path, open_page: OpenPage, lang: str, missing: str, no_data: str
) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}", screen={"refresh_seconds": 1})
    async with serve_panorama(settings) as url:
        page = await open_page(FULL_HD)
        page.allow("401")  # no token: the point of the test
        await page.goto(f"{url}/screen?lang={lang}")
        summary, updated = page.page.locator("#summary [data-summary]"), page.page.locator("#updated")
        await summary.filter(has_text=missing).wait_for()
        assert await updated.inner_text() == no_data
        assert await page.page.locator("#summary").get_attribute("data-level") == "warning"
        await page.shot("screen", f"wall-no-token-{lang}", full_page=False)


async def says(element: Locator, text: str) -> bool:
    return bool(await element.evaluate("(e, text) => e.textContent === text", text))


NOT_CONFIGURED = {
    "zh-CN": "未配置 Prometheus：请设置 prometheus.url 或环境变量 PANORAMA_PROMETHEUS_URL",
    "en": "Prometheus is not configured: set prometheus.url or PANORAMA_PROMETHEUS_URL",
}


@pytest.mark.parametrize("prometheus", ["not configured", "unreachable"])
async def test_a_panel_says_its_problem_in_the_walls_language(
    tmp_path: Path, open_page: OpenPage, prometheus: str
) -> None:
    """The answer carries each panel's problem as a phrase (a catalogue key and plain values); the
    wall fills the key's text in its language with them: the text a page says (Translator.say). The
    header's summary counts the panels without data instead of saying all is clear."""
    sections: dict[str, Any] = {"screen": {"refresh_seconds": 1}}
    if prometheus == "unreachable":
        sections["prometheus"] = {"url": f"http://127.0.0.1:{free_port()}", "retries": 0}
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}", timezone=ZONE, **sections)
    async with serve_panorama(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            answer = (await client.get("/api/v1/screen", headers=bearer(SCREEN_TOKEN))).json()
        error = answer["panels"]["health"]["error"]
        phrase = Phrase(error["phrase"]["key"], **error["phrase"]["values"])
        languages: tuple[Locale, ...] = ("zh-CN", "en")
        for lang in languages:
            said = Translator(lang, ZoneInfo(ZONE)).say(phrase)
            if prometheus == "not configured":
                assert said == NOT_CONFIGURED[lang]
            else:
                assert said.startswith(
                    ("无法连接 Prometheus（cannot reach", "Prometheus is unreachable (cannot reach")
                )
            page = await open_page(FULL_HD)
            await page.goto(f"{url}/screen?token={SCREEN_TOKEN}&lang={lang}")
            p = page.page
            for panel in ("health", "traffic", "services", "graph"):
                message = p.locator(f'[data-panel="{panel}"] [data-message]')
                await until(partial(says, message, said), f"{panel}: {said}")
                assert await p.locator(f'[data-panel="{panel}"]').evaluate(
                    "e => e.classList.contains('is-error')"
                )
            for panel in ("incidents", "oncall", "trends"):  # the database's panels are fine
                assert not await p.locator(f'[data-panel="{panel}"]').evaluate(
                    "e => e.classList.contains('is-error')"
                )
            assert "prometheus: " not in await p.locator("body").inner_text()  # not the English fallback
            # no incident is open, yet the wall is not "all clear": four panels have no data
            summary = p.locator("#summary [data-summary]")
            failing = {"zh-CN": "4 个面板无法获取数据", "en": "4 panels cannot get their data"}[lang]
            await until(partial(says, summary, failing), f"summary: {failing}")
            assert await p.locator("#summary").get_attribute("data-level") == "warning"
            await no_placeholders_leak(page)
            await no_scrollbars(page)
            await page.shot(
                "screen", f"wall-prometheus-{prometheus.replace(' ', '-')}-{lang}", full_page=False
            )

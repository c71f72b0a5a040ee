"""The wall screen in a real browser (Debian's Chromium), against Panorama and a real Prometheus
scraping a live exporter, with 30 days of history rolled up by the real rollups.

The wall is opened as a kiosk opens it (``/screen?token=<screen token>``) at 1920×1080 and at
3840×2160: the token leaves the address bar, every panel shows the exporter's numbers, nothing
scrolls; a critical incident posted to the webhook raises the banner and acknowledging it takes
it down; then Prometheus is stopped and the wall keeps its numbers, marked stale. Screenshots go
to artifacts/screen/ (and one small one for the README).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.harness.app import OPERATOR_TOKEN, SCREEN_TOKEN, VIEWER_TOKEN, bearer, settings_for
from tests.harness.browser import BROWSER, CheckedPage, OpenPage, panorama_port, serve_panorama
from tests.harness.prometheus import RunningPrometheus
from tests.screen.platform import LiveExporter, expected, write_history

pytestmark = [BROWSER, pytest.mark.timeout(300)]

FULL_HD = {"width": 1920, "height": 1080}
UHD = {"width": 3840, "height": 2160}
ZONE = "Asia/Shanghai"
WAIT_S = 45.0
HISTORY_DAYS = 31
HEAD_GUARD_S = 3 * 3600 + 600


@dataclass
class Wall:
    url: str
    prometheus: RunningPrometheus
    exporter: LiveExporter
    days: tuple[date, date]

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=120)


@pytest_asyncio.fixture(loop_scope="session")
async def wall(tmp_path: Path, prometheus_factory: Callable[..., RunningPrometheus]) -> AsyncIterator[Wall]:
    exporter = LiveExporter().start()
    try:
        end = (time.time() - HEAD_GUARD_S) // 3600 * 3600
        start = end - HISTORY_DAYS * 86_400
        history = tmp_path / "history.om"
        await asyncio.to_thread(write_history, history, start, end)
        prometheus = await asyncio.to_thread(
            prometheus_factory, history, scrape=[exporter.target], scrape_interval="1s"
        )
        zone = ZoneInfo(ZONE)
        first = datetime.fromtimestamp(start, zone).date() + timedelta(days=1)
        last = datetime.fromtimestamp(end, zone).date() - timedelta(days=1)
        port = panorama_port()
        settings = settings_for(
            f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
            **alerting_config(public_url=f"http://127.0.0.1:{port}"),
            timezone=ZONE,
            prometheus={"url": prometheus.url, "retries": 0, "timeout_s": 5},
            screen={"refresh_seconds": 1, "window": "5s", "history": "5m"},
        )
        async with serve_panorama(settings, port) as url:
            found = Wall(url, prometheus, exporter, (first, last))
            async with found.http() as client:
                rolled = await client.post(
                    "/api/v1/rollups/run",
                    json={"from": first.isoformat(), "to": last.isoformat(), "wait": True},
                    headers=bearer(OPERATOR_TOKEN),
                )
                assert rolled.status_code == 200, rolled.text
                assert {r["status"] for r in rolled.json()["runs"]} == {"ok"}, rolled.text
            yield found
    finally:
        exporter.stop()


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.25)


def number(text: str) -> float:
    return float(text.replace(",", "").strip())


def shows(text: str, value: float) -> bool:
    """Whether ``text`` is ``value`` as the wall rounds it (to its last digit), give or take 0.2%."""
    digits = len(text.partition(".")[2])
    return abs(number(text) - value) <= 0.5 * 10.0**-digits + 0.002 * abs(value)


async def tile(page: CheckedPage, panel: str, figure: str) -> tuple[str, str]:
    host = page.page.locator(f'[data-panel="{panel}"] [data-figure="{figure}"]')
    return (
        (await host.locator("[data-value]").inner_text()).strip(),
        (await host.locator("[data-unit]").inner_text()).strip(),
    )


async def no_scrollbars(page: CheckedPage) -> None:
    sizes = await page.page.evaluate(
        """() => ({docW: document.documentElement.scrollWidth, docH: document.documentElement.scrollHeight,
                   bodyW: document.body.scrollWidth, bodyH: document.body.scrollHeight,
                   w: window.innerWidth, h: window.innerHeight,
                   outside: [...document.querySelectorAll('.panel')].filter(
                       p => p.getBoundingClientRect().bottom > window.innerHeight + 0.5
                         || p.getBoundingClientRect().right > window.innerWidth + 0.5).map(p => p.id),
                   cut: [...document.querySelectorAll('.panel-body, .panel-head')].filter(
                       e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1)
                       .map(e => e.parentElement.id + ' ' + e.className)})"""
    )
    assert max(sizes["docW"], sizes["bodyW"]) <= sizes["w"], sizes
    assert max(sizes["docH"], sizes["bodyH"]) <= sizes["h"], sizes
    assert sizes["outside"] == [], sizes
    assert sizes["cut"] == [], sizes  # every panel's content fits in it


async def no_placeholders_leak(page: CheckedPage) -> None:
    text = await page.page.locator("body").inner_text()
    for word in ("NaN", "undefined", "null", "Infinity", "[object"):
        assert word not in text, (word, text)


async def live_figures_arrived(page: CheckedPage) -> bool:
    """The live figures equal the exporter's rates (within 0.5%: the rate window is covered)."""
    want = expected()
    qps, _ = await tile(page, "traffic", "requests_per_s")
    errors, _ = await tile(page, "traffic", "error_rate")
    if not qps or not errors or "—" in (qps, errors):
        return False
    return shows(qps, want.requests_per_s) and shows(errors, want.error_rate * 100)


async def sparkline(page: CheckedPage, points: int) -> bool:
    """Whether the live requests line has at least ``points`` points."""
    found: int = await page.page.evaluate(
        """() => echarts.getInstanceByDom(
                     document.querySelector('[data-figure="requests_per_s"] [data-spark]')
                   ).getOption().series[0].data.filter(point => point[1] !== null).length"""
    )
    return found >= points


async def open_wall(
    open_page: OpenPage, wall: Wall, viewport: dict[str, int], query: str = ""
) -> CheckedPage:
    page = await open_page(viewport)
    await page.goto(f"{wall.url}/screen?token={SCREEN_TOKEN}{query}")
    await until(lambda: live_figures_arrived(page), "the exporter's live numbers on the wall")
    return page


async def post_incident(wall: Wall, name: str, severity: str, service: str, minutes_ago: int) -> int:
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    body = payload(name, [alert(name, severity=severity, started=started, service=service, namespace="shop")])
    async with wall.http() as client:
        stored = await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
        assert stored.status_code == 200, stored.text
        incident: int = stored.json()["incident_id"]
        return incident


async def test_the_wall_shows_the_platform_raises_the_banner_and_survives_prometheus_going_away(
    wall: Wall, open_page: OpenPage
) -> None:
    want = expected()
    acked = await post_incident(wall, "CheckoutLatencyHigh", "warning", "checkout", 42)
    await post_incident(wall, "NodeDiskFillingUp", "info", "node", 180)
    async with wall.http() as client:
        answer = await client.post(f"/api/v1/incidents/{acked}/ack", headers=bearer(OPERATOR_TOKEN))
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
    assert "operator-test 已确认" in await rows.nth(0).inner_text() + await rows.nth(1).inner_text()
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
    assert [v for v in charted if v is not None] == [rolled[day] for day in sorted(rolled)]
    assert not await p.locator('[data-panel="trends"]').evaluate("e => e.classList.contains('is-empty')")

    await no_scrollbars(page)
    await no_placeholders_leak(page)
    assert await p.locator("#banner").evaluate("e => e.classList.contains('hidden')")
    await until(lambda: sparkline(page, 12), "a minute of the live line")
    await page.shot("screen", "wall-1920x1080", full_page=False)

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
    await big.shot("screen", "wall-3840x2160", full_page=False)
    readme = await open_wall(open_page, wall, {"width": 1280, "height": 720})
    await readme.shot("screen", "readme-wall", full_page=False, small=True)
    english = await open_wall(open_page, wall, FULL_HD, "&lang=en")
    assert await english.page.locator("#panel-health-title").inner_text() == "Platform health"
    await english.shot("screen", "wall-1920x1080-en", full_page=False)

    # Prometheus goes away: the wall keeps its numbers, marked stale with their age
    before = {figure: await tile(page, "health", figure) for figure in ("nodes", "cpu_utilization")}
    wall.prometheus.process.stop()
    await until(
        lambda: p.locator('[data-panel="health"]').evaluate("e => e.classList.contains('is-stale')"),
        "the health panel marked stale",
    )
    for panel in ("traffic", "services", "graph"):
        assert await p.locator(f'[data-panel="{panel}"]').evaluate("e => e.classList.contains('is-stale')")
    for panel in ("incidents", "oncall", "trends"):  # the database still answers
        assert not await p.locator(f'[data-panel="{panel}"]').evaluate(
            "e => e.classList.contains('is-stale')"
        )
    assert (await p.locator('[data-panel="health"] [data-state]').inner_text()).startswith("数据已过期")
    problem = await p.locator('[data-panel="health"] [data-problem]').inner_text()
    assert problem.startswith("prometheus: cannot reach"), problem
    assert {figure: await tile(page, "health", figure) for figure in before} == before
    assert (await tile(page, "traffic", "requests_per_s"))[0] != "—"
    await no_placeholders_leak(page)
    await no_scrollbars(page)
    await page.shot("screen", "wall-1920x1080-prometheus-down", full_page=False)

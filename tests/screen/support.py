"""What the wall screen's browser tests share: a served Panorama with a live platform behind it
(a real Prometheus scraping :class:`~tests.screen.platform.LiveExporter`, 30 days of history rolled
up by the real rollups), and reading what the page shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.harness.app import OPERATOR_TOKEN, SCREEN_TOKEN, bearer, settings_for
from tests.harness.browser import CheckedPage, OpenPage, panorama_port, serve_panorama
from tests.harness.intake import incident_of
from tests.harness.prometheus import RunningPrometheus
from tests.screen.platform import LiveExporter, expected, write_history

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


SIGNING_KEY = "screen-test-signing-key-0123456789"
"""Signs the ack links the wall's tests follow."""


@asynccontextmanager
async def served_wall(
    tmp_path: Path, prometheus_factory: Callable[..., RunningPrometheus], **screen: Any
) -> AsyncIterator[Wall]:
    """Panorama (SQLite, alerting as in tests/alerts, the screen's settings) over a live platform
    whose last 30 days are rolled up."""
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
            **alerting_config(public_url=f"http://127.0.0.1:{port}", signing_key=SIGNING_KEY),
            timezone=ZONE,
            prometheus={"url": prometheus.url, "retries": 0, "timeout_s": 5},
            screen={"refresh_seconds": 1, "window": "5s", "history": "5m", **screen},
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
        incident: int = await incident_of(client, stored)
        return incident


async def memory(page: CheckedPage) -> dict[str, float]:
    """The page's JS heap in use and its DOM counters after a full garbage collection (through
    the Chrome DevTools protocol: ``Runtime.getHeapUsage``, ``Memory.getDOMCounters``, which counts
    detached nodes not yet collected too), and the nodes in the document (elements and text)."""
    cdp = await page.page.context.new_cdp_session(page.page)
    try:
        await cdp.send("HeapProfiler.collectGarbage")
        heap = await cdp.send("Runtime.getHeapUsage")
        counters = await cdp.send("Memory.getDOMCounters")
    finally:
        await cdp.detach()
    live = await page.page.evaluate(LIVE_NODES)
    return {
        "heap": float(heap["usedSize"]),
        "nodes": float(counters["nodes"]),
        "listeners": float(counters["jsEventListeners"]),
        "live_nodes": float(live),
    }


LIVE_NODES = """() => {
    const shown = NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT;
    const walker = document.createTreeWalker(document.documentElement, shown);
    let count = 1;
    while (walker.nextNode()) count++;
    return count;
}"""

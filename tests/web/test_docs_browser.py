"""/docs and the 404 page in a real browser (Debian's Chromium). Swagger UI renders every operation of
/openapi.json from files Panorama serves itself, with no console error and no request leaving
127.0.0.1 (ops networks are often offline), under the pages' CSP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Request

from tests.harness.app import settings_for
from tests.harness.browser import BROWSER, DESKTOP, OpenPage, serve_panorama

pytestmark = [BROWSER, pytest.mark.timeout(120)]


async def test_docs_render_offline_from_panoramas_own_files(tmp_path: Path, open_page: OpenPage) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}")
    async with serve_panorama(settings) as base:
        page = await open_page(DESKTOP, locale="en")
        requested: list[str] = []

        def remember(request: Request) -> None:
            requested.append(request.url)

        page.page.on("request", remember)
        answer = await page.goto(f"{base}/docs", wait_until="networkidle")
        await page.page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        title = await page.page.text_content(".info .title")
        paths = await page.page.locator(".opblock-summary-path").all_text_contents()
        await page.shot("web", "docs")
    assert answer.status == 200
    assert "script-src 'self'" in (answer.headers.get("content-security-policy") or "")
    assert title is not None
    assert "Panorama" in title
    assert "/api/v1/whoami" in [p.strip().replace("\u200b", "") for p in paths]
    assert len(paths) > 20  # every operation, not an error box
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requested
    assert any(url.startswith(f"{base}/docs/assets/swagger-ui-bundle.js") for url in requested)
    assert f"{base}/openapi.json" in requested
    page.check()  # no console error, no page error, no failed request


async def test_a_browser_opening_an_unknown_path_gets_the_404_page_and_can_go_home(
    tmp_path: Path, open_page: OpenPage
) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}")
    async with serve_panorama(settings) as base:
        page = await open_page(DESKTOP)
        page.allow(rf"status of 404 \(Not Found\) \({base}/incidentz\)")  # the document's own 404
        answer = await page.goto(f"{base}/incidentz")
        heading = await page.page.text_content("main h1")
        back = page.page.locator("main a", has_text="返回事件列表")
        href = await back.get_attribute("href")
    assert answer.status == 404
    assert "script-src 'self'" in (answer.headers.get("content-security-policy") or "")
    assert heading == "找不到"
    assert href == "/incidents"
    assert page.problems == [  # the one the 404 itself makes: none from the page's scripts or styles
        f"console error: Failed to load resource: the server responded with a status of 404 (Not Found) "
        f"({base}/incidentz)"
    ]
    page.check()  # no console error, no page error, no failed request

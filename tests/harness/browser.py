"""Browser tests: Debian's Chromium, driven by Python playwright, against a served Panorama.

Shared by every feature with HTML (the pages, the wall screen). What a test gets:

- ``browser`` (session): one headless Chromium for the whole run (``/usr/bin/chromium``; the
  Makefile's system-deps install it); started the first time a test asks for it.
- ``open_page(viewport)``: a fresh page in its own context (cookies, storage) at ``PHONE``
  (390×844, touch) or ``DESKTOP`` (1440×900) or any ``{"width", "height"}``. Every console
  error, uncaught page error and failed request is recorded and fails the test at its end
  (``page.allow(pattern)`` admits one the test expects, e.g. a 401 it provokes), so a test
  cannot pass over a broken page.
- ``CheckedPage.shot(feature, name)``: a full-page screenshot to ``artifacts/<feature>/<name>.png``
  (look at them); ``CheckedPage.assert_no_horizontal_scroll()``: nothing wider than the viewport.
- ``serve_panorama(settings)``: Panorama over real HTTP on a loopback port (lifespan run,
  database migrated first), for the browser to load; ``panorama_port()`` picks the port before
  the settings are made (so that ``alerts.public_url`` can point at it).

A browser test runs on the session's event loop, where the browser lives: mark the module
with ``pytestmark = BROWSER`` (fixtures of its own that are async need
``@pytest_asyncio.fixture(loop_scope="session")``). It talks to Panorama over HTTP like any
client; Panorama and the fakes run in their own threads.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    ViewportSize,
    async_playwright,
)

from app.config import Settings
from app.main import create_app
from tests.fakes.server import LoopbackServer
from tests.harness.database import migrate_database
from tests.harness.processes import free_port

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NAVIGATION_TIMEOUT_MS = 20_000
WIDEST_ELEMENTS = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5).slice(0, 5)
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""
BROWSER = pytest.mark.asyncio(loop_scope="session")
"""The mark of a browser test module: ``pytestmark = BROWSER``."""


class CheckedPage:
    """A playwright page that remembers what went wrong in it."""

    def __init__(self, page: Page, viewport: dict[str, int]) -> None:
        self.page = page
        self.viewport = viewport
        self.problems: list[str] = []
        self._allowed: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.set_default_timeout(NAVIGATION_TIMEOUT_MS)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(
                f"console {message.type}: {message.text} ({message.location.get('url', '')})"
            )

    def _request_failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # cancelled by the next navigation (e.g. the favicon of a page left at once)
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def allow(self, pattern: str) -> None:
        """Admits problems matching ``pattern`` (a regular expression), e.g. an expected 401."""
        self._allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self._allowed)]

    def check(self) -> None:
        found = self.unexpected()
        assert not found, "the page had problems:\n" + "\n".join(found)

    async def goto(self, url: str, *, wait_until: str = "load") -> Response:
        """Opens ``url`` and waits for its ``load`` event (``networkidle`` to let fetches finish too)."""
        answer = await self.page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]
        assert answer is not None, url
        return answer

    async def shot(self, feature: str, name: str, *, full_page: bool = True, small: bool = False) -> Path:
        """Saves ``artifacts/<feature>/<name>.png``: the whole page, or what the viewport shows;
        ``small`` at one image pixel per CSS pixel (for docs) instead of the device's."""
        folder = ARTIFACTS / feature
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page, scale="css" if small else "device")
        return path

    async def assert_no_horizontal_scroll(self) -> None:
        widths = await self.page.evaluate(
            "() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
            " view: window.innerWidth})"
        )
        if max(widths["doc"], widths["body"]) > widths["view"]:
            widest = await self.page.evaluate(WIDEST_ELEMENTS)
            raise AssertionError(
                f"the page scrolls sideways at {self.viewport['width']}px: {widths}; too wide: {widest}"
            )


def _chromium_installed() -> bool:
    return Path(CHROMIUM).exists()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session (Debian's, never a downloaded one)."""
    if not _chromium_installed():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium package")
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


OpenPage = Callable[..., Awaitable[CheckedPage]]


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """``await open_page(PHONE)`` → a CheckedPage in a fresh context; problems fail the test at its end."""
    opened: list[tuple[BrowserContext, CheckedPage]] = []

    async def factory(viewport: dict[str, int] = PHONE, **options: Any) -> CheckedPage:
        phone = viewport["width"] < 600
        context = await browser.new_context(
            viewport=ViewportSize(width=viewport["width"], height=viewport["height"]),
            device_scale_factor=2 if phone else 1,
            is_mobile=phone,
            has_touch=phone,
            locale=options.pop("locale", "zh-CN"),
            timezone_id=options.pop("timezone_id", "Asia/Shanghai"),
            **options,
        )
        page = CheckedPage(await context.new_page(), viewport)
        opened.append((context, page))
        return page

    yield factory
    problems = [p for _, page in opened for p in page.unexpected()]
    for context, _ in opened:
        await context.close()
    assert not problems, "pages had problems:\n" + "\n".join(problems)


def panorama_port() -> int:
    return free_port()


@asynccontextmanager
async def serve_panorama(
    settings: Settings, port: int | None = None, *, config_path: Path | None = None
) -> AsyncIterator[str]:
    """Panorama over HTTP on 127.0.0.1, in its own thread (the database migrated first);
    yields its base URL. With ``config_path`` (the file ``settings`` were read from), ``POST
    /-/reload`` re-reads it."""
    await migrate_database(settings.database.url.get_secret_value())
    app = create_app(settings, config_path=config_path, tracer_provider=TracerProvider())
    server = LoopbackServer(app, lifespan=True, port=port or 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()

"""Panorama itself for route tests: a real app over ASGI, its lifespan run, a migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from app.config import Settings
from app.main import create_app
from tests.harness.database import migrate_database

VIEWER_TOKEN = "viewer-token-for-tests-0001"
OPERATOR_TOKEN = "operator-token-for-tests-0002"
ADMIN_TOKEN = "admin-token-for-tests-0003"
SCREEN_TOKEN = "screen-token-for-tests-0004"
TOKENS = {"viewer": VIEWER_TOKEN, "operator": OPERATOR_TOKEN, "admin": ADMIN_TOKEN, "screen": SCREEN_TOKEN}
# tests/harness/intake.py follows webhook answers with a viewer token of its own: its polls never
# spend the rate limit (server.rate_limit) of the tokens a test then reads with.
POLL_TOKEN = "intake-poll-token-for-tests-0005"
POLLER = {"name": "intake-poll-test", "role": "viewer", "token": POLL_TOKEN}


def configured_tokens(suffix: str = "test") -> list[dict[str, str]]:
    """``auth.tokens`` for a configuration: one token per role (named ``<role>-<suffix>``) and the
    intake poller's."""
    return [{"name": f"{role}-{suffix}", "role": role, "token": t} for role, t in TOKENS.items()] + [POLLER]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings_for(database_url: str, **sections: Any) -> Settings:
    """Settings with one token per role, the given database, and any extra sections."""
    data: dict[str, Any] = {
        "database": {"url": database_url},
        "rollups": {"enabled": False},  # no background catch-up unless a test asks for it
        "auth": {"tokens": configured_tokens()},
    }
    # Background workers only when a test asks for them (alerts: {worker: true}).
    data["alerts"] = {"worker": False, **sections.pop("alerts", {})}
    data.update(sections)
    tokens = data.get("auth", {}).get("tokens")
    if isinstance(tokens, list) and POLLER not in tokens:
        data["auth"] = {**data["auth"], "tokens": [*tokens, POLLER]}
    return Settings.model_validate(data)


@asynccontextmanager
async def running_app(
    settings: Settings, *, migrate: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Migrates the database, runs the app's lifespan and yields it with an HTTP client over ASGI."""
    if migrate:
        await migrate_database(settings.database.url.get_secret_value())
    app = create_app(settings, tracer_provider=TracerProvider())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            yield app, client


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def app_factory(sqlite_url: str) -> AppFactory:
    """``async with app_factory(prometheus={"url": ...}) as (app, client)`` — SQLite unless told otherwise."""

    def factory(*, database_url: str | None = None, migrate: bool = True, **sections: Any) -> Any:
        return running_app(settings_for(database_url or sqlite_url, **sections), migrate=migrate)

    return factory


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a Panorama with no backends configured."""
    async with app_factory() as (_app, http):
        yield http

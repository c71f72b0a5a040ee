"""The running configuration (masked) and reloading it from its file."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from app import db, migrations
from app.config import load_settings, with_generated_admin_token
from app.main import create_app
from tests.harness.app import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, bearer

NEW_TOKEN = "a-token-added-by-reload-77"


def config_text(sqlite_url: str, prometheus_url: str, *, extra_token: bool = False) -> str:
    tokens = [
        {"name": "viewer", "role": "viewer", "token": VIEWER_TOKEN},
        {"name": "operator", "role": "operator", "token": OPERATOR_TOKEN},
        {"name": "admin", "role": "admin", "token": ADMIN_TOKEN},
    ]
    if extra_token:
        tokens.append({"name": "added", "role": "viewer", "token": NEW_TOKEN})
    # data_dir beside the database, not ./data: an admin.token left there by `make run` stays valid
    # beside configured tokens (and a reload would say so)
    data_dir = Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).parent / "data"
    return yaml.safe_dump(
        {
            "data_dir": str(data_dir),
            "database": {"url": sqlite_url},
            "prometheus": {"url": prometheus_url, "password": "prom-pass-9", "username": "p"},
            "auth": {"tokens": tokens},
        }
    )


@asynccontextmanager
async def app_from_file(path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = load_settings(path, {})
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    app = create_app(settings, config_path=path, tracer_provider=TracerProvider())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            yield app, client


async def test_config_is_shown_with_secrets_masked(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://user:url-secret-5@prom.example:9090"))
    async with app_from_file(path) as (_app, client):
        answer = await client.get("/api/v1/config", headers=bearer(OPERATOR_TOKEN))
    assert answer.status_code == 200
    body = answer.json()
    assert body["source"] == str(path)
    assert body["config"]["prometheus"]["url"] == "http://prom.example:9090"
    assert body["config"]["prometheus"]["password"] == "**********"
    assert body["config"]["database"]["url"].startswith("sqlite+aiosqlite:///")
    for secret in ("url-secret-5", "prom-pass-9", VIEWER_TOKEN, ADMIN_TOKEN):
        assert secret not in answer.text


async def test_reload_applies_a_changed_file(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://prom-a:9090"))
    async with app_from_file(path) as (app, client):
        before = app.state.context.backends.prometheus
        assert (await client.get("/api/v1/whoami", headers=bearer(NEW_TOKEN))).status_code == 401

        path.write_text(config_text(sqlite_url, "http://prom-b:9090", extra_token=True))
        answer = await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))

        assert answer.status_code == 200
        assert answer.json() == {"source": str(path), "changed": ["prometheus", "auth"], "warnings": []}
        assert (await client.get("/api/v1/whoami", headers=bearer(NEW_TOKEN))).json()["name"] == "added"
        after = app.state.context.backends.prometheus
        assert after is not before
        assert after.settings.url == "http://prom-b:9090"
        shown = (await client.get("/api/v1/config", headers=bearer(OPERATOR_TOKEN))).json()
        assert shown["config"]["prometheus"]["url"] == "http://prom-b:9090"


async def test_a_broken_file_is_refused_and_the_old_config_stays(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://prom-a:9090"))
    async with app_from_file(path) as (_app, client):
        path.write_text("timezone: Nowhere/Atlantis\nprometheus: {url: not-a-url}\n")
        answer = await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))
        assert answer.status_code == 400
        body = answer.json()
        assert body["error"] == "invalid_config"
        assert any(p.startswith(f"{path}:1: timezone: unknown time zone") for p in body["problems"])
        assert any(p.startswith(f"{path}:2: prometheus.url: must be an http://") for p in body["problems"])
        still = await client.get("/api/v1/config", headers=bearer(OPERATOR_TOKEN))
        assert still.json()["config"]["prometheus"]["url"] == "http://prom-a:9090"


async def test_a_database_change_waits_for_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://prom-a:9090"))
    async with app_from_file(path) as (_app, client):
        path.write_text(config_text(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}", "http://prom-a:9090"))
        answer = await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))
        assert answer.json()["changed"] == []
        assert answer.json()["warnings"] == ["database settings changed; they take effect after a restart"]
        shown = (await client.get("/api/v1/config", headers=bearer(OPERATOR_TOKEN))).json()
        assert shown["config"]["database"]["url"] == sqlite_url


async def test_sighup_reloads(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://prom-a:9090"))
    async with app_from_file(path) as (_app, client):
        path.write_text(config_text(sqlite_url, "http://prom-a:9090", extra_token=True))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            answer = await client.get("/api/v1/whoami", headers=bearer(NEW_TOKEN))
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert answer.status_code == 200


async def test_adding_a_token_by_reload_keeps_the_generated_admin_token(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The issue: first run without tokens (an admin token is generated), then a Grafana viewer
    token is configured and reloaded: the admin still gets in with data/admin.token, and the
    reload says that token stays valid."""
    path = tmp_path / "panorama.yaml"
    data_dir = tmp_path / "data"
    path.write_text(yaml.safe_dump({"database": {"url": sqlite_url}, "data_dir": str(data_dir)}))
    settings, _ = with_generated_admin_token(load_settings(path, {}))
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    app = create_app(settings, config_path=path, tracer_provider=TracerProvider())
    admin = (data_dir / "admin.token").read_text().strip()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            viewer = {"name": "grafana", "role": "viewer", "token": NEW_TOKEN}
            path.write_text(
                yaml.safe_dump(
                    {"database": {"url": sqlite_url}, "data_dir": str(data_dir), "auth": {"tokens": [viewer]}}
                )
            )
            answer = await client.post("/-/reload", headers=bearer(admin))
            assert answer.status_code == 200
            [warning] = answer.json()["warnings"]
            assert str(data_dir / "admin.token") in warning
            assert "stays valid" in warning
            who = await client.get("/api/v1/whoami", headers=bearer(admin))
            assert who.json() == {"name": "generated-admin", "role": "admin"}
            grafana = await client.get("/api/v1/whoami", headers=bearer(NEW_TOKEN))
            assert grafana.json() == {"name": "grafana", "role": "viewer"}
            again = await client.post("/-/reload", headers=bearer(admin))  # still in, still told
            assert again.status_code == 200
            (data_dir / "admin.token").unlink()  # revoking it is deleting the file
            assert (await client.post("/-/reload", headers=bearer(admin))).json()["warnings"] == []
            assert (await client.get("/api/v1/whoami", headers=bearer(admin))).status_code == 401


async def test_a_reload_says_when_a_file_was_written_after_a_start_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` first (no file: the defaults), then ./panorama.yaml written and /-/reload: the
    file is not read by a process started without one, and the answer says so instead of nothing."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PANORAMA_")]:
        monkeypatch.delenv(name)
    settings, _ = with_generated_admin_token(load_settings(None, {}))
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    admin = (tmp_path / "data" / "admin.token").read_text().strip()
    app = create_app(settings, config_path=None, tracer_provider=TracerProvider())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            before = await client.post("/-/reload", headers=bearer(admin))
            (tmp_path / "panorama.yaml").write_text("timezone: Asia/Shanghai\n")
            after = await client.post("/-/reload", headers=bearer(admin))
    assert before.json()["warnings"] == []
    assert after.status_code == 200
    assert after.json()["source"] == "(defaults)"
    assert after.json()["warnings"] == [
        "panorama.yaml exists, but this process started without a configuration file and keeps its "
        "defaults: restart it to read the file"
    ]


async def test_public_url_follows_the_port_served_across_reloads(tmp_path: Path, sqlite_url: str) -> None:
    """`serve --port 9000` without alerts.public_url: ack links on port 9000, before and after a reload;
    once the file sets public_url, that wins."""
    path = tmp_path / "panorama.yaml"
    path.write_text(config_text(sqlite_url, "http://prom-a:9090"))
    settings = load_settings(path, {})
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    app = create_app(
        settings, config_path=path, served_url="http://127.0.0.1:9000", tracer_provider=TracerProvider()
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:

            async def public_url() -> str:
                shown = await client.get("/api/v1/config", headers=bearer(OPERATOR_TOKEN))
                url: str = shown.json()["config"]["alerts"]["public_url"]
                return url

            assert await public_url() == "http://127.0.0.1:9000"
            path.write_text(config_text(sqlite_url, "http://prom-b:9090"))
            assert (await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))).json()["changed"] == [
                "prometheus"
            ]
            assert await public_url() == "http://127.0.0.1:9000"
            explicit = yaml.safe_load(config_text(sqlite_url, "http://prom-b:9090"))
            explicit["alerts"] = {"public_url": "https://panorama.example.com"}
            path.write_text(yaml.safe_dump(explicit))
            assert (await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))).status_code == 200
            assert await public_url() == "https://panorama.example.com"

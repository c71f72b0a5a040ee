"""/healthz and /readyz: the database decides readiness; backends are reported, up or down."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.server import LoopbackServer
from tests.harness.app import AppFactory
from tests.harness.processes import free_port


async def test_healthz_needs_nothing(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


async def test_ready_with_no_backend_configured(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ready"] is True
    assert body["database"]["ok"] is True
    assert body["database"]["dialect"] == "sqlite"
    assert body["database"]["revision"] == body["database"]["head"]
    assert body["backends"] == {
        name: {
            "configured": False,
            "ok": False,
            "url": None,
            "latency_ms": None,
            "version": None,
            "error": "not configured",
        }
        for name in ("prometheus", "elasticsearch", "jaeger")
    }


async def test_not_ready_before_migrations(app_factory: AppFactory) -> None:
    async with app_factory(migrate=False) as (_app, client):
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    database = answer.json()["database"]
    assert database["ok"] is False
    assert database["revision"] is None
    assert "run `panorama migrate`" in database["error"]


async def test_not_ready_when_the_database_is_down(app_factory: AppFactory) -> None:
    url = f"postgresql+asyncpg://panorama@127.0.0.1:{free_port()}/panorama"
    async with app_factory(database_url=url, migrate=False) as (_app, client):
        answer = await client.get("/readyz")
        healthz = await client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert body["database"]["dialect"] == "postgresql"
    assert body["database"]["error"]
    assert healthz.status_code == 200


async def test_ready_on_postgresql(app_factory: AppFactory, postgres_url: str) -> None:
    async with app_factory(database_url=postgres_url) as (_app, client):
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json()["database"]["dialect"] == "postgresql"


async def test_backends_up_report_their_versions(
    app_factory: AppFactory, prometheus: Any, fake_elasticsearch: Any, fake_jaeger: Any
) -> None:
    _, es_url = fake_elasticsearch
    _, jaeger_url = fake_jaeger
    async with app_factory(
        prometheus={"url": prometheus.url}, elasticsearch={"url": es_url}, jaeger={"url": jaeger_url}
    ) as (_app, client):
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    backends = answer.json()["backends"]
    assert backends["prometheus"]["ok"] is True
    assert backends["prometheus"]["version"].startswith("2.")
    assert backends["prometheus"]["url"] == prometheus.url
    assert backends["elasticsearch"]["ok"] is True
    assert backends["elasticsearch"]["version"].startswith("8.")
    assert backends["jaeger"]["ok"] is True
    for backend in backends.values():
        assert backend["configured"] is True
        assert backend["latency_ms"] >= 0
        assert backend["error"] is None


async def test_backends_down_are_reported_without_failing_readiness(app_factory: AppFactory) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_factory(
        prometheus={"url": closed, "retries": 0},
        elasticsearch={"url": closed, "retries": 0},
        jaeger={"url": closed, "retries": 0},
    ) as (_app, client):
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ready"] is True
    for name, backend in body["backends"].items():
        assert backend["configured"] is True, name
        assert backend["ok"] is False, name
        assert backend["error"], name


async def test_a_hanging_backend_is_cut_off(app_factory: AppFactory) -> None:
    """A backend that accepts but never answers is reported down within the probe timeout."""
    server = LoopbackServer(_never_answers)
    server.start()
    try:
        async with app_factory(jaeger={"url": server.url, "retries": 0}) as (_app, client):
            answer = await client.get("/readyz")
    finally:
        server.stop()
    jaeger = answer.json()["backends"]["jaeger"]
    assert answer.status_code == 200
    assert jaeger["ok"] is False
    assert "no answer" in jaeger["error"] or "time" in jaeger["error"]


async def _never_answers(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await asyncio.sleep(5)

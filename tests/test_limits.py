"""Per-token rate limits (429 with Retry-After) and CORS (off unless configured)."""

from __future__ import annotations

from app.limits import TokenBuckets
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer


async def test_a_token_over_its_rate_gets_429_with_retry_after(app_factory: AppFactory) -> None:
    async with app_factory(server={"rate_limit": {"per_token_per_min": 60, "burst": 5}}) as (_app, client):
        answers = [await client.get("/api/v1/whoami", headers=bearer(VIEWER_TOKEN)) for _ in range(7)]
        other = await client.get("/api/v1/whoami", headers=bearer(OPERATOR_TOKEN))  # its own bucket
        health = [await client.get("/healthz") for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    limited = answers[-1]
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    assert VIEWER_TOKEN not in limited.text
    assert limited.headers["x-content-type-options"] == "nosniff"  # answered before routing, secured alike
    assert other.status_code == 200
    assert {h.status_code for h in health} == {200}


async def test_alertmanager_is_never_rate_limited(app_factory: AppFactory) -> None:
    config = alerting_config()
    async with app_factory(server={"rate_limit": {"per_token_per_min": 60, "burst": 2}}, **config) as (
        _app,
        client,
    ):
        answers = [
            await client.post(WEBHOOK, json=payload(f"G{n}", [alert(f"G{n}")]), headers=bearer_webhook())
            for n in range(6)
        ]
    assert {a.status_code for a in answers} == {202}


def test_the_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    assert [buckets.take("t", 60, 2) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("t", 60, 2) == 1.0  # one a second: wait a second
    now[0] = 1.0
    assert buckets.take("t", 60, 2) == 0.0
    now[0] = 100.0
    assert [buckets.take("t", 60, 2) for _ in range(3)][:2] == [0.0, 0.0]  # never more than the burst


async def test_cors_is_off_unless_configured(app_factory: AppFactory) -> None:
    preflight = {
        "Origin": "https://grafana.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with app_factory() as (_app, client):
        off = await client.options("/api/v1/whoami", headers=preflight)
        off_get = await client.get(
            "/api/v1/whoami", headers={**bearer(VIEWER_TOKEN), "Origin": preflight["Origin"]}
        )
    async with app_factory(server={"cors": {"allow_origins": ["https://grafana.example.com"]}}) as (
        _app,
        client,
    ):
        allowed = await client.options("/api/v1/whoami", headers=preflight)
        stranger = await client.options(
            "/api/v1/whoami", headers={**preflight, "Origin": "https://evil.example"}
        )
        on_get = await client.get(
            "/api/v1/whoami", headers={**bearer(VIEWER_TOKEN), "Origin": preflight["Origin"]}
        )
    assert "access-control-allow-origin" not in off.headers
    assert "access-control-allow-origin" not in off_get.headers
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://grafana.example.com"
    assert "access-control-allow-origin" not in stranger.headers
    assert on_get.headers["access-control-allow-origin"] == "https://grafana.example.com"

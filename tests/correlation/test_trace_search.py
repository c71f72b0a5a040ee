"""GET /api/v1/traces: trace summaries from Jaeger (v3 first, v1 fallback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.correlation.support import at, backend, span, store_trace
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

AUTH = bearer(VIEWER_TOKEN)


@pytest.fixture
def jaeger(fake_jaeger: tuple[FakeJaeger, str]) -> FakeJaeger:
    """Three checkout traces through Istio (`checkout.shop`) and one of another service."""
    fake = fake_jaeger[0]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    store_trace(
        fake,
        span("1" * 32, "11" * 8, None, "frontend.shop", "GET /cart", t0, 50),
        span("1" * 32, "12" * 8, "11" * 8, "checkout.shop", "POST /orders", at(t0, 5), 40),
    )
    store_trace(
        fake,
        span("2" * 32, "21" * 8, None, "checkout.shop", "POST /orders", at(t0, 1000), 900),
        span("2" * 32, "22" * 8, "21" * 8, "payments.shop", "charge", at(t0, 1010), 880, error=True),
    )
    store_trace(fake, span("3" * 32, "31" * 8, None, "checkout.shop", "GET /orders", at(t0, 2000), 20))
    store_trace(fake, span("4" * 32, "41" * 8, None, "search.shop", "GET /q", at(t0, 3000), 10))
    return fake


@pytest.fixture
async def client(
    app_factory: AppFactory, fake_jaeger: tuple[FakeJaeger, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(jaeger=backend(fake_jaeger[1])) as (_app, http):
        yield http


async def _search(client: httpx.AsyncClient, **params: str | int) -> httpx.Response:
    return await client.get("/api/v1/traces", params=params, headers=AUTH)


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [t["trace_id"][0] for t in answer.json()["traces"]]


async def test_summaries_newest_first(client: httpx.AsyncClient, jaeger: FakeJaeger) -> None:
    answer = await _search(client, service="checkout.shop")

    assert _ids(answer) == ["3", "2", "1"]
    second = answer.json()["traces"][1]
    assert second["root_service"] == "checkout.shop"
    assert second["root_operation"] == "POST /orders"
    assert second["duration_ms"] == 900
    assert second["span_count"] == 2
    assert second["error_count"] == 1
    assert second["services"] == ["checkout.shop", "payments.shop"]
    assert second["url"] == f"/api/v1/traces/{'2' * 32}"
    assert answer.json()["traces"][2]["root_service"] == "frontend.shop"


async def test_the_bare_app_name_finds_istio_named_services(
    client: httpx.AsyncClient, jaeger: FakeJaeger
) -> None:
    answer = await _search(client, service="checkout")
    assert _ids(answer) == ["3", "2", "1"]
    assert answer.json()["services_searched"] == ["checkout.shop"]


async def test_filters(client: httpx.AsyncClient, jaeger: FakeJaeger) -> None:
    assert _ids(await _search(client, service="checkout.shop", error="true")) == ["2"]
    assert _ids(await _search(client, service="checkout.shop", error="false")) == ["3", "1"]
    assert _ids(await _search(client, service="checkout.shop", min_duration_ms=100)) == ["2"]
    assert _ids(await _search(client, service="checkout.shop", max_duration_ms=30)) == ["3"]
    assert _ids(await _search(client, service="checkout.shop", operation="POST /orders")) == ["2", "1"]
    assert _ids(await _search(client, service="checkout.shop", limit=1)) == ["3"]
    older = {"from": "now-2h", "to": "now-1h"}
    assert _ids(await _search(client, service="checkout.shop", **older)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "query parameter 'service': Field required"),
        ({"service": "x", "error": "maybe"}, "query parameter 'error'"),
        ({"service": "x", "limit": 101}, "query parameter 'limit': must be between 1 and 100"),
        ({"service": "x", "min_duration_ms": 50, "max_duration_ms": 10}, "min_duration_ms"),
        ({"service": "x", "from": "soon"}, "query parameter 'from': 'soon' is not a time"),
    ],
)
async def test_bad_parameters(client: httpx.AsyncClient, params: dict[str, str | int], message: str) -> None:
    answer = await _search(client, **params)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


async def test_jaeger_1_is_searched_on_api_v1(client: httpx.AsyncClient, jaeger: FakeJaeger) -> None:
    jaeger.v1_only = True
    assert _ids(await _search(client, service="checkout.shop")) == ["3", "2", "1"]
    assert jaeger.requests_to("/api/traces")


async def test_jaeger_failing_is_a_502_naming_it(client: httpx.AsyncClient, jaeger: FakeJaeger) -> None:
    jaeger.fail_with(500)
    answer = await _search(client, service="checkout.shop")
    assert answer.status_code == 502
    assert answer.json()["backend"] == "jaeger"

"""GET /api/v1/rollups: one figure as a flat JSON array, for Grafana's Infinity datasource and alerting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.grafana.support import CHECKOUT, PAYMENTS, SEARCH, store_days
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

VIEW = bearer(VIEWER_TOKEN)


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(timezone="Asia/Shanghai") as (app, http):
        async with app.state.context.sessions.begin() as session:
            await store_days(session)
        yield http


async def rows(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/rollups", params=params, headers=VIEW)
    assert answer.status_code == 200, answer.text
    body: list[dict[str, Any]] = answer.json()
    return body


async def test_one_figure_per_entity_and_period(client: httpx.AsyncClient) -> None:
    period = {"from": "2025-02-01", "to": "2025-03-31"}
    found = await rows(client, figure="service.latency_p99_ms", entity=[PAYMENTS, CHECKOUT], **period)
    assert list(found[0]) == ["time", "entity", "figure", "value", "partial_days"]
    assert found[0] == {
        "time": "2025-02-01T00:00:00+08:00",
        "entity": PAYMENTS,
        "figure": "service.latency_p99_ms",
        "value": found[0]["value"],
        "partial_days": 0,  # no day of the period was cut (test_api: one that was)
    }
    assert [r["entity"] for r in found] == [PAYMENTS] * 58 + [CHECKOUT] * 59  # payments has a day missing
    daily = (
        await client.get(
            f"/api/v1/reports/services/{CHECKOUT}/daily",
            params={"from": "2025-02-01", "to": "2025-03-31"},
            headers=VIEW,
        )
    ).json()["days"]
    assert [r["value"] for r in found if r["entity"] == CHECKOUT] == [d["latency_p99_ms"] for d in daily]


async def test_grafana_time_macros_and_coarser_periods(client: httpx.AsyncClient) -> None:
    """``from=${__from}&to=${__to}`` (epoch ms) or ISO times work as well as days."""
    start = int(datetime(2025, 1, 31, 16, 0, tzinfo=UTC).timestamp() * 1000)  # 1 February, 00:00 in Shanghai
    end = "2025-03-31T16:00:00Z"  # 1 April 00:00 in Shanghai: March is the last day's month
    monthly = await rows(
        client, figure="service.requests", entity=SEARCH, granularity="month", **{"from": start, "to": end}
    )
    assert [(r["time"], r["value"]) for r in monthly] == [
        ("2025-02-01T00:00:00+08:00", pytest.approx(14 * 100.0 + 14 * 10.0)),
        ("2025-03-01T00:00:00+08:00", pytest.approx(16 * 100.0 + 15 * 10.0)),
    ]
    every = await rows(
        client, figure="cluster.cpu_utilization_peak", granularity="week", **{"from": "2025-03-01"}
    )
    assert {r["entity"] for r in every} == {"cluster"}
    assert every[0]["time"] == "2025-02-24T00:00:00+08:00"
    all_services = await rows(
        client, figure="service.errors", granularity="month", **{"from": "2025-03-01", "to": "2025-03-31"}
    )
    assert [r["entity"] for r in all_services] == [CHECKOUT, PAYMENTS, SEARCH]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        (
            {"figure": "service.latency_p98_ms"},
            404,
            "unknown figure 'service.latency_p98_ms'; the figures are",
        ),
        ({"figure": "cpu_cores"}, 404, "unknown figure 'cpu_cores'"),
        (
            {"figure": "service.requests", "from": "yesterday"},
            400,
            "query parameter 'from': 'yesterday' is not",
        ),
        ({"figure": "service.requests", "to": "now-1x"}, 400, "query parameter 'to': 'now-1x': cannot read"),
        (
            {"figure": "service.requests", "from": "2020-01-01", "to": "2025-01-01"},
            400,
            "longer than 1096 days",
        ),
        (
            {"figure": "service.requests", "entity": "nope.x.svc.cluster.local"},
            404,
            "nope.x.svc.cluster.local",
        ),
        ({"granularity": "day"}, 400, "query parameter 'figure': Field required"),
    ],
)
async def test_bad_parameters_name_the_problem(
    client: httpx.AsyncClient, params: dict[str, str], status: int, fragment: str
) -> None:
    answer = await client.get("/api/v1/rollups", params=params, headers=VIEW)
    assert answer.status_code == status
    assert fragment in answer.json()["message"]
    assert "error" in answer.json()

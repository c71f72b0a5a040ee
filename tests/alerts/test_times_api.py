"""The alerting API reads the one time grammar: the incident list (`from=now-1h` was a 422) and
maintenance bodies (an offset was required)."""

from __future__ import annotations

import httpx

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied


async def listed(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/api/v1/incidents", params=params, headers=bearer(VIEWER_TOKEN))


async def test_incidents_filter_by_relative_dated_and_zoneless_times(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        fired = alert("DiskFull", instance="node-1")
        opened = await client.post(WEBHOOK, json=payload("DiskFull", [fired]), headers=bearer_webhook())
        incident = await applied(client, opened)
        resolved = {**fired, "status": "resolved"}
        await applied(
            client, await client.post(WEBHOOK, json=payload("DiskFull", [resolved]), headers=bearer_webhook())
        )
        recent = await listed(client, **{"from": "now-1h"})
        later = await listed(client, **{"from": "now+1h"})
        until_now = await listed(client, **{"from": "now-1d/d", "to": "now"})
        before = await listed(client, **{"to": "now-1h"})
        dated = await listed(client, **{"from": "2020-01-01", "to": "2020-01-01"})
        zoneless = await listed(client, **{"from": "2020-01-01T00:00:00"})
        bad = await listed(client, **{"from": "an hour ago"})

    def ids(answer: httpx.Response) -> list[int]:
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()["incidents"]]

    assert ids(recent) == [incident]  # resolved within the last hour
    assert ids(later) == []  # resolved before then
    assert ids(until_now) == [incident]
    assert ids(before) == []  # opened after then
    assert ids(dated) == []  # a date as `to` is the end of that day, long before
    assert ids(zoneless) == [incident]
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "from"
    assert bad.json()["message"].startswith("query parameter 'from': 'an hour ago' is not a time; use ")
    assert "now-1h" in bad.json()["message"]


async def test_a_maintenance_window_without_offsets_is_in_the_configured_zone(
    app_factory: AppFactory,
) -> None:
    """Bodies required an offset before; now an offset-less time is a wall time of ``timezone``."""
    async with app_factory(**{**alerting_config(), "timezone": "Asia/Shanghai"}) as (_app, client):
        window = await client.post(
            "/api/v1/maintenance",
            json={"matchers": ['service="payments"'], "start": "2030-01-01T02:00", "end": "2030-01-01T04:00"},
            headers=bearer(OPERATOR_TOKEN),
        )
        mixed = await client.post(
            "/api/v1/maintenance",
            json={"matchers": ['service="cart"'], "start": "2030-01-01T02:00", "end": "2029-12-31T18:00:00Z"},
            headers=bearer(OPERATOR_TOKEN),
        )
    assert window.status_code == 201, window.text
    assert window.json()["start"].startswith("2029-12-31T18:00:00")  # 02:00 in Shanghai, in UTC
    assert window.json()["end"].startswith("2029-12-31T20:00:00")
    assert mixed.status_code == 400  # 02:00 Shanghai is 18:00Z: the window would be empty
    assert mixed.json()["parameter"] == "end"

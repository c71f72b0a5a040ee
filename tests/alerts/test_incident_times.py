"""The incident list's ``from``/``to`` read the one time grammar: ``from=now-1h`` was a 422 before."""

from __future__ import annotations

import httpx

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer


async def listed(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/api/v1/incidents", params=params, headers=bearer(VIEWER_TOKEN))


async def test_incidents_filter_by_relative_dated_and_zoneless_times(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        fired = alert("DiskFull", instance="node-1")
        opened = await client.post(WEBHOOK, json=payload("DiskFull", [fired]), headers=bearer_webhook())
        resolved = {**fired, "status": "resolved"}
        await client.post(WEBHOOK, json=payload("DiskFull", [resolved]), headers=bearer_webhook())
        recent = await listed(client, **{"from": "now-1h"})
        later = await listed(client, **{"from": "now+1h"})
        until_now = await listed(client, **{"from": "now-1d/d", "to": "now"})
        before = await listed(client, **{"to": "now-1h"})
        dated = await listed(client, **{"from": "2020-01-01", "to": "2020-01-01"})
        zoneless = await listed(client, **{"from": "2020-01-01T00:00:00"})
        bad = await listed(client, **{"from": "an hour ago"})
    incident = opened.json()["incident_id"]

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

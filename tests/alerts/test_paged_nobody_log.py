"""An incident that pages nobody says why in the log: an alert no route takes is otherwise kept
and shown, but silently (the issue: "the first alert without any route is muted without a line")."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.harness.app import AppFactory
from tests.harness.intake import applied, incident_of


async def post(client: httpx.AsyncClient, body: dict[str, object]) -> int:
    answer = await client.post(WEBHOOK, json=body, headers=bearer_webhook())
    await applied(client, answer)
    incident_id: int = await incident_of(client, answer)
    return incident_id


async def test_each_incident_that_pages_nobody_logs_one_line_with_its_reason(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    config = alerting_config()
    config["time_intervals"] = [{"name": "always", "time_intervals": [{"weekdays": ["sunday:saturday"]}]}]
    config["routes"] = [
        {"matchers": ['team="quiet"'], "escalation": "default", "mute_time_intervals": ["always"]},
        *config["routes"],
    ]
    caplog.set_level(logging.INFO, logger="panorama.alerts")
    async with app_factory(**config) as (_app, client):
        nowhere = await post(client, payload("Odd", [alert("Odd", severity="debug")]))
        info = await post(client, payload("Deploy", [alert("Deploy", severity="info")]))
        quiet = await post(client, payload("Hush", [alert("Hush", team="quiet")]))
        paged = await post(client, payload("Down", [alert("Down", team="payments")]))
        await post(client, payload("Odd", [alert("Odd", severity="debug")]))  # the same group again
    lines = [
        r
        for r in caplog.records
        if r.getMessage().startswith("incident ") and "pages nobody" in r.getMessage()
    ]
    by_incident = {r.__dict__.get("incident_id"): r for r in lines}
    assert len(lines) == 3  # one each, none for the paged incident, none for the repeat
    assert paged not in by_incident
    assert by_incident[nowhere].levelno == logging.WARNING
    assert by_incident[nowhere].__dict__["reason"] == "no route matches its labels"
    assert by_incident[nowhere].__dict__["group_key"] == '{}:{alertname="Odd"}'
    assert by_incident[nowhere].__dict__["alertname"] == "Odd"
    assert by_incident[info].levelno == logging.WARNING
    assert by_incident[info].__dict__["reason"] == "the matching route (routes[2]) names no escalation"
    assert by_incident[quiet].levelno == logging.INFO
    assert by_incident[quiet].__dict__["reason"] == "muted: mute time interval always"

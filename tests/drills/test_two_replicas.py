"""Drill: two replicas on one PostgreSQL receive the same groups at the same instant, directly and
through a real Alertmanager pointed at both: each group has one incident and one page."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.alerts.support import alert, payload
from tests.drills.support import (
    WEBHOOK_TOKEN,
    Tally,
    drill_config,
    incidents,
    migrate,
    page_titles,
    report,
    start_replica,
    wait_until,
    webhook_headers,
)
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.harness.alertmanager import RunningAlertmanager

pytestmark = [pytest.mark.drill, pytest.mark.postgres, pytest.mark.timeout(240)]
GROUPS = 40
STORM = 60


async def test_the_same_groups_at_two_replicas_open_one_incident_and_page_once(
    tmp_path: Path,
    postgres_url: str,
    serve_sink: Callable[[WebhookSink], Served[WebhookSink]],
    alertmanager_factory: Callable[..., RunningAlertmanager],
) -> None:
    sink = serve_sink(WebhookSink())
    config = drill_config(sink.url)
    migrate(postgres_url, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", postgres_url, tmp_path, config) for n in range(2)]
    try:
        # 1. The same groups posted to both replicas at the same instant.
        direct = [payload(f"Direct{n}", [alert(f"Direct{n}", service="payments")]) for n in range(GROUPS)]
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{r.url}/api/v1/alerts/alertmanager", json=body, headers=webhook_headers())
                    for body in direct
                    for r in replicas
                )
            )
        assert {a.status_code for a in answers} == {202}

        # 2. A storm through a real Alertmanager that posts every group to both replicas.
        manager = alertmanager_factory(
            f"{replicas[0].url}/api/v1/alerts/alertmanager",
            also_to=[f"{replicas[1].url}/api/v1/alerts/alertmanager"],
            bearer_token=WEBHOOK_TOKEN,
        )
        await manager.apost_alerts(
            [
                {"labels": {"alertname": f"Storm{n}", "severity": "critical", "service": "cart"}}
                for n in range(STORM)
            ]
        )
        expected = [f"Direct{n}" for n in range(GROUPS)] + [f"Storm{n}" for n in range(STORM)]
        wait_until(
            lambda: set(expected) <= set(page_titles(sink.sink.messages)),
            "every group's page at the sink",
            120,
        )
        await asyncio.sleep(3)  # anything doubled would arrive now
        opened = Counter(i["title"] for i in incidents(replicas[0]))
    finally:
        for replica in replicas:
            replica.process.stop()
    tally = Tally.of(expected, page_titles(sink.sink.messages))
    report(
        "two_replicas_same_groups",
        [
            f"{GROUPS} groups posted to both replicas at the same instant",
            f"{STORM} alerts through one Alertmanager posting every group to both replicas",
        ],
        tally,
        incidents_doubled=sum(n - 1 for n in opened.values() if n > 1),
    )
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert all(opened[title] == 1 for title in expected)

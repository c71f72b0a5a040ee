"""Drill: PostgreSQL restarted in the middle of a webhook storm sent through a real Alertmanager to
two replicas. While it is down Panorama answers 5xx and Alertmanager retries; afterwards every
group has its incident and its page: none lost, none doubled."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.alerts.support import alert, payload
from tests.drills.support import (
    WEBHOOK_TOKEN,
    OwnPostgres,
    Tally,
    all_delivered,
    drill_config,
    incidents,
    migrate,
    page_titles,
    report,
    start_replica,
    wait_until,
)
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.harness.alertmanager import RunningAlertmanager

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]
WAVE = 15
DOWN_S = 6.0


def test_postgresql_restarted_mid_storm_loses_and_doubles_nothing(
    tmp_path: Path,
    own_postgres: OwnPostgres,
    serve_sink: Callable[[WebhookSink], Served[WebhookSink]],
    alertmanager_factory: Callable[..., RunningAlertmanager],
) -> None:
    sink = serve_sink(WebhookSink())
    config = drill_config(sink.url)
    database = own_postgres.url
    migrate(database, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", database, tmp_path, config) for n in range(2)]
    hooks = [f"{r.url}/api/v1/alerts/alertmanager" for r in replicas]
    manager = alertmanager_factory(hooks[0], also_to=hooks[1:], bearer_token=WEBHOOK_TOKEN)
    names = [f"Wave{w}Alert{n}" for w in range(3) for n in range(WAVE)]

    def wave(number: int) -> None:
        manager.post_alerts(
            [{"labels": {"alertname": f"Wave{number}Alert{n}", "severity": "critical"}} for n in range(WAVE)]
        )

    refused = 0
    try:
        wave(0)
        time.sleep(2)
        own_postgres.stop("fast")
        down_at = time.monotonic()
        wave(1)
        with httpx.Client(timeout=10) as client:
            direct = client.post(
                f"{replicas[1].url}/api/v1/alerts/alertmanager",
                json=payload("Direct", [alert("Direct")]),
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            )
            while time.monotonic() - down_at < DOWN_S:
                ready = client.get(f"{replicas[0].url}/readyz")
                refused += ready.status_code == 503
                time.sleep(0.5)
        own_postgres.start()
        wave(2)
        wait_until(
            lambda: all_delivered(database) and set(names) <= set(page_titles(sink.sink.messages)),
            "every group paged after the restart",
            180,
        )
        time.sleep(3)
        opened = Counter(i["title"] for i in incidents(replicas[0]))
        answered_5xx = sum(r.log().count("POST /api/v1/alerts/alertmanager 503") for r in replicas)
    finally:
        for replica in replicas:
            replica.process.stop()
    tally = Tally.of(names, page_titles(sink.sink.messages))
    report(
        "postgresql_restart_mid_storm",
        [
            f"{len(names)} alerts in three waves through one Alertmanager posting to two replicas",
            f"PostgreSQL stopped for {DOWN_S:g}s between the first and the third wave",
        ],
        tally,
        direct_webhook_while_down=direct.status_code,
        alertmanager_webhooks_answered_503=answered_5xx,
        readiness_503_while_down=refused,
        incidents_doubled=sum(n - 1 for n in opened.values() if n > 1),
    )
    assert refused > 0
    assert direct.status_code == 503  # not stored: the sender must retry
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert all(opened[name] == 1 for name in names)

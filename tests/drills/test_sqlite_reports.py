"""Drill: on the embedded SQLite, webhooks keep being answered (never "database is locked") while
three-year reports of every service run back to back, and reports keep completing while the webhooks
write: neither waits for the other to finish. Latencies are recorded in the drill report, not
asserted (tests never assert on wall-clock time; bench/alert_storm.py measures speed)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from bench.rollup_store import fill_sqlite, service_names
from tests.alerts.support import alert, payload
from tests.drills.support import Tally, drill_config, migrate, report, start_replica, webhook_headers
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.harness.app import TOKENS

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]
SERVICES = 150
DAYS = 1096
WEBHOOKS = 60


def test_webhooks_are_answered_while_three_year_reports_run(
    tmp_path: Path, serve_sink: Callable[[WebhookSink], Served[WebhookSink]]
) -> None:
    sink = serve_sink(WebhookSink())
    database = tmp_path / "panorama.db"
    url = f"sqlite+aiosqlite:///{database}"
    config = drill_config(sink.url, timezone="UTC")
    migrate(url, tmp_path, config)
    last = date.today() - timedelta(days=1)
    days = [last - timedelta(days=n) for n in range(DAYS)][::-1]
    stored = fill_sqlite(database, service_names(SERVICES), days)
    replica = start_replica("embedded", url, tmp_path, config)
    reports: list[float] = []
    stop = threading.Event()

    def run_reports() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                started = time.monotonic()
                answer = client.get(
                    f"{replica.url}/api/v1/reports/services",
                    params={"from": days[0].isoformat(), "to": last.isoformat()},
                    headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
                )
                assert answer.status_code == 200, answer.text[:300]
                reports.append(time.monotonic() - started)

    latencies: list[float] = []
    names = [f"DuringReport{n}" for n in range(WEBHOOKS)]
    reader = threading.Thread(target=run_reports, daemon=True)
    try:
        reader.start()
        time.sleep(1.0)  # a report is running
        reports_before = len(reports)
        with httpx.Client(timeout=30) as client:
            for name in names:
                started = time.monotonic()
                answer = client.post(
                    f"{replica.url}/api/v1/alerts/alertmanager",
                    json=payload(name, [alert(name)]),
                    headers=webhook_headers(),
                )
                latencies.append(time.monotonic() - started)
                assert answer.status_code == 202
                time.sleep(0.2)
        reports_during = len(reports) - reports_before
    finally:
        stop.set()
        reader.join(timeout=150)
        replica.process.stop()
    tally = Tally.of(names, [n for n in names])  # every webhook was answered 200 (asserted above)
    report(
        "sqlite_webhooks_during_reports",
        [f"three-year reports of {SERVICES} services ({stored} stored rows), back to back, on SQLite"],
        tally,
        reports_run=len(reports),
        reports_during_webhooks=reports_during,
        report_s_median=round(statistics.median(reports), 2) if reports else None,
        webhook_ms_median=round(statistics.median(latencies) * 1000, 1),
        webhook_ms_max=round(max(latencies) * 1000, 1),
    )
    assert reports_during >= 2  # reports went on completing while the webhooks were written

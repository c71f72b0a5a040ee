"""End to end: a real Alertmanager posts to a served Panorama, which pages a DingTalk robot sink;
and a Panorama killed with SIGKILL between storing and sending still delivers, once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider

from app import db, migrations
from app.alerts.models import JournalEntry
from app.config import DatabaseSettings
from app.main import create_app
from tests.alerts.support import WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.alerts.test_pipeline import on_call_now
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink
from tests.fakes.server import serve
from tests.harness.alertmanager import RunningAlertmanager
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, bearer, configured_tokens, settings_for
from tests.harness.intake import applied
from tests.harness.processes import ManagedProcess, free_port

WAIT_S = 30.0
PANORAMA = str(Path(sys.executable).parent / "panorama")


def config(robot: Served[DingTalkSink]) -> dict[str, Any]:
    found = alerting_config(worker=True, worker_interval="0.2s")
    found["channels"][0] = {
        "name": "ops-robot",
        "type": "dingtalk",
        "url": robot.url,
        "secret": DINGTALK_SECRET,
    }
    return found


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def test_alertmanager_to_the_robot_and_back(
    sqlite_url: str,
    dingtalk_robot: Served[DingTalkSink],
    alertmanager_factory: Callable[..., RunningAlertmanager],
) -> None:
    settings = settings_for(sqlite_url, **config(dingtalk_robot))
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    robot = dingtalk_robot.sink
    with serve(create_app(settings, tracer_provider=TracerProvider()), lifespan=True) as panorama:
        alertmanager = alertmanager_factory(
            f"{panorama.url}/api/v1/alerts/alertmanager", bearer_token=WEBHOOK_TOKEN
        )
        labels = {"alertname": "PaymentsDown", "severity": "critical", "service": "payments"}
        await alertmanager.apost_alerts([{"labels": labels, "annotations": {"summary": "payments is down"}}])
        await until(lambda: len(robot.messages) == 1, "the page")
        text = robot.messages[0].json["markdown"]["text"]
        async with httpx.AsyncClient(base_url=panorama.url, timeout=10) as client:
            [incident] = (await client.get("/api/v1/incidents", headers=bearer(VIEWER_TOKEN))).json()[
                "incidents"
            ]
            link = re.search(r"https://panorama\.example\.com(/ack/[A-Za-z0-9._-]+)", text)
            assert link is not None, text
            confirmed = await client.post(link.group(1))
            acknowledged = (
                await client.get(f"/api/v1/incidents/{incident['id']}", headers=bearer(VIEWER_TOKEN))
            ).json()

            ended = datetime.now(UTC).isoformat()
            await alertmanager.apost_alerts([{"labels": labels, "endsAt": ended}])
            await until(lambda: len(robot.messages) == 2, "the resolved message")
            for _ in range(100):  # the worker records the delivery right after the robot confirmed it
                resolved = (
                    await client.get(f"/api/v1/incidents/{incident['id']}", headers=bearer(VIEWER_TOKEN))
                ).json()
                if [e["kind"] for e in resolved["timeline"]].count("notified") == 2:
                    break
                await asyncio.sleep(0.1)
    mobile = {"alice": "13800000001", "bob": "13800000002"}[on_call_now()]
    assert robot.messages[0].json["at"]["atMobiles"] == [mobile]
    assert "payments is down" in text
    assert incident["title"] == "PaymentsDown: payments is down"
    assert incident["receiver"] == "panorama\\.webhook"
    assert confirmed.status_code == 200
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_by"] == "ack link"
    assert resolved["status"] == "resolved"
    assert resolved["resolved_by"] == "alertmanager"
    kinds = [e["kind"] for e in resolved["timeline"]]
    assert kinds[:3] == ["received", "routed", "escalated"]
    assert kinds.count("notified") == 2
    assert "acknowledged" in kinds
    assert kinds.index("resolved") > kinds.index("acknowledged")
    assert len(robot.messages) == 2  # acknowledged: no escalation; resolved: one message


def write_config(path: Path, robot: Served[DingTalkSink], database_url: str) -> None:
    data = config(robot)
    data["database"] = {"url": database_url}
    data["auth"] = {"tokens": configured_tokens()}
    data["rollups"] = {"enabled": False}
    path.write_text(yaml.safe_dump(data))


async def migrated_server(
    tmp_path: Path, robot: Served[DingTalkSink], database_url: str
) -> tuple[ManagedProcess, str]:
    """``panorama serve`` on a free port (not started yet) over a migrated ``database_url``; its URL."""
    config_file = tmp_path / "panorama.yaml"
    write_config(config_file, robot, database_url)
    env = {"PANORAMA_CONFIG": str(config_file)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(
        subprocess.run, [PANORAMA, "migrate"], env={**os.environ, **env}, check=True, capture_output=True
    )
    server = ManagedProcess(
        "panorama",
        [PANORAMA, "serve", "--port", str(port)],
        log_path=tmp_path / "panorama.log",
        ready_url=f"{base}/healthz",
        env=env,
    )
    return server, base


async def test_a_page_stored_before_a_crash_is_delivered_after_restart_once(
    tmp_path: Path, dingtalk_robot: Served[DingTalkSink]
) -> None:
    """SIGKILL while the robot is failing: the page waits in the outbox, and the restarted Panorama
    sends it once; later restarts send nothing again."""
    robot = dingtalk_robot.sink
    robot.fail_with(503)
    server, base = await migrated_server(
        tmp_path, dingtalk_robot, f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}"
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            body = {
                "version": "4",
                "groupKey": '{}:{alertname="CrashTest"}',
                "status": "firing",
                "receiver": "panorama",
                "groupLabels": {"alertname": "CrashTest"},
                "commonLabels": {"alertname": "CrashTest", "severity": "critical"},
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "CrashTest", "severity": "critical"},
                        "startsAt": datetime.now(UTC).isoformat(),
                        "fingerprint": "c0ffee",
                    }
                ],
            }
            stored = await client.post(
                "/api/v1/alerts/alertmanager", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
            )
            await applied(client, stored, token=OPERATOR_TOKEN)
            await until(lambda: len(robot.requests) >= 1, "a first (failing) attempt")
            for _ in range(int(WAIT_S * 10)):  # the failure recorded: the page waits in the outbox
                answer = await client.get("/api/v1/incidents/1", headers=bearer(OPERATOR_TOKEN))
                if "delivery_failed" in [e["kind"] for e in answer.json()["timeline"]]:
                    break
                await asyncio.sleep(0.1)
        server.kill()
        assert robot.messages == []
        robot.clear_faults()
        server.start()
        await until(lambda: len(robot.messages) == 1, "the page after the restart")
        await asyncio.sleep(1.5)
        server.kill()
        server.start()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            detail = (await client.get("/api/v1/incidents/1", headers=bearer(OPERATOR_TOKEN))).json()
        await asyncio.sleep(1.5)
    finally:
        server.stop()
    assert len(robot.messages) == 1
    assert "CrashTest" in robot.messages[0].json["markdown"]["text"]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert "delivery_failed" in kinds
    assert kinds.count("notified") == 1


@pytest.mark.postgres
async def test_a_webhook_journaled_before_a_crash_is_applied_after_restart_once(
    tmp_path: Path, dingtalk_robot: Served[DingTalkSink], postgres_url: str
) -> None:
    """The webhook is answered 202 (its body journaled) while nothing can be applied (the test holds
    the incidents table locked); SIGKILL. The row is still queued, and the restarted Panorama applies
    it: one incident, one page."""
    server, base = await migrated_server(tmp_path, dingtalk_robot, postgres_url)
    engine = db.create_engine(DatabaseSettings.model_validate({"url": postgres_url}))
    try:
        async with engine.connect() as holder:
            await holder.exec_driver_sql("BEGIN")
            await holder.exec_driver_sql("LOCK TABLE alert_incidents IN EXCLUSIVE MODE")
            server.start()
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                answer = await client.post(
                    "/api/v1/alerts/alertmanager",
                    json=payload("CrashTest", [alert("CrashTest")]),
                    headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                )
                before = (await client.get(answer.json()["url"], headers=bearer(VIEWER_TOKEN))).json()
            server.kill()
            await holder.exec_driver_sql("COMMIT")
        async with db.create_session_factory(engine)() as session:
            left = await session.get(JournalEntry, answer.json()["id"])
            assert left is not None
            after_the_crash = left.status
        server.start()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            incident = await applied(client, answer, timeout_s=WAIT_S)
            await until(lambda: len(dingtalk_robot.sink.messages) >= 1, "the page after the restart")
            listed = (await client.get("/api/v1/incidents", headers=bearer(VIEWER_TOKEN))).json()
            detail = (await client.get(f"/api/v1/incidents/{incident}", headers=bearer(VIEWER_TOKEN))).json()
    finally:
        server.stop()
        await engine.dispose()
    assert answer.status_code == 202
    assert before["status"] == "queued"
    assert after_the_crash == "queued"
    assert [i["id"] for i in listed["incidents"]] == [incident]
    assert [e["kind"] for e in detail["timeline"]].count("received") == 1
    assert len(dingtalk_robot.sink.messages) == 1

"""The delivery worker against real sink servers: delivered once, retried, dead-lettered, digested,
and claimed by one replica at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app import db
from app.alerts.channels.base import SendResult
from app.alerts.models import JournalEntry
from app.alerts.runtime import AlertRuntime
from app.config import DatabaseSettings
from tests.alerts.support import alert, alerting_config, bearer_webhook, outbox, payload
from tests.alerts.test_pipeline import on_call_now, post
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of

Serve = Callable[[DingTalkSink], Served[DingTalkSink]]


def robot_config(robot: Served[DingTalkSink], **alerts: Any) -> dict[str, Any]:
    config = alerting_config(**alerts)
    config["channels"][0] = {
        "name": "ops-robot",
        "type": "dingtalk",
        "url": robot.url,
        "secret": DINGTALK_SECRET,
    }
    return config


def runtime(app: FastAPI) -> AlertRuntime:
    found: AlertRuntime = app.state.context.alerts
    return found


async def timeline_kinds(client: Any, incident_id: int) -> list[str]:
    detail = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))).json()
    return [entry["kind"] for entry in detail["timeline"]]


async def test_a_page_reaches_the_robot_signed_with_its_mention(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink], database_url: str
) -> None:
    async with app_factory(database_url=database_url, **robot_config(dingtalk_robot)) as (app, client):
        incident_id = await incident_of(
            client, await post(client, payload("Down", [alert("Down", service="payments")]))
        )
        assert await runtime(app).run_once() == 1
        assert await runtime(app).run_once() == 0  # nothing twice
        kinds = await timeline_kinds(client, incident_id)
        [delivery] = await outbox(app.state.context.sessions)
        metrics = (await client.get("/metrics")).text
    [message] = dingtalk_robot.sink.messages
    body = message.json
    assert body["msgtype"] == "markdown"
    mobile = {"alice": "13800000001", "bob": "13800000002"}[on_call_now()]
    assert body["at"]["atMobiles"] == [mobile]
    assert f"@{mobile}" in body["markdown"]["text"]
    assert "/ack/" in body["markdown"]["text"]
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert kinds[-1] == "notified"
    assert 'panorama_alert_deliveries_total{channel="ops-robot",outcome="delivered"} 1.0' in metrics


async def test_a_robot_down_for_a_while_gets_the_page_once_it_is_back(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    dingtalk_robot.sink.fail_with(503, times=2)
    async with app_factory(**robot_config(dingtalk_robot)) as (app, client):
        incident_id = await incident_of(client, await post(client, payload("Down", [alert("Down")])))
        worker = runtime(app)
        await worker.run_once()
        [first] = await outbox(app.state.context.sessions)
        await worker.run_once()  # not due yet: nothing is sent
        await worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1))  # (before the 5m escalation wait)
        await worker.run_once(now=datetime.now(UTC) + timedelta(minutes=3))
        [final] = await outbox(app.state.context.sessions)
        kinds = await timeline_kinds(client, incident_id)
        metrics = (await client.get("/metrics")).text
    assert first.status == "pending"
    assert first.attempts == 1
    assert first.last_error is not None
    assert "503" in first.last_error
    assert final.status == "delivered"
    assert final.attempts == 3
    assert len(dingtalk_robot.sink.requests) == 3
    assert len(dingtalk_robot.sink.messages) == 1  # nothing lost, nothing duplicated
    assert kinds.count("delivery_failed") == 2
    assert kinds[-1] == "notified"
    # each failure counted with its class, as Alertmanager's notifiers count them
    assert 'panorama_alert_delivery_failures_total{channel="ops-robot",reason="5xx"} 2.0' in metrics


@pytest.mark.timeout(60)
async def test_a_page_the_database_could_not_record_at_first_is_recorded_not_sent_again(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The robot takes the page while another process holds SQLite's write lock longer than the
    busy timeout: the outcome is recorded once the lock is free, and the page is not sent again."""
    path = make_url(sqlite_url).database
    assert path is not None
    dingtalk_robot.sink.hang(3.0, times=1)
    released = threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            while (
                other.execute("SELECT count(*) FROM alert_outbox WHERE status = 'sending'").fetchone()[0] == 0
            ):
                time.sleep(0.02)
            other.execute("BEGIN EXCLUSIVE")
            time.sleep(9.0)  # past the send (3 s) and one whole busy timeout (5 s) of the record
            other.execute("COMMIT")
        finally:
            other.close()
            released.set()

    async with app_factory(database_url=sqlite_url, **robot_config(dingtalk_robot)) as (app, client):
        await post(client, payload("Down", [alert("Down")]))
        holder = threading.Thread(target=hold_the_write_lock, daemon=True)
        holder.start()
        with caplog.at_level(logging.WARNING, logger="panorama.alerts"):
            assert await runtime(app).run_once() == 1
        assert released.is_set()
        later = datetime.now(UTC) + timedelta(minutes=2)  # past any lease: nothing is sent again
        await runtime(app).run_once(now=later)
        [delivery] = await outbox(app.state.context.sessions)
    assert "recording sent deliveries failed" in caplog.text
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert len(dingtalk_robot.sink.messages) == 1


async def test_a_refused_page_is_dead_lettered_at_once(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    dingtalk_robot.sink.fail_with_code(310000, "sign not match")
    async with app_factory(**robot_config(dingtalk_robot)) as (app, client):
        incident_id = await incident_of(client, await post(client, payload("Down", [alert("Down")])))
        await runtime(app).run_once()
        [delivery] = await outbox(app.state.context.sessions)
        detail = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))).json()
        metrics = (await client.get("/metrics")).text
    assert delivery.status == "dead"
    assert "310000" in (delivery.last_error or "")
    dead = [e for e in detail["timeline"] if e["kind"] == "dead_lettered"]
    assert dead[0]["detail"]["reason"] == "not retryable"
    assert 'outcome="dead_lettered"} 1.0' in metrics
    # refused inside an HTTP 200 answer: the robot's errcode
    assert 'panorama_alert_delivery_failures_total{channel="ops-robot",reason="errcode"} 1.0' in metrics


async def test_retrying_stops_after_max_delivery_age(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    dingtalk_robot.sink.fail_with(500)
    async with app_factory(**robot_config(dingtalk_robot, max_delivery_age="10m")) as (app, client):
        incident_id = await incident_of(client, await post(client, payload("Down", [alert("Down")])))
        worker = runtime(app)
        await worker.run_once()
        await worker.run_once(now=datetime.now(UTC) + timedelta(minutes=11))
        delivery = (await outbox(app.state.context.sessions))[0]  # later ones: the escalation's next step
        detail = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))).json()
    assert delivery.status == "dead"
    assert delivery.attempts == 2
    dead = [e for e in detail["timeline"] if e["kind"] == "dead_lettered"]
    assert dead[0]["detail"]["reason"] == "gave up after max_delivery_age"


async def test_a_burst_over_the_robots_rate_limit_becomes_one_digest(
    app_factory: AppFactory, serve_sink: Serve
) -> None:
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET, rate_limit_per_min=20))
    async with app_factory(**robot_config(robot)) as (app, client):
        for n in range(25):
            await post(client, payload(f"Burst{n}", [alert(f"Burst{n}")]))
        await runtime(app).run_once()
        stored = await outbox(app.state.context.sessions)
        await post(client, payload("After", [alert("After")]))
        await runtime(app).run_once()
    assert len(stored) == 25
    assert all(d.status == "delivered" for d in stored)
    primary = min(d.id for d in stored)
    assert all(d.digest_of == primary for d in stored if d.id != primary)
    assert len(robot.sink.messages) == 2  # the digest, then the next page on its own
    digest_text = robot.sink.messages[0].json["markdown"]["text"]
    assert "Burst0" in digest_text
    assert "Burst24" in digest_text or "24" in digest_text
    assert "After" in robot.sink.messages[1].json["markdown"]["text"]


async def test_two_replicas_send_each_page_once(
    app_factory: AppFactory, serve_sink: Serve, database_url: str
) -> None:
    """Two workers (two engines, as two replicas) drain one outbox concurrently."""
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET))
    async with app_factory(database_url=database_url, **robot_config(robot)) as (app, client):
        for n in range(12):
            await post(client, payload(f"Page{n}", [alert(f"Page{n}")]))
        other_engine = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
        context = app.state.context
        other = AlertRuntime(db.create_session_factory(other_engine), lambda: context.settings)
        try:
            await asyncio.gather(runtime(app).run_once(), other.run_once(), runtime(app).run_once())
            await asyncio.gather(runtime(app).run_once(), other.run_once())
        finally:
            await other.stop()
            await other_engine.dispose()
        stored = await outbox(context.sessions)
    assert all(d.status == "delivered" for d in stored)
    texts = [m.json["markdown"]["text"] for m in robot.sink.messages]
    assert len(texts) == 12
    assert len({t.split("\n")[0] for t in texts}) == 12


async def test_the_webhook_answer_means_journaled_and_its_incident_follows(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink]
) -> None:
    """2xx comes after the commit: a new client (another connection) sees the journaled body at once,
    byte for byte; the page follows once the row is applied."""
    async with app_factory(**robot_config(dingtalk_robot)) as (app, client):
        answer = await client.post(
            "/api/v1/alerts/alertmanager", json=payload("Down", [alert("Down")]), headers=bearer_webhook()
        )
        await applied(client, answer)
        engine = db.create_engine(app.state.context.settings.database)
        try:
            sessions = db.create_session_factory(engine)
            async with sessions() as session:
                journaled = await session.get(JournalEntry, answer.json()["id"])
            incident = await incident_of(client, answer)
            stored = await outbox(sessions)
        finally:
            await engine.dispose()
    assert answer.status_code == 202
    assert journaled is not None
    assert journaled.body == answer.request.content
    assert journaled.alerts == 1
    assert [json.loads(d.payload)["incident_id"] for d in stored] == [incident]


async def test_two_replicas_watch_a_heartbeat_without_paging_twice(
    app_factory: AppFactory, dingtalk_robot: Served[DingTalkSink], database_url: str
) -> None:
    """Both replicas see the heartbeat for the first time at once, then both find it overdue."""
    from app.alerts import heartbeats

    async with app_factory(database_url=database_url, **robot_config(dingtalk_robot)) as (app, _client):
        context = app.state.context
        key = await context.alerts.signing_key()
        engines = [db.create_engine(DatabaseSettings.model_validate({"url": database_url})) for _ in range(2)]
        factories = [db.create_session_factory(engine) for engine in engines]
        now = datetime.now(UTC)

        async def check(sessions: Any, at: datetime) -> int:
            async with sessions.begin() as session:
                opened: int = await heartbeats.check(session, context.settings, at, key)
                return opened

        try:
            first = await asyncio.gather(*(check(f, now) for f in factories))
            later = now + timedelta(minutes=6)
            overdue = await asyncio.gather(*(check(f, later) for f in factories))
        finally:
            for engine in engines:
                await engine.dispose()
        paged = await outbox(context.sessions)
    assert first == [0, 0]
    assert sorted(overdue) == [0, 1]
    assert len({d.incident_id for d in paged}) == 1


@pytest.mark.parametrize(
    ("result", "failure_class"),
    [
        (SendResult.failure("refused", retryable=False, status=403), "4xx"),
        (SendResult.failure("overloaded", retryable=True, status=502), "5xx"),
        (SendResult.failure("no answer within 10s", retryable=True, timeout=True), "timeout"),
        (SendResult.failure("errcode 310000", retryable=False, status=200), "errcode"),
        (SendResult.failure("connection refused", retryable=True), "other"),
    ],
)
def test_a_failure_is_classed_as_the_metrics_count_it(result: SendResult, failure_class: str) -> None:
    assert result.failure_class == failure_class

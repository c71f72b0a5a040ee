"""The alert worker running in the background: a slow channel delays nothing else, and stopping
lets deliveries in flight finish and be recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from app import db
from app.alerts.models import Delivery
from tests.alerts.support import alert, alerting_config, bearer_webhook, outbox, payload
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.harness.app import AppFactory
from tests.harness.intake import applied
from tests.harness.waiting import eventually

Serve = Callable[[WebhookSink], Served[WebhookSink]]


def two_channel_config(slow: Served[WebhookSink], fast: Served[WebhookSink], **alerts: Any) -> dict[str, Any]:
    config = alerting_config(worker=True, worker_interval="200ms", **alerts)
    config["channels"] = [
        {"name": "slow", "type": "webhook", "url": slow.url, "timeout_s": 30},
        {"name": "fast", "type": "webhook", "url": fast.url},
    ]
    config["escalations"] = [
        {
            "name": "default",
            "steps": [{"notify": {"channels": ["slow"]}}, {"wait": "1s"}, {"notify": {"channels": ["fast"]}}],
        }
    ]
    config["routes"] = [{"matchers": [], "escalation": "default"}]
    return config


def by_channel(rows: list[Delivery], channel: str) -> Delivery:
    return next(d for d in rows if d.channel == channel)


async def test_a_slow_channel_delays_neither_the_escalation_nor_another_channel(
    app_factory: AppFactory, serve_sink: Serve
) -> None:
    slow, fast = serve_sink(WebhookSink()), serve_sink(WebhookSink())
    slow.sink.hang(25.0, times=1)  # the first page hangs until the test lets it go
    async with app_factory(**two_channel_config(slow, fast)) as (app, client):
        sessions = app.state.context.sessions
        await applied(
            client,
            await client.post(
                "/api/v1/alerts/alertmanager", json=payload("Down", [alert("Down")]), headers=bearer_webhook()
            ),
        )

        async def escalated() -> bool:
            return bool(fast.sink.messages)

        await eventually(
            escalated, "the escalation's second step at the fast robot"
        )  # the second step ran and went out while the first send hangs
        in_flight = by_channel(await outbox(sessions), "slow")
        slow.sink.close()  # let the slow robot answer

        async def delivered() -> bool:
            return by_channel(await outbox(sessions), "slow").status == "delivered"

        await eventually(delivered, "the slow page delivered")
    assert in_flight.status == "sending"
    assert len(slow.sink.messages) == 1
    assert len(fast.sink.messages) == 1


async def _sending(app: FastAPI) -> bool:
    rows = await outbox(app.state.context.sessions)
    return bool(rows) and rows[0].status == "sending"


async def test_stopping_lets_a_send_in_flight_finish_and_records_it(
    app_factory: AppFactory, serve_sink: Serve
) -> None:
    slow, fast = serve_sink(WebhookSink()), serve_sink(WebhookSink())
    slow.sink.hang(1.5, times=1)
    config = two_channel_config(slow, fast)
    config["escalations"][0]["steps"] = [{"notify": {"channels": ["slow"]}}]
    async with app_factory(**config) as (app, client):
        await applied(
            client,
            await client.post(
                "/api/v1/alerts/alertmanager", json=payload("Down", [alert("Down")]), headers=bearer_webhook()
            ),
        )
        await eventually(lambda: _sending(app), "the page in flight")
    # the app has stopped (its lifespan ended while the robot was still answering)
    engine = db.create_engine(app.state.context.settings.database)
    try:
        [page] = await outbox(db.create_session_factory(engine))
    finally:
        await engine.dispose()
    assert page.status == "delivered"
    assert page.claim_token is None
    assert len(slow.sink.messages) == 1


async def test_a_send_longer_than_the_grace_is_left_to_its_lease(
    app_factory: AppFactory, serve_sink: Serve
) -> None:
    slow, fast = serve_sink(WebhookSink()), serve_sink(WebhookSink())
    slow.sink.hang(20.0, times=1)
    config = two_channel_config(slow, fast)
    config["server"] = {"shutdown_grace": "500ms"}
    config["escalations"][0]["steps"] = [{"notify": {"channels": ["slow"]}}]
    async with app_factory(**config) as (app, client):
        await applied(
            client,
            await client.post(
                "/api/v1/alerts/alertmanager", json=payload("Down", [alert("Down")]), headers=bearer_webhook()
            ),
        )
        await eventually(lambda: _sending(app), "the page in flight")
    slow.sink.close()
    engine = db.create_engine(app.state.context.settings.database)
    try:
        [page] = await outbox(db.create_session_factory(engine))
    finally:
        await engine.dispose()
    assert page.status == "sending"  # the outcome is unknown: another worker sends it after the lease
    assert page.claimed_until is not None


async def test_pages_queued_while_their_channel_sends_go_out_without_waiting_for_the_poll(
    app_factory: AppFactory, serve_sink: Serve
) -> None:
    slow, fast = serve_sink(WebhookSink()), serve_sink(WebhookSink())
    slow.sink.hang(1.0, times=1)  # the first page is still being sent when the others are stored
    config = two_channel_config(slow, fast)
    config["alerts"]["worker_interval"] = "1h"  # only wakes (and the sender's own next claims) move them
    config["escalations"][0]["steps"] = [{"notify": {"channels": ["slow"]}}]
    async with app_factory(**config) as (app, client):
        for name in ("First", "Second", "Third"):
            answer = await client.post(
                "/api/v1/alerts/alertmanager", json=payload(name, [alert(name)]), headers=bearer_webhook()
            )
            await applied(client, answer)
            assert answer.status_code == 202

        async def all_delivered() -> bool:
            rows = await outbox(app.state.context.sessions)
            return len(rows) == 3 and all(d.status == "delivered" for d in rows)

        await eventually(all_delivered, "the three pages delivered")
    assert len(slow.sink.messages) == 3

"""The generic webhook over real HTTP: the version-1 JSON shape, bearer auth, statuses, max_alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.alerts.channels import webhook
from app.alerts.channels.webhook import WebhookConfig
from tests.alerts.channels.support import (
    ACK_URL,
    INCIDENT_URL,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.robot_fixtures import WEBHOOK_TOKEN, Served
from tests.fakes.robots import WebhookSink

ServeSink = Callable[[WebhookSink], Served[WebhookSink]]


def config(receiver: Served[WebhookSink], **changes: Any) -> WebhookConfig:
    values = {"name": "audit", "type": "webhook", "url": receiver.url, "timeout_s": 5}
    if receiver.sink.token is not None:
        values["bearer_token"] = receiver.sink.token
    return WebhookConfig.model_validate({**values, **changes})


async def test_the_incident_and_its_alerts_arrive_as_version_1(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient
) -> None:
    result = await webhook.send(config(webhook_receiver), notification(), http)

    assert result.ok, result.detail
    [received] = webhook_receiver.sink.messages
    assert received.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    body = received.json
    assert body["version"] == "1"
    assert body["kind"] == "trigger"
    assert body["incident"] == {
        "id": 42,
        "title": "支付服务错误率升高",
        "status": "triggered",
        "severity": "critical",
        "services": ["pay", "cart"],
        "started_at": "2026-01-05T01:30:00Z",
        "url": INCIDENT_URL,
        "ack_url": ACK_URL,
        "firing": 1,
        "resolved": 1,
        "acknowledged_by": None,
    }
    assert [a["name"] for a in body["alerts"]] == ["HighErrorRate", "SlowCheckout"]
    assert body["alerts"][1]["ends_at"] == "2026-01-05T01:37:00Z"
    assert body["alerts"][0]["labels"] == {
        "alertname": "HighErrorRate",
        "service": "pay",
        "namespace": "prod",
    }
    assert body["truncated_alerts"] == 0
    assert body["paged"] == ["alice", "bob"]
    assert (body["locale"], body["timezone"]) == ("zh-CN", "Asia/Shanghai")


async def test_values_travel_verbatim(webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient) -> None:
    hostile = hostile_alert()

    await webhook.send(config(webhook_receiver), notification(alerts=[hostile]), http)

    sent = webhook_receiver.sink.messages[0].json["alerts"][0]
    assert sent["summary"] == hostile.summary
    assert sent["labels"] == hostile.labels


async def test_max_alerts_truncates_and_counts(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient
) -> None:
    await webhook.send(config(webhook_receiver, max_alerts=5), notification(alerts=many_alerts(12)), http)

    body = webhook_receiver.sink.messages[0].json
    assert len(body["alerts"]) == 5
    assert body["truncated_alerts"] == 7


async def test_a_digest_lists_its_notifications(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient
) -> None:
    await webhook.send(config(webhook_receiver), digest(2), http)

    body = webhook_receiver.sink.messages[0].json
    assert body["version"] == "1"
    assert body["kind"] == "digest"
    assert [n["incident"]["id"] for n in body["notifications"]] == [100, 101]
    assert all(n["kind"] == "trigger" for n in body["notifications"])


async def test_a_wrong_token_is_final_and_not_leaked(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    receiver = serve_sink(WebhookSink(token="the-right-token"))

    result = await webhook.send(config(receiver, bearer_token="an-expired-token-123"), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert result.status == 401
    assert "an-expired-token-123" not in result.detail


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (408, True), (429, True), (400, False), (422, False)]
)
async def test_statuses_are_classified(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    webhook_receiver.sink.fail_with(status, times=1)

    result = await webhook.send(config(webhook_receiver), notification(), http)

    assert not result.ok
    assert result.retryable is retryable


async def test_any_2xx_is_success(webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient) -> None:
    webhook_receiver.sink.fail_with(202, times=1)

    result = await webhook.send(config(webhook_receiver), notification(), http)

    assert result.ok
    assert result.status == 202


async def test_a_redirect_is_not_followed_and_is_final(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient
) -> None:
    webhook_receiver.sink.fail_with(301, times=1)

    result = await webhook.send(config(webhook_receiver), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "redirect" in result.detail


async def test_timeouts_and_refused_connections_are_retryable(
    webhook_receiver: Served[WebhookSink], http: httpx.AsyncClient
) -> None:
    webhook_receiver.sink.hang(10, times=1)
    slow = await webhook.send(config(webhook_receiver, timeout_s=0.3), notification(), http)
    webhook_receiver.sink.stop()
    down = await webhook.send(config(webhook_receiver), notification(), http)

    assert (slow.ok, slow.retryable) == (False, True)
    assert (down.ok, down.retryable) == (False, True)
    assert "network error" in down.detail


async def test_a_malformed_url_is_final(http: httpx.AsyncClient) -> None:
    broken = WebhookConfig.model_validate(
        {"name": "audit", "type": "webhook", "url": "http://[::1/not-a-host", "timeout_s": 1}
    )

    result = await webhook.send(broken, notification(), http)

    assert not result.ok
    assert not result.retryable

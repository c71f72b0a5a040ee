"""Feishu over real HTTP against the Feishu sink: signed cards, <at> mentions, codes with 200 or 400, size."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.alerts.channels import feishu
from app.alerts.channels.feishu import FeishuConfig
from tests.alerts.channels.support import (
    ACK_URL,
    HOSTILE,
    INCIDENT_URL,
    T0_SHANGHAI,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.robot_fixtures import FEISHU_SECRET, Served
from tests.fakes.robots import FeishuSink

ServeSink = Callable[[FeishuSink], Served[FeishuSink]]


def config(robot: Served[FeishuSink], **changes: Any) -> FeishuConfig:
    values: dict[str, Any] = {"name": "ops-feishu", "type": "feishu", "url": robot.url, "timeout_s": 5}
    if robot.sink.secret is not None:
        values["secret"] = robot.sink.secret
    return FeishuConfig.model_validate({**values, **changes})


async def test_a_signed_card_reaches_the_group(
    feishu_robot: Served[FeishuSink], http: httpx.AsyncClient
) -> None:
    result = await feishu.send(config(feishu_robot), notification(), http)

    assert result.ok, result.detail
    [received] = feishu_robot.sink.messages
    assert received.json["msg_type"] == "interactive"
    assert isinstance(received.json["timestamp"], str)
    assert received.json["timestamp"].isdigit()
    card = feishu_robot.sink.card()
    assert card["header"]["template"] == "red"
    assert "支付服务错误率升高" in card["header"]["title"]["content"]
    text = feishu_robot.sink.card_text()
    for expected in (
        "严重",
        "pay, cart",
        T0_SHANGHAI,
        "告警中 1 条，已恢复 1 条",
        "<at id=ou_alice0123456789></at>",
    ):
        assert expected in text
    [actions] = [e for e in card["elements"] if e["tag"] == "action"]
    assert [(b["type"], b["url"]) for b in actions["actions"]] == [
        ("primary", ACK_URL),
        ("default", INCIDENT_URL),
    ]


async def test_a_resolved_incident_is_green_and_has_no_ack_button(
    feishu_robot: Served[FeishuSink], http: httpx.AsyncClient
) -> None:
    message = notification(kind="resolve", status="resolved", ack_url=None)

    await feishu.send(config(feishu_robot), message, http)

    card = feishu_robot.sink.card()
    assert card["header"]["template"] == "green"
    assert "告警已恢复" in card["header"]["title"]["content"]
    [actions] = [e for e in card["elements"] if e["tag"] == "action"]
    assert [b["url"] for b in actions["actions"]] == [INCIDENT_URL]


async def test_a_wrong_secret_is_a_final_failure(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(FeishuSink(secret="the-real-secret"))

    result = await feishu.send(config(robot, secret="an-old-secret"), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "19021" in result.detail
    assert "an-old-secret" not in result.detail


async def test_a_clock_more_than_an_hour_off_is_refused(
    serve_sink: ServeSink, http: httpx.AsyncClient
) -> None:
    robot = serve_sink(FeishuSink(secret=FEISHU_SECRET, clock_offset_s=-90 * 60))

    result = await feishu.send(config(robot), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "check the clock" in result.detail


async def test_an_unsigned_bot_gets_no_signature(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(FeishuSink())

    result = await feishu.send(config(robot), notification(), http)

    assert result.ok, result.detail
    assert "sign" not in robot.sink.messages[0].json


async def test_the_rate_limit_comes_as_http_400_and_is_retryable(
    serve_sink: ServeSink, http: httpx.AsyncClient
) -> None:
    robot = serve_sink(FeishuSink(secret=FEISHU_SECRET, rate_limit_per_min=1))

    await feishu.send(config(robot), notification(), http)
    result = await feishu.send(config(robot), notification(), http)

    assert not result.ok
    assert result.retryable
    assert result.status == 400
    assert "11232" in result.detail


@pytest.mark.parametrize(
    ("code", "message", "status", "retryable"),
    [
        (9499, "Bad Request", 400, False),
        (9499, "too many request", 200, True),
        (19024, "Key Words Not Found", 200, False),
        (19022, "Ip Not Allowed", 200, False),
        (19007, "Bot Not Enabled", 200, False),
        (55555, "something new", 200, True),
    ],
)
async def test_codes_are_classified(
    feishu_robot: Served[FeishuSink],
    http: httpx.AsyncClient,
    code: int,
    message: str,
    status: int,
    retryable: bool,
) -> None:
    feishu_robot.sink.fail_with_code(code, message, status=status, times=1)

    result = await feishu.send(config(feishu_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable
    assert f"code {code}" in result.detail


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (502, True), (429, True), (404, False)])
async def test_http_errors_without_a_code_are_classified_by_status(
    feishu_robot: Served[FeishuSink], http: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    feishu_robot.sink.fail_with(status, times=1)

    result = await feishu.send(config(feishu_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable
    assert result.status == status


async def test_keywords_configured_on_the_bot_are_checked(
    serve_sink: ServeSink, http: httpx.AsyncClient
) -> None:
    robot = serve_sink(FeishuSink(keywords=["Panorama"]))
    refusing = serve_sink(FeishuSink(keywords=["监控"]))

    english = await feishu.send(config(robot), notification(locale="en", kind="resolve"), http)
    chinese = await feishu.send(config(robot), digest(2), http)
    refused = await feishu.send(config(refusing), notification(), http)

    assert english.ok, english.detail
    assert chinese.ok, chinese.detail
    assert (refused.ok, refused.retryable) == (False, False)
    assert "19024" in refused.detail


async def test_many_alerts_fit_in_20_kb_and_are_counted(
    feishu_robot: Served[FeishuSink], http: httpx.AsyncClient
) -> None:
    result = await feishu.send(config(feishu_robot), notification(alerts=many_alerts(300), firing=300), http)

    assert result.ok, result.detail
    received = feishu_robot.sink.messages[0]
    assert received.size <= feishu.MAX_BODY_BYTES
    text = feishu_robot.sink.card_text()
    shown = len(re.findall(r"\*\*\d+\. PodCrashLooping\d{4}\*\*", text))
    assert 0 < shown < 300
    assert f"…以及另外 {300 - shown} 条告警" in text


async def test_hostile_values_are_entities_in_lark_md(
    feishu_robot: Served[FeishuSink], http: httpx.AsyncClient
) -> None:
    result = await feishu.send(config(feishu_robot), notification(alerts=[hostile_alert()]), http)

    assert result.ok, result.detail
    text = feishu_robot.sink.card_text()
    assert "<at id=all>" not in text
    assert "&#60;at id=all&#62;" in text
    assert "](http://evil.example" not in text
    assert HOSTILE["html"] not in text
    assert re.findall(r"<at id=[^>]*>", text) == ["<at id=ou_alice0123456789>"]


async def test_english_digest(feishu_robot: Served[FeishuSink], http: httpx.AsyncClient) -> None:
    result = await feishu.send(config(feishu_robot), digest(3, locale="en"), http)

    assert result.ok, result.detail
    card = feishu_robot.sink.card()
    assert card["header"]["title"]["content"].endswith("Digest: 3 notifications")
    text = feishu_robot.sink.card_text()
    assert all(f"incident {i}" in text for i in range(3))
    assert "**Severity**: " in text
    assert not [e for e in card["elements"] if e["tag"] == "action"], "a digest links each incident inline"

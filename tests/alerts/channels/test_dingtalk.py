"""DingTalk over real HTTP against the DingTalk sink: signing, mentions, failures, size, escaping."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from app.alerts.channels import dingtalk
from app.alerts.channels.base import Message
from app.alerts.channels.dingtalk import DingTalkConfig
from tests.alerts.channels.support import (
    ACK_URL,
    ALICE,
    HOSTILE,
    INCIDENT_URL,
    T0_SHANGHAI,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink

ServeSink = Callable[[DingTalkSink], Served[DingTalkSink]]


def config(robot: Served[DingTalkSink], **changes: Any) -> DingTalkConfig:
    values: dict[str, Any] = {"name": "ops-robot", "type": "dingtalk", "url": robot.url, "timeout_s": 5}
    if robot.sink.secret is not None:
        values["secret"] = robot.sink.secret
    return DingTalkConfig.model_validate({**values, **changes})


async def test_a_signed_markdown_message_reaches_the_group(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    result = await dingtalk.send(config(dingtalk_robot), notification(), http)

    assert result.ok, result.detail
    [received] = dingtalk_robot.sink.messages
    assert set(received.query) == {"access_token", "timestamp", "sign"}
    body = received.json
    assert body["msgtype"] == "markdown"
    assert "支付服务错误率升高" in body["markdown"]["title"]
    text = body["markdown"]["text"]
    for expected in ("严重", "pay, cart", T0_SHANGHAI, "告警中 1 条，已恢复 1 条", ACK_URL, INCIDENT_URL):
        assert expected in text
    assert text.index("HighErrorRate") < text.index("SlowCheckout"), "firing alerts come first"


async def test_mentions_are_in_at_mobiles_and_in_the_text(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    await dingtalk.send(config(dingtalk_robot), notification(), http)

    body = dingtalk_robot.sink.messages[0].json
    assert body["at"] == {"atMobiles": ["13800000001", "13800000002"], "isAtAll": False}
    assert "@13800000001" in body["markdown"]["text"]
    assert "@13800000002" in body["markdown"]["text"]


async def test_a_user_without_a_mobile_is_named_not_mentioned(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    nobody = ALICE.__class__("carol")
    await dingtalk.send(config(dingtalk_robot), notification(mentions=[ALICE, nobody]), http)

    body = dingtalk_robot.sink.messages[0].json
    assert body["at"]["atMobiles"] == ["13800000001"]
    assert "carol（未配置账号，无法 @）" in body["markdown"]["text"]


async def test_an_unsigned_robot_gets_no_signature(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(DingTalkSink())

    result = await dingtalk.send(config(robot), notification(), http)

    assert result.ok, result.detail
    assert set(robot.sink.messages[0].query) == {"access_token"}


def test_the_signature_is_url_encoded_and_keeps_the_access_token() -> None:
    # base64 carries + / =, which must reach DingTalk percent-encoded; find timestamps that produce them.
    stamps = [ts for ts in range(1_700_000_000_000, 1_700_000_000_400) if "+" in dingtalk.sign("s3cret", ts)]
    assert stamps, "no signature with a + in 400 tries"
    url = dingtalk.signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "s3cret", stamps[0])

    query = dict(parse_qsl(urlsplit(url).query))
    assert query == {
        "access_token": "abc",
        "timestamp": str(stamps[0]),
        "sign": dingtalk.sign("s3cret", stamps[0]),
    }
    assert "%2B" in url
    assert "+" not in urlsplit(url).query


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_robot_secured_by_the_keyword_panorama_takes_every_message(
    serve_sink: ServeSink, http: httpx.AsyncClient, locale: str
) -> None:
    robot = serve_sink(DingTalkSink(keywords=["Panorama"]))
    kinds = ("trigger", "resolve", "heartbeat")
    messages: list[Message] = [notification(locale=locale, kind=k) for k in kinds]
    messages.append(digest(2, locale=locale))

    results = [await dingtalk.send(config(robot), m, http) for m in messages]

    assert [r.ok for r in results] == [True] * 4, [r.detail for r in results]


async def test_a_missing_keyword_is_a_final_failure(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(DingTalkSink(keywords=["监控"]))

    result = await dingtalk.send(config(robot), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "keyword" in result.detail


async def test_a_wrong_secret_is_a_final_failure(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(DingTalkSink(secret="SECthe-real-one"))

    result = await dingtalk.send(config(robot, secret="SECa-stale-one"), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "310000" in result.detail
    assert "sign not match" in result.detail
    assert robot.sink.messages == []


async def test_a_clock_more_than_an_hour_off_is_refused(
    serve_sink: ServeSink, http: httpx.AsyncClient
) -> None:
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET, clock_offset_s=2 * 3600))

    result = await dingtalk.send(config(robot), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "310000" in result.detail
    assert "clock" in result.detail


async def test_a_clock_a_little_off_is_accepted(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET, clock_offset_s=-50 * 60))

    result = await dingtalk.send(config(robot), notification(), http)

    assert result.ok, result.detail


async def test_a_wrong_access_token_is_final_and_not_leaked(
    serve_sink: ServeSink, http: httpx.AsyncClient
) -> None:
    robot = serve_sink(DingTalkSink(access_token="the-real-token-0123456789"))
    wrong = robot.url.replace("the-real-token-0123456789", "a-revoked-token-9876543210")

    result = await dingtalk.send(config(robot, url=wrong), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "300005" in result.detail
    assert "a-revoked-token-9876543210" not in result.detail


async def test_over_the_rate_limit_is_retryable(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET, rate_limit_per_min=2))
    results = [await dingtalk.send(config(robot), notification(incident_id=i), http) for i in range(3)]

    assert [r.ok for r in results] == [True, True, False]
    assert results[2].retryable
    assert "130101" in results[2].detail
    assert len(robot.sink.messages) == 2


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(-1, True), (410100, True), (460101, False), (400102, False), (430104, False), (777777, True)],
)
async def test_errcodes_are_classified(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient, code: int, retryable: bool
) -> None:
    dingtalk_robot.sink.fail_with_code(code, "simulated", times=1)

    result = await dingtalk.send(config(dingtalk_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable
    assert result.status == 200
    assert f"errcode {code}" in result.detail


@pytest.mark.parametrize(
    ("status", "retryable"), [(502, True), (503, True), (429, True), (404, False), (403, False)]
)
async def test_http_errors_are_classified(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    dingtalk_robot.sink.fail_with(status, times=1)

    result = await dingtalk.send(config(dingtalk_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable
    assert result.status == status


async def test_a_robot_that_does_not_answer_in_time_is_retryable(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    dingtalk_robot.sink.hang(10, times=1)

    result = await dingtalk.send(config(dingtalk_robot, timeout_s=0.3), notification(), http)

    assert not result.ok
    assert result.retryable
    assert "no answer within 0.3s" in result.detail


async def test_a_robot_that_is_down_is_retryable_and_the_url_stays_secret(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    dingtalk_robot.sink.stop()

    result = await dingtalk.send(config(dingtalk_robot), notification(), http)

    assert not result.ok
    assert result.retryable
    assert dingtalk_robot.sink.access_token not in result.detail
    assert DINGTALK_SECRET not in result.detail


async def test_many_alerts_are_cut_to_fit_and_counted(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    alerts = many_alerts(400)

    result = await dingtalk.send(
        config(dingtalk_robot), notification(alerts=alerts, firing=400, resolved=0), http
    )

    assert result.ok, result.detail
    [received] = dingtalk_robot.sink.messages
    assert received.size <= dingtalk.MAX_BODY_BYTES
    text = received.json["markdown"]["text"]
    shown = len(re.findall(r"\*\*\d+\. PodCrashLooping\d{4}\*\*", text))
    assert 10 < shown < 400
    assert f"…以及另外 {400 - shown} 条告警" in text
    assert "PodCrashLooping0000" in text, "the oldest alert is kept"
    assert "@13800000001" in text, "the mentions survive the cut"


async def test_english_messages(dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient) -> None:
    message = notification(locale="en", alerts=many_alerts(400), firing=400, resolved=0)

    await dingtalk.send(config(dingtalk_robot), message, http)

    text = dingtalk_robot.sink.markdown_text()
    assert "Alert firing" in text
    assert "**Severity**: " in text
    assert re.search(r"…and \d+ more alerts", text)
    assert "告警" not in text.replace("支付服务错误率升高", "")


async def test_hostile_values_cannot_add_links_mentions_or_headings(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    message = notification(alerts=[hostile_alert()], title="evil " + HOSTILE["link"])

    result = await dingtalk.send(config(dingtalk_robot), message, http)

    assert result.ok, result.detail
    body = dingtalk_robot.sink.messages[0].json
    text = body["markdown"]["text"]
    assert "](http://evil.example" not in text
    assert "<@all>" not in text
    assert "<script>" not in text
    assert '<font color="warning">' not in text
    assert not re.search(r"^#\s*Injected", text, re.MULTILINE)
    assert "click me" in text, "the value is still shown, only inert"
    assert body["at"] == {"atMobiles": ["13800000001", "13800000002"], "isAtAll": False}


async def test_a_digest_merges_notifications_into_one_message(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    result = await dingtalk.send(
        config(dingtalk_robot), digest(3, locale="zh-CN", timezone="Asia/Shanghai"), http
    )

    assert result.ok, result.detail
    [received] = dingtalk_robot.sink.messages
    text = received.json["markdown"]["text"]
    assert "告警汇总：3 条通知" in text
    for i in range(3):
        assert f"incident {i}" in text
        assert f"{INCIDENT_URL}{i}" in text
    assert received.json["at"]["atMobiles"] == ["13800000001", "13800000002"]


async def test_a_long_digest_is_cut_notification_by_notification(
    dingtalk_robot: Served[DingTalkSink], http: httpx.AsyncClient
) -> None:
    long_titles = digest(120)

    result = await dingtalk.send(config(dingtalk_robot), long_titles, http)

    assert result.ok, result.detail
    received = dingtalk_robot.sink.messages[0]
    assert received.size <= dingtalk.MAX_BODY_BYTES
    text = received.json["markdown"]["text"]
    shown = len(re.findall(r"#### .*incident \d+", text))
    assert f"…以及另外 {120 - shown} 条通知" in text

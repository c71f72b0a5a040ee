"""WeCom over real HTTP against the WeCom sink: markdown, <@userid> mentions, 4096 bytes, errcodes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.alerts.channels import wecom
from app.alerts.channels.base import Notice
from app.alerts.channels.wecom import WeComConfig
from tests.alerts.channels.support import (
    ACK_URL,
    BOB,
    HOSTILE,
    T0_SHANGHAI,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WeComSink

ServeSink = Callable[[WeComSink], Served[WeComSink]]


def config(robot: Served[WeComSink], **changes: Any) -> WeComConfig:
    return WeComConfig.model_validate(
        {"name": "ops-wecom", "type": "wecom", "url": robot.url, "timeout_s": 5, **changes}
    )


async def test_a_markdown_message_with_mentions_reaches_the_group(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    result = await wecom.send(config(wecom_robot), notification(), http)

    assert result.ok, result.detail
    [received] = wecom_robot.sink.messages
    assert received.json["msgtype"] == "markdown"
    content = wecom_robot.sink.content()
    for expected in ("支付服务错误率升高", "严重", "pay, cart", T0_SHANGHAI, ACK_URL, "<@alice.w>"):
        assert expected in content
    assert "bob（未配置账号，无法 @）" in content, "bob has no WeCom userid"


async def test_an_update_says_who_acknowledged(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    message = notification(kind="update", status="acknowledged", acknowledged_by="alice")

    result = await wecom.send(config(wecom_robot), message, http)

    assert result.ok, result.detail
    content = wecom_robot.sink.content()
    assert "告警更新：有新告警加入" in content
    assert "**确认人**：alice" in content
    assert "**状态**：已确认" in content
    assert ACK_URL not in content, "nothing left to acknowledge"


async def test_an_ack_through_the_groups_link_or_a_call_is_said_in_the_messages_language(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    """The stored "ack link" and "phone call (…)" are keys, not words: the group reads 确认链接."""
    for acknowledged_by in ("ack link", "phone call (+8613800000001)"):
        message = notification(kind="resolve", status="resolved", acknowledged_by=acknowledged_by)
        result = await wecom.send(config(wecom_robot), message, http)
        assert result.ok, result.detail
    first, second = (m.json["markdown"]["content"] for m in wecom_robot.sink.messages)
    assert "**确认人**：确认链接" in first
    assert "**确认人**：电话（+8613800000001）" in second
    assert "ack link" not in first
    assert "phone call" not in second


async def test_many_alerts_fit_in_4096_bytes_and_are_counted(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    result = await wecom.send(config(wecom_robot), notification(alerts=many_alerts(50), firing=50), http)

    assert result.ok, result.detail
    content = wecom_robot.sink.content()
    assert len(content.encode()) <= 4096
    shown = len(re.findall(r"\*\*\d+\. PodCrashLooping\d{4}\*\*", content))
    assert 0 < shown < 50
    assert f"…以及另外 {50 - shown} 条告警" in content
    assert "<@alice.w>" in content


async def test_a_notification_that_fits_is_not_cut(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    await wecom.send(config(wecom_robot), notification(), http)

    content = wecom_robot.sink.content()
    assert "HighErrorRate" in content
    assert "SlowCheckout" in content
    assert "以及另外" not in content


async def test_the_sink_refuses_content_over_4096_bytes(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    response = await http.post(
        wecom_robot.url, json={"msgtype": "markdown", "markdown": {"content": "告" * 1366}}
    )

    assert response.json()["errcode"] == 40058
    assert wecom_robot.sink.messages == []


async def test_over_the_rate_limit_is_retryable(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(WeComSink(rate_limit_per_min=1))

    first = await wecom.send(config(robot), notification(), http)
    second = await wecom.send(config(robot), notification(), http)

    assert first.ok
    assert not second.ok
    assert second.retryable
    assert "45009" in second.detail


async def test_an_invalid_key_is_final(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(WeComSink(key="the-right-key-0123456789"))

    result = await wecom.send(config(robot, url=robot.url.replace("right", "wrong")), notification(), http)

    assert not result.ok
    assert not result.retryable
    assert "93000" in result.detail
    assert "the-wrong-key-0123456789" not in result.detail


@pytest.mark.parametrize(("code", "retryable"), [(-1, True), (45033, True), (40058, False), (93004, False)])
async def test_errcodes_are_classified(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient, code: int, retryable: bool
) -> None:
    wecom_robot.sink.fail_with_code(code, times=1)

    result = await wecom.send(config(wecom_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (504, True), (400, False)])
async def test_http_errors_are_classified(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    wecom_robot.sink.fail_with(status, times=1)

    result = await wecom.send(config(wecom_robot), notification(), http)

    assert result.retryable is retryable
    assert result.status == status


async def test_a_robot_that_does_not_answer_in_time_is_retryable(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    wecom_robot.sink.hang(10, times=1)

    result = await wecom.send(config(wecom_robot, timeout_s=0.3), notification(), http)

    assert not result.ok
    assert result.retryable


async def test_hostile_values_cannot_mention_everyone_or_restyle(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    result = await wecom.send(config(wecom_robot), notification(alerts=[hostile_alert()]), http)

    assert result.ok, result.detail
    content = wecom_robot.sink.content()
    assert "<@all>" not in content
    assert "fake severity" in content, "shown, as text"
    assert '<font color="warning">fake' not in content
    assert "](http://evil.example" not in content
    assert not re.search(r"^#\s*Injected", content, re.MULTILINE)
    assert re.findall(r"<@[^>]+>", content) == ["<@alice.w>"]
    assert HOSTILE["link"] not in content


async def test_english_and_a_digest(wecom_robot: Served[WeComSink], http: httpx.AsyncClient) -> None:
    message = digest(2, locale="en", timezone="Asia/Shanghai")

    result = await wecom.send(config(wecom_robot), message, http)

    assert result.ok, result.detail
    content = wecom_robot.sink.content()
    assert "Digest: 2 notifications" in content
    assert "incident 0" in content
    assert "incident 1" in content
    assert "Paging: <@alice.w> bob (no handle configured, cannot mention)" in content


def test_a_mention_needs_a_plausible_userid() -> None:
    assert wecom.mention(BOB) is None
    assert wecom.mention(BOB.__class__("x", wecom_userid="ok.user-1")) == "<@ok.user-1>"
    assert wecom.mention(BOB.__class__("x", wecom_userid="a> <@all")) is None


async def test_a_long_notice_loses_its_tail_lines_never_its_links(
    wecom_robot: Served[WeComSink], http: httpx.AsyncClient
) -> None:
    """A digest of many services is over 4096 bytes: its last lines give way to one that counts
    them, and the links (which end a digest) and the footer are still there, whole."""
    lines = [f"{i}. checkout-{i:03d}.shop：请求 12,345 · 错误率 0.12% · p99 250 ms" for i in range(1, 121)]
    links = [(f"service-{i}", f"https://panorama.example.com/services/s{i}?view=abc{i}") for i in range(10)]
    notice = Notice(kind="digest", title="运维日报 · daily", lines=lines, links=links)

    result = await wecom.send_notice(config(wecom_robot), notice, http)

    assert result.ok, result.detail
    content = wecom_robot.sink.content()
    assert len(content.encode()) <= wecom.MAX_CONTENT_BYTES
    shown = [line for line in lines if line in content]
    assert shown == lines[: len(shown)]
    assert 0 < len(shown) < len(lines)
    assert f"…另有 {len(lines) - len(shown)} 行未显示（消息长度受限）" in content
    assert " · ".join(f"[{label}]({url})" for label, url in links) in content
    assert content.endswith("来自 Panorama")

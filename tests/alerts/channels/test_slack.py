"""Slack over real HTTP against the Slack sink: blocks and fallback, <@U…> mentions, 50 blocks, statuses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.alerts.channels import slack
from app.alerts.channels.base import Notice
from app.alerts.channels.slack import SlackConfig
from tests.alerts.channels.support import (
    ACK_URL,
    INCIDENT_URL,
    T0_SHANGHAI,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import SlackSink

ServeSink = Callable[[SlackSink], Served[SlackSink]]


def config(robot: Served[SlackSink], **changes: Any) -> SlackConfig:
    return SlackConfig.model_validate(
        {"name": "ops-slack", "type": "slack", "url": robot.url, "timeout_s": 5, **changes}
    )


async def test_blocks_and_a_fallback_text_reach_the_channel(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    result = await slack.send(config(slack_robot), notification(locale="en"), http)

    assert result.ok, result.detail
    data = slack_robot.sink.messages[0].json
    assert data["text"].startswith("🔴 Alert firing: 支付服务错误率升高 (critical, 1 firing, 1 resolved)")
    assert "<@U0ALICE01>" in data["text"], "the notification text carries the mention"
    blocks = slack_robot.sink.blocks()
    assert blocks[0]["type"] == "header"
    assert blocks[-1]["type"] == "actions"
    assert [b["url"] for b in blocks[-1]["elements"]] == [ACK_URL, INCIDENT_URL]
    text = slack_robot.sink.all_text()
    for expected in (
        "*Severity*: critical",
        "pay, cart",
        T0_SHANGHAI,
        "*1. HighErrorRate*",
        "*2. SlowCheckout*",
    ):
        assert expected in text
    assert "bob (no handle configured, cannot mention)" in text


async def test_many_alerts_stay_within_50_blocks_and_are_counted(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    result = await slack.send(config(slack_robot), notification(alerts=many_alerts(200), firing=200), http)

    assert result.ok, result.detail
    blocks = slack_robot.sink.blocks()
    assert len(blocks) <= 50
    shown = len(re.findall(r"\*\d+\. PodCrashLooping\d{4}\*", slack_robot.sink.all_text()))
    assert 40 < shown < 200
    [context] = [b for b in blocks if b["type"] == "context"]
    assert context["elements"][0]["text"] == f"…以及另外 {200 - shown} 条告警"
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


async def test_the_sink_refuses_51_blocks(slack_robot: Served[SlackSink], http: httpx.AsyncClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51

    response = await http.post(slack_robot.url, json={"text": "x", "blocks": blocks})

    assert response.status_code == 400
    assert response.text == "invalid_blocks"


async def test_hostile_values_cannot_ping_the_channel(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    result = await slack.send(config(slack_robot), notification(alerts=[hostile_alert()]), http)

    assert result.ok, result.detail
    text = slack_robot.sink.all_text()
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert "<@U0EVIL>" not in text
    assert "<script>" not in text
    assert set(re.findall(r"<@(\w+)>", text)) == {"U0ALICE01"}


@pytest.mark.parametrize(
    ("status", "word", "retryable"),
    [
        (400, "invalid_payload", False),
        (403, "action_prohibited", False),
        (404, "channel_not_found", False),
        (410, "channel_is_archived", False),
        (500, "rollup_error", True),
    ],
)
async def test_slack_errors_are_classified(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient, status: int, word: str, retryable: bool
) -> None:
    slack_robot.sink.fail_with_code(0, word, status=status, times=1)

    result = await slack.send(config(slack_robot), notification(), http)

    assert not result.ok
    assert result.retryable is retryable
    assert result.status == status
    assert word in result.detail


async def test_over_the_rate_limit_is_retryable(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(SlackSink(rate_limit_per_min=1))

    await slack.send(config(robot), notification(), http)
    result = await slack.send(config(robot), notification(), http)

    assert not result.ok
    assert result.retryable
    assert result.status == 429


async def test_only_200_is_success(serve_sink: ServeSink, http: httpx.AsyncClient) -> None:
    robot = serve_sink(SlackSink())
    robot.sink.fail_with(204, times=1)

    result = await slack.send(config(robot), notification(), http)

    assert not result.ok


async def test_a_slack_that_does_not_answer_in_time_is_retryable(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    slack_robot.sink.hang(10, times=1)

    result = await slack.send(config(slack_robot, timeout_s=0.3), notification(), http)

    assert not result.ok
    assert result.retryable


async def test_a_digest_is_one_section_per_notification(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    result = await slack.send(config(slack_robot), digest(4, locale="en"), http)

    assert result.ok, result.detail
    blocks = slack_robot.sink.blocks()
    sections = [b for b in blocks if b["type"] == "section" and "incident " in b["text"]["text"]]
    assert len(sections) == 4
    assert f"<{INCIDENT_URL}2|Open incident>" in sections[2]["text"]["text"]
    assert blocks[0]["text"]["text"] == "📋 Digest: 4 notifications"


async def test_a_long_notice_loses_its_tail_lines_never_its_links(
    slack_robot: Served[SlackSink], http: httpx.AsyncClient
) -> None:
    """A section holds 3000 characters: a long digest's last lines give way to one that counts
    them; its links stay whole (a link cut in the middle would be broken markup)."""
    lines = [
        f"{i}. checkout-{i:03d}.shop: 12,345 requests · 0.12% errors · p99 250 ms" for i in range(1, 121)
    ]
    links = [(f"service-{i}", f"https://panorama.example.com/services/s{i}?view=abc{i}") for i in range(10)]
    notice = Notice(kind="digest", title="Daily digest", lines=lines, links=links, locale="en")

    result = await slack.send_notice(config(slack_robot), notice, http)

    assert result.ok, result.detail
    [_header, section] = slack_robot.sink.blocks()
    body = section["text"]["text"]
    assert len(body) <= slack.MAX_SECTION_CHARS
    shown = [line for line in lines if line in body]
    assert shown == lines[: len(shown)]
    assert 0 < len(shown) < len(lines)
    assert f"…and {len(lines) - len(shown)} more lines (the message is size-limited)" in body
    for label, url in links:
        assert f"<{url}|{label}>" in body

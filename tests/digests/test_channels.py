"""The digest through every kind of channel it can go to, as each lays it out (DingTalk and WeCom
markdown, a Feishu card, Slack blocks, e-mail, a webhook's JSON), through the real outbox and
delivery worker to the robot fakes and a real SMTP server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from email.header import decode_header, make_header
from typing import Any

from app.alerts.runtime import AlertRuntime
from tests.digests.support import CHECKOUT, PAYMENTS, digest_config, service_day, store_day
from tests.fakes.robot_fixtures import DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_TOKEN, Served
from tests.fakes.robots import DingTalkSink, FeishuSink, SlackSink, WebhookSink, WeComSink
from tests.fakes.smtp import SmtpSink
from tests.harness.app import OPERATOR_TOKEN, AppFactory, bearer

DAY = date(2026, 11, 18)
TITLE = "Daily digest · daily · 2026-11-18 (Wed)"
TRAFFIC = "Requests 1,700 · error rate 3.53%"


async def test_every_channel_kind_receives_the_digest_in_its_own_format(
    app_factory: AppFactory,
    dingtalk_robot: Served[DingTalkSink],
    wecom_robot: Served[WeComSink],
    feishu_robot: Served[FeishuSink],
    slack_robot: Served[SlackSink],
    webhook_receiver: Served[WebhookSink],
    smtp_server: Callable[..., SmtpSink],
) -> None:
    smtp = smtp_server()
    channels: list[dict[str, Any]] = [
        {"name": "ding", "type": "dingtalk", "url": dingtalk_robot.url, "secret": DINGTALK_SECRET},
        {"name": "wecom", "type": "wecom", "url": wecom_robot.url},
        {"name": "feishu", "type": "feishu", "url": feishu_robot.url, "secret": FEISHU_SECRET},
        {"name": "slack", "type": "slack", "url": slack_robot.url},
        {"name": "hook", "type": "webhook", "url": webhook_receiver.url, "bearer_token": WEBHOOK_TOKEN},
        {
            "name": "mail",
            "type": "email",
            "smtp": {"host": smtp.host, "port": smtp.port, "starttls": False},
            "from": "Panorama <panorama@example.com>",
            "to": ["oncall@example.com"],
        },
    ]
    config = digest_config(channels=[c["name"] for c in channels])
    config["channels"] = channels
    async with app_factory(**config) as (app, client):
        runtime: AlertRuntime = app.state.context.alerts
        await store_day(
            app.state.context.sessions,
            DAY,
            service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200))
            + service_day(PAYMENTS, 500, 0, (400, 500, 500, 500)),
        )
        answer = await client.post(f"/api/v1/digests/daily/send?date={DAY}", headers=bearer(OPERATOR_TOKEN))
        assert answer.json()["sent"] is True
        delivered = 0
        for _ in range(10):
            sent = await runtime.run_once()
            delivered += sent
            if sent == 0:
                break
    assert delivered == len(channels)
    for robot in (dingtalk_robot, wecom_robot, feishu_robot, slack_robot):
        [message] = robot.sink.messages
        shown = json.dumps(message.json, ensure_ascii=False)
        assert TITLE in shown, shown
        assert TRAFFIC in shown, shown
        assert "https://panorama.example.com/services/checkout.shop" in shown, shown
    assert dingtalk_robot.sink.messages[0].json["msgtype"] == "markdown"
    assert wecom_robot.sink.messages[0].json["msgtype"] == "markdown"
    assert feishu_robot.sink.messages[0].json["msg_type"] == "interactive"
    assert slack_robot.sink.messages[0].json["blocks"][0]["type"] == "header"
    [hook] = webhook_receiver.sink.messages
    assert hook.json["kind"] == "notice"
    assert hook.json["notice"]["kind"] == "digest"
    assert hook.json["notice"]["title"] == TITLE
    assert any(line.startswith(TRAFFIC) for line in hook.json["notice"]["lines"])
    [mail] = smtp.messages
    assert TITLE in str(make_header(decode_header(str(mail.message["Subject"]))))
    assert TRAFFIC in mail.part("text/plain")

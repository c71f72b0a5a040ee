"""The registry dispatches on the channel type, and the channels parse from the configuration's shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import TypeAdapter

from app.alerts.channels import registry
from app.alerts.channels.config import ChannelConfig
from tests.alerts.channels.support import notification
from tests.fakes.robot_fixtures import DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_TOKEN, Served
from tests.fakes.robots import DingTalkSink, FeishuSink, SlackSink, WebhookSink, WeComSink
from tests.fakes.smtp import SmtpSink

CHANNELS = TypeAdapter(list[ChannelConfig])


def test_the_issue_example_parses_with_each_types_rate_limit() -> None:
    channels = CHANNELS.validate_python(
        [
            {
                "name": "ops-robot",
                "type": "dingtalk",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
            },
            {
                "name": "ops-wecom",
                "type": "wecom",
                "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            },
            {"name": "ops-feishu", "type": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/h"},
            {"name": "ops-slack", "type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
            {
                "name": "ops-mail",
                "type": "email",
                "smtp": {"host": "smtp.example.com"},
                "from": "p@example.com",
            },
            {"name": "audit", "type": "webhook", "url": "https://audit.example.com/in"},
        ]
    )

    assert [registry.rate_limit_per_min(c) for c in channels] == [20, 20, 100, 60, None, None]
    assert [registry.supports_digest(c) for c in channels] == [True, True, True, True, True, False]


async def test_send_reaches_each_type_of_channel(
    dingtalk_robot: Served[DingTalkSink],
    wecom_robot: Served[WeComSink],
    feishu_robot: Served[FeishuSink],
    slack_robot: Served[SlackSink],
    webhook_receiver: Served[WebhookSink],
    smtp_server: Callable[..., SmtpSink],
    http: httpx.AsyncClient,
) -> None:
    mail_server = smtp_server()
    channels = CHANNELS.validate_python(
        [
            {"name": "d", "type": "dingtalk", "url": dingtalk_robot.url, "secret": DINGTALK_SECRET},
            {"name": "w", "type": "wecom", "url": wecom_robot.url},
            {"name": "f", "type": "feishu", "url": feishu_robot.url, "secret": FEISHU_SECRET},
            {"name": "s", "type": "slack", "url": slack_robot.url},
            {"name": "h", "type": "webhook", "url": webhook_receiver.url, "bearer_token": WEBHOOK_TOKEN},
            {
                "name": "m",
                "type": "email",
                "smtp": {"host": mail_server.host, "port": mail_server.port, "starttls": False},
                "from": "panorama@example.com",
            },
        ]
    )

    results = [await registry.send(channel, notification(), http) for channel in channels]

    assert [r.ok for r in results] == [True] * 6, [r.detail for r in results]
    sinks = [
        dingtalk_robot.sink,
        wecom_robot.sink,
        feishu_robot.sink,
        slack_robot.sink,
        webhook_receiver.sink,
    ]
    assert [len(sink.messages) for sink in sinks] == [1, 1, 1, 1, 1]
    assert len(mail_server.messages) == 1

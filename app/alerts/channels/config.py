"""The ``channels`` configuration: one model per channel type, told apart by ``type``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from app.alerts.channels.aliyun import AliyunCallConfig, AliyunSmsConfig
from app.alerts.channels.apprise import AppriseConfig
from app.alerts.channels.dingtalk import DingTalkConfig
from app.alerts.channels.email import EmailConfig
from app.alerts.channels.feishu import FeishuConfig
from app.alerts.channels.ntfy import NtfyConfig
from app.alerts.channels.slack import SlackConfig
from app.alerts.channels.twilio import TwilioCallConfig, TwilioSmsConfig
from app.alerts.channels.webhook import WebhookConfig
from app.alerts.channels.wecom import WeComConfig

ChannelConfig = Annotated[
    DingTalkConfig
    | WeComConfig
    | FeishuConfig
    | SlackConfig
    | EmailConfig
    | WebhookConfig
    | NtfyConfig
    | TwilioSmsConfig
    | TwilioCallConfig
    | AliyunSmsConfig
    | AliyunCallConfig
    | AppriseConfig,
    Field(discriminator="type"),
]

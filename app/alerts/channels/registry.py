"""One entry point for every channel: send a message through a configured channel.

The worker calls :func:`send` and reads :func:`rate_limit_per_min` and
:func:`supports_digest`; it never needs to know which channel it holds.
"""

from __future__ import annotations

import httpx

from app.alerts.channels import dingtalk, email, feishu, slack, webhook, wecom
from app.alerts.channels.base import Message, SendResult
from app.alerts.channels.config import ChannelConfig


async def send(config: ChannelConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    """Delivers ``message`` through ``config``'s channel; never raises for a failed delivery."""
    match config:
        case dingtalk.DingTalkConfig():
            return await dingtalk.send(config, message, http)
        case wecom.WeComConfig():
            return await wecom.send(config, message, http)
        case feishu.FeishuConfig():
            return await feishu.send(config, message, http)
        case slack.SlackConfig():
            return await slack.send(config, message, http)
        case email.EmailConfig():
            return await email.send(config, message)
        case webhook.WebhookConfig():
            return await webhook.send(config, message, http)


def rate_limit_per_min(config: ChannelConfig) -> int | None:
    """Messages a minute the channel takes (None: no limit); over it, queued messages become a digest.

    Each type's config defaults to its service's limit: DingTalk and WeCom 20,
    Feishu 100 (and at most 5 a second), Slack 60 (about 1 a second).
    """
    return config.rate_limit_per_min


def supports_digest(config: ChannelConfig) -> bool:
    """Whether merging queued messages into one :class:`~app.alerts.channels.base.Digest` suits the channel.

    Every channel renders a digest, but a generic webhook feeds a machine that
    wants one event per incident change: for it, hold messages back instead.
    """
    return not isinstance(config, webhook.WebhookConfig)

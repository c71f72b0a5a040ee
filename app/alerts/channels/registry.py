"""One entry point for every channel: send a message through a configured channel.

The worker calls :func:`send` and reads :func:`rate_limit_per_min` and
:func:`supports_digest`; the outbox reads :func:`per_person`. None of them needs to know
which channel it holds. Adding a channel is one module plus its lines here and in
``config.py``.
"""

from __future__ import annotations

import httpx

from app.alerts.channels import (
    aliyun,
    apprise,
    dingtalk,
    email,
    feishu,
    ntfy,
    slack,
    twilio,
    webhook,
    wecom,
)
from app.alerts.channels.base import Notice, Outgoing, Person, SendResult
from app.alerts.channels.config import ChannelConfig
from app.alerts.failures import failure


async def send(config: ChannelConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    """Delivers ``message`` through ``config``'s channel; never raises for a failed delivery."""
    if isinstance(message, Notice):
        return await _send_notice(config, message, http)
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
        case ntfy.NtfyConfig():
            return await ntfy.send(config, message, http)
        case twilio.TwilioSmsConfig():
            return await twilio.send_sms(config, message, http)
        case twilio.TwilioCallConfig():
            return await twilio.send_call(config, message, http)
        case aliyun.AliyunSmsConfig():
            return await aliyun.send_sms(config, message, http)
        case aliyun.AliyunCallConfig():
            return await aliyun.send_call(config, message, http)
        case apprise.AppriseConfig():
            return await apprise.send(config, message)


async def _send_notice(config: ChannelConfig, notice: Notice, http: httpx.AsyncClient) -> SendResult:
    match config:
        case dingtalk.DingTalkConfig():
            return await dingtalk.send_notice(config, notice, http)
        case wecom.WeComConfig():
            return await wecom.send_notice(config, notice, http)
        case feishu.FeishuConfig():
            return await feishu.send_notice(config, notice, http)
        case slack.SlackConfig():
            return await slack.send_notice(config, notice, http)
        case email.EmailConfig():
            return await email.send(config, notice)
        case webhook.WebhookConfig():
            return await webhook.send(config, notice, http)
        case ntfy.NtfyConfig():
            return await ntfy.send(config, notice, http)
        case twilio.TwilioSmsConfig():
            return await twilio.send_sms(config, notice, http)
        case apprise.AppriseConfig():
            return await apprise.send(config, notice)
        case _:
            return SendResult.failure(
                f"{config.type} channels carry pages only, not notices",
                retryable=False,
                problem=failure("pages_only", channel_type=config.type),
            )


def rate_limit_per_min(config: ChannelConfig) -> int | None:
    """Messages a minute the channel takes (None: no limit); over it, queued messages become a digest.

    Each type's config defaults to its service's limit: DingTalk and WeCom 20,
    Feishu 100 (and at most 5 a second), Slack 60 (about 1 a second).
    """
    return config.rate_limit_per_min


def supports_digest(config: ChannelConfig) -> bool:
    """Whether merging queued messages into one :class:`~app.alerts.channels.base.Digest` suits the channel.

    Every channel renders a digest, but a generic webhook feeds a machine that
    wants one event per incident change, and a call or an SMS reaches one person about one
    page: for them, hold messages back instead.
    """
    return not isinstance(
        config,
        webhook.WebhookConfig
        | twilio.TwilioCallConfig
        | twilio.TwilioSmsConfig
        | aliyun.AliyunCallConfig
        | aliyun.AliyunSmsConfig,
    )


def per_person(config: ChannelConfig | None) -> bool:
    """Whether a delivery through the channel addresses one person (a push topic, a phone): the outbox
    then holds one row per person paged, so a retry never reaches twice someone already reached."""
    return bool(getattr(config, "per_person", False))


def reaches(config: ChannelConfig | None, person: Person) -> bool:
    """Whether a one-person channel can reach ``person`` (they have the contact it needs)."""
    contact = getattr(config, "contact", None)
    return contact is None or getattr(person, contact, None) is not None


def pages_only(config: ChannelConfig | None) -> bool:
    """A call carries pages, never an update or a resolution (nobody wants to be woken for those)."""
    return isinstance(config, twilio.TwilioCallConfig | aliyun.AliyunCallConfig)


def shows_context(config: ChannelConfig | None) -> bool:
    """Whether the channel shows a page's context (error logs, traces, links): the chat robots and
    e-mail do; SMS, calls, push and plain webhooks stay short, so nothing is fetched for them."""
    return isinstance(
        config,
        dingtalk.DingTalkConfig
        | wecom.WeComConfig
        | feishu.FeishuConfig
        | slack.SlackConfig
        | email.EmailConfig,
    )

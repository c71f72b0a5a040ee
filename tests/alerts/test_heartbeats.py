"""The "heartbeat missing" incident speaks the team's language (``alerts.locale``): its title and
summary, its page and its resolved message, in every format a channel lays them out in; it is
routed as any incident (its ``routed`` entry names the schedules its chain pages)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from app.alerts import heartbeats, messages
from app.alerts.channels import aliyun, apprise, dingtalk, email, feishu, ntfy, slack, twilio, webhook, wecom
from app.alerts.channels.base import Notification
from app.alerts.channels.email import EmailConfig
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, incidents, outbox, payload
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied

# What each language must say, and what it must not (the other language's words).
SAYS = {"zh-CN": "心跳丢失", "en": "Heartbeat missing"}
NEVER = {"zh-CN": ("Heartbeat", "no alert matching", "Alert firing", "Resolved"), "en": ("心跳", "告警")}

MAIL = EmailConfig.model_validate(
    {"name": "mail", "type": "email", "smtp": {"host": "127.0.0.1"}, "from": "panorama@example.com"}
)


def _json(data: bytes | dict[str, Any] | None) -> str:
    assert data is not None
    return json.dumps(json.loads(data) if isinstance(data, bytes) else data, ensure_ascii=False)


def _mail(mail: EmailMessage) -> str:
    parts = [part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"]
    return "\n".join([str(mail["Subject"]), *parts])


def every_format(message: Notification) -> dict[str, str]:
    """The message as each channel lays it out, as text (no channel is called: the layouts only)."""
    title, body = apprise.title_and_body(message)
    return {
        "dingtalk": _json(dingtalk.body(message)),
        "wecom": wecom.content(message) or "",
        "feishu": _json(feishu.body(message)),
        "slack": _json(slack.build(message)),
        "email": _mail(email.compose(MAIL, message, ["oncall@example.com"])),
        "webhook": _json(webhook.payload(message)),
        "ntfy": _json(ntfy.publication(message, "ops")),
        "twilio_sms": twilio.sms_text(message),
        "twilio_call": twilio.spoken(message),
        "aliyun": _json(aliyun.template_params(message)),
        "apprise": f"{title}\n{body}",
    }


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_missing_heartbeat_pages_and_resolves_in_the_teams_language(
    app_factory: AppFactory, locale: str
) -> None:
    """The Watchdog stops: the incident opens titled in ``alerts.locale``, its first page is a
    heartbeat page, and when the Watchdog is back the resolved message says the same title; every
    channel's layout of both carries the words of that language and none of the other's."""
    async with app_factory(**alerting_config(locale=locale)) as (app, client):
        context = app.state.context
        key = await context.alerts.signing_key()
        watchdog = payload("Watchdog", [alert("Watchdog", severity="none")])
        sent = await client.post(WEBHOOK, json=watchdog, headers=bearer_webhook())
        assert await applied(client, sent) is None
        now = datetime.now(UTC)
        async with context.sessions.begin() as session:
            assert await heartbeats.check(session, context.settings, now + timedelta(minutes=6), key) == 1
        await applied(client, await client.post(WEBHOOK, json=watchdog, headers=bearer_webhook()))  # back
        [missing] = await incidents(context.sessions)
        paged = await outbox(context.sessions)
        shown = await client.get(f"/api/v1/incidents/{missing.id}", headers=bearer(VIEWER_TOKEN))
        page = await client.get(f"/incidents/{missing.id}", headers=bearer(VIEWER_TOKEN))
    assert missing.status == "resolved"
    assert [(d.channel, d.kind) for d in paged] == [("ops-robot", "heartbeat"), ("ops-robot", "resolve")]
    summary = json.loads(missing.common_annotations)["summary"]
    assert missing.title == f'{SAYS[locale]}{"：" if locale == "zh-CN" else ": "}alertname="Watchdog"'
    assert ("自 " if locale == "zh-CN" else "no alert matching ") in summary
    # since when, as people read times (the messages' form, the configured zone), never raw ISO 8601
    since = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d", summary)
    assert since is not None, summary
    assert not re.search(r"\dT\d|\.\d{6}", summary), summary
    assert since.group(0) in page.text  # the page of an incident without alerts says why it opened
    assert shown.json()["title"] == missing.title
    # routed as the intake routes an incident: the schedules its chain pages, for the on-call history
    timeline = shown.json()["timeline"]
    assert [e["kind"] for e in timeline][:3] == ["received", "routed", "escalated"]
    assert timeline[1]["detail"] == {
        "route": 0,
        "matchers": ['alertname="Watchdog"'],
        "escalation": "default",
        "schedules": ["sre"],
    }
    for delivery in paged:
        message = messages.outgoing_from_json(delivery.payload)
        assert isinstance(message, Notification)
        assert message.locale == locale
        for name, text in every_format(message).items():
            assert SAYS[locale] in text, (delivery.kind, name, text)
            assert not [w for w in NEVER[locale] if w in text], (delivery.kind, name, text)

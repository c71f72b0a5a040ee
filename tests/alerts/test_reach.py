"""Reaching the person: their own rules (push now, call after 5 minutes, text if the call is not
answered), through faithful fakes of ntfy, Twilio and Alibaba Cloud served over real HTTP, and
Apprise through its real library; acknowledged from the ntfy action button and from a key press."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.runtime import AlertRuntime
from tests.alerts.support import WEBHOOK, alert, bearer_webhook, incidents, outbox, payload
from tests.fakes.reach import AliyunServer, NtfyServer, TwilioServer, twilio_signature
from tests.fakes.robots import WebhookSink
from tests.fakes.server import LoopbackServer
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied

PUBLIC = "https://panorama.example.com"
NTFY_TOKEN = "tk_ntfy-access-token-0123456789"
TWILIO_SID = "AC" + "0" * 31 + "1"
TWILIO_TOKEN = "twilio-auth-token-0123456789"
ALIYUN_ID = "LTAI-fake-access-key"
ALIYUN_SECRET = "aliyun-access-secret-0123456789"


@pytest.fixture
def served() -> Iterator[Any]:
    servers: list[LoopbackServer] = []

    def start(app: Any) -> str:
        server = LoopbackServer(app)
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def reach_config(ntfy: str, twilio: str, steps: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "alerts": {"webhook_token": "alertmanager-webhook-token-1234", "public_url": PUBLIC},
        "users": [
            {
                "name": "alice",
                "ntfy_topic": "alice-pages",
                "phone": "+8613800000001",
                "sms": "+8613800000001",
                "rules": [{"severities": ["critical"], "steps": steps}, {"steps": [{"channel": "push"}]}],
            },
            {"name": "bob", "ntfy_topic": "bob-pages"},
        ],
        "channels": [
            {"name": "push", "type": "ntfy", "url": ntfy, "token": NTFY_TOKEN},
            {
                "name": "call",
                "type": "twilio_call",
                "account_sid": TWILIO_SID,
                "auth_token": TWILIO_TOKEN,
                "from": "+15550001111",
                "api_url": twilio,
                "poll_interval_s": 0.05,
                "timeout_s": 5,
            },
            {
                "name": "text",
                "type": "twilio_sms",
                "account_sid": TWILIO_SID,
                "auth_token": TWILIO_TOKEN,
                "from": "+15550001111",
                "api_url": twilio,
            },
            *extra.pop("channels", []),
        ],
        "schedules": [
            {
                "name": "sre",
                "timezone": "Asia/Shanghai",
                "rotations": [{"users": ["alice"], "length": "1w", "start": "2026-01-05T09:00:00"}],
            }
        ],
        "escalations": [{"name": "default", "steps": [{"notify": {"schedule": "sre"}}]}],
        "routes": [{"matchers": [], "escalation": "default"}],
        **extra,
    }


PUSH_CALL_TEXT = [
    {"channel": "push", "after": "0m"},
    {"channel": "call", "after": "5m"},
    {"channel": "text", "after": "10m"},
]


def runtime_of(app: FastAPI) -> AlertRuntime:
    runtime: AlertRuntime = app.state.context.alerts
    return runtime


def sessions_of(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = app.state.context.sessions
    return sessions


async def test_a_critical_page_pushes_then_calls_after_the_delay_and_stops_when_acknowledged_from_ntfy(
    app_factory: AppFactory, served: Any
) -> None:
    ntfy, twilio = NtfyServer(token=NTFY_TOKEN), TwilioServer(TWILIO_SID, TWILIO_TOKEN, outcome="completed")
    config = reach_config(served(ntfy), served(twilio), PUSH_CALL_TEXT)
    async with app_factory(**config) as (app, client):
        runtime = runtime_of(app)
        posted = await client.post(
            WEBHOOK, json=payload("PayDown", [alert("PayDown")]), headers=bearer_webhook()
        )
        await applied(client, posted)
        start = datetime.now(UTC)
        await runtime.run_once(start)
        pushes_at_once = ntfy.items
        await runtime.run_once(start + timedelta(minutes=4))
        calls_before_the_delay = len(twilio.items)
        await runtime.run_once(start + timedelta(minutes=5, seconds=1))
        calls_after = [c for c in twilio.items if c["kind"] == "call"]
        [action] = pushes_at_once[0]["actions"]
        acknowledged = await client.request(
            action["method"], action["url"].removeprefix(PUBLIC), headers=action["headers"]
        )
        await runtime.run_once(start + timedelta(minutes=11))
        detail = (
            await client.get(
                f"/api/v1/incidents/{(await applied(client, posted))}", headers=bearer(VIEWER_TOKEN)
            )
        ).json()
        incident_page = await client.get(pushes_at_once[0]["click"].removeprefix(PUBLIC))
    [push] = pushes_at_once
    assert push["topic"] == "alice-pages"
    assert push["priority"] == 5  # urgent: rings through Do Not Disturb
    assert "rotating_light" in push["tags"]
    assert "critical" in push["tags"]
    assert "PayDown" in push["title"]
    assert push["click"].startswith(f"{PUBLIC}/incidents/{detail['id']}?view=")
    assert incident_page.status_code == 200  # the click link opens the incident's page
    assert action["action"] == "http"
    assert action["method"] == "POST"
    assert action["clear"] is True
    assert action["url"].startswith(f"{PUBLIC}/ack/")
    assert calls_before_the_delay == 0
    [call] = calls_after
    assert call["To"] == "+8613800000001"
    assert "<Gather" in call["Twiml"]
    assert "PayDown" in call["Twiml"]
    assert acknowledged.status_code == 200
    assert acknowledged.json() == {"incident": detail["id"], "status": "acknowledged", "changed": True}
    assert detail["status"] == "acknowledged"
    assert detail["acknowledged_by"] == "alice"  # the push went to her alone: the ack is hers
    assert [c["kind"] for c in twilio.items] == ["call"]  # no text after the ack
    personal = [e for e in detail["timeline"] if e["kind"] == "escalated" and e["detail"].get("personal")]
    assert [e["detail"]["channels"] for e in personal] == [["push"], ["call"]]


async def test_an_unanswered_call_moves_the_rule_on_to_its_next_step_at_once(
    app_factory: AppFactory, served: Any
) -> None:
    ntfy, twilio = NtfyServer(token=NTFY_TOKEN), TwilioServer(TWILIO_SID, TWILIO_TOKEN, outcome="no-answer")
    config = reach_config(served(ntfy), served(twilio), PUSH_CALL_TEXT)
    async with app_factory(**config) as (app, client):
        runtime = runtime_of(app)
        await applied(
            client,
            await client.post(WEBHOOK, json=payload("DbDown", [alert("DbDown")]), headers=bearer_webhook()),
        )
        start = datetime.now(UTC)
        await runtime.run_once(start)
        at_five = start + timedelta(minutes=5, seconds=1)
        await runtime.run_once(at_five)  # the call: not answered
        await runtime.run_once(at_five)  # the rule moved on: the text goes now, not at 10 minutes
        stored = await outbox(sessions_of(app))
    assert [c["kind"] for c in twilio.items] == ["call", "sms"]
    sms = twilio.items[1]
    assert sms["To"] == "+8613800000001"
    assert "DbDown" in sms["Body"]
    assert f"{PUBLIC}/ack/" in sms["Body"]
    by_channel = {d.channel: d for d in stored}
    assert by_channel["call"].status == "dead"
    assert "no-answer" in (by_channel["call"].last_error or "")
    assert by_channel["text"].status == "delivered"


async def test_a_key_pressed_on_the_call_acknowledges_through_twilios_signed_callback(
    app_factory: AppFactory, served: Any
) -> None:
    ntfy, twilio = NtfyServer(token=NTFY_TOKEN), TwilioServer(TWILIO_SID, TWILIO_TOKEN)
    steps = [{"channel": "call", "after": "0m"}]
    async with app_factory(**reach_config(served(ntfy), served(twilio), steps)) as (app, client):
        posted = await client.post(WEBHOOK, json=payload("Down", [alert("Down")]), headers=bearer_webhook())
        await applied(client, posted)
        await runtime_of(app).run_once()
        twiml = twilio.items[0]["Twiml"]
        action = twiml.split('action="', 1)[1].split('"', 1)[0]
        form = {"AccountSid": TWILIO_SID, "CallSid": "CA1", "Digits": "1", "To": "+8613800000001"}
        forged = await client.post(
            action.removeprefix(PUBLIC), data=form, headers={"X-Twilio-Signature": "bm90IGl0"}
        )
        signed = await client.post(
            action.removeprefix(PUBLIC),
            data=form,
            headers={"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, action, form)},
        )
        [incident] = await incidents(sessions_of(app))
    assert posted.status_code == 202
    assert action.startswith(f"{PUBLIC}/api/v1/alerts/twilio/call/gather/")
    assert forged.status_code == 401
    assert signed.status_code == 200
    assert "<Say" in signed.text
    assert incident.status == "acknowledged"
    assert incident.acknowledged_by == "alice"  # her rule's call: the key press is hers


async def test_alibaba_cloud_calls_and_texts_are_signed_as_alibaba_checks(
    app_factory: AppFactory, served: Any
) -> None:
    aliyun = AliyunServer(ALIYUN_ID, ALIYUN_SECRET, call_state="200000")
    base = served(aliyun)
    account = {"access_key_id": ALIYUN_ID, "access_key_secret": ALIYUN_SECRET, "endpoint": base}
    channels = [
        {"name": "cn-call", "type": "aliyun_call", "tts_code": "TTS_1", "poll_interval_s": 0.05, **account},
        {"name": "cn-sms", "type": "aliyun_sms", "sign_name": "运维", "template_code": "SMS_1", **account},
        {
            "name": "cn-sms-wrong",
            "type": "aliyun_sms",
            "sign_name": "运维",
            "template_code": "SMS_1",
            **{**account, "access_key_secret": "not-the-secret-0000"},
        },
    ]
    steps = [{"channel": "cn-call"}, {"channel": "cn-sms"}, {"channel": "cn-sms-wrong"}]
    config = reach_config("http://127.0.0.1:9", "http://127.0.0.1:9", steps, channels=channels)
    async with app_factory(**config) as (app, client):
        incident = await applied(
            client,
            await client.post(
                WEBHOOK, json=payload("磁盘已满", [alert("磁盘已满")]), headers=bearer_webhook()
            ),
        )
        await runtime_of(app).run_once()
        stored = {d.channel: d for d in await outbox(sessions_of(app))}
        page = await client.get(f"/incidents/{incident}?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
    actions = [p["Action"] for p in aliyun.items]
    assert actions[:1] == ["SingleCallByTts"] or "SingleCallByTts" in actions
    assert "QueryCallDetailByCallId" in actions
    assert "SendSms" in actions
    sms = next(p for p in aliyun.items if p["Action"] == "SendSms")
    assert sms["PhoneNumbers"] == "8613800000001"
    assert json.loads(sms["TemplateParam"])["title"].startswith("磁盘已满")
    assert stored["cn-call"].status == "delivered"
    assert stored["cn-sms"].status == "delivered"
    assert stored["cn-sms-wrong"].status == "dead"  # a wrong signature is refused, and never retried
    assert "SignatureDoesNotMatch" in (stored["cn-sms-wrong"].last_error or "")
    # the incident's page says what Alibaba's code means, in the reader's language
    assert "错误码 SignatureDoesNotMatch（请求签名不匹配：请检查 AccessKey Secret）" in page.text, page.text


async def test_apprise_delivers_through_its_real_library_and_a_failure_is_retried(
    app_factory: AppFactory, serve_sink: Any
) -> None:
    sink = serve_sink(WebhookSink(path="/apprise"))
    target = sink.url.replace("http://", "json://")
    channels = [{"name": "longtail", "type": "apprise", "url": target, "timeout_s": 10}]
    config = reach_config(
        "http://127.0.0.1:9", "http://127.0.0.1:9", [{"channel": "longtail"}], channels=channels
    )
    async with app_factory(**config) as (app, client):
        sink.sink.fail_with(500, times=1)
        await applied(
            client,
            await client.post(
                WEBHOOK, json=payload("QueueStuck", [alert("QueueStuck")]), headers=bearer_webhook()
            ),
        )
        await runtime_of(app).run_once()
        failed = await outbox(sessions_of(app))
        await runtime_of(app).run_once(datetime.now(UTC) + timedelta(minutes=1))
        delivered = await outbox(sessions_of(app))
    assert [(d.status, d.attempts) for d in failed] == [("pending", 1)]
    assert "did not take" in (failed[0].last_error or "")
    assert [d.status for d in delivered] == ["delivered"]
    [message] = sink.sink.messages
    assert "QueueStuck" in message.json["title"]
    assert message.json["type"] == "failure"
    assert "/ack/" in message.json["message"]

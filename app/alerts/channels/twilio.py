"""Twilio: SMS (Messages) and phone calls (Calls) that read the page aloud and take a key press as
the acknowledgement.

Wire facts (REST API 2010-04-01, basic auth ``AccountSid:AuthToken``, form-encoded bodies):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with ``To``, ``From`` and ``Body`` answers
  201 with the message (``sid``, ``status: queued``); errors are JSON ``{code, message, status}``
  (21211: invalid ``To``, 21610: the number has opted out; 20429 / HTTP 429: too many requests).
- ``POST …/Calls.json`` with ``To``, ``From``, ``Twiml`` (the call's instructions inline) and
  ``Timeout`` (seconds to let it ring) answers 201 with the call (``sid``, ``status: queued``);
  ``GET …/Calls/{CallSid}.json`` reads its ``status``: queued, ringing, in-progress, then one of
  completed, busy, no-answer, failed, canceled.
- TwiML ``<Gather numDigits="1" action=URL>`` around ``<Say>`` posts the pressed key (``Digits``) to
  ``URL``, signed: ``X-Twilio-Signature`` is base64 HMAC-SHA1, keyed with the auth token, of the
  URL followed by every POST parameter, sorted by name, as name then value (see :func:`signature`).

A call counts as delivered only when it was answered (``completed`` or still ``in-progress`` when
the channel stops waiting); busy, no-answer, failed or canceled is a failure that no retry of the
same call fixes, so the person's rule moves on to its next step at once. The key press reaches
``POST /api/v1/alerts/twilio/{channel}/gather/{ack token}`` (``alerts.public_url`` must be
reachable from Twilio), which checks the signature and acknowledges the incident.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import httpx
from pydantic import Field, SecretStr, field_validator

from app.alerts.channels.base import Digest, Notice, Notification, Outgoing, SendResult
from app.alerts.channels.common import ChannelBase
from app.alerts.channels.dialects import PLAIN
from app.alerts.channels.notices import lay_out, plain
from app.alerts.channels.transport import redact, retryable_status
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure, refused

API_VERSION = "2010-04-01"
SMS_CHARS = 320
FINAL_CALL = {"completed", "busy", "no-answer", "failed", "canceled"}
ANSWERED = {"completed", "in-progress"}
# code -> (what it means, whether a retry can help), from Twilio's error dictionary: the ones an
# account sending pages meets. Others are said by number with Twilio's message, retried as their
# HTTP status says.
CODES: dict[int, tuple[str, bool]] = {
    20003: ("authentication failed: check the account SID and auth token", False),
    20404: ("not found: check the account SID", False),
    20429: ("too many requests", True),
    20500: ("Twilio's internal error", True),
    20503: ("Twilio is unavailable", True),
    21210: ("the 'from' number is not a verified caller ID of the account", False),
    21211: ("the 'to' number is not a valid phone number", False),
    21212: ("the 'from' number is not valid", False),
    21215: ("the account may not call this number (its geographic permissions)", False),
    21219: ("the 'to' number is not verified (trial accounts call only verified numbers)", False),
    21408: ("the account may not send SMS to this region", False),
    21606: ("the 'from' number cannot send messages to this destination", False),
    21608: ("the 'to' number is not verified (trial accounts text only verified numbers)", False),
    21610: ("the recipient has unsubscribed from this sender (replied STOP)", False),
    21612: ("the 'to' number cannot be reached from the 'from' number", False),
    21614: ("the 'to' number is not a mobile number", False),
    21617: ("the message is longer than 1,600 characters", False),
}
GATHER_PATH = "/api/v1/alerts/twilio/{channel}/gather/{token}"
SAY_LANGUAGE = {"zh-CN": "cmn-CN", "en": "en-US"}
WORDS = {
    "zh-CN": {
        "intro": "Panorama 告警。",
        "press": "按任意键确认。",
        "bye": "未收到按键，再见。",
        "done": "已确认，谢谢。",
        "gone": "此告警无法确认，请打开 Panorama 查看。",
    },
    "en": {
        "intro": "Panorama alert.",
        "press": "Press any key to acknowledge.",
        "bye": "No key pressed. Goodbye.",
        "done": "Acknowledged. Thank you.",
        "gone": "This page could not be acknowledged. Please open Panorama.",
    },
}


class TwilioAccount(ChannelBase):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_: str = Field(alias="from", pattern=r"^\+[1-9][0-9]{4,14}$", description="Your Twilio number")
    api_url: str = Field(default="https://api.twilio.com", description="Twilio's REST API")

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def per_person(self) -> bool:
        return True

    def resource(self, name: str) -> str:
        return f"{self.api_url}/{API_VERSION}/Accounts/{self.account_sid}/{name}"


class TwilioSmsConfig(TwilioAccount):
    type: Literal["twilio_sms"]

    @property
    def contact(self) -> str:
        return "sms"


class TwilioCallConfig(TwilioAccount):
    type: Literal["twilio_call"]

    @property
    def contact(self) -> str:
        return "phone"

    timeout_s: float = Field(default=110.0, gt=0, le=120, description="Placing, ringing and the call")
    concurrency: int = Field(default=4, ge=1, le=32)
    ring_s: int = Field(default=30, ge=5, le=600, description="How long the phone rings")
    poll_interval_s: float = Field(default=2.0, gt=0, le=30, description="How often the call is looked at")
    voice: str | None = Field(default=None, description="Twilio <Say> voice, e.g. Polly.Zhiyu")


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` of a request Twilio makes to ``url`` with form ``params``."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sms_text(message: Outgoing) -> str:
    """The SMS: headline, severity and title, and the ack link while the incident is triggered."""
    if isinstance(message, Notice):
        laid = lay_out(message, PLAIN)
        return _cut(f"{laid.title}\n{plain(laid)}")
    if isinstance(message, Digest):
        view = Prepared(message, PLAIN).view()
        return _cut(f"{view.title}: " + "; ".join(i.title_plain for i in view.items))
    view = Prepared(message, PLAIN).view(0)
    incident = view.incident
    assert incident is not None
    t = view.t
    text = f"[Panorama] {incident.headline}{t.sep}{incident.title_plain} ({incident.severity})"
    if incident.ack_button_url:
        text += f"\n{t.ack_link}{t.sep}{incident.ack_button_url}"
    elif incident.incident_button_url:
        text += f"\n{t.incident_link}{t.sep}{incident.incident_button_url}"
    return _cut(text)


def spoken(message: Notification) -> str:
    """What the call says: the severity and the title, in the message's language."""
    view = Prepared(message, PLAIN).view(0)
    incident = view.incident
    assert incident is not None
    words = WORDS.get(message.locale, WORDS["en"])
    return f"{words['intro']} {incident.severity}{view.t.sep}{incident.title_plain}"


def gather_url(message: Notification, channel: str) -> str | None:
    """Where the key press goes: on Panorama's public URL, naming the channel and the ack token."""
    if not message.ack_url or "/ack/" not in message.ack_url:
        return None
    base, _, token = message.ack_url.rpartition("/ack/")
    return base + GATHER_PATH.format(channel=channel, token=token)


def twiml(message: Notification, channel: str, voice: str | None) -> str:
    words = WORDS.get(message.locale, WORDS["en"])
    say = f"<Say language={quoteattr(SAY_LANGUAGE.get(message.locale, 'en-US'))}"
    say += f" voice={quoteattr(voice)}>" if voice else ">"
    text = escape(spoken(message))
    action = gather_url(message, channel)
    if action is None:
        return f"<Response>{say}{text}</Say></Response>"
    return (
        f'<Response><Gather numDigits="1" timeout="8" method="POST" action={quoteattr(action)}>'
        f"{say}{text} {escape(words['press'])}</Say>{say}{text} {escape(words['press'])}</Say>"
        f"</Gather>{say}{escape(words['bye'])}</Say></Response>"
    )


def reply(locale: str, acknowledged: bool) -> str:
    """TwiML answering the key press."""
    words = WORDS.get(locale, WORDS["en"])
    language = quoteattr(SAY_LANGUAGE.get(locale, "en-US"))
    said = words["done"] if acknowledged else words["gone"]
    return f"<Response><Say language={language}>{escape(said)}</Say></Response>"


async def send_sms(config: TwilioSmsConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    to = next((p.sms for p in message.mentions if p.sms), None)
    if to is None:
        return SendResult.no_contact("twilio", message, "sms number")
    form = {"To": to, "From": config.from_, "Body": sms_text(message)}
    answer = await _post(http, config, "Messages.json", form)
    if isinstance(answer, SendResult):
        return answer
    return SendResult.success(f"twilio message {answer.get('sid', '?')} {answer.get('status', '')}".strip())


async def send_call(config: TwilioCallConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    if not isinstance(message, Notification):
        return SendResult.failure(
            "twilio_call: a call only carries a page", retryable=False, problem=failure("calls_only")
        )
    to = next((p.phone for p in message.mentions if p.phone), None)
    if to is None:
        return SendResult.no_contact("twilio", message, "phone")
    form = {
        "To": to,
        "From": config.from_,
        "Twiml": twiml(message, config.name, config.voice),
        "Timeout": str(config.ring_s),
    }
    started = time.monotonic()
    placed = await _post(http, config, "Calls.json", form)
    if isinstance(placed, SendResult):
        return placed
    sid = str(placed.get("sid", ""))
    status = str(placed.get("status", "queued"))
    deadline = started + config.timeout_s - config.poll_interval_s - 1
    while status not in FINAL_CALL and time.monotonic() < deadline:
        await asyncio.sleep(config.poll_interval_s)
        current = await _get(http, config, f"Calls/{sid}.json")
        if isinstance(current, dict):
            status = str(current.get("status", status))
    if status in ANSWERED:
        return SendResult.success(f"twilio call {sid} {status}")
    if status in FINAL_CALL:
        return SendResult.failure(
            f"twilio call {sid} to {to}: {status} (not answered)",
            retryable=False,
            problem=failure("not_answered", status),
        )
    return SendResult.failure(
        f"twilio call {sid} to {to}: still {status} after {config.timeout_s:g}s; counted as not answered",
        retryable=False,
        problem=failure("not_answered", status),
    )


def _auth(config: TwilioAccount) -> httpx.BasicAuth:
    return httpx.BasicAuth(config.account_sid, config.auth_token.get_secret_value())


async def _post(
    http: httpx.AsyncClient, config: TwilioAccount, resource: str, form: dict[str, str]
) -> dict[str, Any] | SendResult:
    return await _call(http, config, "POST", resource, form)


async def _get(http: httpx.AsyncClient, config: TwilioAccount, resource: str) -> dict[str, Any] | SendResult:
    return await _call(http, config, "GET", resource, None)


async def _call(
    http: httpx.AsyncClient,
    config: TwilioAccount,
    method: str,
    resource: str,
    form: dict[str, str] | None,
) -> dict[str, Any] | SendResult:
    secrets = [config.auth_token.get_secret_value()]
    try:
        response = await http.request(
            method, config.resource(resource), data=form, auth=_auth(config), timeout=config.timeout_s
        )
    except httpx.TimeoutException:
        return SendResult.failure(
            f"{_kind(config)}: no answer from Twilio",
            retryable=True,
            timeout=True,
            problem=failure("timeout", seconds=config.timeout_s),
        )
    except httpx.TransportError as exc:
        reason = redact(str(exc), secrets)
        return SendResult.failure(
            f"{_kind(config)}: network error: {reason}", retryable=True, problem=failure("network", reason)
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if 200 <= response.status_code <= 299 and isinstance(body, dict):
        return body
    code = body.get("code") if isinstance(body, dict) else None
    said = redact(str(body.get("message", "")) if isinstance(body, dict) else response.text, secrets)
    known = CODES.get(code) if isinstance(code, int) else None
    retryable = retryable_status(response.status_code) or (known is not None and known[1])
    return SendResult.failure(
        f"{_kind(config)}: Twilio answered HTTP {response.status_code}"
        + (f" (code {code})" if code else "")
        + (f": {said}" if said else ""),
        retryable=retryable,
        status=response.status_code,
        problem=refused(said, code, "twilio", known=known is not None)
        if isinstance(code, int | str) and code
        else failure("http_status", said, status=response.status_code),
    )


def _kind(config: TwilioAccount) -> str:
    return str(getattr(config, "type", "twilio"))


def _cut(text: str) -> str:
    return text if len(text) <= SMS_CHARS else text[: SMS_CHARS - 1] + "…"

"""Alibaba Cloud (阿里云) SMS (``SendSms``) and voice notification calls (``SingleCallByTts``), for
teams in China.

Wire facts (RPC-style OpenAPI, version 2017-05-25): every request carries ``AccessKeyId``,
``Action``, ``Format=JSON``, ``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``,
``SignatureNonce`` (unique per request), ``Timestamp`` (UTC, ``YYYY-MM-DDThh:mm:ssZ``),
``Version`` and the action's parameters, signed (see :func:`signature`): the parameters sorted by
name, each name and value percent-encoded (RFC 3986: ``A-Za-z0-9-_.~`` kept, space as ``%20``),
joined as ``a=1&b=2``; the string to sign is ``<METHOD>&%2F&<that, percent-encoded again>``; the
signature is base64 HMAC-SHA1 keyed with ``<AccessKeySecret>&``. Answers are JSON with ``Code``
(``OK`` on success) and ``Message``; a bad signature is ``SignatureDoesNotMatch``, flow control
``isv.BUSINESS_LIMIT_CONTROL`` or ``Throttling.*`` (retryable).

- SMS: ``dysmsapi.aliyuncs.com`` ``SendSms`` with ``PhoneNumbers``, ``SignName``, ``TemplateCode``
  and ``TemplateParam`` (JSON). Messages are template-bound: the template you register should use
  ``${severity}``, ``${title}`` and ``${incident}`` (each value is cut to 35 characters).
- Voice: ``dyvmsapi.aliyuncs.com`` ``SingleCallByTts`` with ``CalledNumber``, ``TtsCode``,
  ``TtsParam`` (the same three variables), ``PlayTimes``, and ``CalledShowNumber`` when you call from
  a number of your own; it answers a ``CallId``. The call's outcome is read with
  ``QueryCallDetailByCallId`` (``ProdId`` 11000000300006 for voice notifications, ``QueryDate`` in
  ms): its ``Data`` is a JSON string whose ``state`` is ``200000`` once the callee listened; any
  other state (busy, no answer, rejected, powered off, …) means not answered. Alibaba warns that a
  call's record can take minutes to appear: a call without a record when the channel stops waiting
  (``timeout_s``) counts as not answered, so the person's rule moves on rather than trusting it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, field_validator

from app.alerts.channels.base import Digest, Notice, Notification, Outgoing, SendResult
from app.alerts.channels.common import ChannelBase
from app.alerts.channels.dialects import PLAIN
from app.alerts.channels.transport import redact, retryable_status
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure, refused

VERSION = "2017-05-25"
VOICE_NOTIFICATION = "11000000300006"
ANSWERED = "200000"
PARAM_CHARS = 35
# Code -> (what it means, whether a retry can help), from Alibaba Cloud's error codes of the SMS
# and voice APIs and of its API gateway: the ones an account sending pages meets. Others are said
# with Alibaba's message, retried as their HTTP status says.
CODES: dict[str, tuple[str, bool]] = {
    "isv.BUSINESS_LIMIT_CONTROL": ("rate limited: too many to this number in a minute, hour or day", True),
    "isv.DAY_LIMIT_CONTROL": ("the daily limit set in the console is reached", False),
    "isv.MONTH_LIMIT_CONTROL": ("the monthly limit set in the console is reached", False),
    "isv.MOBILE_NUMBER_ILLEGAL": ("not a valid mobile number", False),
    "isv.AMOUNT_NOT_ENOUGH": ("the account's balance is not enough", False),
    "isv.OUT_OF_SERVICE": ("the service is stopped: the account is out of credit", False),
    "isv.SMS_TEMPLATE_ILLEGAL": ("the template does not exist or is not approved", False),
    "isv.SMS_SIGNATURE_ILLEGAL": ("the signature does not exist or is not approved", False),
    "isv.SMS_SIGN_ILLEGAL": ("the signature may not be used", False),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": ("the signature's type does not fit the template's", False),
    "isv.SMS_CONTENT_ILLEGAL": ("the text holds words that may not be sent", False),
    "isv.TEMPLATE_MISSING_PARAMETERS": ("a variable of the template has no value", False),
    "isv.INVALID_PARAMETERS": ("a parameter is not valid", False),
    "isv.DENY_IP_RANGE": ("calls from this IP address's region are refused", False),
    "isv.PRODUCT_UN_SUBSCRIPT": (
        "the account has not subscribed to Alibaba Cloud's communication services",
        False,
    ),
    "isv.PRODUCT_UNSUBSCRIBE": ("the account has not subscribed to this product", False),
    "isv.ACCOUNT_NOT_EXISTS": ("the account does not exist: check the AccessKey", False),
    "isv.ACCOUNT_ABNORMAL": ("the account is in an abnormal state", False),
    "isp.RAM_PERMISSION_DENY": ("the AccessKey's RAM user lacks the permission", False),
    "isp.SYSTEM_ERROR": ("Alibaba Cloud's system error", True),
    "InvalidAccessKeyId.NotFound": ("the AccessKey ID does not exist", False),
    "SignatureDoesNotMatch": ("the request's signature does not match: check the AccessKey secret", False),
    "Throttling.User": ("rate limited", True),
    "Throttling.Api": ("rate limited", True),
    "Throttling": ("rate limited", True),
    "ServiceUnavailable": ("Alibaba Cloud is unavailable", True),
    "InternalError": ("Alibaba Cloud's internal error", True),
}


class AliyunAccount(ChannelBase):
    access_key_id: str = Field(min_length=8)
    access_key_secret: SecretStr
    region: str = "cn-hangzhou"

    @property
    def per_person(self) -> bool:
        return True


def _endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class AliyunSmsConfig(AliyunAccount):
    type: Literal["aliyun_sms"]

    @property
    def contact(self) -> str:
        return "sms"

    endpoint: str = "https://dysmsapi.aliyuncs.com"
    sign_name: str = Field(description="The approved SMS signature (签名)")
    template_code: str = Field(description="The approved template, e.g. SMS_123456789")

    _endpoint = field_validator("endpoint")(_endpoint)


class AliyunCallConfig(AliyunAccount):
    type: Literal["aliyun_call"]

    @property
    def contact(self) -> str:
        return "phone"

    endpoint: str = "https://dyvmsapi.aliyuncs.com"
    tts_code: str = Field(description="The approved text-to-speech template, e.g. TTS_123456789")
    called_show_number: str | None = Field(default=None, description="Your number; none: the public pool")
    play_times: int = Field(default=2, ge=1, le=3)
    timeout_s: float = Field(default=110.0, gt=0, le=120, description="Placing, ringing and the call")
    concurrency: int = Field(default=4, ge=1, le=32)
    poll_interval_s: float = Field(default=5.0, gt=0, le=60, description="How often the call is looked at")

    _endpoint = field_validator("endpoint")(_endpoint)


def percent(value: str) -> str:
    return quote(value, safe="~")


def signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Alibaba's RPC signature (HMAC-SHA1, ``SignatureVersion`` 1.0) of ``params`` sent with ``method``."""
    canonical = "&".join(f"{percent(k)}={percent(params[k])}" for k in sorted(params))
    to_sign = f"{method}&{percent('/')}&{percent(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed(config: AliyunAccount, action: str, params: dict[str, str], now: datetime) -> dict[str, str]:
    """The whole form of one request: the common parameters, ``params`` and the ``Signature``."""
    form = {
        "AccessKeyId": config.access_key_id,
        "Action": action,
        "Format": "JSON",
        "RegionId": config.region,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": VERSION,
        **params,
    }
    form["Signature"] = signature(config.access_key_secret.get_secret_value(), "POST", form)
    return form


def template_params(message: Outgoing) -> dict[str, str]:
    """``severity``, ``title`` and ``incident`` (its number), each cut to what templates take."""
    if isinstance(message, Notice):
        return {"severity": "-", "title": PLAIN.text(message.title, PARAM_CHARS), "incident": "-"}
    if isinstance(message, Digest):
        view = Prepared(message, PLAIN).view()
        return {"severity": "-", "title": PLAIN.text(view.title, PARAM_CHARS), "incident": "-"}
    incident = Prepared(message, PLAIN).view(0).incident
    assert incident is not None
    return {
        "severity": PLAIN.text(incident.severity, PARAM_CHARS),
        "title": PLAIN.text(incident.title_plain, PARAM_CHARS),
        "incident": str(message.incident_id),
    }


async def send_sms(config: AliyunSmsConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    to = next((p.sms for p in message.mentions if p.sms), None)
    if to is None:
        return SendResult.no_contact("aliyun", message, "sms number")
    params = {
        "PhoneNumbers": to.lstrip("+"),
        "SignName": config.sign_name,
        "TemplateCode": config.template_code,
        "TemplateParam": json.dumps(template_params(message), ensure_ascii=False),
    }
    answer = await _request(http, config, config.endpoint, "SendSms", params)
    if isinstance(answer, SendResult):
        return answer
    return SendResult.success(f"aliyun sms {answer.get('BizId', '?')}")


async def send_call(config: AliyunCallConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    if not isinstance(message, Notification):
        return SendResult.failure(
            "aliyun_call: a call only carries a page", retryable=False, problem=failure("calls_only")
        )
    to = next((p.phone for p in message.mentions if p.phone), None)
    if to is None:
        return SendResult.no_contact("aliyun", message, "phone")
    params = {
        "CalledNumber": to.lstrip("+"),
        "TtsCode": config.tts_code,
        "TtsParam": json.dumps(template_params(message), ensure_ascii=False),
        "PlayTimes": str(config.play_times),
        "OutId": f"incident-{message.incident_id}",
    }
    if config.called_show_number:
        params["CalledShowNumber"] = config.called_show_number
    started = time.monotonic()
    placed = await _request(http, config, config.endpoint, "SingleCallByTts", params)
    if isinstance(placed, SendResult):
        return placed
    call_id = str(placed.get("CallId", ""))
    deadline = started + config.timeout_s - config.poll_interval_s - 1
    while time.monotonic() < deadline:
        await asyncio.sleep(config.poll_interval_s)
        query = {
            "CallId": call_id,
            "ProdId": VOICE_NOTIFICATION,
            "QueryDate": str(int(time.time() * 1000)),
        }
        detail = await _request(http, config, config.endpoint, "QueryCallDetailByCallId", query)
        if isinstance(detail, SendResult):
            continue  # a failed look is not the call's outcome: look again
        state = _state(detail.get("Data"))
        if state == ANSWERED:
            return SendResult.success(f"aliyun call {call_id} answered")
        if state:
            return SendResult.failure(
                f"aliyun call {call_id}: state {state} (not answered)",
                retryable=False,
                problem=failure("not_answered", state),
            )
    return SendResult.failure(
        f"aliyun call {call_id}: no call record within {config.timeout_s:g}s; counted as not answered",
        retryable=False,
        problem=failure("not_answered"),
    )


def _state(data: Any) -> str | None:
    if not data:
        return None
    try:
        parsed = json.loads(data) if isinstance(data, str) else data
    except ValueError:
        return None
    state = parsed.get("state") if isinstance(parsed, dict) else None
    return str(state) if state else None


def _kind(config: AliyunAccount) -> str:
    return str(getattr(config, "type", "aliyun"))


async def _request(
    http: httpx.AsyncClient, config: AliyunAccount, endpoint: str, action: str, params: dict[str, str]
) -> dict[str, Any] | SendResult:
    secrets = [config.access_key_secret.get_secret_value()]
    form = signed(config, action, params, datetime.now(UTC))
    try:
        response = await http.post(f"{endpoint}/", data=form, timeout=config.timeout_s)
    except httpx.TimeoutException:
        return SendResult.failure(
            f"{_kind(config)}: no answer from Alibaba Cloud ({action})",
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
    code = str(body.get("Code", "")) if isinstance(body, dict) else ""
    if response.status_code == 200 and code == "OK":
        assert isinstance(body, dict)
        return body
    said = redact(str(body.get("Message", "")) if isinstance(body, dict) else response.text, secrets)
    return SendResult.failure(
        f"{_kind(config)}: {action} answered HTTP {response.status_code} {code or ''}: {said}".replace(
            "  ", " "
        ),
        retryable=retryable_status(response.status_code) or CODES.get(code, ("", False))[1],
        status=response.status_code,
        problem=refused(said, code, "aliyun", known=code in CODES)
        if code
        else failure("http_status", said, status=response.status_code),
    )

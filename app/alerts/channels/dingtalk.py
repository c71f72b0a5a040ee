"""DingTalk custom robot (markdown, signed with the secret when set, @mobile mentions).

Wire facts: ``POST .../robot/send?access_token=T``; with a secret, ``timestamp``
(ms) and ``sign`` = base64 HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")
go into the query (URL-encoded: base64 has ``+``, ``/`` and ``=``); DingTalk
refuses a timestamp more than an hour off its clock. Failures come back as HTTP
200 with ``errcode`` ≠ 0. A robot may post 20 messages a minute (then it is
throttled for 10 minutes) and a body of about 20,000 bytes.

A mention needs both the mobile in ``at.atMobiles`` and ``@<mobile>`` in the text.
Every message ends with "来自 Panorama" / "Sent by Panorama", so a robot secured by a
custom keyword can use the keyword ``Panorama``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from app.alerts.channels.base import Message, Notice, Person, SendResult
from app.alerts.channels.common import UrlChannel
from app.alerts.channels.dialects import PLAIN, ROBOT_MARKDOWN
from app.alerts.channels.notices import lay_out, markdown
from app.alerts.channels.render import fit, render
from app.alerts.channels.transport import Answer, encode, post_json, redact, status_failure
from app.alerts.channels.views import Prepared, View
from app.alerts.failures import failure, refused

MAX_BODY_BYTES = 20_000
TITLE_CHARS = 64
_MOBILE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")

# errcode -> (what it means, whether a retry can help). Unknown codes are retried:
# a page held back until max_delivery_age is better than a page dropped at once.
CODES: dict[int, tuple[str, bool]] = {
    -1: ("system busy", True),
    130101: ("sending too fast (over 20 a minute; throttled for 10 minutes)", True),
    410100: ("sending too fast, rate limited", True),
    300001: ("access_token is empty", False),
    300005: ("access_token does not exist", False),
    400101: ("access_token does not exist", False),
    310000: (
        "security check failed: signature, timestamp (check the clock), keyword or IP allow-list",
        False,
    ),
    400013: ("the group was disbanded", False),
    400102: ("the robot is disabled", False),
    400105: ("message type not supported", False),
    400106: ("the robot does not exist", False),
    430101: ("refused: unsafe link in the message", False),
    430102: ("refused: inappropriate text", False),
    430103: ("refused: inappropriate image", False),
    430104: ("refused: inappropriate content", False),
    460101: ("message too long", False),
    40035: ("invalid or missing JSON parameter", False),
}


class DingTalkConfig(UrlChannel):
    type: Literal["dingtalk"]
    secret: SecretStr | None = Field(default=None, description="The robot's signing secret")
    rate_limit_per_min: int | None = Field(default=20, ge=1)


def sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` parameter before URL-encoding."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def mention(person: Person) -> str | None:
    mobile = (person.mobile or "").strip()
    return f"@{mobile}" if _MOBILE.match(mobile) else None


def payload(view: View) -> dict[str, Any]:
    """The markdown message for ``view``, with the mentioned mobiles in ``at``."""
    title = PLAIN.text(f"{view.icon} {view.headline}{view.t.sep}{view.title_plain}", TITLE_CHARS)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": render("dingtalk.md.j2", v=view, t=view.t)},
        "at": {"atMobiles": [token[1:] for token in view.mentions], "isAtAll": False},
    }


def body(message: Message) -> bytes | None:
    """The request body, cut alert by alert to :data:`MAX_BODY_BYTES`; None if even a bare one is over."""
    prepared = Prepared(message, ROBOT_MARKDOWN, mention)
    return fit(
        prepared, lambda shown: encode(payload(prepared.view(shown))), lambda b: len(b) <= MAX_BODY_BYTES
    )


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with ``timestamp`` and ``sign`` added to its query (``access_token`` kept)."""
    signed = httpx.URL(url).copy_merge_params(
        {"timestamp": str(timestamp_ms), "sign": sign(secret, timestamp_ms)}
    )
    return str(signed)


async def send(config: DingTalkConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    data = body(message)
    if data is None:
        return SendResult.failure(
            f"dingtalk: the message exceeds {MAX_BODY_BYTES} bytes even without alerts",
            retryable=False,
            problem=failure("too_large", limit=MAX_BODY_BYTES, unit="bytes"),
        )
    return await _post(config, data, http)


async def _post(config: DingTalkConfig, data: bytes, http: httpx.AsyncClient) -> SendResult:
    url = config.url.get_secret_value()
    secrets = [config.secret.get_secret_value()] if config.secret else []
    if config.secret is not None:
        url = signed_url(url, config.secret.get_secret_value(), int(time.time() * 1000))
    answer = await post_json(http, "dingtalk", url, data, timeout=config.timeout_s, secrets=secrets)
    if isinstance(answer, SendResult):
        return answer
    return classify(answer, secrets)


def classify(answer: Answer, secrets: list[str]) -> SendResult:
    """DingTalk's answer: HTTP 200 with ``errcode`` 0 is the only success."""
    if answer.status != 200:
        return status_failure("dingtalk", answer, secrets)
    if not isinstance(answer.json, dict) or not isinstance(answer.json.get("errcode"), int):
        said = redact(answer.text, secrets)
        return SendResult.failure(
            f"dingtalk: unexpected answer: {said!r}",
            retryable=True,
            status=200,
            problem=failure("unexpected_answer", said),
        )
    code: int = answer.json["errcode"]
    if code == 0:
        return SendResult.success(status=200)
    meaning, retryable = CODES.get(code, ("unknown error", True))
    errmsg = redact(str(answer.json.get("errmsg", "")), secrets)
    return SendResult.failure(
        f"dingtalk errcode {code} ({meaning}): {errmsg}",
        retryable=retryable,
        status=200,
        problem=refused(errmsg, code, "dingtalk", known=code in CODES),
    )


async def send_notice(config: DingTalkConfig, notice: Notice, http: httpx.AsyncClient) -> SendResult:
    """A hand-over or swap notice as markdown, mentioning the people it is about."""
    text = lay_out(notice, ROBOT_MARKDOWN, mention)
    data = {
        "msgtype": "markdown",
        "markdown": {"title": PLAIN.text(text.title, TITLE_CHARS), "text": markdown(text)},
        "at": {"atMobiles": [m[1:] for m in text.mentions if m.startswith("@")], "isAtAll": False},
    }
    return await _post(config, encode(data), http)

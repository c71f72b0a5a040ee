"""Feishu/Lark custom bot (interactive card, signed with the secret when set).

Wire facts: ``POST .../open-apis/bot/v2/hook/<id>`` with
``{"msg_type": "interactive", "card": {...}}``; with a secret the body also carries
``timestamp`` (seconds, a string) and ``sign`` = base64 HMAC-SHA256 keyed with
``"{timestamp}\\n{secret}"`` over an empty message (refused with code 19021 when
wrong or more than an hour off). Success is ``code`` 0; failures may come with
HTTP 200 or 400, so both the status and ``code`` are read. The request body may
hold at most 20 KB (Feishu's custom bot guide; the 30 KB card limit is for apps).
Limits: 100 messages a minute and 5 a second per bot. A card mention is
``<at id=OPEN_ID_OR_USER_ID></at>``. Every card ends with "来自 Panorama" / "Sent by
Panorama", so a bot secured by a custom keyword can use the keyword ``Panorama``.
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
from app.alerts.channels.dialects import LARK_MD, PLAIN
from app.alerts.channels.notices import lay_out
from app.alerts.channels.render import fit, render
from app.alerts.channels.transport import Answer, encode, post_json, redact, retryable_status
from app.alerts.channels.views import Prepared, View
from app.alerts.failures import failure, refused

MAX_BODY_BYTES = 20_000
HEADER_CHARS = 100
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_COLORS = {"critical": "red", "error": "red", "warning": "orange", "info": "blue"}

# code -> (what it means, whether a retry can help); unknown codes are retried.
CODES: dict[int, tuple[str, bool]] = {
    11232: ("rate limited (100 a minute, 5 a second per bot)", True),
    9499: ("bad request", False),
    19001: ("invalid webhook: the hook id is wrong", False),
    19007: ("the bot is not enabled", False),
    19021: ("signature mismatch or timestamp more than an hour off (check the clock)", False),
    19022: ("IP not in the bot's allow-list", False),
    19024: ("no configured keyword in the message", False),
}


class FeishuConfig(UrlChannel):
    type: Literal["feishu"]
    secret: SecretStr | None = Field(default=None, description="The robot's signing secret")
    rate_limit_per_min: int | None = Field(default=100, ge=1)


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def mention(person: Person) -> str | None:
    user_id = (person.feishu_user_id or "").strip()
    return f"<at id={user_id}></at>" if _USER_ID.match(user_id) else None


def card(view: View) -> dict[str, Any]:
    """The interactive card: a coloured header, the lark_md body, and buttons for one incident."""
    if view.incident is not None and view.incident.kind == "resolve":
        color = "green"
    else:
        color = _COLORS.get(view.severity_key, "blue")
    title = PLAIN.text(f"{view.icon} {view.headline}{view.t.sep}{view.title_plain}", HEADER_CHARS)
    elements: list[dict[str, Any]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": render("feishu.md.j2", v=view, t=view.t)}}
    ]
    incident = view.incident
    if incident is not None:
        buttons = []
        if incident.ack_button_url:
            buttons.append(_button(view.t.ack_link, incident.ack_button_url, "primary"))
        if incident.incident_button_url:
            buttons.append(_button(view.t.incident_link, incident.incident_button_url, "default"))
        if buttons:
            elements.append({"tag": "action", "actions": buttons})
    return {
        "config": {"wide_screen_mode": True},
        "header": {"template": color, "title": {"tag": "plain_text", "content": title}},
        "elements": elements,
    }


def body(message: Message, signature: dict[str, str] | None = None) -> bytes | None:
    """The body (signature fields first), cut to 20,000 bytes; None if even a bare one is over."""
    prepared = Prepared(message, LARK_MD, mention)
    head = signature or {}
    return fit(
        prepared,
        lambda shown: encode({**head, "msg_type": "interactive", "card": card(prepared.view(shown))}),
        lambda data: len(data) <= MAX_BODY_BYTES,
    )


async def send(config: FeishuConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    signature, secrets = _signature(config)
    data = body(message, signature)
    if data is None:
        return SendResult.failure(
            f"feishu: the message exceeds {MAX_BODY_BYTES} bytes even without alerts",
            retryable=False,
            problem=failure("too_large", limit=MAX_BODY_BYTES, unit="bytes"),
        )
    return await _post(config, data, http, secrets)


def _signature(config: FeishuConfig) -> tuple[dict[str, str] | None, list[str]]:
    if config.secret is None:
        return None, []
    secret = config.secret.get_secret_value()
    now = int(time.time())
    return {"timestamp": str(now), "sign": sign(secret, now)}, [secret]


async def _post(config: FeishuConfig, data: bytes, http: httpx.AsyncClient, secrets: list[str]) -> SendResult:
    answer = await post_json(http, "feishu", config.url.get_secret_value(), data, timeout=config.timeout_s)
    if isinstance(answer, SendResult):
        return answer
    return classify(answer, secrets)


def classify(answer: Answer, secrets: list[str]) -> SendResult:
    """Feishu's answer: HTTP 200 with ``code`` 0 (or the legacy ``StatusCode`` 0) is the only success."""
    parsed = answer.json if isinstance(answer.json, dict) else {}
    code = parsed.get("code", parsed.get("StatusCode"))
    message = redact(str(parsed.get("msg", parsed.get("StatusMessage", answer.text))), secrets)
    if not isinstance(code, int):
        retryable = answer.status == 200 or retryable_status(answer.status)
        said = redact(answer.text, secrets)
        return SendResult.failure(
            f"feishu answered HTTP {answer.status}: {said!r}",
            retryable=retryable,
            status=answer.status,
            problem=failure("unexpected_answer", said, status=answer.status),
        )
    if code == 0 and answer.status == 200:
        return SendResult.success(status=200)
    if code == 0:
        return SendResult.failure(
            f"feishu answered HTTP {answer.status}: {message}",
            retryable=retryable_status(answer.status),
            status=answer.status,
            problem=failure("http_status", message, status=answer.status),
        )
    meaning, retryable = CODES.get(code, ("unknown error", True))
    if code == 9499 and "too many" in message.lower():
        meaning, retryable = "too many requests", True
    retryable = retryable or retryable_status(answer.status)
    return SendResult.failure(
        f"feishu code {code} ({meaning}): {message}",
        retryable=retryable,
        status=answer.status,
        problem=refused(message, code, "feishu", known=code in CODES and meaning == CODES[code][0]),
    )


def _button(text: str, url: str, kind: str) -> dict[str, Any]:
    return {"tag": "button", "text": {"tag": "plain_text", "content": text}, "type": kind, "url": url}


async def send_notice(config: FeishuConfig, notice: Notice, http: httpx.AsyncClient) -> SendResult:
    """A hand-over or swap notice as a small card, mentioning the people it is about."""
    text = lay_out(notice, LARK_MD, mention)
    lines = [*text.lines, *(f"[{label}]({url})" for label, url in text.links), " ".join(text.mentions)]
    signature, secrets = _signature(config)
    card = {
        "config": {"wide_screen_mode": True},
        "header": {"template": "blue", "title": {"tag": "plain_text", "content": text.title}},
        "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(lines)}}],
    }
    data = encode({**(signature or {}), "msg_type": "interactive", "card": card})
    return await _post(config, data, http, secrets)

"""WeCom (企业微信) group robot (markdown up to 4096 bytes, <@userid> mentions).

Wire facts: ``POST .../cgi-bin/webhook/send?key=K`` with
``{"msgtype": "markdown", "markdown": {"content": ...}}``; the content may hold at
most 4096 bytes of UTF-8 (longer is refused with errcode 40058); a mention is
``<@userid>`` inside the content. Failures come back as HTTP 200 with ``errcode``
≠ 0 (45009: over the 20 messages a minute). The key is the credential.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import Field

from app.alerts.channels.base import Message, Notice, Person, SendResult
from app.alerts.channels.common import UrlChannel
from app.alerts.channels.dialects import ROBOT_MARKDOWN
from app.alerts.channels.notices import fit as fit_notice
from app.alerts.channels.notices import lay_out, markdown
from app.alerts.channels.render import fit, render
from app.alerts.channels.transport import Answer, encode, post_json, redact, status_failure
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure, refused

MAX_CONTENT_BYTES = 4096
_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

# errcode -> (what it means, whether a retry can help); unknown codes are retried.
CODES: dict[int, tuple[str, bool]] = {
    -1: ("system busy", True),
    45009: ("API frequency over the limit (20 a minute per robot)", True),
    45033: ("too many concurrent calls", True),
    93000: ("invalid webhook URL: the key is wrong or the robot was removed", False),
    93004: ("the robot was disabled", False),
    93008: ("the robot is not in the group", False),
    40008: ("invalid message type", False),
    40058: ("invalid parameter (e.g. content over 4096 bytes)", False),
    44004: ("empty content", False),
}


class WeComConfig(UrlChannel):
    type: Literal["wecom"]
    rate_limit_per_min: int | None = Field(default=20, ge=1)


def mention(person: Person) -> str | None:
    userid = (person.wecom_userid or "").strip()
    return f"<@{userid}>" if _USERID.match(userid) else None


def content(message: Message) -> str | None:
    """The markdown content, cut alert by alert to at most 4096 bytes; None if even a bare one is over."""
    prepared = Prepared(message, ROBOT_MARKDOWN, mention)
    return fit(
        prepared,
        lambda shown: render("wecom.md.j2", v=prepared.view(shown), t=prepared.t),
        lambda text: len(text.encode()) <= MAX_CONTENT_BYTES,
    )


def payload(text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": text}}


async def send(config: WeComConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    text = content(message)
    if text is None:
        return SendResult.failure(
            f"wecom: the message exceeds {MAX_CONTENT_BYTES} bytes even without alerts",
            retryable=False,
            problem=failure("too_large", limit=MAX_CONTENT_BYTES, unit="bytes"),
        )
    answer = await post_json(
        http, "wecom", config.url.get_secret_value(), encode(payload(text)), timeout=config.timeout_s
    )
    if isinstance(answer, SendResult):
        return answer
    return classify(answer)


def classify(answer: Answer) -> SendResult:
    """WeCom's answer: HTTP 200 with ``errcode`` 0 is the only success."""
    if answer.status != 200:
        return status_failure("wecom", answer)
    if not isinstance(answer.json, dict) or not isinstance(answer.json.get("errcode"), int):
        said = redact(answer.text, ())
        return SendResult.failure(
            f"wecom: unexpected answer: {said!r}",
            retryable=True,
            status=200,
            problem=failure("unexpected_answer", said),
        )
    code: int = answer.json["errcode"]
    if code == 0:
        return SendResult.success(status=200)
    meaning, retryable = CODES.get(code, ("unknown error", True))
    errmsg = redact(str(answer.json.get("errmsg", "")), ())
    return SendResult.failure(
        f"wecom errcode {code} ({meaning}): {errmsg}",
        retryable=retryable,
        status=200,
        problem=refused(errmsg, code, "wecom", known=code in CODES),
    )


async def send_notice(config: WeComConfig, notice: Notice, http: httpx.AsyncClient) -> SendResult:
    """A hand-over or swap notice as markdown, mentioning the people it is about."""
    laid = lay_out(notice, ROBOT_MARKDOWN, mention)
    cut = fit_notice(
        laid,
        lambda t: markdown(t, heading="###", br=""),
        lambda text: len(text.encode()) <= MAX_CONTENT_BYTES,
    )
    if cut is None:
        return SendResult.failure(
            f"wecom: the notice exceeds {MAX_CONTENT_BYTES} bytes even without its lines",
            retryable=False,
            problem=failure("too_large", limit=MAX_CONTENT_BYTES, unit="bytes"),
        )
    answer = await post_json(
        http, "wecom", config.url.get_secret_value(), encode(payload(cut)), timeout=config.timeout_s
    )
    if isinstance(answer, SendResult):
        return answer
    return classify(answer)

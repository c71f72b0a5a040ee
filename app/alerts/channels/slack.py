"""Slack incoming webhook (blocks with a text fallback).

Wire facts: ``POST https://hooks.slack.com/services/T…/B…/…`` with ``text`` (the
notification and fallback text) and ``blocks``; only HTTP 200 (body ``ok``) is
success, errors are 4xx with a word such as ``invalid_payload``, 429 when over
about one message a second. Limits: 50 blocks, 3,000 characters per section
text, 150 per header. A mention is ``<@U…>``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import Field

from app.alerts.channels.base import Message, Notice, Person, SendResult
from app.alerts.channels.common import UrlChannel
from app.alerts.channels.dialects import PLAIN, SLACK_MRKDWN
from app.alerts.channels.notices import NoticeText, lay_out
from app.alerts.channels.notices import fit as fit_notice
from app.alerts.channels.render import fit, macros
from app.alerts.channels.transport import Answer, encode, post_json, status_failure
from app.alerts.channels.views import Prepared, View
from app.alerts.failures import failure

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_TEXT_CHARS = 3000
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


class SlackConfig(UrlChannel):
    type: Literal["slack"]
    rate_limit_per_min: int | None = Field(default=60, ge=1)


def mention(person: Person) -> str | None:
    user_id = (person.slack_user_id or "").strip()
    return f"<@{user_id}>" if _USER_ID.match(user_id) else None


def payload(view: View) -> dict[str, Any]:
    """``text`` and ``blocks``: header, summary, a section per alert (or digest item), buttons."""
    m = macros("slack.j2", t=view.t)
    header = PLAIN.text(f"{view.icon} {view.headline}{view.t.sep}{view.title_plain}", MAX_HEADER_CHARS)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    ]
    summary = _text(m.summary(view))
    if summary:
        blocks.append(_section(summary))
    if view.digest:
        blocks.extend(_section(_text(m.item(item))) for item in view.items)
    else:
        blocks.extend(_section(_text(m.alert(a, number))) for number, a in enumerate(view.alerts, 1))
    if view.more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": view.more}]})
    if view.context is not None:
        blocks.extend(_section(_text(m.context(section))) for section in view.context.sections)
        if view.context.more:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _text(m.more(view.context))}]}
            )
    incident = view.incident
    if incident is not None and (incident.ack_button_url or incident.incident_button_url):
        buttons = []
        if incident.ack_button_url:
            buttons.append(_button(view.t.ack_link, incident.ack_button_url, "ack", primary=True))
        if incident.incident_button_url:
            buttons.append(_button(view.t.incident_link, incident.incident_button_url, "open"))
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": _text(m.fallback(view))[:MAX_TEXT_CHARS], "blocks": blocks}


def within_limits(data: dict[str, Any]) -> bool:
    """Whether Slack would take these blocks: their count and each text's length."""
    blocks = data["blocks"]
    if len(blocks) > MAX_BLOCKS or len(data["text"]) > MAX_TEXT_CHARS:
        return False
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        limit = MAX_HEADER_CHARS if block["type"] == "header" else MAX_SECTION_CHARS
        if len(text) > limit:
            return False
    return True


def build(message: Message) -> dict[str, Any] | None:
    """The message, cut alert by alert to Slack's block limits; None if even a bare one is over."""
    prepared = Prepared(message, SLACK_MRKDWN, mention)
    return fit(prepared, lambda shown: payload(prepared.view(shown)), within_limits)


async def send(config: SlackConfig, message: Message, http: httpx.AsyncClient) -> SendResult:
    data = build(message)
    if data is None:
        return SendResult.failure(
            "slack: the message exceeds Slack's block limits even without alerts",
            retryable=False,
            problem=failure("too_large", unit="blocks"),
        )
    answer = await post_json(
        http, "slack", config.url.get_secret_value(), encode(data), timeout=config.timeout_s
    )
    if isinstance(answer, SendResult):
        return answer
    return classify(answer)


def classify(answer: Answer) -> SendResult:
    """Only HTTP 200 is success; 429 and 5xx are retried, other errors (``invalid_payload``, …) are final."""
    if answer.status == 200:
        return SendResult.success(status=200)
    return status_failure("slack", answer)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str, url: str, action: str, *, primary: bool = False) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": action,
    }
    if primary:
        button["style"] = "primary"
    return button


def _text(rendered: object) -> str:
    return re.sub(r"\n{3,}", "\n\n", str(rendered)).strip()


async def send_notice(config: SlackConfig, notice: Notice, http: httpx.AsyncClient) -> SendResult:
    """A hand-over or swap notice: a header and one section, mentioning the people it is about."""
    text = lay_out(notice, SLACK_MRKDWN, mention)
    body = fit_notice(text, _notice_body, lambda b: len(b) <= MAX_SECTION_CHARS)
    if body is None:
        return SendResult.failure(
            f"slack: the notice exceeds {MAX_SECTION_CHARS} characters even without its lines",
            retryable=False,
            problem=failure("too_large", unit="characters", limit=MAX_SECTION_CHARS),
        )
    data = {
        "text": f"{text.title}\n{body}"[:MAX_TEXT_CHARS],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text.title[:MAX_HEADER_CHARS]}},
            _section(body),
        ],
    }
    answer = await post_json(
        http, "slack", config.url.get_secret_value(), encode(data), timeout=config.timeout_s
    )
    if isinstance(answer, SendResult):
        return answer
    return classify(answer)


def _notice_body(text: NoticeText) -> str:
    lines = [*text.lines, *(f"<{url}|{label}>" for label, url in text.links), " ".join(text.mentions)]
    return "\n".join(lines).strip()

"""ntfy (https://ntfy.sh, self-hosted): push to the paged person's phone without a vendor's cloud.

Wire facts: ``POST <server>/`` with a JSON body ``{topic, message, title, priority, tags, click,
actions}`` publishes to ``topic``; auth is ``Authorization: Bearer <token>`` or basic auth. Priority
5 ("urgent") rings through Do Not Disturb on Android; 4 is high, 3 the default. ``click`` opens a
URL when the notification is tapped; an ``http`` action is a button whose request the phone's app
sends itself (``method``, ``headers``, ``body``; ``clear: true`` dismisses the notification once it
succeeded): "Acknowledge" posts to the signed ack link, so a page is acknowledged from the lock
screen. At most three actions. Success is HTTP 200 with the message as JSON; errors are JSON
``{code, http, error}`` with a 4xx (40x: bad request or auth, 413: too large, 429: rate limited)
or 5xx status. A message over 4,096 bytes would become an attachment: messages are kept shorter.

The topic is the channel's ``topic`` when set (a team topic), else the paged person's
``ntfy_topic``: a delivery addresses one person (the outbox writes one row per person for such
channels), so a retry never pushes twice to someone who already got it.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from app.alerts.channels.base import Digest, Notice, Notification, Outgoing, SendResult
from app.alerts.channels.common import ChannelBase
from app.alerts.channels.dialects import PLAIN
from app.alerts.channels.notices import lay_out, plain
from app.alerts.channels.transport import encode, post_json, redact, status_failure
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure, people

MESSAGE_BYTES = 3500
PRIORITY = {"critical": 5, "error": 4, "warning": 4, "info": 3}
RESOLVED_PRIORITY = 2
TAGS = {
    "trigger": "rotating_light",
    "escalate": "rotating_light",
    "heartbeat": "broken_heart",
    "update": "repeat",
    "resolve": "white_check_mark",
    "digest": "clipboard",
    "notice": "calendar",
}
ACK_LABEL = {"zh-CN": "确认", "en": "Acknowledge"}


class NtfyConfig(ChannelBase):
    type: Literal["ntfy"]
    url: str = Field(description="The ntfy server, e.g. https://ntfy.example.com")
    topic: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="A fixed topic; default: the paged person's ntfy_topic",
    )
    token: SecretStr | None = Field(default=None, description="Access token (Authorization: Bearer)")
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth(self) -> NtfyConfig:
        if self.token is not None and (self.username is not None or self.password is not None):
            raise ValueError("set either token or username/password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def per_person(self) -> bool:
        return self.topic is None

    @property
    def contact(self) -> str | None:
        return "ntfy_topic" if self.topic is None else None


def topic_for(config: NtfyConfig, message: Outgoing) -> str | None:
    if config.topic is not None:
        return config.topic
    return next((p.ntfy_topic for p in message.mentions if p.ntfy_topic), None)


def publication(message: Outgoing, topic: str) -> dict[str, Any]:
    """The JSON body publishing ``message`` to ``topic``."""
    if isinstance(message, Notice):
        text = lay_out(message, PLAIN)
        body: dict[str, Any] = {
            "topic": topic,
            "title": text.title,
            "message": _cut(plain(text)),
            "priority": 3,
            "tags": [TAGS["notice"]],
        }
        if message.links:
            body["click"] = message.links[0][1]
        return body
    if isinstance(message, Digest):
        view = Prepared(message, PLAIN).view()
        lines = [f"{item.icon} {item.title_plain} ({item.status})" for item in view.items]
        return {
            "topic": topic,
            "title": PLAIN.text(view.title, 120),
            "message": _cut("\n".join(lines)),
            "priority": max((_priority(i) for i in message.items), default=3),
            "tags": [TAGS["digest"]],
        }
    return _notification(message, topic)


def _notification(message: Notification, topic: str) -> dict[str, Any]:
    view = Prepared(message, PLAIN).view(3)
    incident = view.incident
    assert incident is not None
    t = view.t
    lines = [
        f"{t.severity_label}{t.sep}{incident.severity} · {t.status_label}{t.sep}{incident.status}",
        f"{t.services}{t.sep}{incident.services or '-'}",
        f"{t.started_at}{t.sep}{incident.started_at}",
        f"{t.alerts_count}{t.sep}{incident.counts}",
    ]
    lines += [f"• {a.name}: {a.summary}" if a.summary else f"• {a.name}" for a in view.alerts]
    if view.more:
        lines.append(view.more)
    body: dict[str, Any] = {
        "topic": topic,
        "title": PLAIN.text(f"{view.headline}{t.sep}{message.title}", 120),
        "message": _cut("\n".join(lines)),
        "priority": _priority(message),
        "tags": [TAGS.get(message.kind, "bell"), *([message.severity] if message.severity else [])],
        "click": message.incident_url,
    }
    if incident.ack_button_url:
        body["actions"] = [
            {
                "action": "http",
                "label": ACK_LABEL.get(message.locale, "Acknowledge"),
                "url": incident.ack_button_url,
                "method": "POST",
                "headers": {"Accept": "application/json"},
                "clear": True,
            }
        ]
    return body


def _priority(message: Notification) -> int:
    if message.kind == "resolve" or message.status != "triggered":
        return RESOLVED_PRIORITY
    return PRIORITY.get((message.severity or "").lower(), 3)


def _cut(text: str) -> str:
    data = text.encode()
    if len(data) <= MESSAGE_BYTES:
        return text
    return data[: MESSAGE_BYTES - 3].decode(errors="ignore") + "…"


async def send(config: NtfyConfig, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
    topic = topic_for(config, message)
    if topic is None:
        names = ", ".join(p.name for p in message.mentions) or "nobody"
        return SendResult.failure(
            f"ntfy: no topic: the channel has none and the paged person ({names}) has no ntfy_topic",
            retryable=False,
            problem=failure(
                "no_contact", people=people([p.name for p in message.mentions]), contact="ntfy_topic"
            ),
        )
    headers: dict[str, str] = {}
    secrets: list[str] = []
    if config.token is not None:
        headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
        secrets.append(config.token.get_secret_value())
    elif config.username is not None and config.password is not None:
        pair = f"{config.username}:{config.password.get_secret_value()}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        secrets += [config.password.get_secret_value(), headers["Authorization"].removeprefix("Basic ")]
    answer = await post_json(
        http,
        "ntfy",
        f"{config.url}/",
        encode(publication(message, topic)),
        timeout=config.timeout_s,
        headers=headers,
        secrets=secrets,
    )
    if isinstance(answer, SendResult):
        return answer
    if answer.status == 200:
        said = answer.json.get("id") if isinstance(answer.json, dict) else None
        return SendResult.success(f"ntfy message {said}" if said else "", status=200)
    if isinstance(answer.json, dict) and answer.json.get("error"):
        said = redact(str(answer.json["error"]), secrets)
        retryable = answer.status == 429 or answer.status >= 500
        return SendResult.failure(
            f"ntfy answered HTTP {answer.status}: {said}",
            retryable=retryable,
            status=answer.status,
            problem=failure("http_status", said, status=answer.status),
        )
    return status_failure("ntfy", answer, secrets)

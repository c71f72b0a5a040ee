"""Apprise (PyPI ``apprise``): one more channel type for the long tail — Telegram, Microsoft Teams,
Mattermost, Discord, Gotify, Pushover, Bark and the rest Apprise speaks, each named by one URL
(``tgram://…``, ``msteams://…``, ``json://host/path``).

The URL carries the target's credentials, so it is a secret. Apprise is synchronous (it uses
``requests``): a send runs in a worker thread, cut at the channel's ``timeout_s``; a thread still
busy then finishes on its own, bounded by Apprise's own network timeouts. Apprise says only
whether it worked, not why, so every failure is retryable (the outbox backs off and, after
``alerts.max_delivery_age``, dead-letters it); a URL Apprise cannot read is final.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import apprise
from pydantic import Field, SecretStr

from app.alerts.channels.base import Digest, Notice, Outgoing, SendResult
from app.alerts.channels.common import ChannelBase
from app.alerts.channels.dialects import PLAIN
from app.alerts.channels.notices import lay_out, plain
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure

BODY_CHARS = 4000
TYPES = {"resolve": apprise.NotifyType.SUCCESS, "update": apprise.NotifyType.INFO}

# Apprise logs each target's errors itself, sometimes with parts of the URL: keep it quiet; the
# outcome is recorded (and redacted) by the outbox.
logging.getLogger("apprise").setLevel(logging.CRITICAL)


class AppriseConfig(ChannelBase):
    type: Literal["apprise"]
    url: SecretStr = Field(description="An Apprise URL, e.g. tgram://<bot token>/<chat id> (a secret)")


def title_and_body(message: Outgoing) -> tuple[str, str]:
    if isinstance(message, Notice):
        text = lay_out(message, PLAIN)
        return text.title, plain(text)
    view = Prepared(message, PLAIN).view()
    t = view.t
    if isinstance(message, Digest):
        lines = [f"{i.icon} {i.title_plain} ({i.status})" for i in view.items]
        return PLAIN.text(view.title, 200), "\n".join(lines)[:BODY_CHARS]
    incident = view.incident
    assert incident is not None
    lines = [
        f"{t.severity_label}{t.sep}{incident.severity} · {t.status_label}{t.sep}{incident.status}",
        f"{t.services}{t.sep}{incident.services or '-'}",
        f"{t.alerts_count}{t.sep}{incident.counts}",
        *(f"• {a.name}: {a.summary}" if a.summary else f"• {a.name}" for a in view.alerts[:10]),
    ]
    if incident.ack_button_url:
        lines.append(f"{t.ack_link}{t.sep}{incident.ack_button_url}")
    if incident.incident_button_url:
        lines.append(f"{t.incident_link}{t.sep}{incident.incident_button_url}")
    title = PLAIN.text(f"{incident.icon} {incident.headline}{t.sep}{incident.title_plain}", 200)
    return title, "\n".join(lines)[:BODY_CHARS]


def _notify(url: str, title: str, body: str, kind: str) -> str | None:
    """Runs in a thread: None when Apprise delivered, else what went wrong."""
    targets = apprise.Apprise()
    if not targets.add(url):
        return "bad-url"
    delivered = targets.notify(
        body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.TEXT
    )
    return None if delivered else "failed"


async def send(config: AppriseConfig, message: Outgoing) -> SendResult:
    title, body = title_and_body(message)
    kind = apprise.NotifyType.FAILURE
    if isinstance(message, Notice):
        kind = apprise.NotifyType.INFO
    elif not isinstance(message, Digest):
        kind = TYPES.get(message.kind, apprise.NotifyType.FAILURE)
    try:
        async with asyncio.timeout(config.timeout_s):
            problem = await asyncio.to_thread(_notify, config.url.get_secret_value(), title, body, kind)
    except TimeoutError:
        return SendResult.failure(
            f"apprise: no answer within {config.timeout_s:g}s",
            retryable=True,
            timeout=True,
            problem=failure("timeout", seconds=config.timeout_s),
        )
    if problem == "bad-url":
        return SendResult.failure(
            "apprise: the URL is not one Apprise can read (check its scheme)",
            retryable=False,
            problem=failure("bad_url"),
        )
    if problem is not None:
        return SendResult.failure(
            "apprise: the target did not take the message", retryable=True, problem=failure("target_refused")
        )
    return SendResult.success()

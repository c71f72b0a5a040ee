"""A generic webhook: JSON with the incident and its alerts.

The body is a documented, versioned shape; a change that breaks consumers gets a
new ``version``. Version "1"::

    {
      "version": "1",
      "kind": "trigger" | "update" | "resolve" | "escalate" | "heartbeat",
      "incident": {
        "id": 7, "title": "...", "status": "triggered" | "acknowledged" | "resolved",
        "severity": "critical" | null, "services": ["pay"],
        "started_at": "2026-01-05T01:00:00Z", "url": "https://...", "ack_url": "https://..." | null,
        "firing": 3, "resolved": 1, "acknowledged_by": "alice" | null
      },
      "alerts": [{
        "name": "HighErrorRate", "status": "firing" | "resolved", "severity": "critical" | null,
        "summary": "..." | null, "description": "..." | null, "labels": {"service": "pay", ...},
        "starts_at": "...Z", "ends_at": "...Z" | null, "generator_url": "..." | null
      }],
      "truncated_alerts": 0,
      "paged": ["alice"],
      "locale": "zh-CN", "timezone": "Asia/Shanghai"
    }

A hand-over or swap notice is ``{"version": "1", "kind": "notice", "notice": {"kind":
"shift_start" | "shift_end" | "swap_offered" | "swap_taken", "title": "...", "lines": ["..."],
"links": [{"label", "url"}]}, "paged": [...], "locale": ..., "timezone": ...}``.

A digest (several notifications merged for a rate-limited channel) is
``{"version": "1", "kind": "digest", "notifications": [<the above without
version, locale and timezone>], "paged": [...], "locale": ..., "timezone": ...}``.
Alerts come firing first, most severe first. Times are UTC, RFC 3339.

Any 2xx answer is success; 408, 429 and 5xx are retried; other answers are final.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from app.alerts.channels.base import AlertView, Digest, Message, Notice, Notification, SendResult
from app.alerts.channels.common import UrlChannel
from app.alerts.channels.transport import encode, post_json, status_failure
from app.alerts.channels.views import ordered

VERSION = "1"


class WebhookConfig(UrlChannel):
    type: Literal["webhook"]
    bearer_token: SecretStr | None = Field(default=None, description="Sent as Authorization: Bearer")
    max_alerts: int = Field(
        default=0,
        ge=0,
        description="Alerts per notification at most (0: all); the rest are counted in truncated_alerts",
    )


def payload(message: Message, max_alerts: int = 0) -> dict[str, Any]:
    """The version-1 body for ``message``."""
    context = {"locale": message.locale, "timezone": message.timezone}
    if isinstance(message, Digest):
        return {
            "version": VERSION,
            "kind": "digest",
            "notifications": [_notification(item, max_alerts) for item in message.items],
            "paged": [person.name for person in message.mentions],
            **context,
        }
    return {"version": VERSION, **_notification(message, max_alerts), **context}


def notice_payload(notice: Notice) -> dict[str, Any]:
    return {
        "version": VERSION,
        "kind": "notice",
        "notice": {
            "kind": notice.kind,
            "title": notice.title,
            "lines": list(notice.lines),
            "links": [{"label": label, "url": url} for label, url in notice.links],
        },
        "paged": [person.name for person in notice.mentions],
        "locale": notice.locale,
        "timezone": notice.timezone,
    }


async def send(config: WebhookConfig, message: Message | Notice, http: httpx.AsyncClient) -> SendResult:
    body = notice_payload(message) if isinstance(message, Notice) else payload(message, config.max_alerts)
    headers = {}
    secrets = []
    if config.bearer_token is not None:
        token = config.bearer_token.get_secret_value()
        headers["Authorization"] = f"Bearer {token}"
        secrets.append(token)
    answer = await post_json(
        http,
        "webhook",
        config.url.get_secret_value(),
        encode(body),
        timeout=config.timeout_s,
        headers=headers,
        secrets=secrets,
    )
    if isinstance(answer, SendResult):
        return answer
    if 200 <= answer.status <= 299:
        return SendResult.success(status=answer.status)
    return status_failure("webhook", answer, secrets)


def _notification(item: Notification, max_alerts: int) -> dict[str, Any]:
    alerts = ordered(item.alerts)
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "kind": item.kind,
        "incident": {
            "id": item.incident_id,
            "title": item.title,
            "status": item.status,
            "severity": item.severity,
            "services": list(item.services),
            "started_at": _time(item.started_at),
            "url": item.incident_url,
            "ack_url": item.ack_url,
            "firing": item.firing,
            "resolved": item.resolved,
            "acknowledged_by": item.acknowledged_by,
        },
        "alerts": [_alert(alert) for alert in shown],
        "truncated_alerts": len(alerts) - len(shown),
        "paged": list(dict.fromkeys(person.name for person in item.mentions)),
    }


def _alert(alert: AlertView) -> dict[str, Any]:
    return {
        "name": alert.name,
        "status": alert.status,
        "severity": alert.severity,
        "summary": alert.summary,
        "description": alert.description,
        "labels": dict(alert.labels),
        "starts_at": _time(alert.starts_at),
        "ends_at": _time(alert.ends_at) if alert.ends_at is not None else None,
        "generator_url": alert.generator_url,
    }


def _time(moment: datetime) -> str:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")

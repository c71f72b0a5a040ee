"""Building the notification for an incident event, and keeping it in the outbox as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import orjson

from app.alerts import ack
from app.alerts.channels.base import (
    AlertView,
    ErrorLine,
    MessageKind,
    Notice,
    Notification,
    PageContext,
    Person,
    ServiceContext,
    TraceLink,
)
from app.alerts.config import User
from app.alerts.models import AlertRow, Incident, parse_json
from app.alerts.routing import matching_routes
from app.config import Settings
from app.web import auth as web_auth

MAX_ALERTS_IN_MESSAGE = 50  # channels cut further to fit their size limits
ENRICHED_KINDS = ("trigger", "escalate")


def incident_url(settings: Settings, incident_id: int, *, view_token: str | None = None) -> str:
    """The incident's page; with a view token, a link that opens it (read-only) without signing in."""
    url = f"{settings.alerts.public_url}/incidents/{incident_id}"
    return f"{url}?{web_auth.VIEW_PARAM}={view_token}" if view_token else url


def person(user: User) -> Person:
    return Person(
        name=user.name,
        mobile=user.mobile,
        email=user.email,
        wecom_userid=user.wecom_userid,
        feishu_user_id=user.feishu_user_id,
        slack_user_id=user.slack_user_id,
        ntfy_topic=user.ntfy_topic,
        phone=user.phone,
        sms=user.sms,
    )


def people(settings: Settings, names: Sequence[str]) -> list[Person]:
    by_name = {u.name: u for u in settings.users}
    return [person(by_name[name]) if name in by_name else Person(name=name) for name in dict.fromkeys(names)]


def alert_view(alert: AlertRow) -> AlertView:
    labels = parse_json(alert.labels)
    annotations = parse_json(alert.annotations)
    return AlertView(
        name=labels.get("alertname", ""),
        status=cast(Literal["firing", "resolved"], alert.status),
        severity=labels.get("severity"),
        summary=annotations.get("summary") or annotations.get("message"),
        description=annotations.get("description"),
        labels=labels,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
    )


def wants_context(settings: Settings, incident: Incident, kind: MessageKind) -> bool:
    """Whether the page carries where to look (added when it is rendered for delivery): a trigger or
    an escalation of an incident naming a service, unless a route it took says ``enrich: false``."""
    if kind not in ENRICHED_KINDS or not parse_json(incident.services):
        return False
    labels = {**parse_json(incident.common_labels), **parse_json(incident.group_labels)}
    return all(route.enrich for _, route in matching_routes(settings.routes, labels))


def build(
    settings: Settings,
    incident: Incident,
    alerts: Sequence[AlertRow],
    kind: MessageKind,
    *,
    mentions: Sequence[Person] = (),
    timezone: str | None = None,
    signing_key: bytes | None = None,
    ack_for: str | None = None,
    now: datetime,
) -> Notification:
    """The notification of ``incident``; ``ack_for`` names the one person it is sent to (a personal
    rule's step), whose ack link then acknowledges in their name."""
    firing = [a for a in alerts if a.status == "firing"]
    resolved = [a for a in alerts if a.status != "firing"]
    shown = (firing + resolved)[:MAX_ALERTS_IN_MESSAGE]
    ack_url = view = None
    if signing_key is not None:
        scope = web_auth.incident_scope(incident.id)
        view = web_auth.view_token(signing_key, scope, now + settings.web.view_link_ttl)
    if signing_key is not None and incident.status == "triggered" and kind != "resolve":
        token = ack.sign(signing_key, incident.id, now + settings.alerts.ack_link_ttl, person=ack_for)
        ack_url = f"{settings.alerts.public_url}/ack/{token}"
    return Notification(
        kind=kind,
        incident_id=incident.id,
        title=incident.title,
        status=cast(Literal["triggered", "acknowledged", "resolved"], incident.status),
        severity=incident.severity,
        services=parse_json(incident.services),
        started_at=incident.created_at,
        incident_url=incident_url(settings, incident.id, view_token=view),
        ack_url=ack_url,
        alerts=[alert_view(a) for a in shown],
        firing=len(firing),
        resolved=len(resolved),
        mentions=list(mentions),
        locale=settings.alerts.locale,
        timezone=timezone or settings.timezone,
        acknowledged_by=incident.acknowledged_by,
        enrich=wants_context(settings, incident, kind),
    )


def to_json(notification: Notification) -> str:
    """The outbox row's text: orjson writes dataclasses and times natively, as :func:`_encode`
    does (fields in order, ISO 8601 times), several times faster than ``json`` (one per page)."""
    return orjson.dumps(notification, default=_encode).decode()


def _encode(value: Any) -> Any:
    """Dataclasses as their field dicts (no deep copy, unlike ``dataclasses.asdict``), times as ISO."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return vars(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot encode {type(value).__name__}")


def notice_to_json(notice: Notice) -> str:
    return json.dumps({"type": "notice", **vars(notice)}, default=_encode, ensure_ascii=False)


def outgoing_from_json(raw: str) -> Notification | Notice:
    """What an outbox row holds: a notice (marked ``"type": "notice"``) or a notification (parsed once,
    by orjson: the worker reads every row it sends)."""
    data = parse_json(raw)
    if data.pop("type", None) == "notice":
        data["mentions"] = [Person(**p) for p in data["mentions"]]
        data["links"] = [tuple(link) for link in data["links"]]
        return Notice(**data)
    return _notification(data)


def from_json(raw: str) -> Notification:
    data = parse_json(raw)
    data.pop("type", None)
    return _notification(data)


def _notification(data: dict[str, Any]) -> Notification:
    data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["mentions"] = [Person(**p) for p in data["mentions"]]
    data["alerts"] = [
        AlertView(
            **{
                **a,
                "starts_at": datetime.fromisoformat(a["starts_at"]),
                "ends_at": datetime.fromisoformat(a["ends_at"]) if a["ends_at"] else None,
            }
        )
        for a in data["alerts"]
    ]
    context = data.get("context")
    if context is not None:
        data["context"] = _context(context)
    return Notification(**data)


def _context(data: dict[str, Any]) -> PageContext:
    """A page's context as a row keeps it; a row written before pages carried several services holds
    one service's fields at the top (``{"service": ..., "errors": ...}``)."""
    if "service" in data:
        data = {"services": [data]}
    return PageContext(
        services=[
            ServiceContext(
                **{
                    **section,
                    "errors": [ErrorLine(**e) for e in section["errors"]],
                    "traces": [TraceLink(**t) for t in section["traces"]],
                }
            )
            for section in data["services"]
        ],
        more=list(data.get("more", [])),
        context_url=data.get("context_url"),
    )

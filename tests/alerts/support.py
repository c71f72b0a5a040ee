"""What the alerting tests share: a configuration like the issue's, Alertmanager-shaped payloads,
and reads of Panorama's own tables (to check what was stored, never to fake it)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.models import Delivery, EscalationState, Incident

WEBHOOK_TOKEN = "alertmanager-webhook-token-1234"
WEBHOOK = "/api/v1/alerts/alertmanager"


def alerting_config(robot_url: str = "http://127.0.0.1:9/robot", **alerts: Any) -> dict[str, Any]:
    """The issue's example, with robots pointed at ``robot_url`` (a sink in end-to-end tests)."""
    return {
        "alerts": {"webhook_token": WEBHOOK_TOKEN, "public_url": "https://panorama.example.com", **alerts},
        "users": [
            {"name": "alice", "mobile": "13800000001", "email": "alice@example.com"},
            {"name": "bob", "mobile": "13800000002", "email": "bob@example.com"},
        ],
        "channels": [
            {
                "name": "ops-robot",
                "type": "dingtalk",
                "url": f"{robot_url}?access_token=t1",
                "secret": "SECxyz",
            },
            {"name": "ops-mail", "type": "webhook", "url": f"{robot_url}/mail"},
            {"name": "audit", "type": "webhook", "url": f"{robot_url}/audit"},
        ],
        "schedules": [
            {
                "name": "sre",
                "timezone": "Asia/Shanghai",
                "rotations": [{"users": ["alice", "bob"], "length": "1w", "start": "2026-01-05T09:00:00"}],
            }
        ],
        "escalations": [
            {
                "name": "default",
                "steps": [
                    {"notify": {"schedule": "sre", "channels": ["ops-robot"]}},
                    {"wait": "5m"},
                    {"notify": {"users": ["bob"], "channels": ["ops-robot", "ops-mail"]}},
                ],
                "repeat": 1,
            },
            {"name": "audit-only", "steps": [{"notify": {"channels": ["audit"]}}]},
        ],
        "routes": [
            {"matchers": ['alertname="Watchdog"'], "heartbeat": {"interval": "5m"}, "escalation": "default"},
            {"matchers": ['severity="info"']},
            {"matchers": ['team="payments"'], "escalation": "audit-only", "continue": True},
            {"matchers": ['severity=~"critical|warning"'], "escalation": "default"},
        ],
    }


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def alert(
    name: str,
    *,
    status: str = "firing",
    severity: str = "critical",
    started: datetime | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": name, "severity": severity, **labels}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{name} on {labels.get('service', 'the platform')}"},
        "startsAt": (started or datetime(2026, 11, 20, 1, 0, tzinfo=UTC)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint(all_labels),
    }


def payload(group: str, alerts: list[dict[str, Any]], **common: str) -> dict[str, Any]:
    """Alertmanager's webhook body for one group (``version: "4"``), with Grafana-like extras."""
    firing = any(a["status"] == "firing" for a in alerts)
    shared = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "panorama\\.webhook",
        "groupLabels": {"alertname": group},
        "commonLabels": {**shared, **common},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
        "orgId": 1,  # Grafana sends extra fields
        "state": "alerting",
    }


def bearer_webhook() -> dict[str, str]:
    return {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


async def incidents(sessions: async_sessionmaker[AsyncSession]) -> list[Incident]:
    async with sessions() as session:
        return list((await session.scalars(select(Incident).order_by(Incident.id))).all())


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with sessions() as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


async def chains(sessions: async_sessionmaker[AsyncSession]) -> list[EscalationState]:
    async with sessions() as session:
        return list((await session.scalars(select(EscalationState).order_by(EscalationState.id))).all())


def mentions(delivery: Delivery) -> list[str]:
    return [p["name"] for p in json.loads(delivery.payload)["mentions"]]


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)

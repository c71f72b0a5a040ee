"""What the digest tests share: a configuration, known days stored as a rollup stores them,
incidents stored as intake stores them, and an independent histogram quantile."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.models import Incident, IncidentAlert, group_digest
from app.config import Settings
from app.rollups import repository as rollup_repository
from app.rollups.compute import FamilyValue
from tests.harness.app import settings_for

Sessions = async_sessionmaker[AsyncSession]
PUBLIC = "https://panorama.example.com"
CHECKOUT = "checkout.shop.svc.cluster.local"
PAYMENTS = "payments.shop.svc.cluster.local"
SEARCH = "search.web.svc.cluster.local"
BOUNDS = (10.0, 100.0, 1000.0, math.inf)


def digest_config(
    robot_url: str = "http://127.0.0.1:9/robot/send?access_token=t", **digest: Any
) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "alerts": {"public_url": PUBLIC},
        "users": [{"name": "alice", "mobile": "13800000001"}, {"name": "bob", "mobile": "13800000002"}],
        "channels": [
            {"name": "ops-robot", "type": "dingtalk", "url": robot_url},
            {"name": "ops-hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
        ],
        "schedules": [
            {
                "name": "sre",
                "timezone": "UTC",
                "rotations": [{"users": ["alice", "bob"], "length": "1d", "start": "2026-01-01T09:00:00"}],
            }
        ],
        "digests": [{"name": "daily", "channels": ["ops-robot"], "locale": "en", "top": 10, **digest}],
    }


def settings(database_url: str, **sections: Any) -> Settings:
    return settings_for(database_url, **sections)


def quantile(q: float, buckets: Mapping[float, float]) -> float:
    """histogram_quantile, written again here from its definition (linear in the bucket, +Inf
    clamps to the highest finite bound)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    return lower


def service_day(
    service: str, requests: float, errors: float, buckets: tuple[float, float, float, float]
) -> list[FamilyValue]:
    return [
        FamilyValue("service", service, "requests", total=requests),
        FamilyValue("service", service, "errors", total=errors),
        FamilyValue("service", service, "latency", buckets=dict(zip(BOUNDS, buckets, strict=True))),
    ]


async def store_day(sessions: Sessions, day: date, values: list[FamilyValue]) -> None:
    """Stores a day as a rollup run stores it (the rollups' own repository)."""
    async with sessions.begin() as session:
        await rollup_repository.replace_day(session, day, values)


async def store_incident(
    sessions: Sessions,
    *,
    title: str,
    severity: str,
    services: list[str],
    created: datetime,
    acknowledged: datetime | None,
    resolved: datetime | None,
    alertnames: list[str],
) -> int:
    """An incident with its alerts, as the webhook intake leaves them (rows of its tables)."""
    async with sessions.begin() as session:
        group_key = f"{{}}:{{alertname={title!r}}}"
        incident = Incident(
            group_key=group_key,
            group_digest=group_digest(group_key),
            receiver="panorama",
            status="resolved" if resolved else ("acknowledged" if acknowledged else "triggered"),
            title=title,
            severity=severity,
            services=json.dumps(services),
            group_labels="{}",
            common_labels="{}",
            common_annotations="{}",
            created_at=created,
            updated_at=resolved or acknowledged or created,
            acknowledged_at=acknowledged,
            acknowledged_by="alice" if acknowledged else None,
            resolved_at=resolved,
        )
        session.add(incident)
        await session.flush()
        for index, name in enumerate(alertnames):
            session.add(
                IncidentAlert(
                    incident_id=incident.id,
                    fingerprint=f"{incident.id:04x}{index:012x}",
                    status="resolved" if resolved else "firing",
                    labels=json.dumps({"alertname": name, "severity": severity}),
                    annotations="{}",
                    starts_at=created,
                    ends_at=resolved,
                    updated_at=created,
                )
            )
        return incident.id

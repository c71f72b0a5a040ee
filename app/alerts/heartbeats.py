"""Dead man's switches: a route marks an always-firing alert (e.g. ``Watchdog``) as a heartbeat;
when it stops arriving for longer than its interval, Panorama pages — the alert pipeline
itself is watched. When it comes back, that incident resolves."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import escalation, incidents, repository
from app.alerts.config import Route
from app.alerts.matchers import matches_all
from app.alerts.schemas import WebhookAlert
from app.config import Settings
from app.db import dumps


@dataclass(frozen=True)
class WatchedRoute:
    key: str
    index: int
    route: Route

    @property
    def description(self) -> str:
        return ", ".join(str(m) for m in self.route.matchers) or "every alert"


def watched(settings: Settings) -> list[WatchedRoute]:
    """The routes that mark heartbeats (computed once per configuration: every webhook asks)."""
    if _WATCHED and _WATCHED[0][0] is settings:
        return _WATCHED[0][1]
    found = _watched_routes(settings)
    _WATCHED[:] = [(settings, found)]
    return found


_WATCHED: list[tuple[Settings, list[WatchedRoute]]] = []  # the last configuration's


def _watched_routes(settings: Settings) -> list[WatchedRoute]:
    found = []
    for index, route in enumerate(settings.routes):
        if route.heartbeat is None:
            continue
        text = ",".join(str(m) for m in route.matchers)
        key = f"route:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
        found.append(WatchedRoute(key, index, route))
    return found


def touches(settings: Settings, alerts: Sequence[WebhookAlert]) -> bool:
    """Whether any of ``alerts`` is a heartbeat (its intake then writes the heartbeat rows)."""
    routes = watched(settings)
    return bool(routes) and any(matches_all(r.route.matchers, a.labels) for a in alerts for r in routes)


async def observe(
    session: AsyncSession,
    settings: Settings,
    alerts: Sequence[WebhookAlert],
    at: datetime,
    key: bytes,
    *,
    touched: bool = True,
    now: datetime | None = None,
) -> list[WebhookAlert]:
    """Records heartbeat alerts seen ``at`` (when their webhook was received; ``now``: when it is
    applied, the instant of any message it causes), resolving a "missing" incident when one comes
    back; returns the others. ``touched=False``: the caller knows none is a heartbeat (:func:`touches`)."""
    routes = watched(settings)
    if not routes or not touched:
        return list(alerts)
    others = []
    seen: dict[str, WatchedRoute] = {}
    for alert in alerts:
        route = next((r for r in routes if matches_all(r.route.matchers, alert.labels)), None)
        if route is None:
            others.append(alert)
        elif alert.status == "firing":
            seen[route.key] = route
    for route_key in sorted(seen):  # heartbeat rows are locked in key order, by every writer
        await _seen(session, settings, seen[route_key], at, key, now=now or at)
    return others


async def _seen(
    session: AsyncSession, settings: Settings, route: WatchedRoute, at: datetime, key: bytes, *, now: datetime
) -> None:
    state = await repository.lock_heartbeat(session, route.key, now=at)
    repository.record_heartbeat_seen(state, at)
    if state.incident_id is not None:
        missing = await repository.lock_incident(session, state.incident_id)
        repository.link_heartbeat_incident(state, None)
        if missing is not None and missing.status != "resolved":
            # Not before it opened: a sighting applied late may have been received before the
            # worker, not knowing it yet, found the heartbeat missing.
            resolved = max(at, missing.created_at)
            await incidents.resolve(session, settings, missing, now, actor="heartbeat", key=key, at=resolved)


async def check(session: AsyncSession, settings: Settings, now: datetime, key: bytes) -> int:
    """Opens an incident (and starts its escalation) for each heartbeat overdue; returns how many."""
    opened = 0
    for route in sorted(watched(settings), key=lambda r: r.key):  # the lock order of every writer
        assert route.route.heartbeat is not None
        # A heartbeat never seen starts its clock now: nothing arrives before Panorama watches.
        state = await repository.lock_heartbeat(session, route.key, now=now)
        last_seen = state.last_seen_at
        if state.incident_id is not None or now - last_seen <= route.route.heartbeat.interval:
            continue
        group_key = f"heartbeat:{route.key}"
        incident = await repository.insert_open_incident(
            session,
            {
                "group_key": group_key,
                "receiver": "panorama",
                "status": "triggered",
                "title": f"Heartbeat missing: {route.description}",
                "severity": "critical",
                "services": dumps([]),
                "group_labels": dumps({}),
                "common_labels": dumps({"alertname": "PanoramaHeartbeatMissing"}),
                "common_annotations": dumps(
                    {"summary": f"no alert matching {route.description} since {last_seen.isoformat()}"}
                ),
                "heartbeat": route.key,
                "created_at": now,
                "updated_at": now,
            },
        )
        if incident is None:  # one is open already (e.g. it lost track of it): adopt it, page nobody
            existing = await repository.lock_open_incident(session, group_key)
            repository.link_heartbeat_incident(state, existing.id if existing is not None else None)
            continue
        repository.link_heartbeat_incident(state, incident.id)
        repository.add_timeline(
            session,
            incident.id,
            now,
            "received",
            {"heartbeat": route.description, "last_seen": last_seen.isoformat()},
        )
        name = route.route.heartbeat.escalation or route.route.escalation
        assert name is not None  # checked when the configuration is loaded
        await escalation.start(session, settings, incident, [name], now, key)
        opened += 1
    return opened

"""Dead man's switches: a route marks an always-firing alert (e.g. ``Watchdog``) as a heartbeat;
when it stops arriving for longer than its interval, Panorama pages — the alert pipeline
itself is watched. When it comes back, that incident resolves.

A sighting is recorded when its webhook's journal row is applied (:mod:`app.alerts.journal`),
stamped with the row's receipt. The check (:func:`check`, the worker's, every replica's) judges
the heartbeats as of what was *received*, not what is applied (since 2026-12-07): as of the
receipt of the oldest journal row still queued, when that is earlier than now
(:func:`app.alerts.horizon.as_of`). Before, the check compared the last *applied* sighting with
the clock: when the applier lagged (a storm, a restart, the database down for a minute) the
Watchdog's webhook sat in the journal, answered 202 and durably received, while the check found
the heartbeat missing, opened an incident and paged someone — then the row was applied and the
incident resolved. Evaluating as of the journal's horizon removes that at the cause: every row
received before that instant is applied, so the last sighting known then is the true one, and
a heartbeat overdue then was really missing (Alertmanager had sent nothing for the interval).

The other way considered — counting a heartbeat as seen as soon as a journal row carrying it is
received — needs the webhook (the hot path the journal exists to keep short) to match every alert
against the heartbeat routes and record it in the row, and a migration; the horizon needs a read
of the queued rows' oldest receipt (the queued rows' partial index) once per check.

Bounded: the horizon never trails now by more than the heartbeat's own interval, so a journal
that does not move (a hung applier, rows a replica holds and never commits) delays the check by
one interval at most, then the heartbeat is found missing as before; its incident then says the
journal holds webhooks received since when (it may be among them), a warning is logged, and
``panorama_alert_journal_oldest_queued_seconds`` shows the journal's age on its own.

Words (since 2026-12-07): the "missing" incident's title and summary are written in the team's
language (``alerts.locale``, zh-CN by default, or en), as every notification's words are chosen
(:mod:`app.alerts.messages`), when the check opens it; they are the incident's own text from then
on, as an alert's summary is, so its page, its resolved message and the digests say it in the
language it opened in. Its first page goes out as the ``heartbeat`` kind (headline "心跳丢失：告警链路
可能中断" / "Heartbeat missing: the alert pipeline may be broken"), its escalations and its resolve
as any incident's. Before, the title and summary were English whatever the locale.

Routed (since 2026-12-07): the "missing" incident gets a ``routed`` timeline entry as the intake
writes one (the heartbeat's route, the chain it starts, and the schedules that chain pages,
:func:`app.alerts.escalation.schedules_paged`), so the on-call history counts it toward the
schedules it pages (``service.oncall_activity`` reads them there). Before, it had none and was
counted toward no schedule. It is written by the check, in the transaction that opens the
incident: nothing on the webhook's path.

Several replicas: the check locks each heartbeat row (``FOR UPDATE``, key order, before any
incident: the order every writer follows) and opens the incident with ``INSERT … ON CONFLICT DO
NOTHING`` on the one-open-incident-per-group index, so two replicas finding one heartbeat overdue
page once. The horizon is a plain read of committed rows: a row another replica is applying is
still queued until it commits, so the check errs on the side of waiting; once it committed, the
heartbeat row's lock makes the check see its sighting.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import escalation, horizon, incidents, repository
from app.alerts.channels.views import format_time
from app.alerts.config import Route
from app.alerts.matchers import matches_all
from app.alerts.schemas import WebhookAlert
from app.config import Settings
from app.db import dumps

log = logging.getLogger("panorama.alerts")

WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "心跳丢失：{what}",
        "every_alert": "所有告警",
        "summary": "自 {since} 起没有收到匹配 {what} 的告警",
        "stuck": "；告警日志中仍有自 {since} 起收到、尚未处理的 webhook（卡住了？），心跳可能就在其中",
    },
    "en": {
        "title": "Heartbeat missing: {what}",
        "every_alert": "every alert",
        "summary": "no alert matching {what} since {since}",
        "stuck": "; the alert journal holds webhooks received since {since} not yet applied (stuck?): "
        "it may be among them",
    },
}


@dataclass(frozen=True)
class WatchedRoute:
    key: str
    index: int
    route: Route

    @property
    def description(self) -> str:
        """The route's matchers as the log and the timeline say them (not translated)."""
        return ", ".join(str(m) for m in self.route.matchers) or "every alert"

    def described(self, locale: str) -> str:
        """The route's matchers, or "every alert" in ``locale``, for the incident's words."""
        return ", ".join(str(m) for m in self.route.matchers) or WORDS[locale]["every_alert"]


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
            # Not before it opened (nor before an ack of it: incidents.resolve sees to both): a
            # sighting applied late may have been received before the worker found it missing.
            await incidents.resolve(session, settings, missing, now, actor="heartbeat", key=key, at=at)


async def check(session: AsyncSession, settings: Settings, now: datetime, key: bytes) -> int:
    """Opens an incident (and starts its escalation) for each heartbeat overdue as of the journal's
    horizon (see the module's docstring); returns how many."""
    routes = sorted(watched(settings), key=lambda r: r.key)  # the lock order of every writer
    if not routes:
        return 0
    waiting_since = await horizon.oldest_queued(session)
    opened = 0
    for route in routes:
        assert route.route.heartbeat is not None
        interval = route.route.heartbeat.interval
        # A heartbeat never seen starts its clock now: nothing arrives before Panorama watches.
        state = await repository.lock_heartbeat(session, route.key, now=now)
        last_seen = state.last_seen_at
        as_of = horizon.as_of(now, waiting_since, longest=interval)
        if state.incident_id is not None or as_of - last_seen <= interval:
            continue
        words = WORDS[settings.alerts.locale]
        what = route.described(settings.alerts.locale)
        # people read it (its page, its messages): a local time as the messages write times
        since = format_time(last_seen, settings.tzinfo)
        summary = words["summary"].format(what=what, since=since)
        stuck = horizon.stuck(now, waiting_since, longest=interval)
        if stuck:
            assert waiting_since is not None
            summary += words["stuck"].format(since=format_time(waiting_since, settings.tzinfo))
            log.warning(
                "heartbeat %s looks missing while the alert journal has not moved since %s: paging anyway",
                route.description,
                waiting_since.isoformat(),
            )
        group_key = f"heartbeat:{route.key}"
        incident = await repository.insert_open_incident(
            session,
            {
                "group_key": group_key,
                "receiver": "panorama",
                "status": "triggered",
                "title": words["title"].format(what=what),
                "severity": "critical",
                "services": dumps([]),
                "group_labels": dumps({}),
                "common_labels": dumps({"alertname": "PanoramaHeartbeatMissing"}),
                "common_annotations": dumps({"summary": summary}),
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
        detail = {
            "heartbeat": what,
            "last_seen": last_seen.isoformat(),
            "as_of": as_of.isoformat(),
        }
        if stuck:
            assert waiting_since is not None
            detail["journal_waiting_since"] = waiting_since.isoformat()
        repository.add_timeline(session, incident.id, now, "received", detail)
        name = route.route.heartbeat.escalation or route.route.escalation
        assert name is not None  # checked when the configuration is loaded
        # routed as the intake routes an incident: the on-call history reads the schedules paged here
        repository.add_timeline(
            session,
            incident.id,
            now,
            "routed",
            {
                "route": route.index,
                "matchers": [str(m) for m in route.route.matchers],
                "escalation": name,
                "schedules": escalation.schedules_paged(settings, [name]),
            },
        )
        await escalation.start(session, settings, incident, [name], now, key)
        opened += 1
    return opened

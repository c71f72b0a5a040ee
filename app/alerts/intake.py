"""From an Alertmanager webhook to incidents: stored first, then routed, paged through the outbox.

Since 2026-12-06 this runs behind the answer, not before it: the webhook journals the raw body
and answers 202 once that row is committed (:mod:`app.alerts.journal`, which says why), and the
journal's applier calls :func:`store_in` with a batch of rows, in the transaction that also marks
them applied. So the alerts, the incident change and the notifications it causes are stored
together, once per row, exactly as when the webhook itself called this module; what moved is
only *when*. Until then the webhooks arriving together shared this module's transaction
(:func:`store`, run by :mod:`app.alerts.groupcommit`), each answered after its commit; the
figures below were measured that way.

How a batch is stored, and why (measured with ``bench/alert_storm.py`` and a statement census
of 200 groups, 32 webhooks in flight, on SQLite): every statement is a round trip to the
driver's thread (aiosqlite) or to the server (asyncpg), and on a loaded 2-core machine each
wake-up of that thread cost ~1.5 ms of the event loop's time, more than the statement itself.
So the batch reads what its webhooks need up front, set-based: their open incidents (locked
in digest order), those incidents' alerts and who was paged (three statements per batch,
:func:`repository.prefetch_open_incidents`), the maintenance windows and on-call overrides
once (:func:`repository.keep_reads`); the rows nobody reads back — timeline, outbox, new
chains — go out as one ``executemany`` per table at commit. Statements per webhook went from
10.4 (fire), 6.2 (repeat) and 8.3 (resolve) with group commit alone to 2.3, 1.3 and 3.3: what is
left per webhook is the incident's ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (the unique
index decides between replicas), the alerts' ``executemany`` and, on resolve, stopping its
chains and people's pages. Webhooks touching heartbeat rows lock those first (the order every
writer follows), so their incidents are not prefetched.

Then the CPU (``bench/intake_cpu.py``: this module and what it calls, from the body's bytes to
the commit, event-loop CPU per webhook, 300 groups, 32 in flight, SQLite): 1.9 ms per firing
webhook, 1.1 per repeat, 2.0 per resolve, against a bare endpoint's 0.4–0.5 ms for everything.
Parsing was not the cost (pydantic-core validates a 4 KB payload in ~45 µs, 2–3 % of it: a
cheaper model would not have paid for its churn). What was, and what the intake does instead:

* an ORM object per alert (instrumented attributes, then change tracking and an ``UPDATE`` per
  changed column set at flush): alerts are plain :class:`~app.alerts.models.AlertRow` values,
  inserted and updated with the batch's staged rows (one ``executemany`` each per batch, not
  a statement per webhook);
* one ``INSERT … RETURNING`` per new incident, its statement rebuilt with the row's values
  inside (a new cache key every time): the incidents a batch opens go in one statement
  (:func:`repository.insert_open_incidents`, digest order, the row as parameters), and a lone
  one through a statement compiled once per dialect;
* three statements per resolved incident to stop its chains and people's pages: one set of
  three per batch (:func:`repository.defer_stops`), after every webhook of it;
* ``json`` for labels, annotations and outbox messages, written then parsed again for routing
  and messages: orjson (the same text for string maps);
* the heartbeat routes rebuilt (and hashed) three times per webhook: once per configuration,
  and a webhook's "is any alert a heartbeat" once.

After: 0.5 ms per firing webhook, 0.5 per repeat, 0.5 per resolve, 0.3–0.4 statements each
(PostgreSQL: 0.8, 0.6, 0.6 ms). At the time journaling the raw body and building incidents off the
request path looked unnecessary. It was not enough: over real HTTP, with the worker sending the
pages from the same event loop, a storm still cost the server ~1.3 ms of CPU per webhook against
a bare FastAPI endpoint's ~0.2 ms, 0.11–0.15× its throughput and a p99 5–10× its own, with no
single item left to cut (below). The journal's webhook (validate, insert the body, answer)
measured 0.64× bare and p99 2.1× in the lead's prototype; this module's work moved behind it.

What a storm costs around this module since (2026-12-06 evening, py-spy ``--gil`` on the server
during ``bench/alert_storm.py``): FastAPI's routing and dependency solving of the webhook were gone
(it is a direct route of ``app.http_stack``), and so were two or three of the three or four
hops to aiosqlite's thread per statement (``app.db.OneHopSqlite``). Of what is left, the hand-over
of each statement to that thread is still the largest single item (~14 % of the GIL time), then
pydantic's validation of the payload (~6 %, now that the rest shrank: msgspec would be the next
step), then SQLAlchemy's compiled-statement bookkeeping for the batch's executemany.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import escalation, heartbeats, incidents, reasons, repository
from app.alerts.matchers import parse_matcher
from app.alerts.models import SERVICE_LABELS, AlertRow, Incident, group_digest, parse_json, text_json
from app.alerts.routing import Window, in_maintenance, log_paged_nobody, matching_routes, muted_by_interval
from app.alerts.schemas import WebhookAlert, WebhookPayload
from app.config import Settings
from app.db import dumps

SEVERITY_ORDER = ("critical", "error", "high", "warning", "medium", "low", "info", "none")


@dataclass(frozen=True)
class Webhook:
    """One webhook waiting to be stored; ``heartbeats``: whether any of its alerts is one;
    ``received_at``: when Alertmanager delivered it (its journal row's time; None: the instant it is
    stored, for a webhook stored as it arrives)."""

    settings: Settings
    payload: WebhookPayload
    key: bytes
    heartbeats: bool
    received_at: datetime | None = None

    @property
    def keys(self) -> frozenset[str]:
        """What two webhooks stored in one transaction must not share: the group, the heartbeat rows."""
        group = f"group:{group_digest(self.payload.groupKey)}"
        return frozenset((group, "heartbeats")) if self.heartbeats else frozenset((group,))


def webhook(
    settings: Settings, payload: WebhookPayload, key: bytes, *, received_at: datetime | None = None
) -> Webhook:
    return Webhook(settings, payload, key, heartbeats.touches(settings, payload.alerts), received_at)


async def store(sessions: async_sessionmaker[AsyncSession], webhooks: Sequence[Webhook]) -> list[int | None]:
    """Stores ``webhooks`` (no two of the same group) in one transaction, one after the other."""
    async with sessions.begin() as session:
        return await store_in(session, webhooks, utcnow())


async def store_in(session: AsyncSession, webhooks: Sequence[Webhook], now: datetime) -> list[int | None]:
    """Stores ``webhooks`` (no two sharing a key: :attr:`Webhook.keys`) in the caller's transaction,
    one after the other, at the instant ``now``; the incident each changed (None: none).

    Two instants, because a journaled webhook is applied after it was received (right behind the
    202 on a quiet system; seconds or minutes later after a storm, an outage or a restart):

    * what Alertmanager told, and when, is stamped with the webhook's ``received_at``: the
      incident's opening (``created_at``), its alerts' and the incident's update times, the
      timeline's ``received``, ``routed``, ``muted``, ``updated`` and ``resolved`` entries, a
      heartbeat's last sighting; routing decides as of then too (maintenance windows, a route's
      time intervals), as it did when the webhook itself stored the incident;
    * the escalation's clock starts then: its first wait is due ``received_at + wait``, and a wait
      already over when the row is applied is passed at once (:func:`app.alerts.escalation.start`);
    * what is done now is stamped ``now``: the pages written to the outbox (due at once), their ack
      and view links' expiry, who is on call and whether a step's time intervals apply when the page
      goes out (as for every step the worker runs), the timeline's ``escalated`` entries (when the
      page was queued: the gap after ``received`` shows the apply's lag).

    One exception keeps a group's history in order: a firing webhook that finds no open incident
    opens one no earlier than the group's last incident was resolved. While its row waited in the
    journal, somebody may have resolved the incident by hand (the API, the page), or its resolve
    been stamped after an ack made meanwhile (:mod:`app.alerts.incidents`); stamped with its receipt,
    the new incident would have opened before the old one closed. It opens, is routed and starts
    its chain's clock at that resolve instead, its ``received`` entry keeping the receipt
    (``received_at``), and it pages: Alertmanager still says the group fires, and the person who
    resolved it never saw this webhook — as a trigger event after a resolve opens a new incident in
    PagerDuty or Opsgenie. (The other way — counting it as older than the resolve and opening
    nothing — would leave a firing group unpaged until Alertmanager's next notification, up to its
    ``repeat_interval``, hours later.) Later rows of the group update that incident no earlier than
    it opened."""
    repository.keep_reads(session)
    # Heartbeat rows are locked before incidents by every writer: those webhooks lock their own.
    await repository.prefetch_open_incidents(
        session,
        [w.payload.groupKey for w in webhooks if not w.heartbeats],
    )
    # The groups without an open incident that fire: their incidents opened in one statement, each
    # no earlier than its group's last resolve (read once for the batch, after the locks above).
    opening = [
        w
        for w in webhooks
        if not w.heartbeats
        and repository.found_no_open_incident(session, w.payload.groupKey)
        and any(a.status == "firing" for a in w.payload.alerts)
    ]
    await repository.prefetch_resolves_after(
        session, {w.payload.groupKey: w.received_at or now for w in opening}
    )
    await repository.insert_open_incidents(
        session,
        [
            _incident_row(
                w.payload,
                w.payload.alerts,
                await _opening_at(session, w.payload.groupKey, w.received_at or now),
            )
            for w in opening
        ],
    )
    # What the intake adds (timeline, outbox, escalation rows) is only read after the commit:
    # written in one flush then, for every webhook of the batch, instead of before each query.
    repository.defer_stops(session)  # resolved incidents' chains and pages: stopped together
    with session.no_autoflush:
        changed = [await receive(session, w, now) for w in webhooks]
    await repository.stop_deferred(session)
    return changed


def utcnow() -> datetime:
    return datetime.now(UTC)


async def receive(session: AsyncSession, webhook: Webhook, now: datetime) -> int | None:
    """Stores one webhook at ``now``; what it told is stamped with when it was received (see
    :func:`store_in`)."""
    settings, payload, key = webhook.settings, webhook.payload, webhook.key
    at = webhook.received_at or now
    alerts = await heartbeats.observe(
        session, settings, payload.alerts, at, key, touched=webhook.heartbeats, now=now
    )
    if not alerts:
        return None
    # Locks are taken in one order by every writer: heartbeats, the incident, its chains.
    incident = await repository.lock_open_incident(session, payload.groupKey)
    if incident is None:
        if not any(a.status == "firing" for a in alerts):
            return None
        opened_at = await _opening_at(session, payload.groupKey, at)
        opened = await _open(session, payload, alerts, opened_at, received_at=at)
        if opened is not None:
            stored = _store_alerts(session, opened, alerts, opened_at, existing=[])
            await _route(session, settings, opened, payload, stored.rows, opened_at, key, now=now)
            return opened.id
        # Another replica opened it a moment ago (and committed): this delivery updates it.
        incident = await repository.lock_open_incident(session, payload.groupKey)
        assert incident is not None, "the unique index named an open incident"
    at = max(at, incident.created_at)  # one opened after a resolve (above) is not updated before it
    stored = _store_alerts(
        session, incident, alerts, at, existing=await repository.alerts_of(session, incident.id)
    )
    await _update(session, settings, incident, stored, at, key, now=now)
    return incident.id


async def _opening_at(session: AsyncSession, group_key: str, at: datetime) -> datetime:
    """When a group's new incident opens: at its webhook's receipt ``at``, but never before the
    group's last incident was resolved — by hand, or by a resolve stamped after an ack — while this
    webhook waited in the journal (see the module's docstring)."""
    return await repository.resolved_after(session, group_key, at) or at


def _title(payload: WebhookPayload, alerts: Sequence[WebhookAlert]) -> str:
    name = payload.commonLabels.get("alertname") or payload.groupLabels.get("alertname")
    summary = payload.commonAnnotations.get("summary")
    if name is None:
        names = sorted({a.labels.get("alertname", "") for a in alerts} - {""})
        name = ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
    return f"{name}: {summary}" if summary else name or payload.groupKey


def _severity(alerts: Sequence[WebhookAlert]) -> str | None:
    found = {a.labels["severity"] for a in alerts if a.labels.get("severity")}
    for level in SEVERITY_ORDER:
        if level in found:
            return level
    return min(found) if found else None


def _services(alerts: Sequence[WebhookAlert]) -> list[str]:
    found: dict[str, None] = {}
    for alert in alerts:
        for label in SERVICE_LABELS:
            if alert.labels.get(label):
                found[alert.labels[label]] = None
                break
    return list(found)


def _incident_row(payload: WebhookPayload, alerts: Sequence[WebhookAlert], at: datetime) -> dict[str, Any]:
    return {
        "group_key": payload.groupKey,
        "receiver": payload.receiver,
        "status": "triggered",
        "title": _title(payload, alerts),
        "severity": _severity(alerts),
        "services": dumps(_services(alerts)),
        "group_labels": dumps(payload.groupLabels),
        "common_labels": dumps(payload.commonLabels),
        "common_annotations": dumps(payload.commonAnnotations),
        "external_url": payload.externalURL,
        "created_at": at,
        "updated_at": at,
    }


async def _open(
    session: AsyncSession,
    payload: WebhookPayload,
    alerts: Sequence[WebhookAlert],
    at: datetime,
    *,
    received_at: datetime,
) -> Incident | None:
    """Opens the group's incident at ``at`` (its webhook was received ``received_at``, which the
    timeline keeps when it differs); None when another transaction opened it first."""
    incident = await repository.insert_open_incident(session, _incident_row(payload, alerts, at))
    if incident is None:
        return None
    detail: dict[str, Any] = {
        "alerts": len(alerts),
        "receiver": payload.receiver,
        "truncated": payload.truncatedAlerts,
    }
    if at != received_at:
        detail["received_at"] = received_at.isoformat()
    repository.add_timeline(session, incident.id, at, "received", detail)
    return incident


@dataclass
class StoredAlerts:
    rows: list[AlertRow]  # every alert of the incident, as now stored
    joined: list[WebhookAlert]  # firing now, and not firing before


def _store_alerts(
    session: AsyncSession,
    incident: Incident,
    alerts: Sequence[WebhookAlert],
    at: datetime,
    *,
    existing: Sequence[AlertRow],
) -> StoredAlerts:
    """Upserts the payload's alerts by fingerprint (written with the batch's staged rows)."""
    by_fingerprint = {a.fingerprint: a for a in existing}
    new: list[AlertRow] = []
    joined = []
    for alert in alerts:
        stored = by_fingerprint.get(alert.fingerprint)
        if stored is None:
            stored = AlertRow(
                incident_id=incident.id,
                fingerprint=alert.fingerprint,
                status=alert.status,
                labels=text_json(alert.labels),
                annotations=text_json(alert.annotations),
                starts_at=alert.startsAt,
                ends_at=alert.ends,
                generator_url=alert.generatorURL,
                updated_at=at,
            )
            by_fingerprint[alert.fingerprint] = stored
            new.append(stored)
            if alert.status == "firing":
                joined.append(alert)
            continue
        if alert.status == "firing" and stored.status != "firing":
            joined.append(alert)
        repository.record_alert(session, stored, alert.status, alert.annotations, alert.ends, at)
    repository.add_alerts(session, new)
    repository.mark_updated(incident, at)
    return StoredAlerts(rows=list(by_fingerprint.values()), joined=joined)


async def _route(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    payload: WebhookPayload,
    alerts: Sequence[AlertRow],
    at: datetime,
    key: bytes,
    *,
    now: datetime,
) -> None:
    """Routes a new incident as of ``at`` (when its webhook was received) and starts its chains,
    whose clock starts then too; their first pages go out ``now``."""
    labels: Mapping[str, str] = {**payload.commonLabels, **payload.groupLabels}
    routes = matching_routes(settings.routes, labels)
    firing_labels = [parse_json(a.labels) for a in alerts if a.status == "firing"]
    window = in_maintenance(await maintenance_windows(session, settings, at), firing_labels, at)
    escalations: list[str] = []
    muted = None
    for index, route in routes:
        reason = muted_by_interval(route, settings.time_intervals, at)
        if reason is None and route.escalation is not None:
            escalations.append(route.escalation)
        muted = muted or reason
        repository.add_timeline(
            session,
            incident.id,
            at,
            "routed",
            {
                "route": index,
                "matchers": [str(m) for m in route.matchers],
                "escalation": route.escalation,
                "schedules": escalation.schedules_paged(settings, [route.escalation]),
            },
        )
    if window is not None:
        muted = reasons.maintenance(window.end, window.comment)
    if not routes:
        repository.add_timeline(
            session, incident.id, at, "routed", {"route": None, "escalation": None, "schedules": []}
        )
    if muted is not None or not escalations:
        repository.mark_muted(incident, muted or reasons.NO_ROUTE)
        repository.add_timeline(session, incident.id, at, "muted", {"reason": incident.muted})
        log_paged_nobody(incident.id, incident.group_key, labels, routes, muted)
        return
    await escalation.start(session, settings, incident, escalations, now, key, alerts=alerts, since=at)


async def maintenance_windows(session: AsyncSession, settings: Settings, now: datetime) -> list[Window]:
    """The windows active at ``now``, from the configuration and from the API."""
    windows = [Window(w.matchers, w.start, w.end, w.comment) for w in settings.maintenance]
    for stored in await repository.maintenance_windows(session, active_at=now):
        windows.append(
            Window(
                [parse_matcher(m) for m in json.loads(stored.matchers)],
                stored.start,
                stored.end,
                stored.comment,
            )
        )
    return windows


async def _update(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    stored: StoredAlerts,
    at: datetime,
    key: bytes,
    *,
    now: datetime,
) -> None:
    """An open incident's webhook received ``at``: resolved or updated as of then; the messages
    that tells go out ``now``."""
    if all(a.status != "firing" for a in stored.rows):
        await incidents.resolve(
            session, settings, incident, now, actor="alertmanager", key=key, alerts=stored.rows, at=at
        )
        return
    if not stored.joined:
        return
    repository.add_timeline(
        session,
        incident.id,
        at,
        "updated",
        {"joined": [a.labels.get("alertname", a.fingerprint) for a in stored.joined]},
    )
    if incident.muted is None:
        await incidents.tell_paged(session, settings, incident, "update", now, key, alerts=stored.rows)

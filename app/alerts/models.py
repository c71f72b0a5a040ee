"""Tables of the alerting feature: incidents, their alerts and timeline, escalations, the outbox,
schedule overrides, maintenance windows, heartbeats; people's own paging, swaps, announced
hand-overs and calendar feed generations."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app import servicenames
from app.db import Base, UtcDateTime, dumps

Timestamp = UtcDateTime()
OPEN = text("status != 'resolved'")
JOURNAL_QUEUED = "queued"
JOURNAL_OPEN = text("status = 'queued'")


def text_json(value: Mapping[str, str]) -> str:
    """Labels or annotations as their text columns hold them: :func:`app.db.dumps`' format (compact,
    non-ASCII kept), made by orjson — the intake writes two per alert, and parses them back for
    routing and messages (:func:`parse_json`), and the standard library's ``json`` took a quarter
    of a firing webhook's CPU (``bench/intake_cpu.py``). For string maps the two are the same text."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. a lone surrogate, which json writes escaped
        return dumps(value)


def parse_json(raw: str) -> Any:
    """A JSON text column (written by :func:`text_json` or :func:`app.db.dumps`), parsed by orjson."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # e.g. NaN, which json writes and orjson does not read
        return json.loads(raw)


def group_digest(group_key: str) -> str:
    """The SHA-256 (hex) of a groupKey: what identifies and indexes an incident's group."""
    return hashlib.sha256(group_key.encode()).hexdigest()


SERVICE_LABELS = ("service", "destination_service_name", "app", "job")
"""The labels naming an alert's service, the first an alert has (not empty) wins: what an incident's
``services`` holds (each once), what the incident filter and a page's context read."""


def named_service(labels: Mapping[str, str]) -> servicenames.ServiceName | None:
    """The service an alert's labels name (the first of :data:`SERVICE_LABELS` it has), in its
    ``namespace`` label's namespace when it has one."""
    for label in SERVICE_LABELS:
        value = labels.get(label, "").strip()
        if value:
            return servicenames.parse(value, labels.get("namespace") or None)
    return None


def services_named(
    alerts: Sequence[Mapping[str, str]], listed: Sequence[str]
) -> list[servicenames.ServiceName]:
    """The services of an incident whose alerts have these labels (``alerts``: its firing ones, or all
    when none fires) and whose ``services`` are ``listed``: those most alerts name first, then in the
    incident's order, each once in its alerts' namespace (``checkout`` of two namespaces is two)."""
    named = Counter(found for found in map(named_service, alerts) if found is not None)
    found = list(named)
    for name in listed:
        parsed = servicenames.parse(name)
        if parsed.name and not any(parsed.matches(other) for other in found):
            found.append(parsed)
    order = {name: index for index, name in enumerate(found)}
    return sorted(found, key=lambda s: (-named[s], order[s]))


class Incident(Base):
    """One Alertmanager group (``groupKey``) from its first firing to its resolution.

    The group is found and kept unique by ``group_digest``, the SHA-256 of its ``groupKey``
    (:func:`group_digest`), not by the key itself: Alertmanager's groupKeys hold every group label
    and may run to kilobytes, beyond what a PostgreSQL btree index entry can hold (~2.7 KB).
    """

    __tablename__ = "alert_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(Text)
    group_digest: Mapped[str] = mapped_column(String(64))  # sha256(group_key), hex
    receiver: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # triggered | acknowledged | resolved
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str | None] = mapped_column(String(64))
    services: Mapped[str] = mapped_column(Text)  # JSON list
    group_labels: Mapped[str] = mapped_column(Text)  # JSON object
    common_labels: Mapped[str] = mapped_column(Text)  # JSON object
    common_annotations: Mapped[str] = mapped_column(Text)  # JSON object
    external_url: Mapped[str | None] = mapped_column(Text)
    muted: Mapped[str | None] = mapped_column(Text)  # why nobody is paged (maintenance, mute interval)
    heartbeat: Mapped[str | None] = mapped_column(String(255))  # key of the heartbeat this incident is about
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    acknowledged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    snoozed_until: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_alert_incidents_digest_status", "group_digest", "status"),
        Index("ix_alert_incidents_status_created", "status", "created_at"),
        # The day's on-call history reads the incidents opened, acknowledged or resolved that day.
        Index("ix_alert_incidents_created_at", "created_at"),
        Index("ix_alert_incidents_acknowledged_at", "acknowledged_at"),
        Index("ix_alert_incidents_resolved_at", "resolved_at"),
        # One open incident per group, whichever replica receives the webhook (insert-or-get).
        Index(
            "uq_alert_incidents_open_group",
            "group_digest",
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        ),
    )


class IncidentAlert(Base):
    """An alert of an incident, deduplicated by Alertmanager's ``fingerprint``."""

    __tablename__ = "alert_incident_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("alert_incidents.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    labels: Mapped[str] = mapped_column(Text)  # JSON
    annotations: Mapped[str] = mapped_column(Text)  # JSON
    starts_at: Mapped[datetime] = mapped_column(Timestamp)
    ends_at: Mapped[datetime | None] = mapped_column(Timestamp)
    generator_url: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("incident_id", "fingerprint"),)


@dataclass(slots=True)
class AlertRow:
    """An alert of an incident as plain values (a row of ``alert_incident_alerts``): what the
    intake, the messages and the incident page read. The intake handles every alert of every
    webhook, and an ORM object per alert (instrumented attributes, identity map, change tracking
    at flush) cost more than all else it did with them (``bench/intake_cpu.py``)."""

    incident_id: int
    fingerprint: str
    status: str
    labels: str  # JSON
    annotations: str  # JSON
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str | None
    updated_at: datetime
    id: int | None = None  # None while only the intake's transaction knows it (inserted without RETURNING)


class TimelineEntry(Base):
    __tablename__ = "alert_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("alert_incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text)  # JSON object

    # The day's on-call history reads one kind of entry ("escalated") of one day.
    __table_args__ = (Index("ix_alert_timeline_kind_at", "kind", "at"),)


class EscalationState(Base):
    """Where an incident is in one escalation chain; ``due_at`` is when its next step runs."""

    __tablename__ = "alert_escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("alert_incidents.id", ondelete="CASCADE"), index=True)
    escalation: Mapped[str] = mapped_column(String(255))
    step: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)


class Delivery(Base):
    """The outbox: one notification to one channel, written with the change that caused it."""

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_incidents.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # JSON: the notification to render
    status: Mapped[str] = mapped_column(String(16))  # pending | sending | delivered | dead
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    due_at: Mapped[datetime] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    claim_token: Mapped[str | None] = mapped_column(String(32))  # fences the outcome to the claim
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    digest_of: Mapped[int | None] = mapped_column(Integer)  # delivered inside that delivery's digest
    last_error: Mapped[str | None] = mapped_column(Text)
    page_id: Mapped[int | None] = mapped_column(Integer)  # the person's rule this delivery is a step of
    page_step: Mapped[int | None] = mapped_column(Integer)  # which step of it

    __table_args__ = (
        Index("ix_alert_outbox_status_due", "status", "due_at"),
        Index("ix_alert_outbox_channel_delivered", "channel", "delivered_at"),
        Index("ix_alert_outbox_created_at", "created_at"),  # the day's pages (on-call history)
        Index("ix_alert_outbox_delivered_at", "delivered_at"),
    )


class ChannelAttempt(Base):
    """The shared rate-limit ledger: one row per message sent (or about to be) to a channel.

    Every replica counts the same rows, so N replicas stay within a robot's limit together;
    an attempt counts whatever its outcome (the robot counts failed ones too).
    """

    __tablename__ = "alert_channel_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_alert_channel_attempts_channel_at", "channel", "at"),)


class ScheduleOverride(Base):
    __tablename__ = "alert_schedule_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(255), index=True)
    user: Mapped[str] = mapped_column(String(255))
    start: Mapped[datetime] = mapped_column(Timestamp)
    end: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[str] = mapped_column(String(255))


class Maintenance(Base):
    __tablename__ = "alert_maintenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[str] = mapped_column(Text)  # JSON list of matcher strings
    start: Mapped[datetime] = mapped_column(Timestamp)
    end: Mapped[datetime] = mapped_column(Timestamp, index=True)
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[str] = mapped_column(String(255))


class JournalEntry(Base):
    """One Alertmanager webhook as received (the raw body), stored before it is answered and
    applied to incidents right behind (:mod:`app.alerts.journal`).

    ``status``: ``queued`` until applied; ``applied`` (with ``incident_id``, None when the body
    changed no incident, e.g. only heartbeats) in the transaction that stored its incident change;
    ``failed`` (with ``error``) after :data:`app.alerts.journal.MAX_ATTEMPTS` failed applies
    (:data:`~app.alerts.journal.MAX_TRANSIENT_ATTEMPTS` when the error was one the database also
    gives when it cannot be used). ``received_at`` is when the webhook arrived: its incident's
    times are stamped with it, however late the row is applied.
    """

    __tablename__ = "alert_journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    group_digest: Mapped[str] = mapped_column(String(64))  # sha256 of the groupKey (:func:`group_digest`)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    alerts: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=JOURNAL_QUEUED)  # queued | applied | failed
    applied_at: Mapped[datetime | None] = mapped_column(Timestamp)
    incident_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: incidents outlive rows
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_alert_journal_queued", "id", sqlite_where=JOURNAL_OPEN, postgresql_where=JOURNAL_OPEN),
        Index("ix_alert_journal_group", "group_digest", "id"),
        Index("ix_alert_journal_applied_at", "applied_at"),
    )


class HeartbeatState(Base):
    """When a watched alert (e.g. Watchdog) was last seen, per heartbeat route."""

    __tablename__ = "alert_heartbeats"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    incident_id: Mapped[int | None] = mapped_column(Integer)  # the open "heartbeat missing" incident


class StoredSecret(Base):
    """Secrets Panorama makes itself and every replica must share (e.g. the ack-link signing key)."""

    __tablename__ = "stored_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class PersonalPage(Base):
    """One person reached about one incident through their own rule: the steps still to come.

    ``steps`` is the rule as it stood when the person was paged (JSON ``[[channel, after_s], …]``);
    ``step`` is the next one, due at ``due_at`` (None: done, or stopped by an ack). At most one per
    incident and person (a later escalation step naming them again restarts a finished one).
    """

    __tablename__ = "alert_personal_pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("alert_incidents.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(255))
    escalation: Mapped[str] = mapped_column(String(255))
    steps: Mapped[str] = mapped_column(Text)
    step: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    due_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)

    __table_args__ = (UniqueConstraint("incident_id", "user"),)


class Swap(Base):
    """A shift (or part of one) offered by its holder; taken, it becomes an override."""

    __tablename__ = "alert_swaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(255), index=True)
    offered_by: Mapped[str] = mapped_column(String(255))
    start: Mapped[datetime] = mapped_column(Timestamp)
    end: Mapped[datetime] = mapped_column(Timestamp)
    note: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # open | taken | cancelled
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[str] = mapped_column(String(255))
    taken_by: Mapped[str | None] = mapped_column(String(255))
    taken_at: Mapped[datetime | None] = mapped_column(Timestamp)
    override_id: Mapped[int | None] = mapped_column(Integer)


class Handover(Base):
    """A hand-over of a schedule that was announced: the unique key makes it announced once,
    whichever replica sees it first."""

    __tablename__ = "alert_handovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(Timestamp)
    incoming: Mapped[str | None] = mapped_column(String(255))
    outgoing: Mapped[str | None] = mapped_column(String(255))
    announced_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("schedule", "at"),)


class CalendarFeed(Base):
    """The generation of a calendar feed's tokens: revoking a feed moves it on, and every token of
    an older generation stops working (tokens are signed, not stored)."""

    __tablename__ = "alert_calendar_feeds"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[datetime] = mapped_column(Timestamp)

"""Every SQL statement of the alerting feature.

Rows nobody reads back in the transaction that writes them — timeline entries, outbox rows, new
escalation chains, the intake's new alerts — are staged (:func:`_stage`) and written with one
``executemany`` per table (Core, no ``RETURNING``): before the transaction commits, and before
any ORM query when the session autoflushes (so a query sees them exactly when it would have seen
ORM objects). Why:
the ORM inserts new objects with ``INSERT … RETURNING id`` to learn their keys, and on SQLite
(no ordered multi-row ``RETURNING``) that is one statement per row — three to six round trips
to the database thread per webhook in a storm, the largest cost ``bench/alert_storm.py``
profiled after the HTTP stack.

Changes to rows a transaction has loaded (an incident acknowledged, a delivery's outcome, a chain's
next step) are made here too, by the ``mark_…``/``record_…`` functions: they set the row's
columns, and the session writes them with its next flush, in the same ``UPDATE`` it always did.
Alerts are the exception: they are read as plain rows (:class:`~app.alerts.models.AlertRow`),
and :func:`record_alert` stages their ``UPDATE`` like the inserts above (one ``executemany``
for a batch's alerts), since change tracking per alert was a repeated webhook's largest cost.

Statements on the intake's path keep one shape (values as parameters, ``IN`` lists expanding), so
SQLAlchemy compiles each once and finds it again by a cheap cache key (``bench/intake_cpu.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Executable,
    Table,
    and_,
    bindparam,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, aliased

from app import servicenames
from app.alerts.models import (
    JOURNAL_QUEUED,
    OPEN,
    SERVICE_LABELS,
    AlertRow,
    CalendarFeed,
    ChannelAttempt,
    Delivery,
    EscalationState,
    Handover,
    HeartbeatState,
    Incident,
    IncidentAlert,
    JournalEntry,
    Maintenance,
    PersonalPage,
    ScheduleOverride,
    StoredSecret,
    Swap,
    TimelineEntry,
    group_digest,
    text_json,
)
from app.db import (
    Base,
    ReadWriteSessions,
    dialect_insert,
    dumps,
    is_postgresql,
    rowcount,
    sqlite_datetime,
    sqlite_transaction,
)

PENDING_ROWS = "panorama.alerts.pending_rows"


def _stage(session: AsyncSession, target: type[Base] | Executable, row: dict[str, Any]) -> None:
    """Writes ``row`` with the transaction (see the module's docstring): inserted into ``target``
    when it is a table, else ``target`` is a statement run for it (one ``executemany`` for all)."""
    pending: dict[Any, list[dict[str, Any]]] = session.sync_session.info.setdefault(PENDING_ROWS, {})
    pending.setdefault(target, []).append(row)


def _write_staged(session: Session) -> None:
    pending: dict[Any, list[dict[str, Any]]] | None = session.info.pop(PENDING_ROWS, None)
    if not pending:
        return
    connection = session.connection()
    for target, rows in pending.items():
        connection.execute(insert(target) if isinstance(target, type) else target, rows)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_staged(session)


@event.listens_for(Session, "do_orm_execute")
def _before_query(state: ORMExecuteState) -> None:
    if state.session.autoflush and PENDING_ROWS in state.session.info:
        _write_staged(state.session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back (a commit wrote them already): forget them
        session.info.pop(PENDING_ROWS, None)


async def _for_update(session: AsyncSession) -> dict[str, Any]:
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas claim different rows; nothing on SQLite,
    where one writer at a time is the rule anyway."""
    if await is_postgresql(session):
        return {"skip_locked": True}
    return {}


async def write_pending(session: AsyncSession) -> None:
    """Writes what the transaction changed so far now, not at its next query or its commit (when
    the order of the writes matters: see the callers)."""
    await session.flush()


# --- incidents ----------------------------------------------------------------------------


async def prefetch_open_incidents(session: AsyncSession, group_keys: Sequence[str]) -> None:
    """For a transaction that keeps its reads (:func:`keep_reads`): the open incidents of
    ``group_keys``, locked in the order of their digests, their alerts and who was paged, in three
    statements for the batch instead of three per webhook. :func:`lock_open_incident`,
    :func:`alerts_of` and :func:`paged_deliveries` then answer each from here, once."""
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    if kept is None or not group_keys:
        return
    digests = sorted({group_digest(key) for key in group_keys})
    statement = (
        select(Incident)
        .where(Incident.group_digest.in_(digests), Incident.status != "resolved")
        .order_by(Incident.group_digest)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = {incident.group_digest: incident for incident in (await session.scalars(statement)).all()}
    for digest in digests:
        kept[("open", digest)] = found.get(digest)
    ids = [incident.id for incident in found.values()]
    if not ids:
        return
    alerts: dict[int, list[AlertRow]] = {incident_id: [] for incident_id in ids}
    for alert in await _alert_rows(session, IncidentAlert.incident_id.in_(ids)):
        alerts[alert.incident_id].append(alert)
    paged: dict[int, list[tuple[str, str]]] = {incident_id: [] for incident_id in ids}
    deliveries = (
        select(Delivery.incident_id, Delivery.channel, Delivery.payload)
        .where(Delivery.incident_id.in_(ids), Delivery.kind.in_(PAGING_KINDS))
        .order_by(Delivery.id)
    )
    for row in await session.execute(deliveries):
        paged[row.incident_id].append((row.channel, row.payload))
    for incident_id in ids:
        kept[("alerts", incident_id)] = alerts[incident_id]
        kept[("paged", incident_id)] = paged[incident_id]


def _prefetched(session: AsyncSession, key: tuple[Any, ...]) -> tuple[bool, Any]:
    """(True, what :func:`prefetch_open_incidents` read for ``key``) once; (False, None) else."""
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    if kept is None or key not in kept:
        return False, None
    return True, kept.pop(key)


async def lock_open_incident(session: AsyncSession, group_key: str) -> Incident | None:
    """The group's open incident, locked for this transaction (``FOR UPDATE`` on PostgreSQL;
    on SQLite the transaction holds the database's write lock already)."""
    found, incident = _prefetched(session, ("open", group_digest(group_key)))
    if found:
        return cast(Incident | None, incident)
    statement = (
        select(Incident)
        .where(Incident.group_digest == group_digest(group_key), Incident.status != "resolved")
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


async def insert_open_incident(session: AsyncSession, values: dict[str, Any]) -> Incident | None:
    """Opens the incident unless the group has an open one already (the partial unique index
    ``uq_alert_incidents_open_group`` decides, even between replicas); None when it had one.

    On PostgreSQL an insert racing another transaction's waits for it to end: after its
    commit this one does nothing, after its rollback this one inserts.

    The statement is built once per dialect and the row goes as its parameters: a statement with
    the values inside (``.values(**row)``) has a new cache key for every row, and computing it
    cost more than compiling a small INSERT (``bench/intake_cpu.py``).
    """
    digest = group_digest(values["group_key"])
    found, opened = _prefetched(session, ("opened", digest))
    if found:
        return cast(Incident | None, opened)
    statement = await _open_incident_statement(session)
    return (await session.scalars(statement, {**values, "group_digest": digest})).first()


async def insert_open_incidents(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """For a transaction that keeps its reads: opens the incidents of many groups (rows as for
    :func:`insert_open_incident`) in one statement, in digest order (the order every writer
    locks them in); :func:`insert_open_incident` then answers each from here, once — None for a
    group whose incident another transaction opened first, as it would have."""
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    if kept is None or not rows:
        return
    ordered = sorted(
        ({**row, "group_digest": group_digest(row["group_key"])} for row in rows),
        key=lambda row: str(row["group_digest"]),
    )
    statement = await _open_incident_statement(session)
    opened = {
        incident.group_digest: incident for incident in (await session.scalars(statement, ordered)).all()
    }
    for row in ordered:
        kept[("opened", row["group_digest"])] = opened.get(row["group_digest"])


async def prefetch_resolves_after(session: AsyncSession, since: Mapping[str, datetime]) -> None:
    """For a transaction that keeps its reads: for each groupKey of ``since``, when its incidents
    last resolved, if later than the earliest of ``since`` (one statement for the batch, on the
    ``resolved_at`` index: resolves that recent are few); :func:`resolved_after` answers from here."""
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    if kept is None or not since:
        return
    digests = sorted({group_digest(key) for key in since})
    statement = (
        select(Incident.group_digest, func.max(Incident.resolved_at))
        .where(Incident.resolved_at > min(since.values()), Incident.group_digest.in_(digests))
        .group_by(Incident.group_digest)
    )
    found: dict[str, datetime | None] = {row[0]: row[1] for row in await session.execute(statement)}
    for digest in digests:
        kept[("resolved", digest)] = found.get(digest)


async def resolved_after(session: AsyncSession, group_key: str, since: datetime) -> datetime | None:
    """When the group's incidents last resolved, if later than ``since`` (None: not since then)."""
    digest = group_digest(group_key)
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    if kept is not None and ("resolved", digest) in kept:
        last: datetime | None = kept[("resolved", digest)]
    else:
        statement = select(func.max(Incident.resolved_at)).where(
            Incident.resolved_at > since, Incident.group_digest == digest
        )
        last = await session.scalar(statement)
    return last if last is not None and last > since else None


def found_no_open_incident(session: AsyncSession, group_key: str) -> bool:
    """Whether :func:`prefetch_open_incidents` found that the group has no open incident."""
    kept: dict[tuple[Any, ...], Any] | None = session.sync_session.info.get(READS_KEPT)
    key = ("open", group_digest(group_key))
    return kept is not None and key in kept and kept[key] is None


async def _open_incident_statement(session: AsyncSession) -> Any:
    dialect = (await session.connection()).dialect.name
    statement = _OPEN_INCIDENT.get(dialect)
    if statement is None:
        make = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = _OPEN_INCIDENT[dialect] = (
            make(Incident)
            .on_conflict_do_nothing(index_elements=[Incident.group_digest], index_where=OPEN)
            .returning(Incident)
        )
    return statement


_OPEN_INCIDENT: dict[str, Any] = {}


async def incident(session: AsyncSession, incident_id: int) -> Incident | None:
    return await session.get(Incident, incident_id)


async def lock_incident(
    session: AsyncSession, incident_id: int, *, skip_locked: bool = False
) -> Incident | None:
    """The incident, locked for this transaction, so that acks, resolves, snoozes, webhooks and the
    escalation worker change it one at a time (each sees what the one before committed).
    With ``skip_locked``, None when another transaction holds it (PostgreSQL)."""
    statement = (
        select(Incident)
        .where(Incident.id == incident_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


def mark_acknowledged(incident: Incident, now: datetime, actor: str) -> None:
    incident.status = "acknowledged"
    incident.acknowledged_at = now
    incident.acknowledged_by = actor
    incident.updated_at = now


def mark_resolved(incident: Incident, now: datetime, actor: str) -> None:
    incident.status = "resolved"
    incident.resolved_at = now
    incident.resolved_by = actor
    incident.updated_at = now


def mark_snoozed(incident: Incident, until: datetime, now: datetime) -> None:
    incident.snoozed_until = until
    incident.updated_at = now


def mark_muted(incident: Incident, reason: str) -> None:
    """The incident pages nobody, and why."""
    incident.muted = reason


def mark_updated(incident: Incident, now: datetime) -> None:
    """The incident changed at ``now`` (a journaled webhook's receipt may precede a change already
    recorded, e.g. an ack made while the row waited: the time never goes back)."""
    incident.updated_at = max(incident.updated_at, now) if incident.updated_at is not None else now


async def incidents(
    session: AsyncSession,
    *,
    status: str | None = None,
    service: servicenames.ServiceName | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
    limit: int = 200,
) -> Sequence[Incident]:
    statement = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(Incident.status == status)
    if service is not None:
        statement = statement.where(names_service(service))
    if first is not None:
        statement = statement.where(or_(Incident.resolved_at.is_(None), Incident.resolved_at >= first))
    if last is not None:
        statement = statement.where(Incident.created_at <= last)
    return (await session.scalars(statement)).all()


async def service_spellings(session: AsyncSession) -> set[str]:
    """Every service spelling an incident's ``services`` hold (each distinct list read once)."""
    lists = await session.scalars(select(Incident.services).distinct())
    return {str(name) for text in lists for name in json.loads(text)}


def names_service(wanted: servicenames.ServiceName) -> ColumnElement[bool]:
    """The incident is of the service ``wanted`` (app.servicenames): its ``services`` (a JSON list)
    hold a spelling that ``wanted`` means, each stored spelling quoted (an exact one is ``"name"``,
    a longer one starts ``"name.``; LIKE's wildcards are escaped, so ``%`` and ``_`` are letters).

    A service stored by its short name (an alert's ``service=checkout``) is in the namespace of the
    alerts naming it (their ``namespace`` label): ``checkout.other`` finds an incident only if one
    of its alerts names ``checkout`` in ``other``, or names it without a namespace label (then it is
    in any namespace). A bare filter (``checkout``) finds it in every namespace."""
    forms = servicenames.spellings(wanted)
    found = [_holds(Incident.services, dumps(name)) for name in forms.exact if name != wanted.name]
    found += [_holds(Incident.services, dumps(prefix)[:-1]) for prefix in forms.prefixes]
    short = _holds(Incident.services, dumps(wanted.name))
    if wanted.namespace is not None:
        short = and_(short, _alert_in_namespace(wanted.name, wanted.namespace))
    return or_(short, *found)


def _holds(column: Any, text: str) -> ColumnElement[bool]:
    return cast(ColumnElement[bool], column.contains(text, autoescape=True))


def _alert_in_namespace(name: str, namespace: str) -> ColumnElement[bool]:
    """An alert of the incident names ``name`` (the first of SERVICE_LABELS it has, not empty, as
    the incident's ``services`` were read) in ``namespace``, or without a ``namespace`` label. The
    labels are compact JSON (``"service":"checkout"``), a value's quotes escaped, so a key and its
    value side by side are found exactly."""
    alert = aliased(IncidentAlert)  # apart from any join of the incident's alerts around it
    labels = alert.labels
    names_it = []
    for index, label in enumerate(SERVICE_LABELS):
        earlier = [
            or_(~_holds(labels, dumps(other) + ":"), _holds(labels, dumps(other) + ':""'))
            for other in SERVICE_LABELS[:index]
        ]
        names_it.append(and_(_holds(labels, dumps(label) + ":" + dumps(name)), *earlier))
    key = dumps("namespace") + ":"
    in_namespace = or_(
        ~_holds(labels, key),
        _holds(labels, key + '""'),
        _holds(labels, key + dumps(namespace)),
    )
    return exists().where(alert.incident_id == Incident.id, or_(*names_it), in_namespace)


ALERT_COLUMNS = (
    "incident_id",
    "fingerprint",
    "status",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "generator_url",
    "updated_at",
)


def add_alerts(session: AsyncSession, alerts: Sequence[AlertRow]) -> None:
    """New alerts, staged like timeline and outbox rows: one ``executemany`` for every alert the
    batch adds (no ``RETURNING``: nobody reads them back in the transaction that adds them; the
    ORM's bulk insert, and then one statement per webhook, each cost more than all the rows)."""
    for alert in alerts:
        _stage(session, IncidentAlert, {column: getattr(alert, column) for column in ALERT_COLUMNS})


_ALERTS_TABLE = cast(Table, IncidentAlert.__table__)


def record_alert(
    session: AsyncSession,
    stored: AlertRow,
    status: str,
    annotations: dict[str, str],
    ends_at: datetime | None,
    now: datetime,
) -> None:
    """A stored alert as Alertmanager sends it again (its labels, hence its fingerprint, are the same).

    ``stored`` shows the new values at once; a row already in the database gets them with the
    transaction's staged rows, one ``executemany`` for every alert of the batch (an ORM object per
    alert, its change tracking and flush, was the largest cost of a repeated webhook)."""
    stored.status = status
    stored.annotations = text_json(annotations)
    stored.ends_at = ends_at
    stored.updated_at = now
    if stored.id is not None:  # else not inserted yet: it goes with the new values
        _stage(
            session,
            _UPDATE_ALERT,
            {
                "alert_id": stored.id,
                "status": status,
                "annotations": stored.annotations,
                "ends_at": ends_at,
                "updated_at": now,
            },
        )


_UPDATE_ALERT = update(_ALERTS_TABLE).where(_ALERTS_TABLE.c.id == bindparam("alert_id"))
_ALERT_ROWS = select(*(getattr(IncidentAlert, column) for column in ALERT_COLUMNS), IncidentAlert.id)


async def _alert_rows(session: AsyncSession, where: ColumnElement[bool]) -> list[AlertRow]:
    """Alerts as plain rows (ORM-enabled, so the session flushes what it holds first, as before)."""
    statement = _ALERT_ROWS.where(where).order_by(IncidentAlert.id)
    return [AlertRow(**row._mapping) for row in await session.execute(statement)]


async def alerts_of(session: AsyncSession, incident_id: int) -> Sequence[AlertRow]:
    found, alerts = _prefetched(session, ("alerts", incident_id))
    if found:
        return cast(Sequence[AlertRow], alerts)
    return await _alert_rows(session, IncidentAlert.incident_id == incident_id)


async def alert_labels(session: AsyncSession, incident_ids: Sequence[int]) -> dict[int, list[str]]:
    """The labels (JSON text) of every alert of each incident, in the order they were stored."""
    if not incident_ids:
        return {}
    statement = (
        select(IncidentAlert.incident_id, IncidentAlert.labels)
        .where(IncidentAlert.incident_id.in_(incident_ids))
        .order_by(IncidentAlert.id)
    )
    found: dict[int, list[str]] = {}
    for incident_id, labels in await session.execute(statement):
        found.setdefault(incident_id, []).append(labels)
    return found


async def firing_counts(session: AsyncSession, incident_ids: Sequence[int]) -> dict[int, int]:
    if not incident_ids:
        return {}
    statement = (
        select(IncidentAlert.incident_id, func.count())
        .where(IncidentAlert.incident_id.in_(incident_ids), IncidentAlert.status == "firing")
        .group_by(IncidentAlert.incident_id)
    )
    return {row[0]: row[1] for row in await session.execute(statement)}


async def timeline(session: AsyncSession, incident_id: int) -> Sequence[TimelineEntry]:
    """The incident's timeline in the order things happened (a journaled webhook applied late adds
    entries stamped with its receipt, after entries of what happened while it waited: the ids are
    the order of writing, not of happening); entries of one instant in the order written."""
    statement = (
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
    )
    return (await session.scalars(statement)).all()


def add_timeline(
    session: AsyncSession,
    incident_id: int,
    at: datetime,
    kind: str,
    detail: dict[str, Any],
    actor: str | None = None,
) -> None:
    _stage(
        session,
        TimelineEntry,
        {"incident_id": incident_id, "at": at, "kind": kind, "actor": actor, "detail": dumps(detail)},
    )


def add_escalation(session: AsyncSession, state: EscalationState) -> None:
    """A new chain of an incident, as ``state`` stands (staged: its id is never needed)."""
    _stage(
        session,
        EscalationState,
        {
            "incident_id": state.incident_id,
            "escalation": state.escalation,
            "step": state.step,
            "round": state.round,
            "due_at": state.due_at,
        },
    )


def add_delivery(session: AsyncSession, row: dict[str, Any]) -> None:
    """An outbox row (staged: written with the transaction that caused it)."""
    _stage(session, Delivery, row)


# --- escalations --------------------------------------------------------------------------


async def escalations_of(session: AsyncSession, incident_id: int) -> Sequence[EscalationState]:
    statement = select(EscalationState).where(EscalationState.incident_id == incident_id)
    return (await session.scalars(statement)).all()


async def due_escalation_incidents(session: AsyncSession, now: datetime, limit: int = 100) -> list[int]:
    """Incidents still triggered and not snoozed with an escalation step due (not locked: the
    worker locks each incident, then its chains, in the order every writer uses)."""
    statement = (
        select(EscalationState.incident_id)
        .join(Incident, Incident.id == EscalationState.incident_id)
        .where(
            EscalationState.due_at.is_not(None),
            EscalationState.due_at <= now,
            Incident.status == "triggered",
            or_(Incident.snoozed_until.is_(None), Incident.snoozed_until <= now),
        )
        .group_by(EscalationState.incident_id)
        .order_by(func.min(EscalationState.due_at))
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def lock_due_escalations(
    session: AsyncSession, incident_id: int, now: datetime
) -> Sequence[EscalationState]:
    """The incident's due chains, locked (after the incident itself)."""
    statement = (
        select(EscalationState)
        .where(
            EscalationState.incident_id == incident_id,
            EscalationState.due_at.is_not(None),
            EscalationState.due_at <= now,
        )
        .order_by(EscalationState.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).all()


def record_escalation_position(
    state: EscalationState, step: int, round_: int, due_at: datetime | None
) -> None:
    """Where a chain stands: its next step, its round, when it resumes (None: it has ended)."""
    state.step = step
    state.round = round_
    state.due_at = due_at


async def _stop_escalations(session: AsyncSession, incident_ids: Sequence[int]) -> None:
    await session.execute(
        update(EscalationState).where(EscalationState.incident_id.in_(incident_ids)).values(due_at=None)
    )


STOPS_DEFERRED = "panorama.alerts.stops_deferred"


def defer_stops(session: AsyncSession) -> None:
    """For a transaction that resolves many incidents (the intake's batch): :func:`stop_paging`
    only notes the incident, and :func:`stop_deferred` stops them all in three statements before
    the commit, instead of three per incident. Nothing in such a transaction reads the chains or
    people's pages it stops (each incident is resolved once in it), so doing it last changes nothing."""
    session.sync_session.info[STOPS_DEFERRED] = []


async def stop_paging(session: AsyncSession, incident_id: int) -> None:
    """The incident's chains and people's pages stop (see :func:`_stop_personal_pages`)."""
    deferred: list[int] | None = session.sync_session.info.get(STOPS_DEFERRED)
    if deferred is not None:
        deferred.append(incident_id)
        return
    await _stop_escalations(session, [incident_id])
    await _stop_personal_pages(session, [incident_id])


async def stop_deferred(session: AsyncSession) -> None:
    """What :func:`stop_paging` deferred, set-based (chains first, then pages: every writer's order)."""
    deferred: list[int] | None = session.sync_session.info.pop(STOPS_DEFERRED, None)
    if deferred:
        ids = sorted(set(deferred))
        await _stop_escalations(session, ids)
        await _stop_personal_pages(session, ids)


async def delay_escalations(session: AsyncSession, incident_id: int, until: datetime) -> None:
    """Nothing of this incident's chains runs before ``until`` (a snooze)."""
    await session.execute(
        update(EscalationState)
        .where(
            EscalationState.incident_id == incident_id,
            EscalationState.due_at.is_not(None),
            EscalationState.due_at < until,
        )
        .values(due_at=until)
    )


# --- people's own pages (their rules, as they run) ------------------------------------------


async def start_personal_page(session: AsyncSession, values: dict[str, Any]) -> PersonalPage | None:
    """Starts the person's page of the incident, or restarts theirs if it has finished; None when
    one is still running (the unique key on incident and person decides, between replicas too)."""
    make = await dialect_insert(session)
    statement = make(PersonalPage).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[PersonalPage.incident_id, PersonalPage.user],
        set_={k: statement.excluded[k] for k in ("escalation", "steps", "step", "started_at", "due_at")},
        where=PersonalPage.due_at.is_(None),
    ).returning(PersonalPage)
    found = (await session.scalars(statement.execution_options(populate_existing=True))).first()
    return found


async def due_personal_incidents(session: AsyncSession, now: datetime, limit: int = 100) -> list[int]:
    statement = (
        select(PersonalPage.incident_id)
        .join(Incident, Incident.id == PersonalPage.incident_id)
        .where(
            PersonalPage.due_at.is_not(None),
            PersonalPage.due_at <= now,
            Incident.status == "triggered",
            or_(Incident.snoozed_until.is_(None), Incident.snoozed_until <= now),
        )
        .group_by(PersonalPage.incident_id)
        .order_by(func.min(PersonalPage.due_at))
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def lock_due_personal_pages(
    session: AsyncSession, incident_id: int, now: datetime
) -> Sequence[PersonalPage]:
    """The incident's people's pages with a step due, locked (after the incident and its chains)."""
    statement = (
        select(PersonalPage)
        .where(
            PersonalPage.incident_id == incident_id,
            PersonalPage.due_at.is_not(None),
            PersonalPage.due_at <= now,
        )
        .order_by(PersonalPage.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).all()


async def personal_pages_of(session: AsyncSession, incident_id: int) -> Sequence[PersonalPage]:
    statement = select(PersonalPage).where(PersonalPage.incident_id == incident_id).order_by(PersonalPage.id)
    return (await session.scalars(statement)).all()


def record_personal_page_position(state: PersonalPage, step: int, due_at: datetime | None) -> None:
    """Where a person's page stands: the next step of their rule, when it is due (None: it has ended)."""
    state.step = step
    state.due_at = due_at


async def _stop_personal_pages(session: AsyncSession, incident_ids: Sequence[int]) -> None:
    """No more steps of anyone's rule for these incidents; their pages not yet claimed by a sender
    are cancelled (a call after the ack would wake someone for nothing). Rows a sender holds right
    now are skipped, not waited for: that sender locks them, then the incident, in the other order."""
    await session.execute(
        update(PersonalPage).where(PersonalPage.incident_id.in_(incident_ids)).values(due_at=None)
    )
    pending = (
        select(Delivery.id)
        .where(
            Delivery.incident_id.in_(incident_ids),
            Delivery.page_id.is_not(None),
            Delivery.status == "pending",
        )
        .with_for_update(**await _for_update(session))
    )
    ids = list((await session.scalars(pending)).all())
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.status == "pending")
            .values(status="cancelled", last_error="acknowledged or resolved before it was sent")
        )


async def delay_personal_pages(session: AsyncSession, incident_id: int, until: datetime) -> None:
    await session.execute(
        update(PersonalPage)
        .where(
            PersonalPage.incident_id == incident_id,
            PersonalPage.due_at.is_not(None),
            PersonalPage.due_at < until,
        )
        .values(due_at=until)
    )


async def hurry_personal_page(session: AsyncSession, page_id: int, next_step: int, now: datetime) -> None:
    """A step of a person's rule failed for good: their next step is due now, unless the rule has
    moved past it already (or ended)."""
    await session.execute(
        update(PersonalPage)
        .where(
            PersonalPage.id == page_id,
            PersonalPage.step == next_step,
            PersonalPage.due_at.is_not(None),
            PersonalPage.due_at > now,
        )
        .values(due_at=now)
    )


# --- the outbox ---------------------------------------------------------------------------


PAGING_KINDS = ("trigger", "escalate", "heartbeat")


async def paged_deliveries(session: AsyncSession, incident_id: int) -> Sequence[tuple[str, str]]:
    """``(channel, payload)`` of an incident's trigger/escalate notifications: who was paged, where."""
    found, paged = _prefetched(session, ("paged", incident_id))
    if found:
        return cast(Sequence[tuple[str, str]], paged)
    statement = (
        select(Delivery.channel, Delivery.payload)
        .where(Delivery.incident_id == incident_id, Delivery.kind.in_(PAGING_KINDS))
        .order_by(Delivery.id)
    )
    return [(row.channel, row.payload) for row in await session.execute(statement)]


async def was_paged(session: AsyncSession, incident_id: int) -> bool:
    statement = select(exists().where(Delivery.incident_id == incident_id, Delivery.kind.in_(PAGING_KINDS)))
    return bool(await session.scalar(statement))


def _due(now: datetime) -> Any:
    """Pending and due, or claimed by a worker whose lease ran out (it died mid-send)."""
    return or_(
        and_(Delivery.status == "pending", Delivery.due_at <= now),
        and_(Delivery.status == "sending", Delivery.claimed_until < now),
    )


async def due_channels(session: AsyncSession, now: datetime) -> list[str]:
    """Channels with deliveries to make now."""
    statement = select(Delivery.channel).where(_due(now)).group_by(Delivery.channel)
    return list((await session.scalars(statement)).all())


async def due_count(session: AsyncSession, channel: str, now: datetime, *, at_most: int) -> int:
    inner = select(Delivery.id).where(Delivery.channel == channel, _due(now)).limit(at_most).subquery()
    return int(await session.scalar(select(func.count()).select_from(inner)) or 0)


async def claim_deliveries(
    session: AsyncSession,
    channel: str,
    now: datetime,
    *,
    worker: str,
    token: str,
    until: datetime,
    limit: int,
    pages: bool = False,
) -> list[tuple[int, str]]:
    """Up to ``limit`` due deliveries of ``channel`` as (id, payload), oldest first, marked ``sending``
    under the claim ``token`` until ``until`` (``FOR UPDATE SKIP LOCKED``: replicas claim
    different rows). With ``pages``, notices are left out (for a digest, which merges pages only).

    Plain rows and one set-based ``UPDATE`` (no ORM objects: a digest claims up to 200 rows)."""
    statement = (
        select(Delivery.id, Delivery.payload)
        .where(Delivery.channel == channel, _due(now), *([Delivery.kind != "notice"] if pages else []))
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
        .with_for_update(**await _for_update(session))
    )
    rows = [(row_id, payload) for row_id, payload in await session.execute(statement)]
    if rows:
        await session.execute(
            _CLAIM,
            {
                "ids": [row_id for row_id, _ in rows],
                "worker": worker,
                "token": token,
                "until": until,
            },
        )
    return rows


_OUTBOX = cast(Table, Delivery.__table__)
_CLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status="sending",
        claimed_by=bindparam("worker"),
        claim_token=bindparam("token"),
        claimed_until=bindparam("until", type_=_OUTBOX.c.claimed_until.type),
    )
)


@dataclass(frozen=True)
class HeldDelivery:
    """What recording an outcome reads of a row its claim still holds."""

    id: int
    incident_id: int | None
    channel: str
    kind: str
    created_at: datetime
    attempts: int  # before this attempt
    page_id: int | None
    page_step: int | None


async def lock_claimed(session: AsyncSession, ids: Sequence[int], token: str) -> list[HeldDelivery]:
    """The rows of ``ids`` still held by the claim ``token``, locked: the fence on recording an outcome.

    A row whose lease ran out and that another worker claimed since carries that worker's
    token: its outcome is theirs to record, not ours.
    """
    statement = (
        select(
            Delivery.id,
            Delivery.incident_id,
            Delivery.channel,
            Delivery.kind,
            Delivery.created_at,
            Delivery.attempts,
            Delivery.page_id,
            Delivery.page_step,
        )
        .where(Delivery.id.in_(ids), Delivery.claim_token == token, Delivery.status == "sending")
        .order_by(Delivery.id)
        .with_for_update()
    )
    return [HeldDelivery(*row) for row in await session.execute(statement)]


def outcome_row(
    delivery: HeldDelivery,
    status: str,
    *,
    delivered_at: datetime | None = None,
    digest_of: int | None = None,
    due_at: datetime | None = None,
    error: str | None = None,
    payload: str | None = None,
) -> dict[str, Any]:
    """One row's outcome for :func:`record_outcomes`: its new ``status`` (``delivered``, ``pending``
    again for a retry at ``due_at``, or ``dead``), one more attempt, its claim released. ``digest_of``:
    the row whose message carried it in a digest; ``payload``: the message as sent, when the worker
    added to it (its context); ``error``: why it failed. What is None is left as it was."""
    return {
        "row_id": delivery.id,
        "new_status": status,
        "new_delivered_at": delivered_at,
        "new_digest_of": digest_of,
        "new_due_at": due_at,
        "new_last_error": error,
        "new_payload": payload,
    }


def _new_or_as_was(column: Any) -> Any:
    """The row's new value of ``column`` (parameter ``new_<name>``), or its value as it was when None."""
    return func.coalesce(bindparam(f"new_{column.name}", type_=column.type), column)


_RECORD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id", type_=_OUTBOX.c.id.type))
    .values(
        status=bindparam("new_status", type_=_OUTBOX.c.status.type),
        attempts=_OUTBOX.c.attempts + 1,
        claimed_by=None,
        claim_token=None,
        delivered_at=_new_or_as_was(_OUTBOX.c.delivered_at),
        digest_of=_new_or_as_was(_OUTBOX.c.digest_of),
        due_at=_new_or_as_was(_OUTBOX.c.due_at),
        last_error=_new_or_as_was(_OUTBOX.c.last_error),
        payload=_new_or_as_was(_OUTBOX.c.payload),
    )
)


async def record_outcomes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Writes the outcomes (:func:`outcome_row`) of rows :func:`lock_claimed` holds: one ``UPDATE``
    for all (``executemany``), not one ORM object per row."""
    if rows:
        await session.execute(_RECORD, list(rows))


# --- the channels' shared rate-limit ledger ------------------------------------------------

CHANNEL_LOCK_NAMESPACE = 0x63686E6C  # "chnl"


async def lock_channel_ledger(session: AsyncSession, channel: str) -> None:
    """Serialises budget checks of one channel across replicas (PostgreSQL advisory lock for this
    transaction; SQLite transactions are serialised by its write lock already)."""
    if await is_postgresql(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:channel))"),
            {"namespace": CHANNEL_LOCK_NAMESPACE, "channel": channel},
        )


async def attempts_since(session: AsyncSession, channel: str, since: datetime) -> tuple[int, datetime | None]:
    """How many attempts the channel's ledger counts after ``since``, and the oldest one's time."""
    statement = select(func.count(), func.min(ChannelAttempt.at)).where(
        ChannelAttempt.channel == channel, ChannelAttempt.at > since
    )
    count, oldest = (await session.execute(statement)).one()
    return int(count or 0), oldest


async def add_attempts(session: AsyncSession, channel: str, at: datetime, count: int) -> None:
    if count > 0:
        await session.execute(insert(ChannelAttempt), [{"channel": channel, "at": at}] * count)


async def delete_attempts_before(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(ChannelAttempt).where(ChannelAttempt.at < before))


async def pending_count(session: AsyncSession) -> int:
    statement = select(func.count()).where(Delivery.status.in_(("pending", "sending")))
    return int(await session.scalar(statement) or 0)


# --- schedules, maintenance, heartbeats, secrets -------------------------------------------


READS_KEPT = "panorama.alerts.reads_kept"


def keep_reads(session: AsyncSession) -> None:
    """Overrides and maintenance windows read in this transaction are read once per question:
    for a transaction that writes neither (the intake's, where a batch of webhooks all ask
    who is on call and which windows are active at the same instant)."""
    session.sync_session.info[READS_KEPT] = {}


async def _kept(session: AsyncSession, key: tuple[Any, ...], statement: Callable[[], Any]) -> Sequence[Any]:
    """What ``statement()`` reads, read once per transaction that keeps its reads (built only then)."""
    kept: dict[tuple[Any, ...], Sequence[Any]] | None = session.sync_session.info.get(READS_KEPT)
    if kept is not None and key in kept:
        return kept[key]
    rows = (await session.scalars(statement())).all()
    if kept is not None:
        kept[key] = rows
    return rows


async def overrides(
    session: AsyncSession, schedule: str, *, first: datetime | None = None, last: datetime | None = None
) -> Sequence[ScheduleOverride]:
    def statement() -> Any:
        found = select(ScheduleOverride).where(ScheduleOverride.schedule == schedule)
        if first is not None:
            found = found.where(ScheduleOverride.end > first)
        if last is not None:
            found = found.where(ScheduleOverride.start < last)
        return found.order_by(ScheduleOverride.id)

    return await _kept(session, ("overrides", schedule, first, last), statement)


async def delete_override(session: AsyncSession, schedule: str, override_id: int) -> bool:
    result = await session.execute(
        delete(ScheduleOverride).where(
            ScheduleOverride.schedule == schedule, ScheduleOverride.id == override_id
        )
    )
    return rowcount(result) > 0


async def maintenance_windows(
    session: AsyncSession, *, active_at: datetime | None = None
) -> Sequence[Maintenance]:
    def statement() -> Any:
        found = select(Maintenance).order_by(Maintenance.start)
        if active_at is not None:
            found = found.where(Maintenance.start <= active_at, Maintenance.end > active_at)
        return found

    return await _kept(session, ("maintenance", active_at), statement)


def add_maintenance(session: AsyncSession, window: Maintenance) -> None:
    session.add(window)


async def delete_maintenance(session: AsyncSession, window_id: int) -> bool:
    result = await session.execute(delete(Maintenance).where(Maintenance.id == window_id))
    return rowcount(result) > 0


async def lock_heartbeat(session: AsyncSession, key: str, *, now: datetime) -> HeartbeatState:
    """The heartbeat's row, created (last seen ``now``) when missing, locked for this transaction
    so that two replicas never both open a "missing" incident for it. Heartbeat rows are locked
    first, in the order of their keys, by intake and worker alike."""
    make = await dialect_insert(session)
    await session.execute(
        make(HeartbeatState).values(key=key, last_seen_at=now, incident_id=None).on_conflict_do_nothing()
    )
    statement = (
        select(HeartbeatState)
        .where(HeartbeatState.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = (await session.scalars(statement)).one()
    return found


def record_heartbeat_seen(state: HeartbeatState, now: datetime) -> None:
    """Seen at ``now`` (a journaled webhook's receipt: never earlier than a sighting recorded)."""
    state.last_seen_at = max(state.last_seen_at, now)


def link_heartbeat_incident(state: HeartbeatState, incident_id: int | None) -> None:
    """The heartbeat's "missing" incident (None: none open)."""
    state.incident_id = incident_id


async def heartbeats(session: AsyncSession) -> Sequence[HeartbeatState]:
    return (await session.scalars(select(HeartbeatState))).all()


async def stored_secret(session: AsyncSession, name: str) -> str | None:
    found = await session.get(StoredSecret, name)
    return found.value if found else None


def add_stored_secret(session: AsyncSession, name: str, value: str, now: datetime) -> None:
    """Stores the secret with the transaction (its commit fails if another stored it first)."""
    session.add(StoredSecret(name=name, value=value, created_at=now))


# --- hand-overs, swaps, calendar feeds ------------------------------------------------------


async def claim_handover(
    session: AsyncSession,
    schedule: str,
    at: datetime,
    incoming: str | None,
    outgoing: str | None,
    now: datetime,
) -> bool:
    """Records that the hand-over of ``schedule`` at ``at`` is being announced; False when it was
    already (the unique key decides, between replicas too: a racing insert waits for the other
    transaction and then does nothing)."""
    make = await dialect_insert(session)
    statement = (
        make(Handover)
        .values(schedule=schedule, at=at, incoming=incoming, outgoing=outgoing, announced_at=now)
        .on_conflict_do_nothing(index_elements=[Handover.schedule, Handover.at])
        .returning(Handover.id)
    )
    return (await session.scalar(statement)) is not None


async def incidents_created_between(
    session: AsyncSession, first: datetime, last: datetime
) -> Sequence[Incident]:
    statement = (
        select(Incident)
        .where(Incident.created_at >= first, Incident.created_at < last)
        .order_by(Incident.created_at.desc())
        .limit(200)
    )
    return (await session.scalars(statement)).all()


async def open_incidents(session: AsyncSession, limit: int = 50) -> Sequence[Incident]:
    statement = (
        select(Incident)
        .where(Incident.status != "resolved")
        .order_by(Incident.created_at.desc())
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


def add_swap(session: AsyncSession, swap: Swap) -> None:
    session.add(swap)


async def swaps(session: AsyncSession, schedule: str, status: str | None = None) -> Sequence[Swap]:
    statement = select(Swap).where(Swap.schedule == schedule).order_by(Swap.start, Swap.id)
    if status is not None:
        statement = statement.where(Swap.status == status)
    return (await session.scalars(statement)).all()


async def lock_open_swap(session: AsyncSession, schedule: str, swap_id: int) -> Swap | None:
    """The swap, locked, while it is still open: two people taking it at once, one gets it."""
    statement = (
        select(Swap)
        .where(Swap.id == swap_id, Swap.schedule == schedule, Swap.status == "open")
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


def mark_swap_taken(swap: Swap, taker: str, now: datetime, override_id: int) -> None:
    swap.status = "taken"
    swap.taken_by = taker
    swap.taken_at = now
    swap.override_id = override_id


def mark_swap_cancelled(swap: Swap) -> None:
    swap.status = "cancelled"


async def swap(session: AsyncSession, schedule: str, swap_id: int) -> Swap | None:
    found = await session.get(Swap, swap_id)
    return found if found is not None and found.schedule == schedule else None


def add_override(session: AsyncSession, override: ScheduleOverride) -> None:
    session.add(override)


async def feed_generation(session: AsyncSession, subject: str) -> int:
    found = await session.get(CalendarFeed, subject)
    return found.generation if found is not None else 0


async def bump_feed_generation(session: AsyncSession, subject: str, now: datetime) -> int:
    """Revokes every URL of the feed made so far; returns the new generation."""
    make = await dialect_insert(session)
    statement = make(CalendarFeed).values(subject=subject, generation=1, revoked_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[CalendarFeed.subject],
        set_={"generation": CalendarFeed.generation + 1, "revoked_at": now},
    ).returning(CalendarFeed.generation)
    return int(await session.scalar(statement) or 0)


# --- the day's incidents, for digests ---------------------------------------------------------


async def incidents_opened(
    session: AsyncSession, first: datetime, last: datetime, limit: int
) -> Sequence[Incident]:
    """Incidents opened in ``[first, last)``, oldest first."""
    statement = (
        select(Incident)
        .where(Incident.created_at >= first, Incident.created_at < last)
        .order_by(Incident.created_at, Incident.id)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


# --- on-call history (read by the daily rollup) -------------------------------------------


def _within(column: Any, first: datetime, last: datetime) -> Any:
    """``first <= column < last``: an instant at a day's boundary belongs to the day it starts."""
    return and_(column >= first, column < last)


async def incidents_active_between(
    session: AsyncSession, first: datetime, last: datetime, also: Sequence[int] = ()
) -> Sequence[Incident]:
    """Incidents opened, acknowledged or resolved in ``[first, last)``, and those of ``also``."""
    touched = or_(
        _within(Incident.created_at, first, last),
        _within(Incident.acknowledged_at, first, last),
        _within(Incident.resolved_at, first, last),
    )
    if also:
        touched = or_(touched, Incident.id.in_(sorted(set(also))))
    return (await session.scalars(select(Incident).where(touched).order_by(Incident.id))).all()


async def paging_deliveries_between(
    session: AsyncSession, first: datetime, last: datetime
) -> Sequence[tuple[int, datetime, datetime | None]]:
    """``(incident, created, delivered)`` of the pages written or delivered in ``[first, last)``."""
    statement = (
        select(Delivery.incident_id, Delivery.created_at, Delivery.delivered_at)
        .where(
            Delivery.incident_id.is_not(None),
            Delivery.kind.in_(PAGING_KINDS),
            or_(_within(Delivery.created_at, first, last), _within(Delivery.delivered_at, first, last)),
        )
        .order_by(Delivery.id)
    )
    return [(row[0], row[1], row[2]) for row in await session.execute(statement) if row[0] is not None]


async def timeline_between(
    session: AsyncSession, kind: str, first: datetime, last: datetime
) -> Sequence[TimelineEntry]:
    statement = (
        select(TimelineEntry)
        .where(TimelineEntry.kind == kind, _within(TimelineEntry.at, first, last))
        .order_by(TimelineEntry.id)
    )
    return (await session.scalars(statement)).all()


async def alert_labels_of(session: AsyncSession, incident_ids: Sequence[int]) -> Sequence[tuple[int, str]]:
    """(incident id, labels JSON) of every alert of these incidents."""
    if not incident_ids:
        return []
    statement = select(IncidentAlert.incident_id, IncidentAlert.labels).where(
        IncidentAlert.incident_id.in_(incident_ids)
    )
    return [(row[0], row[1]) for row in await session.execute(statement)]


async def timeline_of_incidents(
    session: AsyncSession, kind: str, incident_ids: Sequence[int]
) -> Sequence[TimelineEntry]:
    if not incident_ids:
        return []
    statement = (
        select(TimelineEntry)
        .where(TimelineEntry.kind == kind, TimelineEntry.incident_id.in_(sorted(set(incident_ids))))
        .order_by(TimelineEntry.id)
    )
    return (await session.scalars(statement)).all()


async def incidents_by_alert_time(
    session: AsyncSession,
    *,
    first: datetime,
    last: datetime,
    limit: int,
    services: Sequence[servicenames.ServiceName] | None = None,
    and_one_of: Sequence[Sequence[servicenames.ServiceName]] = (),
    none_of: Sequence[servicenames.ServiceName] = (),
    before: tuple[datetime, int] | None = None,
) -> Sequence[tuple[Incident, datetime | None, datetime | None]]:
    """Incidents whose alerts fired within ``first``..``last``, newest first, each with the earliest
    ``startsAt`` of its alerts and the latest ``endsAt`` of its resolved ones (None when there is
    none: an incident without alerts, such as a missing heartbeat, or none resolved yet). With
    ``services``, only the incidents of one of them (:func:`names_service`); and of one service of
    each group of ``and_one_of``; and of none of ``none_of``. With ``before`` (a listed incident's
    start and id), only those listed after it: the next page of the same order.

    An incident's time is its alerts' (``startsAt`` may be long before the webhook arrived); one
    without alerts falls back to its own ``created_at``/``resolved_at``.
    """
    started = func.min(IncidentAlert.starts_at)
    ended = func.max(IncidentAlert.ends_at).filter(IncidentAlert.status == "resolved")
    begins = func.coalesce(started, Incident.created_at)
    statement = (
        select(Incident, started, ended)
        .outerjoin(IncidentAlert, IncidentAlert.incident_id == Incident.id)
        # an alert ends before its resolved webhook arrives: resolved_at bounds the search
        .where(or_(Incident.resolved_at.is_(None), Incident.resolved_at >= first))
        .where(or_(*map(names_service, services)) if services is not None else true())
        .where(*(or_(false(), *map(names_service, group)) for group in and_one_of))
        .where(*(not_(names_service(service)) for service in none_of))
        .group_by(Incident.id)
        .having(
            begins <= last,
            or_(Incident.resolved_at.is_(None), func.coalesce(ended, Incident.resolved_at) >= first),
            true()
            if before is None
            else or_(begins < before[0], and_(begins == before[0], Incident.id < before[1])),
        )
        .order_by(begins.desc(), Incident.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in await session.execute(statement)]


# --- the journal (app.alerts.journal) -----------------------------------------------------


_JOURNAL = cast(Table, JournalEntry.__table__)


async def insert_journal(sessions: async_sessionmaker[AsyncSession], rows: Sequence[JournalRow]) -> list[int]:
    """Journals webhooks' raw bodies in one transaction of their own; their ids, in the order of
    ``rows``, once committed.

    On PostgreSQL one statement (SQLAlchemy's multi-row ``INSERT … RETURNING``). On SQLite,
    SQLAlchemy keeps the ids in the rows' order by executing such an insert row by row: each row
    was a statement of its own and a hop to the connection's thread, and the transaction three hops
    more (``BEGIN IMMEDIATE``, ``COMMIT``), ~100 µs of the server's CPU per webhook in a storm
    (``bench/alert_storm.py``): here the whole transaction is one hop (:func:`app.db.sqlite_transaction`),
    each row ``RETURNING`` its id."""
    if isinstance(sessions, ReadWriteSessions):
        values = [
            (sqlite_datetime(r.received_at), r.group_digest, r.body, r.alerts, r.status, r.attempts)
            for r in rows
        ]

        def insert_rows(connection: sqlite3.Connection) -> list[int]:
            cursor = connection.cursor()
            try:
                return [cursor.execute(_JOURNAL_INSERT_SQLITE, row).fetchone()[0] for row in values]
            finally:
                cursor.close()

        return await sqlite_transaction(sessions, insert_rows)
    async with sessions.begin() as session:
        statement = insert(_JOURNAL).returning(_JOURNAL.c.id, sort_by_parameter_order=True)
        parameters = [row._asdict() for row in rows]
        return list((await (await session.connection()).execute(statement, parameters)).scalars().all())


class JournalRow(NamedTuple):
    """A journal row as inserted (:func:`insert_journal`)."""

    received_at: datetime
    group_digest: str
    body: bytes
    alerts: int
    status: str
    attempts: int


_JOURNAL_INSERT_SQLITE = (
    "INSERT INTO alert_journal (received_at, group_digest, body, alerts, status, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
)  # the columns of a JournalRow, in its order


@dataclass(frozen=True)
class QueuedEntry:
    id: int
    group_digest: str
    body: bytes
    received_at: datetime
    attempts: int


_QUEUED_ENTRY = (
    JournalEntry.id,
    JournalEntry.group_digest,
    JournalEntry.body,
    JournalEntry.received_at,
    JournalEntry.attempts,
)  # the columns of a QueuedEntry, in its order


async def claim_journal(session: AsyncSession, limit: int) -> list[QueuedEntry]:
    """The oldest queued rows, locked for this transaction (``SKIP LOCKED`` on PostgreSQL: rows
    another replica is applying are passed over, see :func:`journal_heads`)."""
    statement = (
        select(*_QUEUED_ENTRY)
        .where(JournalEntry.status == JOURNAL_QUEUED)
        .order_by(JournalEntry.id)
        .limit(limit)
        .with_for_update(**await _for_update(session))
    )
    return [QueuedEntry(*row) for row in (await session.execute(statement)).all()]


async def claim_journal_entry(session: AsyncSession, entry_id: int) -> list[QueuedEntry]:
    """The row, locked for this transaction, if it is still queued (and not held elsewhere)."""
    statement = (
        select(*_QUEUED_ENTRY)
        .where(JournalEntry.id == entry_id, JournalEntry.status == JOURNAL_QUEUED)
        .with_for_update(**await _for_update(session))
    )
    return [QueuedEntry(*row) for row in (await session.execute(statement)).all()]


async def journal_heads(session: AsyncSession, digests: Sequence[str]) -> dict[str, int]:
    """The first queued row of each group (held by this transaction or not, committed state)."""
    statement = (
        select(JournalEntry.group_digest, func.min(JournalEntry.id))
        .where(JournalEntry.status == JOURNAL_QUEUED, JournalEntry.group_digest.in_(digests))
        .group_by(JournalEntry.group_digest)
    )
    return {digest: first for digest, first in (await session.execute(statement)).all()}


_MARK_APPLIED = (
    update(_JOURNAL)
    .where(_JOURNAL.c.id == bindparam("row_id"))
    .values(status="applied", applied_at=bindparam("at"), incident_id=bindparam("incident"))
)


async def mark_journal_applied(
    session: AsyncSession, applied: Sequence[tuple[int, int | None]], now: datetime
) -> None:
    """Marks rows applied (``(row id, incident id)``), in the transaction that applied them."""
    if applied:
        await (await session.connection()).execute(
            _MARK_APPLIED, [{"row_id": row, "incident": incident, "at": now} for row, incident in applied]
        )


async def record_journal_failure(
    session: AsyncSession, entry_id: int, error: str, now: datetime, *, give_up: bool
) -> None:
    """One more failed apply of a row; with ``give_up``, the row is failed for good."""
    values: dict[str, Any] = {"attempts": JournalEntry.attempts + 1, "error": error}
    if give_up:
        values.update(status="failed", applied_at=now)
    await session.execute(
        update(JournalEntry)
        .where(JournalEntry.id == entry_id, JournalEntry.status == JOURNAL_QUEUED)
        .values(**values)
    )


async def journal_entry(session: AsyncSession, entry_id: int) -> JournalEntry | None:
    return await session.get(JournalEntry, entry_id)


async def journal_backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many rows are queued, and when the first of them was received (None: none). The first by
    id, read through the queued rows' partial index (one row fetched, not every queued one: the
    applier asks before each batch); a row inserted a moment later by another replica may have
    been received a few milliseconds earlier, which a gauge of the journal's age does not mind."""
    first = (
        select(JournalEntry.received_at)
        .where(JournalEntry.status == JOURNAL_QUEUED)
        .order_by(JournalEntry.id)
        .limit(1)
        .scalar_subquery()
    )
    statement = (
        select(func.count(), first).select_from(JournalEntry).where(JournalEntry.status == JOURNAL_QUEUED)
    )
    count, oldest = (await session.execute(statement)).one()
    return int(count), oldest


async def oldest_queued_receipt(session: AsyncSession) -> datetime | None:
    """When the oldest row still queued was received (None: the journal has none queued)."""
    statement = select(func.min(JournalEntry.received_at)).where(JournalEntry.status == JOURNAL_QUEUED)
    found: datetime | None = (await session.execute(statement)).scalar_one()
    return found


async def oldest_queued_receipts(session: AsyncSession) -> dict[str, datetime]:
    """When each group's oldest row still queued was received (by group digest; the queued rows
    only, read through their partial index: a few on a quiet system, a storm's backlog at most)."""
    statement = (
        select(JournalEntry.group_digest, func.min(JournalEntry.received_at))
        .where(JournalEntry.status == JOURNAL_QUEUED)
        .group_by(JournalEntry.group_digest)
    )
    return {digest: first for digest, first in (await session.execute(statement)).all()}


async def delete_journal_before(session: AsyncSession, before: datetime) -> int:
    """Forgets rows applied (or given up) before ``before``."""
    result = await session.execute(
        delete(JournalEntry).where(JournalEntry.status != JOURNAL_QUEUED, JournalEntry.applied_at < before)
    )
    return rowcount(result)

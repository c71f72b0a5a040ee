"""Every SQL statement of the rollups feature."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

import asyncpg
import numpy as np
from sqlalchemy import (
    ColumnElement,
    Table,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert, is_postgresql, rowcount
from app.rollups import frames
from app.rollups.frames import Frame
from app.rollups.layouts import (
    EncodedDay,
    FamilyNumbers,
    Layout,
    day_number,
    day_of,
    encode_day,
    parse_layout,
)
from app.rollups.models import RollupDay, RollupEntity, RollupLayout, RollupMonth, RollupRun, RollupState

_DAYS = cast(Table, RollupDay.__table__)
_MONTHS = cast(Table, RollupMonth.__table__)

# Claims of a day are serialised on PostgreSQL with this advisory lock namespace.
CLAIM_LOCK_NAMESPACE = 0x726F6C6C  # "roll"


class RunStatus:
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    NO_DATA = "no_data"
    PARTIAL = "partial"  # stored, but Prometheus's samples start after the day began (its retention)
    DONE = (OK, PARTIAL, NO_DATA)


async def claim_day(
    session: AsyncSession, day: date, *, trigger: str, worker: str, now: datetime, lease: timedelta
) -> int | None:
    """Records a ``running`` run for ``day`` unless one younger than ``lease`` exists; returns its id.

    The check and the insert are one statement; on PostgreSQL an advisory lock
    per day makes concurrent claims from several replicas wait for each other.
    """
    if await is_postgresql(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :day)"),
            {"namespace": CLAIM_LOCK_NAMESPACE, "day": day.toordinal()},
        )
    busy = exists().where(
        RollupRun.day == day,
        RollupRun.status == RunStatus.RUNNING,
        RollupRun.started_at > now - lease,
    )
    statement = (
        insert(RollupRun)
        .from_select(
            ["day", "status", "trigger", "started_at", "worker"],
            select(
                literal(day), literal(RunStatus.RUNNING), literal(trigger), literal(now), literal(worker)
            ).where(~busy),
        )
        .returning(RollupRun.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def finish_run(
    session: AsyncSession,
    run_id: int,
    *,
    status: str,
    duration_ms: float,
    entities: int | None = None,
    values: int | None = None,
    error: str | None = None,
) -> None:
    await session.execute(
        update(RollupRun)
        .where(RollupRun.id == run_id)
        .values(status=status, duration_ms=duration_ms, entities=entities, values=values, error=error)
    )


async def _insert_new(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """Inserts the rows whose key is not there yet (one statement per batch, either dialect)."""
    if not rows:
        return
    make = await dialect_insert(session)
    await session.execute(make(table).on_conflict_do_nothing(), rows)


async def store_layouts(session: AsyncSession, layouts: Iterable[Layout]) -> None:
    """Stores the layouts not stored yet (a layout's id is its hash: the same everywhere)."""
    await _insert_new(session, RollupLayout, [{"id": layout.id, "spec": layout.spec} for layout in layouts])


async def layouts(session: AsyncSession, ids: Collection[int]) -> dict[int, Layout]:
    """The layouts of ``ids``; the few a process has seen come from memory."""
    found = {i: _LAYOUTS[i] for i in ids if i in _LAYOUTS}
    missing = sorted(set(ids) - set(found))
    if missing:
        rows = await session.execute(
            select(RollupLayout.id, RollupLayout.spec).where(RollupLayout.id.in_(missing))
        )
        for layout_id, spec in rows:
            layout = parse_layout(spec)
            if layout.id != layout_id:
                raise ValueError(f"stored layout {layout_id} does not hash to its id")
            _LAYOUTS[layout_id] = found[layout_id] = layout
    unknown = set(ids) - set(found)
    if unknown:
        raise ValueError(f"stored days refer to unknown layouts {sorted(unknown)}")
    return found


_LAYOUTS: dict[int, Layout] = {}
"""Layouts by id: safe to keep for the life of the process, an id being the hash of its layout."""


async def ensure_entity_ids(
    session: AsyncSession, names: Collection[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The ids of these (kind, name) entities, created when new."""
    await _insert_new(session, RollupEntity, [{"kind": kind, "name": name} for kind, name in sorted(names)])
    kinds = sorted({kind for kind, _ in names})
    rows = await session.execute(
        select(RollupEntity.kind, RollupEntity.name, RollupEntity.id).where(RollupEntity.kind.in_(kinds))
    )
    wanted = set(names)
    return {(kind, name): entity_id for kind, name, entity_id in rows if (kind, name) in wanted}


async def replace_day(
    session: AsyncSession, day: date, values: Sequence[FamilyNumbers], *, kinds: Collection[str] | None = None
) -> None:
    """Deletes what the day held and stores ``values`` instead (in the caller's transaction):
    one row per entity, every family of it in one vector (``layouts.py``); the month sums of the
    entities concerned follow in the same transaction.

    With ``kinds``, only entities of those kinds are replaced (a rollup of other figures, e.g.
    incidents, keeps the day's Prometheus figures, and the other way round); without, every
    entity of the day is.
    """
    number = day_number(day)
    month = day_number(day.replace(day=1))
    await _lock_month(session, month)
    scope = [RollupDay.day == number]
    if kinds is not None:
        outside = {value.entity_kind for value in values} - set(kinds)
        if outside:
            raise ValueError(f"values of {sorted(outside)} given to replace the day's {sorted(kinds)} only")
        of_kinds = select(RollupEntity.id).where(RollupEntity.kind.in_(sorted(set(kinds))))
        scope.append(RollupDay.entity_id.in_(of_kinds))
    deleted = await session.scalars(delete(RollupDay).where(*scope).returning(RollupDay.entity_id))
    replaced = set(deleted)
    grouped: dict[tuple[str, str], list[FamilyNumbers]] = {}
    for value in values:
        grouped.setdefault((value.entity_kind, value.entity), []).append(value)
    encoded = [encode_day(kind, entity, found) for (kind, entity), found in grouped.items()]
    if encoded:
        await store_layouts(session, {one.layout.id: one.layout for one in encoded}.values())
        ids = await ensure_entity_ids(session, list(grouped))
        await session.execute(
            insert(_DAYS),  # Core: no ORM bookkeeping per row
            [
                {
                    "entity_id": ids[(one.entity_kind, one.entity)],
                    "day": number,
                    "layout_id": one.layout.id,
                    "data": one.data,
                }
                for one in encoded
            ],
        )
        added: dict[str, dict[int, EncodedDay]] = {}
        for one in encoded:
            entity_id = ids[(one.entity_kind, one.entity)]
            if entity_id not in replaced:
                added.setdefault(one.entity_kind, {})[entity_id] = one
        for by_id in added.values():
            await _add_to_month(session, month, day.day, by_id)
    await recompute_months(session, month, replaced)
    await _bump_generation(session)


async def _bump_generation(session: AsyncSession) -> None:
    await session.execute(
        update(RollupState).where(RollupState.id == 1).values(generation=RollupState.generation + 1)
    )


async def generation(session: AsyncSession) -> int:
    """The store's write counter (``models.RollupState``), read on the driver's connection."""
    rows = await _fetch(
        session,
        "SELECT generation FROM rollup_state WHERE id = 1",
        "SELECT generation FROM rollup_state WHERE id = 1",
        (),
        (),
    )
    return int(rows[0][0]) if rows else -1


MONTH_LOCK_NAMESPACE = 0x6D6F6E74  # "mont"
"""Writers of one month's sums queue on this advisory lock on PostgreSQL (SQLite has one writer)."""


async def _lock_month(session: AsyncSession, month: int) -> None:
    if await is_postgresql(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :month)"),
            {"namespace": MONTH_LOCK_NAMESPACE, "month": month},
        )


def _chunks(ids: Sequence[int], size: int = 5000) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def _add_to_month(session: AsyncSession, month: int, day: int, added: dict[int, EncodedDay]) -> None:
    """A new day of these entities (of one kind) added to their month sums: the nightly case,
    one read and one write of a row per entity, not a re-read of the month."""
    ids = sorted(added)
    existing: dict[int, tuple[int, int, bytes]] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(
                RollupMonth.entity_id, RollupMonth.layout_id, RollupMonth.day_mask, RollupMonth.data
            ).where(RollupMonth.month == month, RollupMonth.entity_id.in_(chunk))
        )
        existing.update({entity_id: (layout_id, mask, data) for entity_id, layout_id, mask, data in rows})
    known = await layouts(session, {layout_id for layout_id, _, _ in existing.values()})
    keys: list[int] = []
    row_layouts: list[Layout] = []
    blobs: list[bytes] = []
    for entity_id in ids:
        if entity_id in existing:
            layout_id, _, data = existing[entity_id]
            keys.append(entity_id)
            row_layouts.append(known[layout_id])
            blobs.append(data)
        keys.append(entity_id)
        row_layouts.append(added[entity_id].layout)
        blobs.append(added[entity_id].data)
    bit = 1 << (day - 1)
    masks = [existing[entity_id][1] | bit if entity_id in existing else bit for entity_id in ids]
    summed = frames.reduce(frames.frame_of(row_layouts, blobs), frames.group_starts(np.asarray(keys)))
    await _write_months(session, month, ids, masks, summed, [i for i in ids if i in existing])


async def _write_months(
    session: AsyncSession,
    month: int,
    ids: Sequence[int],
    masks: Sequence[int],
    summed: Frame,
    stale: Sequence[int],
) -> None:
    await store_layouts(session, [summed.layout])
    for chunk in _chunks(stale):
        await session.execute(
            delete(RollupMonth).where(RollupMonth.month == month, RollupMonth.entity_id.in_(chunk))
        )
    if ids:
        await session.execute(
            insert(_MONTHS),
            [
                {
                    "entity_id": entity_id,
                    "month": month,
                    "layout_id": summed.layout.id,
                    "day_mask": mask,
                    "data": summed.matrix[row].tobytes(),
                }
                for row, (entity_id, mask) in enumerate(zip(ids, masks, strict=True))
            ],
        )


async def recompute_months(session: AsyncSession, month: int, ids: Collection[int]) -> None:
    """The month sums of these entities computed again from their stored days (after a day was
    replaced or deleted); an entity without days that month loses its row."""
    if not ids:
        return
    first = day_of(month)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    kinds: dict[str, list[int]] = {}
    for chunk in _chunks(sorted(ids)):
        rows = await session.execute(
            select(RollupEntity.id, RollupEntity.kind).where(RollupEntity.id.in_(chunk))
        )
        for entity_id, kind in rows:
            kinds.setdefault(kind, []).append(entity_id)
    for kind_ids in kinds.values():
        for chunk in _chunks(sorted(kind_ids), 1000):
            stored = await days_of_entities(session, chunk, first, last)
            found = await layouts(session, set(stored.layout_ids))
            frame = frames.frame_of([found[i] for i in stored.layout_ids], stored.blobs)
            keys = np.asarray(stored.entity_ids, dtype=np.int64)
            starts = frames.group_starts(keys)
            bits = np.left_shift(1, np.asarray(stored.days, dtype=np.int64) - month)
            masks = np.bitwise_or.reduceat(bits, starts).tolist() if len(keys) else []
            kept = keys[starts].tolist() if len(keys) else []
            await _write_months(session, month, kept, masks, frames.reduce(frame, starts), chunk)


async def runs(
    session: AsyncSession, *, first: date | None = None, last: date | None = None, limit: int = 100
) -> Sequence[RollupRun]:
    statement = select(RollupRun).order_by(RollupRun.started_at.desc(), RollupRun.id.desc()).limit(limit)
    if first is not None:
        statement = statement.where(RollupRun.day >= first)
    if last is not None:
        statement = statement.where(RollupRun.day <= last)
    return (await session.scalars(statement)).all()


async def day_states(session: AsyncSession, first: date, last: date) -> dict[date, tuple[str, datetime]]:
    """The newest run's status and start of every day in ``[first, last]`` that has runs."""
    newest = (
        select(RollupRun.day, func.max(RollupRun.id).label("id"))
        .where(RollupRun.day.between(first, last))
        .group_by(RollupRun.day)
        .subquery()
    )
    rows = await session.execute(
        select(RollupRun.day, RollupRun.status, RollupRun.started_at).join(
            newest, RollupRun.id == newest.c.id
        )
    )
    return {row.day: (row.status, row.started_at) for row in rows}


_PARTIAL_DAYS = (
    "SELECT day FROM rollup_runs WHERE status = {status} AND id IN"
    " (SELECT max(id) FROM rollup_runs WHERE day BETWEEN {first} AND {last} GROUP BY day) ORDER BY day"
)


async def partial_days(session: AsyncSession, first: date, last: date) -> list[date]:
    """The days in ``[first, last]`` whose newest run is ``partial``, in order.

    What ``day_states`` tells, for the one status a report names beside its figures, read on the
    driver's connection (as ``generation``): through the ORM, this join of a grouped subquery
    cost a cold three-year report 1.4–1.5 ms of event-loop CPU, a third of its route.
    """
    rows = await _fetch(
        session,
        _PARTIAL_DAYS.format(status="?", first="?", last="?"),
        _PARTIAL_DAYS.format(status="$1", first="$2", last="$3"),
        (RunStatus.PARTIAL, first.isoformat(), last.isoformat()),
        (RunStatus.PARTIAL, first, last),
    )
    return [day if isinstance(day, date) else date.fromisoformat(day) for (day,) in rows]


async def delete_before(session: AsyncSession, day: date) -> tuple[int, int]:
    """Deletes days and runs before ``day`` (month sums included), and entities left without
    days; returns how many entity days and runs."""
    values = await session.execute(delete(RollupDay).where(RollupDay.day < day_number(day)))
    month = day_number(day.replace(day=1))
    await session.execute(delete(RollupMonth).where(RollupMonth.month < month))
    if day.day != 1:  # the month the cut falls in keeps only its later days
        await _lock_month(session, month)
        cut = await session.scalars(select(RollupMonth.entity_id).where(RollupMonth.month == month))
        await recompute_months(session, month, set(cut))
    runs_deleted = await session.execute(delete(RollupRun).where(RollupRun.day < day))
    await session.execute(delete(RollupEntity).where(~_has_days(RollupEntity.id)))
    await _bump_generation(session)
    return rowcount(values), rowcount(runs_deleted)


def _has_days(entity_id: Any, first: date | None = None, last: date | None = None) -> ColumnElement[bool]:
    """Whether the entity has a stored day (within ``[first, last]`` when given): one index probe."""
    conditions = [RollupDay.entity_id == entity_id]
    if first is not None and last is not None:
        conditions.append(RollupDay.day.between(day_number(first), day_number(last)))
    return exists().where(*conditions)


async def entity_exists(session: AsyncSession, kind: str, entity: str) -> bool:
    statement = select(
        exists().where(RollupEntity.kind == kind, RollupEntity.name == entity, _has_days(RollupEntity.id))
    )
    return bool(await session.scalar(statement))


async def entities(
    session: AsyncSession, kind: str, *, first: date | None = None, last: date | None = None
) -> list[str]:
    """The kind's entities with stored days (in ``[first, last]`` when given), sorted by name."""
    return [name for _, name in await entity_list(session, kind, first=first, last=last)]


async def entity_list(
    session: AsyncSession, kind: str, *, first: date | None = None, last: date | None = None
) -> list[tuple[int, str]]:
    """(id, name) of the kind's entities with stored days (in ``[first, last]``), sorted by name."""
    statement = (
        select(RollupEntity.id, RollupEntity.name)
        .where(RollupEntity.kind == kind, _has_days(RollupEntity.id, first, last))
        .order_by(RollupEntity.name)
    )
    return [(entity_id, name) for entity_id, name in await session.execute(statement)]


@dataclass(frozen=True)
class StoredDays:
    """Stored days as read: per row its entity, day number, layout and numbers."""

    entity_ids: list[int]
    days: list[int]
    layout_ids: list[int]
    blobs: list[bytes]


# The two reads below return up to a million rows (every service over three years): they run
# on the driver's own connection, inside the session's transaction, with SQL written once per
# dialect. Through SQLAlchemy's Core result each row costs about 1.3 µs more (a Row object, type
# processing), which for one service's three years is more than NumPy's whole work on them.
_ENTITY_DAYS = (
    "SELECT d.entity_id, d.day, d.layout_id, d.data FROM rollup_days d"
    " JOIN rollup_entities e ON e.id = d.entity_id"
    " WHERE e.kind = {0} AND e.name = {1} AND d.day BETWEEN {2} AND {3} ORDER BY d.day"
)
_DAYS_OF_ENTITIES = (
    "SELECT entity_id, day, layout_id, data FROM rollup_days"
    " WHERE entity_id {ids} AND day BETWEEN {first} AND {last} ORDER BY entity_id, day"
)


async def entity_days(session: AsyncSession, kind: str, entity: str, first: date, last: date) -> StoredDays:
    """One entity's stored days in ``[first, last]``, in day order: one range of the primary key."""
    period = (day_number(first), day_number(last))
    return await _stored(
        session,
        _ENTITY_DAYS.format("?", "?", "?", "?"),
        _ENTITY_DAYS.format("$1", "$2", "$3", "$4"),
        (kind, entity, *period),
    )


async def days_of_entities(session: AsyncSession, ids: Sequence[int], first: date, last: date) -> StoredDays:
    """The stored days in ``[first, last]`` of the entities ``ids``, by entity then day."""
    if not ids:
        return StoredDays([], [], [], [])
    period = (day_number(first), day_number(last))
    marks = ", ".join("?" * len(ids))
    return await _stored(
        session,
        _DAYS_OF_ENTITIES.format(ids=f"IN ({marks})", first="?", last="?"),
        _DAYS_OF_ENTITIES.format(ids="= ANY($1::integer[])", first="$2", last="$3"),
        (*ids, *period),
        postgresql_parameters=(list(ids), *period),
    )


@dataclass(frozen=True)
class StoredMonths:
    """Month sums as read: per row its entity, month (day number of the 1st), layout, day mask, numbers."""

    entity_ids: list[int]
    months: list[int]
    layout_ids: list[int]
    masks: list[int]
    blobs: list[bytes]


_MONTHS_OF_ENTITIES = (
    "SELECT entity_id, month, layout_id, day_mask, data FROM rollup_months"
    " WHERE entity_id {ids} AND month BETWEEN {first} AND {last} ORDER BY entity_id, month"
)


async def months_of_entities(
    session: AsyncSession, ids: Sequence[int], first: date, last: date
) -> StoredMonths:
    """The month sums of the entities ``ids`` for the months starting in ``[first, last]``."""
    if not ids:
        return StoredMonths([], [], [], [], [])
    period = (day_number(first), day_number(last))
    marks = ", ".join("?" * len(ids))
    rows = await _fetch(
        session,
        _MONTHS_OF_ENTITIES.format(ids=f"IN ({marks})", first="?", last="?"),
        _MONTHS_OF_ENTITIES.format(ids="= ANY($1::integer[])", first="$2", last="$3"),
        (*ids, *period),
        (list(ids), *period),
    )
    if not rows:
        return StoredMonths([], [], [], [], [])
    entity_ids, months, layout_ids, masks, blobs = (list(column) for column in zip(*rows, strict=True))
    return StoredMonths(entity_ids, months, layout_ids, masks, blobs)


# Failures of the driver itself in the direct reads below (a database not migrated, gone, restarting).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.UndefinedTableError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
)


async def _fetch(
    session: AsyncSession,
    sqlite: str,
    postgresql: str,
    parameters: tuple[Any, ...],
    pg_parameters: tuple[Any, ...],
) -> list[Any]:
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        if connection.dialect.name == "postgresql":
            return list(await driver.fetch(postgresql, *pg_parameters))
        return list(await driver.execute_fetchall(sqlite, parameters))
    except UNAVAILABLE as exc:
        # What SQLAlchemy would raise for the same failure: the app answers it as "database
        # unavailable" (or "not migrated"), not as a bug.
        statement = postgresql if connection.dialect.name == "postgresql" else sqlite
        raise OperationalError(statement, parameters, exc) from exc


async def _stored(
    session: AsyncSession,
    sqlite: str,
    postgresql: str,
    parameters: tuple[Any, ...],
    *,
    postgresql_parameters: tuple[Any, ...] | None = None,
) -> StoredDays:
    rows = await _fetch(session, sqlite, postgresql, parameters, postgresql_parameters or parameters)
    if not rows:
        return StoredDays([], [], [], [])
    entity_ids, days, layout_ids, blobs = (list(column) for column in zip(*rows, strict=True))
    return StoredDays(entity_ids, days, layout_ids, blobs)

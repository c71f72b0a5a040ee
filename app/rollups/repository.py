"""Every SQL statement of the rollups feature.

Stored days live one row per entity and calendar month (``models.RollupDayPack``, packed by
``layouts.pack_month``), not one row per entity and day. Why: rollups write a day for every
entity at once, so on PostgreSQL one entity's day rows sat on as many heap pages as it had days
(a cold three-year series read 1,101 buffers: 1.6 ms at best, 13 ms under load), and on SQLite
its 1,096 rows cost about 1 ms to read. As month rows the same series is 37 rows of one
primary-key range on both databases, decoded by NumPy over all rows at once (``_unpacked``).

Measured (2026-12-06 22:30–22:57, load 1.4–4.5, 200 services × 1,096 days, each call another
service, against main's day rows on the same data): the read of one series 0.90–1.11 ms on
SQLite (1.96–2.21 before) and 1.16–1.20 ms on PostgreSQL (2.61–2.75), of which the unpacking
0.25 ms; PostgreSQL's fetch alone 0.7–1.0 ms against 1.8–1.9 (43 buffers plus the values' TOAST
pages, against 1,106). Over HTTP (``bench/grafana.py --services 200 --repeat 40``, eight runs
alternating with eight of main), cold, the median of runs against the bare app: report SQLite
3.13× (main 3.65×), PostgreSQL 3.62× (4.54×); Grafana SQLite 2.61× (3.15×), PostgreSQL 3.54×
(5.11×). What is left of a cold report is the JSON (1.8 ms), the figures (~0.8 ms) and the
stack, not the read. The store: 1,000 services × 1,096 days on SQLite 0.306 GiB, 49.9 B per
family value (0.313 GiB, 51.1 B as day rows).

The price is on the writers: a month's row is read and rewritten whole, under the month's
advisory lock on PostgreSQL (``_lock_month``), so that two replicas storing two days of one
month at once both keep theirs. So that a night's rollup does not pay it inside its fenced
transaction, its day goes first to a row of its own per entity (``part``: ``replace_day``), and
the month's row takes it in when the month's report rows are written, right after the day
(``render_months``); a day earlier than one its month holds, or held already in the month's
row, is written into the month's row at once (retention's cut month likewise,
``delete_before``). The month sums (``rollup_months``) follow every store in its transaction,
always the sum of the month's days in day order, bit for bit (the nightly day is added to the
sum; a day stored before a later one already held, as catch-ups and replicas do, has the month
summed again from its days). Storing a night's day of 1,000 services (``bench/rollup.py``,
SQLite): 40–60 ms with rows of their own, against 80–110 ms rewriting each month's row (and 0.2 s
or more into a month already holding 27 days).

Each month row also keeps that month's rows of the daily report already written as JSON
(``render_key``, ``rendered``: ``rendered.py`` says why), written by ``_write_packs`` with the
numbers when given a renderer, so no writer can leave stale ones behind the numbers: a writer
given none (a rollup's store: ``service.run_day`` says why) writes them empty, the report then
computes that month live, and ``render_months`` writes them after. ``entity_rendered`` reads them without the
numbers; ``stale_renders`` finds the months due from an index alone.

Beside them, each figure's values of the month (``rollup_figure_months``: ``figure_months.py``
says why), written by ``_write_figure_months`` in the same place and transaction, so that a
cold daily series of one figure reads 37 small rows (``figure_months_of``) instead of the
months' numbers; a month row of days without its figure row is computed live.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple, TypeVar, cast

import asyncpg
import numpy as np
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db import dialect_insert, is_postgresql, rowcount
from app.rollups import figure_months, frames
from app.rollups.frames import Column, Frame, Ints
from app.rollups.layouts import (
    FLOAT,
    PACK_END,
    PACK_HEADER,
    PACK_ID,
    EncodedDay,
    FamilyNumbers,
    Layout,
    day_number,
    day_of,
    encode_day,
    pack_day,
    pack_month,
    parse_layout,
    unpack_month,
)
from app.rollups.models import (
    RollupDayPack,
    RollupEntity,
    RollupFigureMonth,
    RollupLayout,
    RollupMonth,
    RollupRun,
    RollupState,
)

_PACKS = cast(Table, RollupDayPack.__table__)
_MONTHS = cast(Table, RollupMonth.__table__)
_FIGURES = cast(Table, RollupFigureMonth.__table__)

# Claims of a day are serialised on PostgreSQL with this advisory lock namespace.
CLAIM_LOCK_NAMESPACE = 0x726F6C6C  # "roll"


class RunStatus:
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    NO_DATA = "no_data"
    PARTIAL = "partial"  # stored, but Prometheus's samples start after the day began (its retention)
    SUPERSEDED = "superseded"  # outlived its lease and the day was claimed again: stored nothing
    DONE = (OK, PARTIAL, NO_DATA)


SUPERSEDED_ERROR = "the day was claimed again after this run's lease ran out: it stored nothing"


class History:
    """What a finished run did with the day's on-call history (``models.RollupRun.history``); on a
    ``running`` run, ``pending`` marks one that stores the history alone (:func:`claim_history`)."""

    STORED = "stored"  # stored with the day's Prometheus figures (NULL: runs before 0020)
    PENDING = "pending"  # not stored: the alert journal held a webhook received before the day ended
    COMPLETED = "completed"  # stored alone, completing a pending day (Prometheus not queried again)


class HistoryClaim(NamedTuple):
    """A day claimed to store its pending on-call history alone (:func:`claim_history`): the run's
    id and the state of the day's Prometheus figures it carries (the pending run's status and
    whether they were queried), which it records again when it finishes."""

    id: int
    status: str
    prometheus: bool


def _history_pending(run: Any) -> ColumnElement[bool]:
    """Whether ``run`` left the day's Prometheus figures stored and its on-call history waiting:
    it finished so, or it is a run storing the history alone (:func:`claim_history`), which
    leaves it so until it finishes, and for good if its process dies without a word (``settled``'s
    rule in SQL: ``claim_history`` and ``day_states`` read it)."""
    return and_(
        run.status.in_((*RunStatus.DONE, RunStatus.RUNNING)),
        func.coalesce(run.history, History.STORED) == History.PENDING,
    )


async def claim_day(
    session: AsyncSession,
    day: date,
    *,
    trigger: str,
    worker: str,
    now: datetime,
    lease: timedelta,
    prometheus: bool = True,
    unless_settled: bool = False,
) -> int | None:
    """Records a ``running`` run for ``day`` unless one younger than ``lease`` exists; returns its id.

    ``prometheus`` says whether the run queries Prometheus (recorded with it). With
    ``unless_settled`` (a catch-up, which read the days' states a moment before), also not when the
    day's newest run has finished (ok, partial, no_data) and is settled for this run
    (:func:`settled`): another replica filled the day since the caller looked, and computing it
    again would do the work twice (a day whose on-call history is pending is claimed for it
    alone by :func:`claim_history`, in the same transaction before).

    The checks and the insert are one statement; on PostgreSQL an advisory lock
    per day makes concurrent claims from several replicas wait for each other.
    """
    await _lock_day(session, day)
    busy = _busy(day, now, lease)
    free: list[ColumnElement[bool]] = [~busy]
    if unless_settled:
        newest = _newest_run(day)
        done: ColumnElement[bool] = RollupRun.status.in_(RunStatus.DONE)
        if prometheus:  # a day done without Prometheus is not done for a run that queries it
            done = and_(done, func.coalesce(RollupRun.prometheus, true()))
        free.append(~exists().where(RollupRun.id == newest, done))
    statement = (
        insert(RollupRun)
        .from_select(
            ["day", "status", "trigger", "started_at", "worker", "prometheus"],
            select(
                literal(day),
                literal(RunStatus.RUNNING),
                literal(trigger),
                literal(now),
                literal(worker),
                literal(prometheus),
            ).where(*free),
        )
        .returning(RollupRun.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def _lock_day(session: AsyncSession, day: date) -> None:
    """Claims of one day wait for each other on PostgreSQL (held to the transaction's end)."""
    if await is_postgresql(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :day)"),
            {"namespace": CLAIM_LOCK_NAMESPACE, "day": day.toordinal()},
        )


def _busy(day: date, now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Whether a run of the day is running within its lease."""
    return exists().where(
        RollupRun.day == day,
        RollupRun.status == RunStatus.RUNNING,
        RollupRun.started_at > now - lease,
    )


def _newest_run(day: date) -> Any:
    return select(func.max(RollupRun.id)).where(RollupRun.day == day).scalar_subquery()


async def claim_history(
    session: AsyncSession, day: date, *, trigger: str, worker: str, now: datetime, lease: timedelta
) -> HistoryClaim | None:
    """Records a ``running`` run for ``day``, marked as storing the history alone (``history``
    ``pending``), if the day's newest run left its on-call history pending (:func:`settled`'s
    rule) and none runs within ``lease``: a catch-up's claim of the history alone, whether or not
    it queries Prometheus (the day's Prometheus figures are stored and stay as they are); None
    otherwise. The newest run may be such a claim whose lease ran out (its process was killed
    before it could release the day): the day is claimed for its history alone again, never
    computed whole (which would query Prometheus for figures already stored, and fail once
    Prometheus no longer holds the day).

    As in :func:`claim_day`, the check and the insert are one statement, under the day's advisory
    lock on PostgreSQL; the state of the day's Prometheus figures (the newest finished run's) is
    then read in the same transaction (still under that lock; on SQLite, under the write lock the
    insert took)."""
    await _lock_day(session, day)
    pending = aliased(RollupRun)
    queried = func.coalesce(pending.prometheus, true())
    statement = (
        insert(RollupRun)
        .from_select(
            ["day", "status", "trigger", "started_at", "worker", "prometheus", "history"],
            select(
                literal(day),
                literal(RunStatus.RUNNING),
                literal(trigger),
                literal(now),
                literal(worker),
                queried,
                literal(History.PENDING),
            ).where(pending.id == _newest_run(day), _history_pending(pending), ~_busy(day, now, lease)),
        )
        .returning(RollupRun.id)
    )
    run_id = (await session.execute(statement)).scalar_one_or_none()
    if run_id is None:
        return None
    finished = (
        select(pending.status, queried)
        .where(pending.day == day, pending.id < run_id, pending.status.in_(RunStatus.DONE))
        .order_by(pending.id.desc())
        .limit(1)
    )
    status, carried = (await session.execute(finished)).one()
    return HistoryClaim(run_id, status, bool(carried))


async def finish_run(
    session: AsyncSession,
    run_id: int,
    *,
    status: str,
    duration_ms: float,
    entities: int | None = None,
    values: int | None = None,
    error: str | None = None,
    history: str | None = None,
) -> bool:
    """Records the run's outcome, if its claim is still current; ``history`` (``History``) for a
    run that stored the day's Prometheus figures or its on-call history, None for one that stored
    nothing. Returns whether it was recorded.

    The finish is fenced: call it first in the transaction that stores the run's figures, and
    store them only when it returns True. The run is recorded only while it is ``running`` and
    still the day's newest run, in one guarded statement, under the day's advisory lock on
    PostgreSQL (the lock :func:`claim_day` and :func:`claim_history` take, held to the
    transaction's end, so no claim slips in before the figures are written; on SQLite, the write
    lock that statement takes). A run that outlived its lease (a paused process, a slow database)
    and whose day another run claimed since is recorded ``superseded`` instead, and the caller
    stores nothing: the newer run's figures stand, and no two runs are recorded finished for one
    claim."""
    day = await session.scalar(select(RollupRun.day).where(RollupRun.id == run_id))
    if day is None:
        return False
    await _lock_day(session, day)
    other = aliased(RollupRun)  # not correlated with the row updated
    newest = select(func.max(other.id)).where(other.day == day).scalar_subquery()
    current = await session.execute(
        update(RollupRun)
        .where(RollupRun.id == run_id, RollupRun.status == RunStatus.RUNNING, RollupRun.id == newest)
        .values(
            status=status,
            duration_ms=duration_ms,
            entities=entities,
            values=values,
            error=error,
            history=history,
        )
    )
    if rowcount(current) == 1:
        return True
    await session.execute(
        update(RollupRun)
        .where(RollupRun.id == run_id, RollupRun.status == RunStatus.RUNNING)
        .values(
            status=RunStatus.SUPERSEDED,
            duration_ms=duration_ms,
            error=SUPERSEDED_ERROR,
        )
    )
    return False


async def _insert_new(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """Inserts the rows whose key is not there yet (one statement per batch, either dialect; Core:
    no ORM bookkeeping per row)."""
    if not rows:
        return
    make = await dialect_insert(session)
    await session.execute(make(table).on_conflict_do_nothing(), rows)


async def store_layouts(session: AsyncSession, layouts: Iterable[Layout]) -> None:
    """Stores the layouts not stored yet (a layout's id is its hash: the same everywhere)."""
    await _insert_new(
        session, RollupLayout.__table__, [{"id": layout.id, "spec": layout.spec} for layout in layouts]
    )


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
    """The ids of these (kind, name) entities, created when new: read first, and only the new ones
    inserted (a night's thousand entities are all there already: inserting them again to have the
    conflicts skipped cost more than the read), then read."""
    wanted = set(names)
    kinds = sorted({kind for kind, _ in names})
    statement = select(RollupEntity.kind, RollupEntity.name, RollupEntity.id).where(
        RollupEntity.kind.in_(kinds)
    )
    found = {(kind, name): entity_id for kind, name, entity_id in await session.execute(statement)}
    new = sorted(wanted - found.keys())
    if new:  # another writer may insert some at the same time: theirs are kept, and read below
        await _insert_new(
            session, RollupEntity.__table__, [{"kind": kind, "name": name} for kind, name in new]
        )
        found = {(kind, name): entity_id for kind, name, entity_id in await session.execute(statement)}
    return {key: entity_id for key, entity_id in found.items() if key in wanted}


async def replace_day(
    session: AsyncSession,
    day: date,
    values: Sequence[FamilyNumbers],
    *,
    kinds: Collection[str] | None = None,
    render: Renderer | None = None,
) -> None:
    """Deletes what the day held and stores ``values`` instead (in the caller's transaction):
    each entity's families in one vector (``layouts.py``); the month sums of the entities
    concerned follow in the same transaction.

    A day later than every day its month holds for an entity (the night's day) is stored on a
    row of its own (``models.RollupDayPack.part``): one insert per entity, the month's sums
    brought up to date, its month row, report rows and figure rows left as they are until
    :func:`render_months` writes the month's row again with it. Why: rewriting each entity's
    month row (and deleting its report and figure rows) in the day's fenced transaction cost
    0.1 s of a day Prometheus answers in 0.8 s (``bench/rollup.py``, 1,000 services), all of it
    on the event loop and in SQLite's one writer; readers read every row of a month, so nothing
    waits for the month's row. A day held already (run again) on a row of its own gets a new
    one; held in the month's row, or earlier than a day the month holds (a catch-up goes newest
    first), it goes into the month's row, rewritten with every row of the entity's month, and
    the month's sums are summed again in day order: so days on rows of their own are always
    the month's last, and read in day order.

    With ``kinds``, only entities of those kinds are replaced (a rollup of other figures, e.g.
    incidents, keeps the day's Prometheus figures, and the other way round); without, every
    entity of the day is. Under the month's lock (``_lock_month``), so two replicas storing two
    days of one month both keep theirs. With ``render``, each month row rewritten also gets its
    daily report rows (``rendered.py``) and each figure its values (``figure_months.py``).
    """
    month = day_number(day.replace(day=1))
    await _lock_month(session, month)
    bit = 1 << (day.day - 1)
    scope = [RollupDayPack.month == month, RollupDayPack.day_mask.op("&")(bit) != 0]
    if kinds is not None:
        outside = {value.entity_kind for value in values} - set(kinds)
        if outside:
            raise ValueError(f"values of {sorted(outside)} given to replace the day's {sorted(kinds)} only")
        of_kinds = select(RollupEntity.id).where(RollupEntity.kind.in_(sorted(set(kinds))))
        scope.append(RollupDayPack.entity_id.in_(of_kinds))
    held = (await session.execute(select(RollupDayPack.entity_id, RollupDayPack.part).where(*scope))).all()
    alone = sorted(entity_id for entity_id, part in held if part == day.day)
    packed = {entity_id for entity_id, part in held if part != day.day}
    for chunk in _chunks(alone):  # the day on rows of its own: replaced whole
        await session.execute(
            delete(RollupDayPack).where(
                RollupDayPack.month == month,
                RollupDayPack.part == day.day,
                RollupDayPack.entity_id.in_(chunk),
            )
        )
    grouped: dict[tuple[str, str], list[FamilyNumbers]] = {}
    for value in values:
        grouped.setdefault((value.entity_kind, value.entity), []).append(value)
    encoded = [encode_day(kind, entity, found) for (kind, entity), found in grouped.items()]
    ids: dict[tuple[str, str], int] = {}
    if encoded:
        await store_layouts(session, {one.layout.id: one.layout for one in encoded}.values())
        ids = await ensure_entity_ids(session, list(grouped))
    sums = await _month_sums(session, month, set(ids.values()) - packed - set(alone))
    # A day earlier than one its month holds (a catch-up goes newest first) goes into the month's
    # row, whose sums are then summed again in day order from one row, not from a row per day;
    # with ``render``, every entity's day goes into its month row, written with its report rows.
    later = {entity_id for entity_id, (_, mask, _) in sums.items() if int(mask) >> day.day}
    rewrite = packed | later | (set(ids.values()) if render is not None else set())
    packs, _ = await _read_months(session, month, rewrite)
    for days in packs.values():
        days.pop(day.day, None)
    alone_rows: list[tuple[int, EncodedDay]] = []
    added: dict[str, dict[int, EncodedDay]] = {}
    summed_again = packed | later | set(alone)
    for one in encoded:
        entity_id = ids[(one.entity_kind, one.entity)]
        if entity_id in rewrite:
            packs.setdefault(entity_id, {})[day.day] = (one.layout.id, one.data)
        else:
            alone_rows.append((entity_id, one))
        if entity_id not in summed_again:
            added.setdefault(one.entity_kind, {})[entity_id] = one
    await _write_packs(session, month, packs, render)
    await _insert_day_rows(session, month, day.day, alone_rows)
    for by_id in added.values():
        await _add_to_month(session, month, day.day, by_id, sums)
    await recompute_months(session, month, summed_again)
    await _bump_generation(session)


async def _insert_day_rows(
    session: AsyncSession, month: int, day: int, days: Sequence[tuple[int, EncodedDay]]
) -> None:
    """One row of its own per entity holding ``day`` alone (part ``day``)."""
    if days:
        bit = 1 << (day - 1)
        rows = [(entity_id, month, day, bit, pack_day(one.layout.id, one.data)) for entity_id, one in days]
        await _insert_rows(
            session, "rollup_day_packs", ("entity_id", "month", "part", "day_mask", "data"), rows
        )


async def _read_months(
    session: AsyncSession, month: int, ids: Collection[int]
) -> tuple[dict[int, MonthDays], set[int]]:
    """These entities' stored days of the month, every row of each joined (its month row and its
    days on rows of their own), and which of them have more than one row."""
    packs: dict[int, MonthDays] = {}
    split: set[int] = set()
    for chunk in _chunks(sorted(set(ids))):
        rows = await session.execute(
            select(RollupDayPack.entity_id, RollupDayPack.day_mask, RollupDayPack.data).where(
                RollupDayPack.month == month, RollupDayPack.entity_id.in_(chunk)
            )
        )
        for entity_id, mask, data in rows:
            if entity_id in packs:
                split.add(entity_id)
            packs.setdefault(entity_id, {}).update(unpack_month(mask, data))
    return packs, split


MonthDays = dict[int, tuple[int, bytes]]
"""One entity's stored days of a month: ``{day of month: (layout id, vector)}``."""


@dataclass(frozen=True)
class MonthWritten:
    """What a renderer wrote for one entity's month: the key of the configuration it was written
    with, the daily report rows (``rendered.py``; None when none can be written for this key:
    the month is then answered live), and each figure's values on the month's stored days in day
    order, with the one layout of those days (``figures`` None when the report rows are None)."""

    key: int
    fragment: bytes | None
    layout_id: int = 0
    figures: dict[str, Column] | None = None


Renderer = Callable[[int, dict[int, tuple[str, MonthDays]], dict[int, Layout]], dict[int, MonthWritten]]
"""Writes months' daily report rows and figures (``service.renderer``): given the month,
``{entity id: (kind, its days)}`` and their layouts, a :class:`MonthWritten` for every one."""


async def _write_packs(
    session: AsyncSession, month: int, packs: dict[int, MonthDays], render: Renderer | None = None
) -> None:
    """These entities' rows of the month written as given (a row without days is deleted), with
    their daily report rows and figure rows when ``render`` is given (else without: reports and
    series read them live)."""
    for chunk in _chunks(sorted(packs)):
        await session.execute(
            delete(RollupDayPack).where(RollupDayPack.month == month, RollupDayPack.entity_id.in_(chunk))
        )
    written = await _rendered(session, month, {i: days for i, days in packs.items() if days}, render)
    rows = []
    for entity_id, days in sorted(packs.items()):
        if days:
            mask, data = pack_month(days)
            mine = written.get(entity_id)
            key, fragment = (None, None) if mine is None else (mine.key, mine.fragment)
            rows.append(
                {
                    "entity_id": entity_id,
                    "month": month,
                    "day_mask": mask,
                    "data": data,
                    "render_key": key,
                    "rendered": fragment,
                }
            )
    if rows:
        await session.execute(insert(_PACKS), rows)  # Core: no ORM bookkeeping per row
    await _write_figure_months(session, month, packs, written)


async def _rendered(
    session: AsyncSession, month: int, packs: dict[int, MonthDays], render: Renderer | None
) -> dict[int, MonthWritten]:
    if render is None or not packs:
        return {}
    kinds: dict[int, str] = {}
    for chunk in _chunks(sorted(packs)):
        rows = await session.execute(
            select(RollupEntity.id, RollupEntity.kind).where(RollupEntity.id.in_(chunk))
        )
        kinds.update({entity_id: kind for entity_id, kind in rows})
    known = await layouts(session, {layout_id for days in packs.values() for layout_id, _ in days.values()})
    return render(month, {i: (kinds[i], days) for i, days in packs.items()}, known)


async def _write_figure_months(
    session: AsyncSession, month: int, packs: dict[int, MonthDays], written: dict[int, MonthWritten]
) -> None:
    """These entities' figure rows of the month (``figure_months.py``) replaced by what the
    renderer computed: none where it computed none (no renderer, two layouts, a kind not
    configured) or the entity has no day left, and a series over that month is computed live."""
    for chunk in _chunks(sorted(packs)):
        await session.execute(
            delete(_FIGURES).where(_FIGURES.c.month == month, _FIGURES.c.entity_id.in_(chunk))
        )
    rows: list[tuple[int, str, int, int, bytes]] = []
    for entity_id, days in sorted(packs.items()):
        mine = written.get(entity_id)
        if not days or mine is None or mine.figures is None:
            continue
        mask = sum(1 << (d - 1) for d in days)
        for name, values in mine.figures.items():
            rows.append(
                (entity_id, name, month, mine.key, figure_months.encode(mine.layout_id, mask, values))
            )
    if rows:
        await _insert_figure_months(session, rows)


async def _insert_figure_months(session: AsyncSession, rows: list[tuple[int, str, int, int, bytes]]) -> None:
    await _insert_rows(
        session, "rollup_figure_months", ("entity_id", "figure", "month", "render_key", "data"), rows
    )


async def _insert_rows(
    session: AsyncSession, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Rows inserted on the transaction's own connection: by binary COPY on PostgreSQL, by the
    driver's executemany on SQLite (a night's 10,000 figure rows through SQLAlchemy's Core
    executemany took 90–500 ms at load 4, most of it building and binding a dict per row)."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "postgresql":
        await driver.copy_records_to_table(table, records=rows, columns=columns)
    else:
        marks = ", ".join("?" * len(columns))
        # the table and its columns are this module's constants, never input
        await driver.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608


async def stale_renders(
    session: AsyncSession, keys: Collection[int], limit: int, months: Collection[int] | None = None
) -> list[tuple[int, int]]:
    """Up to ``limit`` (entity id, month) whose daily report rows were written with none of
    ``keys`` (or not at all), of ``months`` only when given (their first days' numbers). Read
    from ``ix_rollup_day_packs_render_key`` alone (no ORDER BY: on SQLite, ordering by the key
    sends the plan through the table, whose key column lies behind each row's numbers: 21–32 ms
    for 200 services instead of 0.3–0.7), so that the check that finds nothing to do, every
    catch-up, does not read the months' numbers."""
    key = RollupDayPack.render_key
    statement = select(RollupDayPack.entity_id, RollupDayPack.month).where(
        or_(key.is_(None), key.not_in(sorted(set(keys))))
    )
    if months is not None:
        statement = statement.where(RollupDayPack.month.in_(sorted(set(months))))
    # distinct: a month with days on rows of their own has a row per day, each without a key
    statement = statement.distinct().limit(limit)
    return [(entity_id, month) for entity_id, month in await session.execute(statement)]


async def stored_kinds(session: AsyncSession) -> list[str]:
    """The entity kinds that have entities in the store."""
    return list(await session.scalars(select(RollupEntity.kind).distinct().order_by(RollupEntity.kind)))


async def render_months(session: AsyncSession, months: Sequence[tuple[int, int]], render: Renderer) -> int:
    """These (entity id, month) rows' daily report rows (and figure rows) written again from
    their stored days, under each month's lock (in the caller's transaction); returns how many
    month rows were written. A month with days on rows of their own (``replace_day``) is written
    as one row again, with them."""
    by_month: dict[int, list[int]] = {}
    for entity_id, month in months:
        by_month.setdefault(month, []).append(entity_id)
    written = 0
    for month, ids in sorted(by_month.items()):
        await _lock_month(session, month)
        packs, split = await _read_months(session, month, ids)
        if split:
            await _write_packs(session, month, {i: packs.pop(i) for i in split}, render)
            written += len(split)
        done = await _rendered(session, month, packs, render)
        if done:
            await session.execute(
                update(_PACKS)
                .where(_PACKS.c.month == bindparam("m"), _PACKS.c.entity_id == bindparam("e"))
                .values(render_key=bindparam("k"), rendered=bindparam("r")),
                [{"m": month, "e": i, "k": one.key, "r": one.fragment} for i, one in done.items()],
            )
            await _write_figure_months(session, month, packs, done)
            written += len(done)
    if written:
        await _bump_generation(session)
    return written


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


_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = 5000) -> list[Sequence[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


MonthSums = dict[int, tuple[int, int, bytes]]
"""Entities' month sums as read: ``{entity id: (layout id, day mask, numbers)}``."""


async def _month_sums(session: AsyncSession, month: int, ids: Collection[int]) -> MonthSums:
    existing: MonthSums = {}
    for chunk in _chunks(sorted(ids)):
        rows = await session.execute(
            select(
                RollupMonth.entity_id, RollupMonth.layout_id, RollupMonth.day_mask, RollupMonth.data
            ).where(RollupMonth.month == month, RollupMonth.entity_id.in_(chunk))
        )
        existing.update({entity_id: (layout_id, mask, data) for entity_id, layout_id, mask, data in rows})
    return existing


async def _add_to_month(
    session: AsyncSession, month: int, day: int, added: dict[int, EncodedDay], existing: MonthSums
) -> None:
    """A new day of these entities (of one kind), later than any their months hold, added to
    their month sums (``existing``, as read): the nightly case, one read and one write of a row
    per entity, not a re-read of the month."""
    ids = sorted(added)
    if not ids:
        return
    if any(int(existing[i][1]) >> day for i in ids if i in existing):
        raise ValueError("a day added to month sums that hold a later day would not be summed in day order")
    known = await layouts(session, {existing[i][0] for i in ids if i in existing})
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
            frame = frames.frame_of_vectors(
                [found[i] for i in stored.layout_ids], stored.vectors, stored.starts, stored.stops
            )
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


class DayState(NamedTuple):
    """A day's newest run: its status, its start, whether it queried Prometheus, and whether it
    left the day's on-call history pending (its Prometheus figures stored), or is (or was, killed)
    a run storing that history alone."""

    status: str
    started_at: datetime
    prometheus: bool
    history_pending: bool = False


def settled(state: DayState | None, now: datetime, lease: timedelta, *, prometheus: bool) -> bool:
    """Whether a catch-up leaves the day alone: its newest run finished, or runs within its lease.

    A day finished without Prometheus (only the on-call history, before a Prometheus was
    configured) is not finished for a catch-up that queries Prometheus: it still holds about two
    weeks of those days. A day whose on-call history is pending is not finished for any catch-up:
    its history is stored alone (:func:`claim_history`), by a run that is left to its lease as
    any other. The same rule, in SQL, guards ``claim_day``'s ``unless_settled`` and
    ``claim_history``.
    """
    if state is None:
        return False
    if state.status in RunStatus.DONE:
        if state.history_pending:
            return False
        return state.prometheus or not prometheus
    return state.status == RunStatus.RUNNING and now - state.started_at < lease


async def day_states(session: AsyncSession, first: date, last: date) -> dict[date, DayState]:
    """The newest run of every day in ``[first, last]`` that has runs."""
    newest = (
        select(RollupRun.day, func.max(RollupRun.id).label("id"))
        .where(RollupRun.day.between(first, last))
        .group_by(RollupRun.day)
        .subquery()
    )
    rows = await session.execute(
        select(
            RollupRun.day,
            RollupRun.status,
            RollupRun.started_at,
            func.coalesce(RollupRun.prometheus, true()).label("prometheus"),
            _history_pending(RollupRun).label("history_pending"),
        ).join(newest, RollupRun.id == newest.c.id)
    )
    return {
        row.day: DayState(row.status, row.started_at, bool(row.prometheus), bool(row.history_pending))
        for row in rows
    }


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


async def days_held(
    session: AsyncSession, kind: str, names: Collection[str], days: Collection[date]
) -> set[date]:
    """Which of ``days`` some entity of ``kind`` named in ``names`` has stored: the day bits of
    their month rows (only the months of ``days`` are read), a few thousand names at a time."""
    months = sorted({day_number(day.replace(day=1)) for day in days})
    held: dict[int, int] = {}
    for chunk in _chunks(sorted(names)):
        rows = await session.execute(
            select(RollupDayPack.month, RollupDayPack.day_mask)
            .join(RollupEntity, RollupEntity.id == RollupDayPack.entity_id)
            .where(RollupEntity.kind == kind, RollupEntity.name.in_(chunk), RollupDayPack.month.in_(months))
        )
        for month, mask in rows:
            held[month] = held.get(month, 0) | int(mask)
    return {day for day in days if held.get(day_number(day.replace(day=1)), 0) >> (day.day - 1) & 1}


async def delete_before(
    session: AsyncSession, day: date, *, render: Renderer | None = None
) -> tuple[int, int]:
    """Deletes days and runs before ``day`` (month sums included), and entities left without
    days; returns how many entity days and runs. The month the cut falls in keeps its later days
    (and, with ``render``, its daily report rows and figure rows written again)."""
    month = day_number(day.replace(day=1))
    if day.day != 1:
        await _lock_month(session, month)
    old_masks = await session.scalars(select(RollupDayPack.day_mask).where(RollupDayPack.month < month))
    values = sum(int(mask).bit_count() for mask in old_masks)
    await session.execute(delete(RollupDayPack).where(RollupDayPack.month < month))
    await session.execute(delete(RollupMonth).where(RollupMonth.month < month))
    await session.execute(delete(RollupFigureMonth).where(RollupFigureMonth.month < month))
    if day.day != 1:
        earlier = (1 << (day.day - 1)) - 1
        rows = await session.execute(
            select(RollupDayPack.entity_id, RollupDayPack.day_mask).where(
                RollupDayPack.month == month, RollupDayPack.day_mask.op("&")(earlier) != 0
            )
        )
        cut: set[int] = set()
        for entity_id, mask in rows:
            values += (int(mask) & earlier).bit_count()
            cut.add(entity_id)
        packs, _ = await _read_months(session, month, cut)  # every row of theirs, kept whole
        packs = {i: {d: kept for d, kept in days.items() if d >= day.day} for i, days in packs.items()}
        await _write_packs(session, month, packs, render)
        await recompute_months(session, month, set(packs))
    runs_deleted = await session.execute(delete(RollupRun).where(RollupRun.day < day))
    await session.execute(delete(RollupEntity).where(~_has_days(RollupEntity.id)))
    await _bump_generation(session)
    return values, rowcount(runs_deleted)


def _has_days(entity_id: Any, first: date | None = None, last: date | None = None) -> ColumnElement[bool]:
    """Whether the entity has a stored day (within ``[first, last]`` when given): index probes of
    its month rows, the months at either end checked day by day with their masks."""
    conditions: list[ColumnElement[bool]] = [RollupDayPack.entity_id == entity_id]
    if first is not None and last is not None:
        if first > last:
            return literal(False)
        first_month = day_number(first.replace(day=1))
        last_month = day_number(last.replace(day=1))
        from_first = ~((1 << (first.day - 1)) - 1) & _ALL_DAYS  # days >= first.day
        to_last = (1 << last.day) - 1  # days <= last.day
        mask = RollupDayPack.day_mask
        if first_month == last_month:
            conditions += [RollupDayPack.month == first_month, mask.op("&")(from_first & to_last) != 0]
        else:
            conditions.append(
                or_(
                    RollupDayPack.month.between(first_month + 1, last_month - 1),
                    and_(RollupDayPack.month == first_month, mask.op("&")(from_first) != 0),
                    and_(RollupDayPack.month == last_month, mask.op("&")(to_last) != 0),
                )
            )
    return exists().where(*conditions)


_ALL_DAYS = (1 << 31) - 1


async def day_counts(session: AsyncSession) -> dict[int, int]:
    """How many entities have each stored day (by day number): for checks and drills."""
    counts: dict[int, int] = {}
    for month, mask in await session.execute(select(RollupDayPack.month, RollupDayPack.day_mask)):
        for d in range(31):
            if mask >> d & 1:
                counts[month + d] = counts.get(month + d, 0) + 1
    return counts


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
    """Stored days as read: per row its entity, day number and layout; the rows' numbers lie
    back to back in ``vectors`` (row ``i`` from float64 ``starts[i]`` to ``stops[i]``), as they
    were packed, so that ``frames.frame_of_vectors`` reads them without a slice per day."""

    entity_ids: list[int]
    days: list[int]
    layout_ids: list[int]
    vectors: bytes = b""
    starts: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stops: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @cached_property
    def blobs(self) -> list[bytes]:
        """Each row's vector as its own bytes."""
        size = FLOAT.itemsize
        return [
            self.vectors[a * size : b * size]
            for a, b in zip(self.starts.tolist(), self.stops.tolist(), strict=True)
        ]


# The two reads below return up to tens of thousands of month rows (every service over three
# years: a million days): they run on the driver's own connection, inside the session's
# transaction, with SQL written once per dialect. Through SQLAlchemy's Core result each row costs
# about 1.3 µs more (a Row object, type processing). The rows' days come out of their packing
# with NumPy over all rows at once (``_unpacked``), not with a Python loop per day.
_ONE_ENTITY_MONTHS = (
    "SELECT {columns} FROM rollup_day_packs p JOIN rollup_entities e ON e.id = p.entity_id"
    " WHERE e.kind = {0} AND e.name = {1} AND p.month BETWEEN {2} AND {3} ORDER BY p.month, p.part"
)
_DAYS_COLUMNS = "p.entity_id, p.month, p.day_mask, p.data"  # what _unpacked reads
_GENERATION = "(SELECT generation FROM rollup_state WHERE id = 1)"
_DAYS_OF_ENTITIES = (
    "SELECT entity_id, month, day_mask, data FROM rollup_day_packs"
    " WHERE entity_id {ids} AND month BETWEEN {first} AND {last} ORDER BY entity_id, month, part"
)


def _months_of(first: date, last: date) -> tuple[int, int]:
    return day_number(first.replace(day=1)), day_number(last.replace(day=1))


async def entity_days(session: AsyncSession, kind: str, entity: str, first: date, last: date) -> StoredDays:
    """One entity's stored days in ``[first, last]``, in day order: one range of the primary key
    (a row per month)."""
    rows = await _entity_months(session, _DAYS_COLUMNS, kind, entity, first, last)
    return _unpacked(rows, day_number(first), day_number(last))


async def _entity_months(
    session: AsyncSession, columns: str, kind: str, entity: str, first: date, last: date
) -> list[Any]:
    """``columns`` of one entity's month rows overlapping ``[first, last]``, in month order: one
    range of the primary key, on the driver's connection."""
    statement = _ONE_ENTITY_MONTHS.replace("{columns}", columns)
    parameters = (kind, entity, *_months_of(first, last))
    return await _fetch(
        session,
        statement.format("?", "?", "?", "?"),
        statement.format("$1", "$2", "$3", "$4"),
        parameters,
        parameters,
    )


async def entity_days_at(
    session: AsyncSession, kind: str, entity: str, first: date, last: date
) -> tuple[StoredDays, int]:
    """:func:`entity_days` and the store's generation they were read at, in one statement (one
    snapshot, one round trip: on PostgreSQL the separate read of the generation was a round trip
    of 0.4–0.6 ms of a cold series' ~4 ms in-process; over HTTP the cold Grafana series went from
    3.30× a bare app's time to 3.19× in the median of eighteen runs alternating with main, load
    1.4–3.6). Without any month row in the range the statement returns no generation: it is
    then read on its own (the rare, empty case)."""
    columns = f"{_DAYS_COLUMNS}, {_GENERATION}"
    rows = await _entity_months(session, columns, kind, entity, first, last)
    if not rows:
        return _unpacked(rows, day_number(first), day_number(last)), await generation(session)
    found = int(rows[0][4]) if rows[0][4] is not None else -1
    return _unpacked([row[:4] for row in rows], day_number(first), day_number(last)), found


async def entity_rendered(
    session: AsyncSession, kind: str, entity: str, first: date, last: date
) -> tuple[list[tuple[int, int, int | None, bytes | None]], int]:
    """One entity's months overlapping ``[first, last]``: (month, day mask, render key, daily
    report rows as stored: ``rendered.py``), in month order, and the store's generation they
    were read at (one statement: one snapshot, one round trip); one range of the primary key,
    the months' numbers not read."""
    columns = f"p.month, p.day_mask, p.render_key, p.rendered, {_GENERATION}"
    rows = await _entity_months(session, columns, kind, entity, first, last)
    generation = int(rows[0][4]) if rows and rows[0][4] is not None else -1
    return [(month, mask, key, fragment) for month, mask, key, fragment, _ in rows], generation


_FIGURE_MONTHS = (
    "SELECT f.month, f.render_key, f.data, {generation} FROM rollup_figure_months f"
    " JOIN rollup_entities e ON e.id = f.entity_id"
    " WHERE e.kind = {0} AND e.name = {1} AND f.figure = {2} AND f.month BETWEEN {3} AND {4}"
    " UNION ALL SELECT p.month, NULL, NULL, {generation} FROM rollup_day_packs p"
    " JOIN rollup_entities e ON e.id = p.entity_id"
    " WHERE e.kind = {5} AND e.name = {6} AND p.month BETWEEN {7} AND {8}"
)


@dataclass(frozen=True)
class FigureMonths:
    """One figure's month rows of one entity ((month, render key, data), in month order), the
    entity's month rows of days in the same range (their months, read from the primary key's
    index alone), and the store's generation they were read at."""

    rows: list[tuple[int, int, bytes]]
    months: list[int]
    generation: int


async def figure_months_of(
    session: AsyncSession, kind: str, entity: str, figure: str, first: date, last: date
) -> FigureMonths:
    """What a daily series of one figure reads instead of the months' numbers: its month rows
    (37 rows of ~260 bytes for three years, one primary-key range, never TOASTed) and, to check
    them against, which month rows of days exist, with the generation: one statement, one round
    trip."""
    months = _months_of(first, last)
    rows = await _fetch(
        session,
        _FIGURE_MONTHS.format(*["?"] * 9, generation=_GENERATION),
        _FIGURE_MONTHS.format("$1", "$2", "$3", "$4", "$5", "$1", "$2", "$4", "$5", generation=_GENERATION),
        (kind, entity, figure, *months, kind, entity, *months),
        (kind, entity, figure, *months),
    )
    found: list[tuple[int, int, bytes]] = []
    held: list[int] = []
    generation = -1
    for month, key, data, at in rows:
        if data is None:
            held.append(int(month))
        else:
            found.append((int(month), int(key), bytes(data)))
        if at is not None:
            generation = int(at)
    # A month with a day on a row of its own has a figure row without that day: it is left out,
    # so that the series computes that month live (``figure_months.daily_values``).
    split = {month for month, count in Counter(held).items() if count > 1}
    found = sorted(row for row in found if row[0] not in split)
    return FigureMonths(found, sorted(held), generation)


async def days_of_entities(session: AsyncSession, ids: Sequence[int], first: date, last: date) -> StoredDays:
    """The stored days in ``[first, last]`` of the entities ``ids``, by entity then day."""
    if not ids:
        return StoredDays([], [], [])
    months = _months_of(first, last)
    marks = ", ".join("?" * len(ids))
    rows = await _fetch(
        session,
        _DAYS_OF_ENTITIES.format(ids=f"IN ({marks})", first="?", last="?"),
        _DAYS_OF_ENTITIES.format(ids="= ANY($1::integer[])", first="$2", last="$3"),
        (*ids, *months),
        (list(ids), *months),
    )
    return _unpacked(rows, day_number(first), day_number(last))


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


_BITS = np.arange(31, dtype=np.int64)


def _unpacked(rows: Sequence[Any], first: int, last: int) -> StoredDays:
    """The days in ``[first, last]`` (day numbers) of month rows (entity, month, mask, data), in
    row order then day order: the headers and masks of all rows decoded at once by NumPy, then
    the rows' vectors joined, each day's place in them (``layouts.pack_month`` is the packing)."""
    if not rows:
        return StoredDays([], [], [])
    entity_column, month_column, mask_column, data_column = zip(*rows, strict=True)
    held = (np.asarray(mask_column, dtype=np.int64)[:, None] >> _BITS) & 1 != 0
    row_of, offset = np.nonzero(held)
    days = np.asarray(month_column, dtype=np.int64)[row_of] + offset
    counts = held.sum(axis=1).tolist()
    ids: list[memoryview] = []
    ends: list[memoryview] = []
    vectors: list[memoryview] = []
    for data, count in zip(data_column, counts, strict=True):
        view = memoryview(data)
        ids.append(view[: count * PACK_ID.itemsize])
        ends.append(view[count * PACK_ID.itemsize : count * PACK_HEADER])
        vectors.append(view[count * PACK_HEADER :])
    layout_ids = np.frombuffer(b"".join(ids), dtype=PACK_ID)
    stop = np.frombuffer(b"".join(ends), dtype=PACK_END).astype(np.int64)
    joined = b"".join(vectors)
    lengths = np.asarray([len(vector) for vector in vectors], dtype=np.int64) // FLOAT.itemsize
    # every stored row holds a day (an emptied row is deleted): a row's last end is its length
    row_numbers = stop[np.cumsum(counts) - 1] if len(stop) else np.zeros(len(counts), dtype=np.int64)
    if not np.array_equal(row_numbers, lengths):
        raise ValueError("a packed month's header does not match its vectors")
    base = np.cumsum(lengths) - lengths
    stop = stop + base[row_of]
    start = np.empty_like(stop)
    start[:1] = 0
    start[1:] = stop[:-1]
    keep = np.flatnonzero((days >= first) & (days <= last))
    if len(keep) < len(days):
        row_of, days, layout_ids, start, stop = (a[keep] for a in (row_of, days, layout_ids, start, stop))
    one_entity = entity_column.count(entity_column[0]) == len(entity_column)
    entities = None if one_entity else np.asarray(entity_column, dtype=np.int64)[row_of]
    # Rows come by entity, month and part, and the days on rows of their own are later than those
    # of their month's row (``replace_day`` sees to it): day order, as summing needs. Checked, and
    # put back in day order should it not be.
    step = np.diff(days)
    if entities is not None:
        step = np.where(np.diff(entities) != 0, 1, step)
    if len(step) and bool(np.any(step <= 0)):
        order = np.argsort(days, kind="stable") if entities is None else np.lexsort((days, entities))
        days, layout_ids, start, stop = (a[order] for a in (days, layout_ids, start, stop))
        if entities is not None:
            entities = entities[order]
    entity_ids = [entity_column[0]] * len(days) if entities is None else entities.tolist()
    return StoredDays(entity_ids, days.tolist(), layout_ids.tolist(), joined, start, stop)

"""The alert journal: every Alertmanager webhook is stored as received, answered 202, and applied
to incidents right behind the answer.

Why (issue 13's storm goal, ``bench/alert_storm.py``): when the webhook itself opened the incident,
stored the alerts, routed, started the escalation and wrote the outbox (:mod:`app.alerts.intake`,
group-committed), a storm cost ~1.3 ms of server CPU per webhook against a bare FastAPI endpoint's
~0.2 ms (its ``json.loads``): 0.11–0.15× bare's throughput, p99 5–10× bare's, and a py-spy profile
left no single item to cut. A webhook that validates the payload and inserts the raw body into this
table (group-committed: one transaction per batch) measured 0.64× bare, p99 2.1×.
Built (``bench/alert_storm.py``, default storm, worker on, 2026-12-06 ~22:55, load ~2): 0.45–0.52×
bare by answering throughput, p99 3.0–3.2× bare's, on SQLite; 0.50–0.53× and 1.7–2.2× with two
PostgreSQL replicas; each phase's last row applied 0.7–2.2 s after its last answer. The server's
CPU per webhook with the applying is what it was (~2 ms): the answers are fast because the work
behind them waits for them (see the runtime's scheduling), not because it shrank. Then the answer's
own path was cut (2026-12-07; 244 → 140 µs of CPU a webhook in-process, bare ~90): on SQLite a
batch's transaction is one hop to the database thread (:func:`insert`, through
:func:`app.db.sqlite_transaction`; it had been a statement and a hop per row), the body validated
without building models (:func:`app.alerts.schemas.check_webhook`), the access line written by
the log handler itself: 0.655× bare in the median of fourteen storms against main's 0.403×
(load 3–6; ``docs/performance.md``).
So the promise of the 2xx is kept, and moved: it means "durably journaled" (the row is committed),
the way PagerDuty's Events API (202 + dedup key), Opsgenie (202 + requestId) and Grafana OnCall
answer. ``GET /api/v1/alerts/intake/{id}`` tells whether the row is queued, applied (and to which
incident) or failed.

Applying (:func:`apply_next`, run by :class:`app.alerts.runtime.AlertRuntime` on every replica):

* rows are claimed oldest first, inside the transaction that applies them, with ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL; each body is parsed once (the webhook's pydantic model) and the batch is
  stored by the set-based :func:`app.alerts.intake.store_in`; the rows are marked applied in that
  same transaction, so a row is applied exactly once (a rolled-back or interrupted transaction
  leaves its rows queued, for the restart or another replica);
* **a group's rows in id order**: Alertmanager sends a group's next notification only after the
  previous one got its 2xx, so ids order a group's rows. A batch holds at most one row per group
  (the intake reads what the row before it wrote), and only a group's first queued row: a row whose
  earlier row another replica holds (skipped by ``SKIP LOCKED``) is left for later. Firing then
  resolved applied the other way round would leave an incident open for good;
* a row whose apply fails for a reason other than the database (a bug, a body this version cannot
  read, values the database refuses such as a NUL character on PostgreSQL) is retried alone,
  and marked ``failed`` after :data:`MAX_ATTEMPTS` (logged, counted in
  ``panorama_alert_journal_failed``): it holds neither its group nor the journal back for ever.
  A database that cannot be used (:func:`transient`) leaves every row queued, attempts not
  counted; the runtime retries with a backoff, for as long as the outage lasts;
* but an error :func:`transient` calls the database's may be one row's alone (a statement timeout
  or the server out of memory on that row, while the rows around it apply): left uncounted, such
  a row was retried for ever, and since the oldest rows are claimed first, every batch it was in
  failed with it. So a batch that fails with such an error is also applied row by row, and a row
  that fails alone is counted when, right after, the database commits the write that counts it
  (a write, not a read: a full disk still answers ``SELECT 1``); after
  :data:`MAX_TRANSIENT_ATTEMPTS` it is failed with its error named (the status route, the metric,
  one log line). When that write fails too, the database is what fails: nothing is counted, the
  pass fails, and the runtime backs off as before. Rows that only failed pause the applier with
  the same backoff, so a row's attempts are spread over a few seconds, not milliseconds. A row
  applied alone must be its group's first queued row on SQLite as on PostgreSQL: the row behind a
  failing one waits until that one is applied or given up (before 2026-12-07 a batch's later row of
  the group could be applied alone on SQLite, ahead of the row that failed).

Times (since 2026-12-07): a row is applied at its own ``received_at`` — the incident opens, is
routed, updated or resolved when Alertmanager delivered, and its escalation's clock starts then —
while the pages it causes are written and stamped when applied (:func:`app.alerts.intake.store_in`
says which time goes where). Before, everything was stamped with the applier's clock: after a storm
or a restart the incident looked younger than it was, and a 5-minute wait counted from the apply.

An operator may act on an incident while its group's next row waits (an ack before the queued
resolve is applied): the resolve is then stamped no earlier than that act (:mod:`app.alerts.incidents`
says why), so the incident's times stay ordered. A firing row applied after its group's incident was
resolved (by hand, while the row waited) opens a new incident, which pages, stamped no earlier than
that resolve (:func:`app.alerts.intake.store_in` says why): never one that opened before the last
one closed.

Heartbeats (:mod:`app.alerts.heartbeats`) are seen when their row is applied, at most about a
second after the 202 on a quiet system (intervals are minutes); a batch holds at most one row that
touches heartbeat rows, which are locked before incidents, the order every writer follows. What the
worker decides by the clock — a heartbeat overdue, an escalation step due — is judged as of the
journal's horizon, the receipt of its oldest row still queued (:mod:`app.alerts.horizon`): a row
waiting here is never mistaken for one that did not arrive.

Rows applied (or given up) are deleted after :data:`KEEP` by the applier itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import intake, repository
from app.alerts.models import group_digest
from app.alerts.schemas import WebhookPayload
from app.config import Settings
from app.db import is_postgresql

log = logging.getLogger("panorama.alerts")

MAX_ATTEMPTS = 3  # failed applies (not database errors) before a row is given up
# Failed applies with an error the database could explain (:func:`transient`), each counted only when
# the database committed a write right after it (:func:`_count_failure`), before a row is given up.
MAX_TRANSIENT_ATTEMPTS = 5
KEEP = timedelta(days=1)  # how long applied and failed rows stay (the status route reads them)
INTAKE_PATH = "/api/v1/alerts/intake/{id}"


def intake_path(entry_id: int) -> str:
    return INTAKE_PATH.format(id=entry_id)


@dataclass(frozen=True)
class Received:
    """One webhook as the journal keeps it: its raw body, validated, not parsed again here."""

    received_at: datetime
    group_key: str
    body: bytes
    alerts: int


async def insert(sessions: async_sessionmaker[AsyncSession], received: Sequence[Received]) -> list[int]:
    """Journals ``received`` in one transaction; their ids, once committed."""
    return await repository.insert_journal(
        sessions,
        [
            repository.JournalRow(r.received_at, group_digest(r.group_key), r.body, r.alerts, "queued", 0)
            for r in received
        ],
    )


@dataclass
class Pass:
    """What one :func:`apply_next` did."""

    claimed: int = 0
    applied: int = 0
    failed: int = 0
    retried: int = 0  # rows whose apply failed (counted, not given up yet): retried after a pause
    lags: list[float] = field(default_factory=list)  # seconds from received to applied, per row
    changed: bool = False  # an incident changed (the outbox may hold new deliveries)


@dataclass(frozen=True)
class _Row:
    entry: repository.QueuedEntry
    webhook: intake.Webhook


async def apply_next(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, key: bytes, *, limit: int
) -> Pass:
    """Applies the next batch of queued rows (at most ``limit`` claimed), in one transaction.
    Raises database errors (nothing applied); a failure of anything else is retried row by row."""
    outcome = Pass()
    claimed: list[repository.QueuedEntry] = []
    now = utcnow()
    try:
        async with sessions.begin() as session:
            claimed = await repository.claim_journal(session, limit)
            outcome.claimed = len(claimed)
            if not claimed:
                return outcome
            rows, poisoned = await _ready(session, settings, key, claimed)
            for entry, error in poisoned:  # can never succeed: failed at once
                await _give_up(session, entry, error, now)
                outcome.failed += 1
            if not rows:  # every row claimed waits for an earlier one another replica holds
                return outcome
            changed = await intake.store_in(session, [r.webhook for r in rows], now)
            await repository.mark_journal_applied(
                session, [(r.entry.id, incident) for r, incident in zip(rows, changed, strict=True)], now
            )
            outcome.applied = len(rows)
            outcome.lags = [(now - r.entry.received_at).total_seconds() for r in rows]
            outcome.changed = any(incident is not None for incident in changed)
            return outcome
    except Exception as exc:  # a bug or a body this version cannot apply: find which, alone
        if transient(exc) and not claimed:
            raise  # nothing claimed: the database could not be used at all
        log.warning(
            "applying %s alert journal rows together failed (%s); applying them one by one",
            len(claimed),
            _describe(exc),
        )
    return await _apply_alone(sessions, settings, key, [entry.id for entry in claimed])


async def _ready(
    session: AsyncSession,
    settings: Settings,
    key: bytes,
    claimed: Sequence[repository.QueuedEntry],
    *,
    alone: bool = False,
) -> tuple[list[_Row], list[tuple[repository.QueuedEntry, str]]]:
    """The claimed rows this batch applies (each its group's first queued row, at most one per group
    and one that touches heartbeats), in the order every writer locks in; and the unreadable ones.
    ``alone``: rows claimed one by one (:func:`_apply_alone`), which may follow their group's
    earlier row, still queued after it failed: on SQLite too, each must be its group's first."""
    heads: dict[str, int] | None = None
    if alone or await is_postgresql(session):  # SKIP LOCKED (or a claim by id) may pass earlier rows
        heads = await repository.journal_heads(session, sorted({e.group_digest for e in claimed}))
    rows: list[_Row] = []
    poisoned: list[tuple[repository.QueuedEntry, str]] = []
    seen: set[str] = set()
    heartbeats = False
    for entry in claimed:
        if entry.group_digest in seen or (heads is not None and heads.get(entry.group_digest) != entry.id):
            seen.add(entry.group_digest)
            continue
        seen.add(entry.group_digest)
        try:
            payload = WebhookPayload.model_validate_json(entry.body)
        except ValidationError as exc:
            poisoned.append((entry, f"the body cannot be read: {exc.error_count()} problem(s)"))
            continue
        webhook = intake.webhook(settings, payload, key, received_at=entry.received_at)
        if webhook.heartbeats:
            if heartbeats:
                continue  # one per batch: its group's later rows wait too (seen)
            heartbeats = True
        rows.append(_Row(entry, webhook))
    rows.sort(key=lambda r: sorted(r.webhook.keys))
    return rows, poisoned


async def _apply_alone(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, key: bytes, entry_ids: Sequence[int]
) -> Pass:
    """After a batch failed: each row in its own transaction; a row that fails is counted
    (:func:`_count_failure`), and given up after its limit."""
    outcome = Pass()
    for entry_id in entry_ids:
        now = utcnow()
        try:
            async with sessions.begin() as session:
                claimed = await repository.claim_journal_entry(session, entry_id)
                if not claimed:
                    continue  # applied meanwhile (another replica) or held
                rows, poisoned = await _ready(session, settings, key, claimed, alone=True)
                for entry, error in poisoned:
                    await _give_up(session, entry, error, now)
                    outcome.failed += 1
                changed = await intake.store_in(session, [r.webhook for r in rows], now)
                await repository.mark_journal_applied(
                    session, [(r.entry.id, i) for r, i in zip(rows, changed, strict=True)], now
                )
                outcome.claimed += 1
                outcome.applied += len(rows)
                outcome.lags += [(now - r.entry.received_at).total_seconds() for r in rows]
                outcome.changed = outcome.changed or any(i is not None for i in changed)
        except Exception as exc:
            outcome.claimed += 1
            given_up = await _count_failure(sessions, entry_id, exc, now)
            if given_up is None:
                continue  # applied or held elsewhere meanwhile
            if given_up:
                outcome.failed += 1
            else:
                outcome.retried += 1
    return outcome


async def _count_failure(
    sessions: async_sessionmaker[AsyncSession], entry_id: int, exc: Exception, now: datetime
) -> bool | None:
    """Counts one failed apply of the row, in a transaction of its own; whether the row is given
    up (None: no longer queued here, nothing counted).

    A failure the database could explain (:func:`transient`) counts only when the database
    commits this very write right after it: then it is usable, other rows apply, and the failure
    is the row's (e.g. a statement timeout, or the server out of memory, on that row alone). When
    the write fails too, the database is down or full: ``exc`` is raised, nothing is counted, and
    the runtime retries every row with a backoff, for as long as it takes. A write, not a read, is
    the evidence: a full disk still answers ``SELECT 1``.
    """
    fault = transient(exc)
    error = _describe(exc)
    if not fault:
        log.exception("applying alert journal row %s failed", entry_id, exc_info=exc)
    try:
        async with sessions.begin() as session:
            found = await repository.claim_journal_entry(session, entry_id)
            if not found:
                return None
            attempts = found[0].attempts + 1
            limit = MAX_TRANSIENT_ATTEMPTS if fault else MAX_ATTEMPTS
            give_up = attempts >= limit
            await repository.record_journal_failure(session, entry_id, error, now, give_up=give_up)
    except Exception as recording:
        if fault and transient(recording):
            raise exc from recording  # the database cannot be used: an outage, not the row
        raise
    if give_up:
        log.error("alert journal row %s given up after %s failed applies: %s", entry_id, attempts, error)
    elif fault and attempts == 1:
        log.warning(
            "alert journal row %s failed though the database takes writes (%s); tried up to %s times",
            entry_id,
            error,
            limit,
        )
    return give_up


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be used (down, restarting, a lost connection, a
    deadlock or serialization failure, a lock or statement timeout): retried with a backoff, every row
    left queued. The database refusing what a row holds (e.g. PostgreSQL and a NUL character, SQLSTATE
    22021) is that row's failure, as is any exception that is not the database's."""
    if isinstance(exc, (OSError, TimeoutError, OperationalError, InterfaceError, DisconnectionError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None)
    if isinstance(code, str):  # PostgreSQL: the class says whose fault it is
        return code[:2] in TRANSIENT_SQLSTATE_CLASSES or code in TRANSIENT_SQLSTATES
    return isinstance(exc, DBAPIError) and not isinstance(exc, (DataError, IntegrityError, ProgrammingError))


# Connection exception, transaction rollback (serialization, deadlock), insufficient resources,
# operator intervention (shutdown, cancel), system error; and "lock not available".
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
TRANSIENT_SQLSTATES = frozenset({"55P03"})


def _describe(exc: BaseException) -> str:
    """The error as the status route tells it: its kind and message, not the statement or its values."""
    told = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(exc).__name__}: {told}"[:500]


async def _give_up(session: AsyncSession, entry: repository.QueuedEntry, error: str, now: datetime) -> None:
    log.error("alert journal row %s given up: %s", entry.id, error)
    await repository.record_journal_failure(session, entry.id, error, now, give_up=True)


@dataclass(frozen=True)
class Backlog:
    """The rows waiting to be applied (by any replica): how many, and the oldest one's receipt."""

    rows: int
    oldest: datetime | None

    def age(self, now: datetime) -> float:
        """Seconds since the oldest queued row was received (0: none queued): a journal that does not
        move shows here, while the backlog alone may stay small."""
        return max((now - self.oldest).total_seconds(), 0.0) if self.oldest is not None else 0.0


async def backlog(sessions: async_sessionmaker[AsyncSession]) -> Backlog:
    """The rows waiting to be applied (by any replica)."""
    async with sessions() as session:
        return Backlog(*await repository.journal_backlog(session))


async def prune(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    async with sessions.begin() as session:
        return await repository.delete_journal_before(session, now - KEEP)


def utcnow() -> datetime:
    return datetime.now(UTC)

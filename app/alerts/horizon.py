"""How far the worker may trust what is applied: the journal's horizon.

The webhook answers 202 once its body is journaled, and the applier stores the incident change
right behind (:mod:`app.alerts.journal`). Everything the worker decides by comparing applied state
with the clock — a heartbeat last seen longer ago than its interval, an escalation step whose wait
is over — is wrong while a row that would change the answer is still queued: the Watchdog that came
back, the resolve of the incident about to be escalated, both durably received, neither applied.
After a storm, a restart or a short database outage that is a false "heartbeat missing" page, or an
escalation page for an incident Alertmanager had already resolved.

So the worker judges as of what was *received*: the horizon of a set of rows (a group's, or the
whole journal's for heartbeats, which may arrive in any group) is ``now``, or the receipt of its
oldest row still queued when there is one — up to that instant everything received is applied, and
applied-state comparisons made as of then are the ones the applier would not overturn. On a quiet
system the journal is empty and the horizon is ``now``; in a storm it trails by the apply lag (a
second or two), never more: the oldest queued row moves as rows are applied, so a steady flow of
new rows never holds anything back.

Bounded: a journal that stops moving (rows a replica holds and never commits, an applier that
hangs) must not silence the worker for ever. The horizon never trails ``now`` by more than the
caller's ``longest`` (a heartbeat's interval, :data:`ESCALATION_HOLD` for pages): past it the
worker decides as before, and says the journal is stuck (a log line; the heartbeat's incident
names it; ``panorama_alert_journal_oldest_queued_seconds`` shows the age of the oldest queued row).

The same holds outside the worker: the daily rollup of the on-call history waits until no row
received before the day ended is queued (:func:`app.alerts.service.journal_waiting_since`), since
a day stored is final.

Never a write: the horizon is read in the caller's transaction (heartbeat rows and incidents are
locked by the caller as before; rows being applied by another replica are still queued until its
commit, so the horizon errs on the side of waiting).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import repository
from app.alerts.models import group_digest

# How long an escalation step due may wait for its group's queued rows (a resolve, most often) before
# it pages anyway: the applier trails the webhooks by a second or two, even in a storm.
ESCALATION_HOLD = timedelta(minutes=1)


@dataclass(frozen=True)
class Queued:
    """The receipt of the oldest queued journal row, of the whole journal and of each group with one."""

    oldest: datetime | None
    groups: dict[str, datetime]

    def of_group(self, group_key: str) -> datetime | None:
        return self.groups.get(group_digest(group_key))


async def queued(session: AsyncSession) -> Queued:
    """What is received and not applied yet (one read; nothing when the journal is empty)."""
    groups = await repository.oldest_queued_receipts(session)
    return Queued(min(groups.values(), default=None), groups)


async def oldest_queued(session: AsyncSession) -> datetime | None:
    """The receipt of the oldest row still queued in the whole journal (None: none)."""
    return await repository.oldest_queued_receipt(session)


def as_of(now: datetime, waiting_since: datetime | None, *, longest: timedelta) -> datetime:
    """The instant up to which everything received is applied: ``now``, or the receipt of the oldest
    row still queued (``waiting_since``), but never more than ``longest`` before ``now``."""
    if waiting_since is None or waiting_since >= now:
        return now
    return max(waiting_since, now - longest)


def stuck(now: datetime, waiting_since: datetime | None, *, longest: timedelta) -> bool:
    """Whether ``waiting_since`` is further back than the horizon may trail (the bound decided)."""
    return waiting_since is not None and waiting_since < now - longest

"""Group commit: webhooks that arrive together are stored in one transaction, each answered after it.

Why (measured with ``bench/alert_storm.py --profile``): in a storm every webhook queued for the
one SQLite writer connection, then paid for its own ``BEGIN IMMEDIATE``, its own flush of the
rows it added (one executemany per table) and its own ``COMMIT`` (a WAL append and, on
PostgreSQL, a WAL flush per transaction). Webhooks waiting for the writer now wait here instead:
whoever arrives while a batch is being stored joins the next one, and that batch runs as one
transaction — the rows of all its webhooks flushed together, one commit. Nobody is answered
before the commit of the transaction that holds their alerts, so "2xx only once durably stored"
holds exactly as before; a lone webhook on a quiet system is stored at once, alone.

A batch never holds two items that share a key (the group's digest; the heartbeat rows):
the intake of one webhook reads what the webhook before it wrote, and with a shared key the
later one waits for the next batch. Items are stored in the order of their keys, so replicas
on PostgreSQL lock incidents in one order (no deadlock between two batches).

When the batch's transaction fails, nobody is failed for somebody else's sake: each webhook is
stored again in a transaction of its own and answered with its own outcome (a 5xx only when its
own transaction fails too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Store = Callable[[Sequence[T]], Awaitable[list[R]]]


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    keys: frozenset[str]
    answer: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """Stores submitted items with ``store`` (one transaction per call), many per call when they
    arrive together; ``limit`` bounds a batch (and so the time a transaction holds its locks)."""

    def __init__(self, store: Store[T, R], *, limit: int = 64) -> None:
        self._store = store
        self._limit = limit
        self._queue: list[_Waiting[T, R]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether items are being stored or wait for it (their submitters wait for the answer)."""
        return self._task is not None

    async def submit(self, item: T, keys: frozenset[str]) -> R:
        """Stores ``item`` (in a batch with others, or alone) and returns what ``store`` returned
        for it, once the transaction that stored it has committed; raises what its storing raised."""
        loop = asyncio.get_running_loop()
        waiting: _Waiting[T, R] = _Waiting(item, keys, loop.create_future())
        self._queue.append(waiting)
        if self._task is None:
            # A task of its own: a request that goes away must not cancel the others' transaction.
            self._task = loop.create_task(self._drain(), name="intake-group-commit")
        return await waiting.answer

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                await self._commit(batch)
        finally:
            self._task = None
            for waiting in self._queue:  # only when stopped by a cancellation (shutdown)
                waiting.answer.cancel()
            self._queue = []

    def _take(self) -> list[_Waiting[T, R]]:
        """The next batch: the oldest items first, none sharing a key with another, in key order."""
        batch: list[_Waiting[T, R]] = []
        rest: list[_Waiting[T, R]] = []
        taken: set[str] = set()
        for waiting in self._queue:
            if len(batch) < self._limit and taken.isdisjoint(waiting.keys):
                batch.append(waiting)
                taken.update(waiting.keys)
            else:
                rest.append(waiting)
        self._queue = rest
        batch.sort(key=lambda w: sorted(w.keys))
        return batch

    async def _commit(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._store([w.item for w in batch])
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.answer.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            for waiting in batch:  # each alone now, each with its own outcome
                try:
                    (result,) = await self._store([waiting.item])
                except asyncio.CancelledError:
                    for left in batch:  # this one and those not stored yet: none left waiting
                        if not left.answer.done():
                            left.answer.cancel()
                    raise
                except Exception as alone:
                    _fail(waiting, alone)
                else:
                    _answer(waiting, result)
            return
        for waiting, result in zip(batch, results, strict=True):
            _answer(waiting, result)


def _answer(waiting: _Waiting[T, R], result: R) -> None:
    if not waiting.answer.done():  # its request may have gone away (cancelled)
        waiting.answer.set_result(result)


def _fail(waiting: _Waiting[T, R], exc: BaseException) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(exc)
        with contextlib.suppress(BaseException):
            waiting.answer.exception()  # retrieved: no "exception never retrieved" if nobody awaits

"""Group commit: items arriving together share one store call; a failed batch is retried item by
item, each answered with its own outcome; a shutdown in the middle leaves nobody waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.alerts.groupcommit import GroupCommit


async def test_items_arriving_together_share_a_store_and_a_shared_key_waits_for_the_next() -> None:
    calls: list[list[str]] = []

    async def store(items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        await asyncio.sleep(0)
        return [item.upper() for item in items]

    commit: GroupCommit[str, str] = GroupCommit(store)
    answers = await asyncio.gather(
        commit.submit("a", frozenset({"g1"})),
        commit.submit("b", frozenset({"g2"})),
        commit.submit("c", frozenset({"g1"})),  # the same group as "a": the next batch
    )
    assert list(answers) == ["A", "B", "C"]
    assert calls == [["a", "b"], ["c"]]


async def test_a_failed_batch_is_stored_again_item_by_item() -> None:
    async def store(items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("refused")
        return list(items)

    commit: GroupCommit[str, str] = GroupCommit(store)
    good, bad = await asyncio.gather(
        commit.submit("good", frozenset({"g1"})),
        commit.submit("bad", frozenset({"g2"})),
        return_exceptions=True,
    )
    assert good == "good"
    assert isinstance(bad, ValueError)


async def test_a_shutdown_while_retrying_a_batch_leaves_nobody_waiting() -> None:
    stuck = asyncio.Event()

    async def store(items: Sequence[str]) -> list[str]:
        if len(items) > 1:
            raise ValueError("the batch failed")
        stuck.set()
        await asyncio.Event().wait()  # never returns: cancelled by the shutdown
        return list(items)

    commit: GroupCommit[str, str] = GroupCommit(store)
    first = asyncio.ensure_future(commit.submit("one", frozenset({"g1"})))
    second = asyncio.ensure_future(commit.submit("two", frozenset({"g2"})))
    await stuck.wait()
    assert commit._task is not None
    commit._task.cancel()
    for answer in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(answer, timeout=5)

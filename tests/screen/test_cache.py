"""The wall screen's cache: one refresh at a time per panel, at most once per interval, the last
good data kept (and marked) when a refresh fails."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.backends.errors import BackendError, BackendErrorKind
from app.errors import NotFound, PanoramaError, Phrase
from app.screen.cache import Problem, ScreenCache


class Source:
    """A panel's fetch that counts its calls and answers what the test says, when it says."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.delay = 0.0

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return {"call": self.calls}


class Spawner:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


KEY = object()


async def read(cache: ScreenCache, source: Source, spawn: Spawner, **options: Any) -> Any:
    settings = {"interval": 60.0, "retry_interval": 60.0, "timeout": 5.0, "backend": "prometheus", "key": KEY}
    return await cache.read("health", source, spawn=spawn, **{**settings, **options})


class Cache(ScreenCache):
    """The real cache, on a registry of its own whose counts the test reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry)

    def counted(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def new_cache() -> Cache:
    return Cache()


async def test_readers_at_the_same_time_share_one_refresh() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    source.gate.clear()
    readers = [asyncio.create_task(read(cache, source, spawn)) for _ in range(200)]
    await asyncio.sleep(0.01)
    assert source.calls == 1  # the others wait for the one in flight
    source.gate.set()
    states = await asyncio.gather(*readers)
    assert {s.data["call"] for s in states} == {1}
    assert all(s.problem is None and s.fetched_at is not None for s in states)
    assert cache.counted("panorama_screen_cache_hits_total", panel="health") == 199
    assert cache.counted("panorama_screen_refreshes_total", panel="health", outcome="ok") == 1
    again = await read(cache, source, spawn)  # fresh for the interval: no new query
    assert (again.data, source.calls) == ({"call": 1}, 1)


async def test_a_failed_refresh_keeps_the_last_good_data_and_is_not_retried_before_its_interval() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    good = await read(cache, source, spawn, interval=0.05, retry_interval=0.2)
    source.fail = BackendError("prometheus", BackendErrorKind.UNREACHABLE, "cannot reach it")
    await asyncio.sleep(0.06)
    stale = await asyncio.gather(
        *(read(cache, source, spawn, interval=0.05, retry_interval=0.2) for _ in range(50))
    )
    assert source.calls == 2
    assert {(s.data["call"], s.fetched_at) for s in stale} == {(1, good.fetched_at)}
    assert {(s.problem.backend, s.problem.message) for s in stale if s.problem} == {
        ("prometheus", "cannot reach it")
    }
    assert stale[0].problem is not None
    assert stale[0].problem.phrase == source.fail.phrase  # as pages say it (BackendError.phrase)
    assert stale[0].problem.phrase == Phrase(
        "problem.backend.unreachable", backend="Prometheus", detail="cannot reach it"
    )
    await asyncio.sleep(0.06)  # past the interval, within the retry interval: a dead backend is not hammered
    await read(cache, source, spawn, interval=0.05, retry_interval=0.2)
    assert source.calls == 2
    await asyncio.sleep(0.2)
    source.fail = None
    recovered = await read(cache, source, spawn, interval=0.05, retry_interval=0.2)
    assert (source.calls, recovered.problem, recovered.data) == (3, None, {"call": 3})


async def test_a_refresh_that_takes_too_long_is_a_problem_with_the_panels_backend() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    source.delay = 1.0
    state = await read(cache, source, spawn, timeout=0.05, backend="database")
    assert state.data is None
    assert state.problem is not None
    assert (state.problem.backend, state.problem.message) == ("database", "no answer within 0.05 s")
    assert state.problem.phrase == Phrase("problem.database_no_answer_within", seconds="0.05")
    prometheus = await read(new_cache(), source, spawn, timeout=0.05)
    assert prometheus.problem is not None
    assert prometheus.problem.phrase == Phrase(
        "problem.no_answer_within", backend="Prometheus", seconds="0.05"
    )


async def test_a_reader_that_goes_away_does_not_cancel_the_refresh_the_others_wait_for() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    source.gate.clear()
    leaving = asyncio.create_task(read(cache, source, spawn))
    staying = asyncio.create_task(read(cache, source, spawn))
    await asyncio.sleep(0.01)
    leaving.cancel()
    source.gate.set()
    assert (await staying).data == {"call": 1}
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_new_configuration_drops_the_data_of_the_old_one() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    await read(cache, source, spawn)
    other = await read(cache, source, spawn, key=object())
    assert (other.data, source.calls) == ({"call": 2}, 2)


async def test_an_unexpected_error_is_a_panel_problem_never_an_exception() -> None:
    cache, source, spawn = new_cache(), Source(), Spawner()
    source.fail = ZeroDivisionError("boom")
    state = await read(cache, source, spawn)
    assert state.problem is not None
    assert state.problem.backend == "panorama"
    assert "boom" not in state.problem.message  # details go to the log, not to the wall
    assert state.problem.phrase == Phrase("error.internal")


async def test_a_panorama_error_is_phrased_only_with_a_key_a_wall_has_the_text_of() -> None:
    """A phrase of another page's words (or one with parts said in a language) is not sent: the
    wall, given the texts of PHRASE_KEYS only, would not know it; it shows backend: message."""
    cache, source, spawn = new_cache(), Source(), Spawner()
    source.fail = NotFound("there is no incident 7", phrase=Phrase("problem.no_incident", id=7))
    elsewhere = await read(cache, source, spawn)
    assert elsewhere.problem == Problem("panorama", "there is no incident 7", None)
    inner = Phrase("problem.database")
    source.fail = PanoramaError("the database did not answer", phrase=Phrase("problem.database", why=inner))
    nested = await read(new_cache(), source, spawn)
    assert nested.problem == Problem("panorama", "the database did not answer", None)
    source.fail = PanoramaError("the database did not answer", phrase=Phrase("problem.database"))
    listed = await read(new_cache(), source, spawn)
    assert listed.problem == Problem("panorama", "the database did not answer", Phrase("problem.database"))

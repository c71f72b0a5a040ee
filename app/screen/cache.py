"""The wall screen's cache: each panel's last good data, refreshed at most once per interval.

However many screens poll, a panel's backend queries run at most once per refresh interval in
this process (single flight): a read finds the panel fresh (a hit), or joins the refresh in
flight, or starts one, and concurrent readers wait for that one. A refresh that fails keeps the
last good data, which is then served as ``stale`` with what went wrong; the next read after the
interval tries again. Failures are attempts too: a dead Prometheus is asked once per interval,
not once per screen.

The cache is per process, which is enough: with N replicas behind a Service, Prometheus sees at
most N sets of the screen's queries per interval, whatever the number of screens. It never
raises into a request (every failure becomes a panel's problem) and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app.backends.errors import BackendError, display_name
from app.errors import PanoramaError, Phrase

log = logging.getLogger("panorama.screen")


def encode(data: Any) -> bytes:
    """A panel's data as JSON, as the API answers it (pydantic's serializer for models)."""
    if isinstance(data, BaseModel):
        return data.model_dump_json().encode()
    return json.dumps(data, default=str).encode()


T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]

CURRENT_PANEL: ContextVar[str | None] = ContextVar("panorama_screen_panel", default=None)
"""The panel whose refresh is running: backend calls made under it are counted as its queries."""


@dataclass(frozen=True)
class Problem:
    """What went wrong in a panel's last refresh: ``backend`` and the English ``message`` (the
    API's, the log's), and ``phrase``, the same for a wall to say in its language (a catalogue key
    and plain-string values; None: the wall shows ``backend: message``)."""

    backend: str
    message: str
    phrase: Phrase | None = None


PHRASE_KEYS = (
    "problem.backend.",  # every key under it: a backend's failure (BackendError.phrase)
    "problem.database",
    "problem.no_answer_within",
    "problem.database_no_answer_within",
    "error.internal",
)
"""The catalogue keys a panel's problem may be said with (a key, or a prefix ending in a dot):
the wall's page ships their texts to its script, which fills them with the values."""


def phrased_by_panels(key: str) -> bool:
    """Whether ``key`` is one of :data:`PHRASE_KEYS` (a panel's problem may be said with it)."""
    return any(key.startswith(k) if k.endswith(".") else key == k for k in PHRASE_KEYS)


def _plain(phrase: Phrase | None) -> Phrase | None:
    """``phrase`` when it is one of :data:`PHRASE_KEYS` and its values are plain (strings or
    numbers, sent as strings), else None: the wall's answer is shared by walls of every language,
    so it carries no part said in one, and only keys a wall's page has the texts of."""
    if phrase is None or not phrased_by_panels(phrase.key):
        return None
    if not all(isinstance(v, str | int | float) for v in phrase.values.values()):
        return None
    return Phrase(phrase.key, **{name: str(value) for name, value in phrase.values.items()})


def _timeout(backend: str, seconds: str) -> Phrase:
    if backend == "database":
        return Phrase("problem.database_no_answer_within", seconds=seconds)
    return Phrase("problem.no_answer_within", backend=display_name(backend), seconds=seconds)


@dataclass(frozen=True)
class PanelState(Generic[T]):
    """What a read gives: the last good data (None if there never was any), the same as JSON
    (made once per refresh, for every answer until the next), its time, and the last refresh's
    problem (None when it succeeded)."""

    data: T | None
    encoded: bytes | None
    fetched_at: datetime | None
    problem: Problem | None


@dataclass
class _Panel:
    name: str
    key: object = None
    data: Any = None
    encoded: bytes | None = None
    fetched_at: datetime | None = None
    problem: Problem | None = None
    attempted: float | None = None  # monotonic start of the last refresh
    flight: asyncio.Task[None] | None = None

    def state(self) -> PanelState[Any]:
        return PanelState(self.data, self.encoded, self.fetched_at, self.problem)

    def due(self, interval: float, retry_interval: float) -> bool:
        wait = retry_interval if self.problem is not None else interval
        return self.attempted is None or time.monotonic() - self.attempted >= wait


class ScreenCache:
    """Per process; one per running app (``AppContext.screen``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._panels: dict[str, _Panel] = {}
        self.requests = Counter(
            "panorama_screen_requests",
            "Requests for the wall screen's data (GET /api/v1/screen).",
            registry=registry,
        )
        self.cache_hits = Counter(
            "panorama_screen_cache_hits",
            "Panel reads answered without a new refresh (fresh data, or a refresh already in flight).",
            ["panel"],
            registry=registry,
        )
        self.refreshes = Counter(
            "panorama_screen_refreshes",
            "Panel refreshes, by outcome (ok, failed).",
            ["panel", "outcome"],
            registry=registry,
        )
        self.backend_queries = Counter(
            "panorama_screen_backend_queries",
            "Queries the wall screen's refreshes sent, by panel and backend (database: service reads).",
            ["panel", "backend"],
            registry=registry,
        )

    def observe_backend_call(self, backend: str) -> None:
        """Counts a backend call made during a panel's refresh (a listener of the app's metrics)."""
        panel = CURRENT_PANEL.get()
        if panel is not None:
            self.backend_queries.labels(panel, backend).inc()

    def count_query(self, backend: str) -> None:
        """Counts a query the backend clients do not see (a database read through a service)."""
        self.observe_backend_call(backend)

    def fresh(
        self, name: str, *, interval: float, retry_interval: float, key: object
    ) -> PanelState[Any] | None:
        """The panel's state when it needs no refresh and none is in flight (a hit), else None:
        the quick path of every request but one per interval, with no task and no wait."""
        panel = self._panels.get(name)
        if (
            panel is None
            or panel.key is not key
            or panel.flight is not None
            or panel.due(interval, retry_interval)
        ):
            return None
        self.cache_hits.labels(name).inc()
        return panel.state()

    async def read(
        self,
        name: str,
        fetch: Callable[[], Awaitable[Any]],
        *,
        interval: float,
        retry_interval: float,
        timeout: float,
        backend: str,
        key: object,
        spawn: Spawn,
    ) -> PanelState[Any]:
        """The panel's state, refreshed first when its last attempt is older than ``interval``
        (``retry_interval`` after a failed one). ``key`` is what the data depends on (the
        settings): data of another key is dropped."""
        panel = self._panels.get(name)
        if panel is None or panel.key is not key:  # a refresh of the old key finishes unseen
            panel = self._panels[name] = _Panel(name, key)
        if panel.flight is None:
            if not panel.due(interval, retry_interval):
                self.cache_hits.labels(name).inc()
                return panel.state()
            panel.attempted = time.monotonic()
            panel.flight = spawn(self._refresh(panel, fetch, timeout, backend))
        else:
            self.cache_hits.labels(name).inc()
        flight = panel.flight
        await asyncio.shield(flight)  # a reader that goes away does not cancel the refresh
        return panel.state()

    async def _refresh(
        self, panel: _Panel, fetch: Callable[[], Awaitable[Any]], timeout: float, backend: str
    ) -> None:
        marker = CURRENT_PANEL.set(panel.name)
        problem: Problem | None = None
        try:
            data = await asyncio.wait_for(fetch(), timeout)
        except TimeoutError:
            seconds = f"{timeout:g}"
            problem = Problem(backend, f"no answer within {seconds} s", _timeout(backend, seconds))
        except BackendError as exc:
            problem = Problem(exc.backend, exc.message, _plain(exc.phrase))
        except SQLAlchemyError as exc:
            said = Phrase("problem.database")
            problem = Problem("database", f"the database failed ({type(exc).__name__})", said)
        except PanoramaError as exc:
            problem = Problem("panorama", exc.message, _plain(exc.phrase))
        except Exception:  # never into a request: the panel says it, the log has the details
            log.exception("wall screen panel %s failed", panel.name)
            said = Phrase("error.internal")
            problem = Problem("panorama", "internal error; the server log has the details", said)
        finally:
            CURRENT_PANEL.reset(marker)
            panel.flight = None
        self.refreshes.labels(panel.name, "failed" if problem else "ok").inc()
        if problem != panel.problem:  # said when it starts, changes or ends; not every interval
            if problem is None:
                log.info("wall screen panel %s is fresh again", panel.name)
            else:
                log.warning(
                    "wall screen panel %s: %s failed",
                    panel.name,
                    problem.backend,
                    extra={"reason": problem.message},
                )
        if problem is None:
            panel.data, panel.encoded = data, encode(data)
            panel.fetched_at, panel.problem = datetime.now(UTC), None
        else:
            panel.problem = problem

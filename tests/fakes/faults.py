"""Failures on demand for the fake servers (Elasticsearch, Jaeger) and the sinks (chat robots, webhooks).

A fake derives from :class:`FaultInjector`, calls ``await self.injected_failure(request)``
first thing in its endpoint and, when that returns a :class:`Failure`, answers
with its status in the fake's own error format. Tests then say
``fake.fail_with(503, times=2)``, ``fake.hang(10)``, ``fake.clear_faults()`` or
``fake.stop()``.

Faults queue up in the order they were asked for: each one serves the next
``times`` requests (every request, until cleared, when ``times`` is None).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

HANG_POLL_S = 0.02


@dataclass(frozen=True)
class Failure:
    """An error answer to give: its status, and what the fake needs to word it (its own format)."""

    status: int
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    delay_s: float
    failure: Failure | None
    remaining: int | None


class FaultInjector:
    """The fault-injection half of a fake server; the fixture binds :meth:`stop` to the real server."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._closing = threading.Event()
        self._stop: Callable[[], None] | None = None

    # -- test-side API ------------------------------------------------------------------------

    def fail_with(self, status: int = 500, *, times: int | None = None) -> None:
        """Answers the next ``times`` requests (all, when None) with ``status``, in the fake's format."""
        self._add_fault(Fault(0.0, Failure(status), times))

    def hang(self, seconds: float, *, times: int | None = None) -> None:
        """Delays the next ``times`` requests by ``seconds`` (ends early if the client goes away)."""
        self._add_fault(Fault(seconds, None, times))

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def bind_stop(self, stop: Callable[[], None]) -> None:
        """Set by the fixture: how :meth:`stop` shuts the server down."""
        self._stop = stop

    def stop(self) -> None:
        """Stops serving: connections to the URL are refused from now on."""
        self.close()
        if self._stop is not None:
            self._stop()

    def close(self) -> None:
        """Releases hanging requests (called before the server shuts down)."""
        self._closing.set()

    # -- for the fake's endpoint --------------------------------------------------------------

    def _add_fault(self, fault: Fault) -> None:
        with self._faults_lock:
            self._faults.append(fault)

    async def injected_failure(self, request: Request) -> Failure | None:
        """Applies the fault due for this request: sits out its delay, then returns its failure, if any."""
        fault = self._take_fault()
        if fault is None:
            return None
        if fault.delay_s:
            await self._hang(request, fault.delay_s)
        return fault.failure

    def _take_fault(self) -> Fault | None:
        with self._faults_lock:
            while self._faults:
                fault = self._faults[0]
                if fault.remaining is None:
                    return fault
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.pop(0)
                    return fault
                self._faults.pop(0)
            return None

    async def _hang(self, request: Request, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._closing.is_set():
            if await request.is_disconnected():
                return
            await asyncio.sleep(HANG_POLL_S)

"""A census of Panorama's HTTP stack: the CPU a request costs outside its route, beside a bare app.

Issue 13's cold report and webhook goals compare Panorama with a bare FastAPI app serving the same
bytes; what separates the two, besides the route's own work, is the stack every request crosses
(middleware, tracing, metrics, access log, rate limit, security headers, dependency resolution
and authentication). This bench measures that stack in-process, without uvicorn or a client:

- the ASGI apps are called directly, one request at a time, with a hand-made scope (uvicorn's
  own cost is the same for both apps and is left out);
- the route's endpoint function is wrapped with a timer (in this process only), so each request's
  loop-thread CPU splits into *route* (inside the endpoint) and *stack* (everything else);
- three requests: ``GET /api/v1/whoami`` with a viewer token (next to nothing but the stack),
  (a) ``GET /api/v1/reports/services/{s}/daily`` over a week with a viewer token
  (a small report) against ``bench/report_bare.py`` serving Panorama's very answer bytes, and
  (b) Alertmanager's webhook with its bearer token, one group of ten alerts delivered again
  (deduplicated) against ``bench/alert_bare.py`` (``json.loads`` only);
- Panorama runs with its defaults: rate limit on (with a rate no request reaches), tracing
  through the default tracer provider (no exporter configured), access log at INFO into a
  JSON handler writing to a stream that drops it (as ``panorama serve`` logs, minus the terminal).

Rounds alternate Panorama and bare so that other work on the machine weighs on both alike; the
figures are medians over rounds of µs of loop-thread CPU per request.

``--profile`` adds a cProfile of each request kind: own time by package and the stack's top
functions (everything outside the endpoint's call tree).

Run: .venv/bin/python bench/stack.py                (about a minute)
     .venv/bin/python bench/stack.py --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import json
import logging
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/, which is not installed

from fastapi import FastAPI  # noqa: E402
from starlette.types import ASGIApp, Message  # noqa: E402

from app import db, migrations  # noqa: E402
from app.alerts import api as alerts_api  # noqa: E402
from app.main import create_app  # noqa: E402
from app.observability import configure_logging  # noqa: E402
from app.rollups.cache import MAX_ENTRIES  # noqa: E402
from app.rollups.service import MAX_PERIOD_DAYS  # noqa: E402
from bench import alert_bare, report_bare  # noqa: E402
from bench.rollup_store import fill_sqlite, service_names  # noqa: E402
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload  # noqa: E402
from tests.harness.app import TOKENS, VIEWER_TOKEN, bearer, settings_for  # noqa: E402

Headers = list[tuple[bytes, bytes]]


class Discard(io.TextIOBase):
    """Where the JSON log lines go: formatted and written, then dropped."""

    def write(self, text: str) -> int:
        return len(text)


class Request:
    """One request, replayed: method, path, query string, headers and body."""

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes = b""
    ) -> None:
        self.method = method
        self.path = path
        self.query = query.encode()
        self.headers: Headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.headers.append((b"host", b"panorama.test"))
        if body:
            self.headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        self.body = body


async def call(app: ASGIApp, request: Request) -> tuple[int, bytes]:
    """Calls ``app`` as uvicorn would for ``request``; the status and the body."""
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.Future()  # the client stays connected; cancelled when the answer is done
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query,
        "root_path": "",
        "headers": request.headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


class EndpointClock:
    """Loop-thread CPU spent inside the routes' endpoint functions (wrapped in this process only)."""

    def __init__(self) -> None:
        self.spent = 0.0

    def wrap(self, app: FastAPI) -> None:
        """Wraps every endpoint; FastAPI 0.165 builds included routes' handlers at the first request
        (``_IncludedRouter.effective_candidates``), so this runs after one. The HTTP stack's
        direct routes (the webhook) are called by their ``endpoint``: that is wrapped instead."""
        self._wrap(app.router.routes)
        for route in alerts_api.DIRECT_ROUTES:
            if not hasattr(route.endpoint, "timed"):
                route.endpoint = self._timed(route.endpoint)

    def _wrap(self, routes: Sequence[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):
                self._wrap(route.effective_candidates())
                continue
            dependant = getattr(route, "dependant", None)
            if dependant is not None and dependant.call is not None and not hasattr(dependant.call, "timed"):
                dependant.call = self._timed(dependant.call)

    def _timed(self, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(function)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await function(*args, **kwargs)
            finally:
                self.spent += time.thread_time() - started

        timed.timed = True  # type: ignore[attr-defined]
        return timed


async def per_request(
    app: ASGIApp, requests: Sequence[Request], n: int, clock: EndpointClock | None
) -> tuple[float, float]:
    """µs of loop-thread CPU per request, total and inside the endpoint (``requests`` in turn)."""
    before = clock.spent if clock else 0.0
    started = time.thread_time()
    for index in range(n):
        one = requests[index % len(requests)]
        status, _body = await call(app, one)
        if status >= 400:
            raise SystemExit(f"{one.method} {one.path} answered {status}: {_body[:300]!r}")
    total = time.thread_time() - started
    route = (clock.spent - before) if clock else 0.0
    return total / n * 1e6, route / n * 1e6


class CollectorClock:
    """Loop-thread CPU spent in the garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.spent += time.thread_time() - self._started


COLLECTOR = CollectorClock()


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if f"{ROOT}/app/" in filename:
        parts = filename.split(f"{ROOT}/", 1)[1].removesuffix(".py").split("/")
        return ".".join(parts[:2])
    if filename.startswith("<"):
        return "builtins"
    return "stdlib:" + Path(filename).stem


def print_profile(label: str, profile: cProfile.Profile, n: int) -> None:
    stats = pstats.Stats(profile, stream=io.StringIO())
    by_package: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, function), (_cc, _nc, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += tottime
        rows.append((tottime, cumtime, f"{_package(filename)}:{function}:{line}"))
    total = sum(by_package.values())
    print(f"\n{label}: own time by package under cProfile (µs per request; total {total / n * 1e6:.0f})")
    for package, spent in sorted(by_package.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {spent / n * 1e6:8.0f}  {package}")
    print(f"{label}: top functions by own time (µs per request, own / cumulative)")
    for tottime, cumtime, where in sorted(rows, reverse=True)[:22]:
        print(f"  {tottime / n * 1e6:8.1f} {cumtime / n * 1e6:8.1f}  {where}")


async def run(rounds: int, n: int, profile: bool, services: int) -> None:
    with tempfile.TemporaryDirectory(prefix="panorama-stack-") as tmp:
        database = Path(tmp) / "panorama.db"
        url = f"sqlite+aiosqlite:///{database}"
        config = alerting_config()
        config["alerts"]["worker"] = False
        config["server"] = {"rate_limit": {"per_token_per_min": 10**9}}
        settings = settings_for(url, **config)
        engine = db.create_engine(settings.database)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        names = service_names(services)
        service = names[0]
        last = date(2026, 11, 30)
        first = last - timedelta(days=MAX_PERIOD_DAYS - 1)
        fill_sqlite(database, names, [first + timedelta(days=i) for i in range(MAX_PERIOD_DAYS)])
        configure_logging("INFO", TOKENS.values(), stream=Discard())

        panorama = create_app(settings)
        clock = EndpointClock()
        report = Request(
            "GET",
            f"/api/v1/reports/services/{service}/daily",
            f"from={last - timedelta(days=6)}&to={last}",
            bearer(VIEWER_TOKEN),
        )
        cold = [  # another service each call, more of them than the kept answers (rollups/cache.py)
            Request(
                "GET",
                f"/api/v1/reports/services/{name}/daily",
                f"from={first}&to={last}",
                bearer(VIEWER_TOKEN),
            )
            for name in names[1:]
        ]
        whoami = Request("GET", "/api/v1/whoami", "", bearer(VIEWER_TOKEN))
        body = payload(
            "StackCensus",
            [
                alert("StackCensus", service="svc-01.shop", pod=f"pod-{i}", instance=f"10.0.0.{i}:80")
                for i in range(10)
            ],
        )
        webhook = Request("POST", WEBHOOK, "", bearer_webhook(), json.dumps(body).encode())
        async with panorama.router.lifespan_context(panorama):
            status, answer = await call(panorama, report)
            assert status == 200, answer
            clock.wrap(panorama)
            status, me = await call(panorama, whoami)
            assert status == 200, me
            bodies = {report.path: answer, whoami.path: me}
            for turn in cold:
                status, bodies[turn.path] = await call(panorama, turn)
                assert status == 200, bodies[turn.path][:300]
            bare_report = report_bare.create_app(bodies)
            bare_webhook = alert_bare.create_app()
            kinds = [
                ("GET whoami", [whoami], bare_report),
                ("GET report", [report], bare_report),
                ("3 years, cold", cold, bare_report),
                ("POST webhook", [webhook], bare_webhook),
            ]
            for _label, requests, bare in kinds:  # warm up: first calls build middleware, caches
                await per_request(panorama, requests, 20, clock)
                await per_request(bare, requests, 20, None)
            figures: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
            for _ in range(rounds):
                for label, requests, bare in kinds:
                    collected = COLLECTOR.spent
                    total, route = await per_request(panorama, requests, n, clock)
                    collected = (COLLECTOR.spent - collected) / n * 1e6
                    floor, _ = await per_request(bare, requests, n, None)
                    figures[label].append((total, route, floor, collected))
            print(f"µs of loop-thread CPU per request, medians of {rounds} rounds × {n} requests")
            print("(stack: outside the endpoint; gc: the garbage collector's share of the total)")
            head = ("panorama", 9), ("route", 8), ("stack", 8), ("gc", 6), ("bare", 7), ("ratio", 6)
            print(f"{'request':14} " + " ".join(f"{name:>{width}}" for name, width in head))
            for label, values in figures.items():
                total = statistics.median(v[0] for v in values)
                route = statistics.median(v[1] for v in values)
                stack = statistics.median(v[0] - v[1] for v in values)
                floor = statistics.median(v[2] for v in values)
                collected = statistics.median(v[3] for v in values)
                print(
                    f"{label:14} {total:9.0f} {route:8.0f} {stack:8.0f} {collected:6.0f} {floor:7.0f} "
                    f"{total / floor:6.2f}"
                )
            if profile:
                for label, requests, _bare in kinds:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await per_request(panorama, requests, n, clock)
                    profiler.disable()
                    print_profile(label, profiler, n)
        logging.getLogger().handlers.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200, help="requests per round and kind")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of each request kind")
    parser.add_argument(
        "--services", type=int, default=100, help="services × 1,096 days stored (≥ 66: the cold report)"
    )
    args = parser.parse_args(argv)
    if args.services <= MAX_ENTRIES + 1:
        parser.error(f"--services must exceed {MAX_ENTRIES + 1}, or the cold report would be kept")
    asyncio.run(run(args.rounds, args.requests, args.profile, args.services))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

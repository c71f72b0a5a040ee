"""An Alertmanager storm against Panorama's webhook, over real HTTP, beside a bare FastAPI endpoint.

Panorama runs as ``panorama serve`` (uvicorn) twice: on a fresh SQLite database (one process),
and on a fresh database created for the run on the shared PostgreSQL (PANORAMA_TEST_POSTGRES_URL,
default 127.0.0.1:5432; dropped afterwards, the server itself never reconfigured) as two replica
processes, the load shared between them as behind a load balancer. Each is migrated with
``panorama migrate`` first. The floor is ``bench/alert_bare.py``, a FastAPI app whose endpoint
only ``json.loads`` the body, served by uvicorn the same way. All listen on 127.0.0.1 and get the
very same bodies from the same load generator, with a fixed number of requests in flight
(Alertmanager flushes many groups at once). Like Alertmanager, the generator retries a 5xx or a
failed connection (jittered exponential backoff), and counts it.

The load generator is a minimal HTTP/1.1 keep-alive client on uvloop (:class:`Connection`: one
connection per request in flight, each request's bytes prepared before the clock starts, answers
read by ``Content-Length``). Until 2026-12-06 it was httpx, which used 96–97 % of a core to drive
the bare endpoint at ~2,600 requests/s: the floor measured the client, and the ratio flattered
Panorama. With this client the bare endpoint answers 3,000–5,000 requests/s on a loaded machine
for ~25 % of a core of client CPU, so its figure is the server's.

The storm, for G groups of A alerts (default 1,000 × 10 = 10,000 alerts), in three phases:

1. ``fire``:    every group fires (a new incident: routed, escalation started, pages queued);
2. ``repeat``:  every other group is delivered again with J alerts joining (an update to those
                paged; ``--full``: every group);
3. ``resolve``: half the groups resolve, half of them updated before (``--full``: every group).

Since 2026-12-06 the webhook journals the raw body and answers 202; incidents are built from the
journal right behind (``app/alerts/journal.py``). So after each phase the bench waits until the
journal holds no queued row before it counts the rows (the "as expected" check), and prints both
figures: the answering throughput (what Alertmanager sees, and what the goal's ratio is about) and
the lag from the phase's last answer to its last row applied, with the throughput counting until
applied. The servers' CPU is read after that wait, so the CPU per webhook includes the applying.

It prints, per phase and for the whole storm: requests/s, alerts/s (alerts in the payloads
answered 2xx, per second), webhook latency p50/p95/p99 (per HTTP request), the rows found in the
database after each phase (``alert_incidents``, ``alert_incident_alerts``, timeline, outbox),
CPU seconds of the server's threads and of the load generator (to tell a client-bound figure),
and the ratio of Panorama's requests/s to the bare endpoint's — measured before and after
Panorama's runs, the faster per phase. Panorama runs with its default configuration for the
issue's example, the delivery worker on (``alerts.worker: true``), the channels posting to the
bare process (which answers like a robot that accepted the message); ``--no-worker`` measures
without sending (the journal is applied all the same), ``--no-postgres`` skips the PostgreSQL run.

Beside the throughput ratio it prints the servers' CPU per webhook (every thread of the serving
processes, from /proc, over the storm's phases; Panorama's delivery worker included) and bare's
divided by Panorama's: what the two servers' own costs allow, whatever the load generator and the
other work on the machine (CPU time inflates under load too, but far less than wall time does).

Goals (issue 13): ≥ 2,000 alerts/s persisted on SQLite, throughput ratio ≥ 0.5, p99 webhook
latency ≤ 5× the bare endpoint's; ≥ 2,000 alerts/s with two replicas on PostgreSQL. They are
informational: the table says PASS or MISS, and the exit status is 0.

``--profile`` adds (a) a run of Panorama under cProfile (200 groups; slower, not compared),
printing where its event-loop thread spent its own time, by package and by function, and (b) the
storm on 100 groups in-process over ASGI, one payload at a time, with the SQL statements per
payload and the wall time of each step of the webhook in app/alerts (timers wrapped around its
functions, as module attributes, restored afterwards).

Run: .venv/bin/python bench/alert_storm.py              (about 4 minutes on 2 cores)
     .venv/bin/python bench/alert_storm.py --quick      (a smoke run, about a minute)
     .venv/bin/python bench/alert_storm.py --profile    (adds the profiled runs, ~2 more minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import importlib
import inspect
import json
import math
import os
import pstats
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/, which is not installed
# httpcore 1.0 tries `import sniffio` on every request; anyio 4.16 no longer installs it, so each
# request paid for a failed import (a sys.path scan, ~1.5 ms here). None makes that import fail
# at once, with the same outcome (asyncio). This only speeds up the load generator.
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

import httpx  # noqa: E402
import uvloop  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload  # noqa: E402
from tests.harness.app import TOKENS, running_app, settings_for  # noqa: E402
from tests.harness.database import POSTGRES_URL, create_postgres_database, drop_postgres_database  # noqa: E402
from tests.harness.processes import ManagedProcess, start_on_free_port  # noqa: E402

GOAL_ALERTS_PER_S = 2_000.0
GOAL_RATIO = 0.5
GOAL_P99_RATIO = 5.0
MAX_ATTEMPTS = 20  # Alertmanager keeps retrying until the group's next flush (minutes)
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0
REQUEST_TIMEOUT_S = 60.0
WARMUP_GROUPS = 24
STORM_PREFIX = "Storm"
WARMUP_PREFIX = "Warmup"
STARTED = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
BARE_SCRIPT = ROOT / "bench" / "alert_bare.py"
PROFILE_TOP = 25
CENSUS_GROUPS = 100
PROFILE_GROUPS = 200
READY_TIMEOUT_S = 120.0  # a loaded 2-core machine may take a minute to import and start Panorama


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    groups: int
    alerts: int
    joining: int
    concurrency: int
    worker: bool
    postgres: bool
    profile: bool
    keep: bool
    full: bool


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Alertmanager storm: Panorama's webhook against a bare FastAPI endpoint, over HTTP."
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 groups, concurrency 16")
    parser.add_argument("--groups", type=int, help="Alertmanager groups (default 1,000)")
    parser.add_argument("--alerts", type=int, default=10, help="alerts per group when it fires (default 10)")
    parser.add_argument("--joining", type=int, default=2, help="alerts joining each group on repeat (2)")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default 32)")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="Panorama without its delivery worker (no sending; the journal is still applied)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the run of two replicas on PostgreSQL"
    )
    parser.add_argument("--profile", action="store_true", help="add a run of Panorama under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    parser.add_argument(
        "--full", action="store_true", help="repeat and resolve every group (default: half of them each)"
    )
    args = parser.parse_args(argv)
    options = Options(
        groups=args.groups or (100 if args.quick else 1_000),
        alerts=args.alerts,
        joining=args.joining,
        concurrency=args.concurrency or (16 if args.quick else 32),
        worker=not args.no_worker,
        postgres=not args.no_postgres,
        profile=args.profile,
        keep=args.keep,
        full=args.full,
    )
    if min(options.groups, options.alerts, options.concurrency) < 1 or options.joining < 0:
        parser.error("--groups, --alerts and --concurrency must be positive, --joining not negative")
    return options


# --- the storm ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    bodies: list[bytes]
    alerts: int
    expect: dict[str, int] = field(default_factory=dict)  # rows of the storm in the DB afterwards


def _group_alerts(prefix: str, group: int, count: int, *, status: str) -> list[dict[str, Any]]:
    """Alerts of one group: a service each, a severity routed to the default escalation, every
    tenth group a payments team (a second escalation), every twentieth info (routed, muted)."""
    name = f"{prefix}{group:05d}"
    severity = "info" if group % 20 == 19 else ("warning" if group % 3 == 0 else "critical")
    extra = {"team": "payments"} if group % 10 == 3 else {}
    return [
        alert(
            name,
            status=status,
            severity=severity,
            started=STARTED + timedelta(seconds=group),
            service=f"svc-{group % 40:02d}.shop",
            instance=f"10.0.{group % 250}.{index % 250}:8080",
            pod=f"{name.lower()}-{index:03d}",
            **extra,
        )
        for index in range(count)
    ]


def _body(prefix: str, group: int, alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps(payload(f"{prefix}{group:05d}", alerts)).encode()


def storm(options: Options) -> list[Phase]:
    """Every group fires; then every other group is delivered again with alerts joining; then half
    the groups resolve, half of those updated before (``--full``: every group, each time)."""
    groups = range(options.groups)
    repeated = [g for g in groups if options.full or g % 2 == 0]
    resolving = [g for g in groups if options.full or g % 4 < 2]
    sizes = dict.fromkeys(groups, options.alerts)
    resolved: set[int] = set()

    def expect() -> dict[str, int]:
        return {
            "incidents": options.groups,
            "resolved": len(resolved),
            "alerts": sum(sizes.values()),
            "firing": sum(n for g, n in sizes.items() if g not in resolved),
        }

    def body(group: int, status: str) -> bytes:
        return _body(STORM_PREFIX, group, _group_alerts(STORM_PREFIX, group, sizes[group], status=status))

    fire = [body(g, "firing") for g in groups]
    phases = [Phase("fire", fire, sum(sizes.values()), expect())]
    for g in repeated:
        sizes[g] += options.joining
    repeat = [body(g, "firing") for g in repeated]
    phases.append(Phase("repeat", repeat, sum(sizes[g] for g in repeated), expect()))
    resolve = [body(g, "resolved") for g in resolving]
    resolved.update(resolving)
    phases.append(Phase("resolve", resolve, sum(sizes[g] for g in resolving), expect()))
    return phases


def warmup() -> Phase:
    bodies = [
        _body(WARMUP_PREFIX, g, _group_alerts(WARMUP_PREFIX, g, 3, status="firing"))
        for g in range(WARMUP_GROUPS)
    ]
    return Phase("warmup", bodies, WARMUP_GROUPS * 3)


# --- the load generator -------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    requests: int
    alerts: int
    seconds: float
    client_cpu_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    lost: int = 0  # still failing after MAX_ATTEMPTS
    db: str = ""
    # Panorama journals each webhook and applies it right behind the answer (app/alerts/journal.py):
    # how long after the phase's last answer its last row was applied (None: nothing to apply, bare).
    apply_lag_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def aps(self) -> float:
        return self.alerts / self.seconds

    @property
    def applied_aps(self) -> float:
        """Alerts per second counting until the last was applied (incidents, pages), not answered."""
        return self.alerts / (self.seconds + (self.apply_lag_s or 0.0))

    def merged(self, other: PhaseResult, name: str) -> PhaseResult:
        return PhaseResult(
            name=name,
            requests=self.requests + other.requests,
            alerts=self.alerts + other.alerts,
            seconds=self.seconds + other.seconds,
            client_cpu_s=self.client_cpu_s + other.client_cpu_s,
            latencies_s=self.latencies_s + other.latencies_s,
            statuses=self.statuses + other.statuses,
            retries=self.retries + other.retries,
            lost=self.lost + other.lost,
            apply_lag_s=None
            if self.apply_lag_s is None and other.apply_lag_s is None
            else (self.apply_lag_s or 0.0) + (other.apply_lag_s or 0.0),
        )


class Connection:
    """The load generator's client: one HTTP/1.1 keep-alive connection, requests written as
    prepared bytes, answers read by ``Content-Length`` (or chunks). Why not httpx: against the bare
    endpoint httpx used 96–97 % of a core for ~2,600 requests/s, so the floor measured the client,
    not FastAPI; this costs a fraction of that (the bench prints the load generator's CPU), which
    also leaves more of the two cores to the server under test. A connection the server closed, or
    that failed, is opened again for the next request (counted as a failed attempt, like a 5xx)."""

    def __init__(self, url: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, prepared: bytes) -> int:
        """Sends ``prepared`` (a whole request) and reads the answer; its status, 0 on a failure."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await self._exchange(prepared)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()  # TimeoutError is an OSError
            return 0

    async def _exchange(self, prepared: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(prepared)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        fields = head.lower()
        length = re.search(rb"\r\ncontent-length: *(\d+)", fields)
        if length is not None:
            await self.reader.readexactly(int(length.group(1)))
        elif b"transfer-encoding: chunked" in fields:
            while size := int((await self.reader.readuntil(b"\r\n")).strip() or b"0", 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        if b"\r\nconnection: close" in fields:
            await self.close()
        return status

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def prepare(body: bytes, host: str) -> bytes:
    """The whole webhook request, as Alertmanager sends it (its headers, this body)."""
    head = [f"POST {WEBHOOK} HTTP/1.1", f"Host: {host}", "User-Agent: Alertmanager/0.27.0"]
    head += [f"{k}: {v}" for k, v in {**bearer_webhook(), "Content-Type": "application/json"}.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def drive(clients: Sequence[Connection], phase: Phase) -> PhaseResult:
    """Posts every body of the phase with one request in flight per client; retries 5xx and
    failed connections like Alertmanager. The phase's time runs from the first request to the
    last answer; each latency is one HTTP request's (an attempt's)."""
    prepared = {  # per server (the Host header names it), prepared before the clock starts
        (c.host, c.port): [prepare(body, f"{c.host}:{c.port}") for body in phase.bodies] for c in clients
    }
    pending: Iterator[int] = iter(range(len(phase.bodies)))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    counts = {"retries": 0, "lost": 0}

    async def post(client: Connection, request: bytes) -> None:
        for attempt in range(MAX_ATTEMPTS):
            started = time.perf_counter()
            status = await client.request(request)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if 200 <= status < 300:
                return
            if 400 <= status < 500:
                raise RuntimeError(f"{phase.name}: HTTP {status} for a valid payload")
            counts["retries"] += 1
            backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2**attempt)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # jittered, as Alertmanager does
        counts["lost"] += 1

    async def worker(client: Connection) -> None:
        requests = prepared[(client.host, client.port)]
        for index in pending:
            await post(client, requests[index])

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return PhaseResult(
        name=phase.name,
        requests=len(phase.bodies),
        alerts=phase.alerts,
        seconds=seconds,
        client_cpu_s=cpu,
        latencies_s=latencies,
        statuses=statuses,
        retries=counts["retries"],
        lost=counts["lost"],
    )


# --- servers ------------------------------------------------------------------------------


def thread_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, keyed "<name>/<tid>"; empty off Linux."""
    if pid is None:
        return {}
    found: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                found[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def cpu_summary(
    before: dict[str, float], after: dict[str, float], seconds: float, main_tid: int | None
) -> str:
    """CPU used by the event-loop thread (``main_tid``) and by the others, as shares of ``seconds``."""
    used = {k: after[k] - before.get(k, 0.0) for k in after}
    main = sum(v for k, v in used.items() if k.endswith(f"/{main_tid}"))
    others = {k: v for k, v in used.items() if not k.endswith(f"/{main_tid}") and v > 0}
    text = f"event-loop thread {main:.1f} s ({main / seconds:.0%} of a core)"
    if others:
        rest = sum(others.values())
        text += f", {len(others)} other thread(s) {rest:.1f} s ({rest / seconds:.0%})"
    return text


@dataclass
class Server:
    """One server (the bare endpoint, Panorama on SQLite) or several replicas of one (PostgreSQL)."""

    label: str
    urls: list[str]
    processes: list[ManagedProcess]
    database_url: str | None = None

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def process(self) -> ManagedProcess:
        return self.processes[0]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def start_bare(workdir: Path) -> Server:
    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            "bare-fastapi",
            [sys.executable, str(BARE_SCRIPT), "--port", str(port)],
            log_path=workdir / "bare.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            cwd=workdir,
        )

    port, process = start_on_free_port(build)
    return Server("bare FastAPI (json.loads only)", [f"http://127.0.0.1:{port}"], [process])


def panorama_config(sink_url: str, *, worker: bool) -> dict[str, Any]:
    """The issue's alerting example (tests/alerts/support.py), robots pointed at ``sink_url``."""
    config = alerting_config(robot_url=f"{sink_url}/robot")
    config["alerts"]["worker"] = worker
    config["rollups"] = {"enabled": False}
    config["auth"] = {"tokens": [{"name": f"{r}-bench", "role": r, "token": t} for r, t in TOKENS.items()]}
    return config


def start_panorama(
    workdir: Path,
    label: str,
    config: dict[str, Any],
    *,
    database_url: str | None = None,
    replicas: int = 1,
    profile: Path | None = None,
) -> Server:
    """``panorama migrate`` once, then ``replicas`` × ``panorama serve`` on the same database
    (a fresh SQLite file in ``workdir`` unless ``database_url`` names one)."""
    workdir.mkdir(parents=True)
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'panorama.db'}"
    settings_for(url, **copy.deepcopy(config))  # fails here, with the key named, if invalid
    config_file = workdir / "panorama.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "PANORAMA_CONFIG": str(config_file),
        "PANORAMA_DATABASE_URL": url,
        "PANORAMA_DATA_DIR": str(workdir),
    }
    panorama = Path(sys.executable).parent / "panorama"
    command = [str(panorama)] if panorama.exists() else [sys.executable, "-m", "app.cli"]
    migrated = _run([*command, "migrate"], env, workdir)
    if migrated.returncode != 0:
        raise RuntimeError(f"panorama migrate failed:\n{migrated.stdout}{migrated.stderr}")
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "app.cli"]
    server = Server(label, [], [], url)
    try:
        for replica in range(replicas):

            def build(port: int, replica: int = replica) -> ManagedProcess:
                return ManagedProcess(
                    f"panorama-{replica}",
                    [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
                    log_path=workdir / f"panorama-{replica}.log",
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                    ready_timeout_s=READY_TIMEOUT_S,
                    env=env,
                    cwd=workdir,
                )

            port, process = start_on_free_port(build)
            server.urls.append(f"http://127.0.0.1:{port}")
            server.processes.append(process)
    except BaseException:
        server.stop()
        raise
    return server


async def interrupt(server: Server, timeout_s: float = 60.0) -> None:
    """SIGINT, as Ctrl-C: uvicorn shuts down, then re-raises it, and the KeyboardInterrupt lets
    cProfile write its file (uvicorn re-raises SIGTERM too, which would kill it unwritten)."""
    pid = server.process.pid
    if pid is None or not server.process.running:
        return
    os.kill(pid, signal.SIGINT)
    await asyncio.to_thread(_wait_exit, server.process, timeout_s)
    server.process.stop()


def _wait_exit(process: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while process.running and time.monotonic() < deadline:
        time.sleep(0.1)


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- the database, read back --------------------------------------------------------------


async def db_state(database_url: str) -> dict[str, int]:
    """What the storm left in Panorama's tables (storm groups only; warm-up groups excluded)."""
    like = f'%alertname="{STORM_PREFIX}%'
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            incidents, resolved = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END), 0) "
                        "FROM alert_incidents WHERE group_key LIKE :like"
                    ),
                    {"like": like},
                )
            ).one()
            alerts, firing = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(CASE WHEN a.status = 'firing' THEN 1 ELSE 0 END), 0) "
                        "FROM alert_incident_alerts a JOIN alert_incidents i ON i.id = a.incident_id "
                        "WHERE i.group_key LIKE :like"
                    ),
                    {"like": like},
                )
            ).one()
            outbox = {
                row[0]: row[1]
                for row in await conn.execute(
                    text("SELECT status, count(*) FROM alert_outbox GROUP BY status")
                )
            }
            timeline = (await conn.execute(text("SELECT count(*) FROM alert_timeline"))).scalar_one()
    finally:
        await engine.dispose()
    return {
        "incidents": incidents,
        "resolved": resolved,
        "alerts": alerts,
        "firing": firing,
        "timeline": timeline,
        **{f"outbox_{k}": v for k, v in outbox.items()},
    }


async def applied(database_url: str, timeout_s: float = 600.0) -> float:
    """Waits until the journal holds no queued row (every webhook answered is applied); the wait."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            while True:
                queued = (
                    await conn.execute(text("SELECT count(*) FROM alert_journal WHERE status = 'queued'"))
                ).scalar_one()
                await conn.rollback()  # a fresh snapshot each time
                if queued == 0:
                    return time.perf_counter() - started
                if time.perf_counter() - started > timeout_s:
                    raise RuntimeError(f"{queued:,} journal rows still queued after {timeout_s:.0f} s")
                await asyncio.sleep(0.005)
    finally:
        await engine.dispose()


def describe_db(state: dict[str, int], expected: dict[str, int]) -> str:
    wrong = [f"{k} {state[k]:,} (expected {v:,})" for k, v in expected.items() if state[k] != v]
    outbox = sum(v for k, v in state.items() if k.startswith("outbox_"))
    text = (
        f"incidents {state['incidents']:,} ({state['resolved']:,} resolved), "
        f"alerts {state['alerts']:,} ({state['firing']:,} firing), "
        f"timeline {state['timeline']:,}, outbox {outbox:,}"
    )
    return text + (" — MISMATCH: " + "; ".join(wrong) if wrong else " — as expected")


# --- one run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    phases: list[PhaseResult]
    cpu: str = ""
    db_ok: bool = True
    note: str = ""
    server_cpu_s: float = 0.0  # every thread of every process serving, over the storm's phases

    @property
    def total(self) -> PhaseResult:
        result = self.phases[0]
        for other in self.phases[1:]:
            result = result.merged(other, "storm")
        return result

    def phase(self, name: str) -> PhaseResult:
        return next(p for p in self.phases if p.name == name)


async def run_storm(server: Server, options: Options, phases: list[Phase]) -> RunResult:
    """The storm against ``server``; with replicas, the requests in flight are shared between them
    (as behind a load balancer: client ``i`` talks to replica ``i mod n``)."""
    replicas = len(server.urls)
    clients = [Connection(server.urls[i % replicas]) for i in range(options.concurrency)]
    try:
        warm = warmup()
        # one first on each replica: startup work, once
        await drive(clients[:replicas], Phase("warmup", warm.bodies[:replicas], 0))
        await drive(clients, Phase("warmup", warm.bodies[replicas:], 0))
        pids = [process.pid for process in server.processes]
        before = [thread_cpu(pid) for pid in pids]
        results, db_ok = [], True
        for phase in phases:
            print(f"  {server.label}: {phase.name} ({len(phase.bodies):,} requests)…", file=sys.stderr)
            result = await drive(clients, phase)
            if server.database_url is not None:
                result.apply_lag_s = await applied(server.database_url)
                state = await db_state(server.database_url)
                db_ok = db_ok and all(state[k] == v for k, v in phase.expect.items())
                result.db = describe_db(state, phase.expect)
            results.append(result)
        after = [thread_cpu(pid) for pid in pids]
    finally:
        for client in clients:
            await client.close()
    run = RunResult(server.label, results, db_ok=db_ok)
    run.server_cpu_s = sum(sum(a.values()) - sum(b.values()) for b, a in zip(before, after, strict=True))
    seconds = run.total.seconds
    run.cpu = "; ".join(
        (f"replica {n + 1}: " if replicas > 1 else "") + cpu_summary(b, a, seconds, pid)
        for n, (b, a, pid) in enumerate(zip(before, after, pids, strict=True))
    )
    return run


def best_of(runs: Sequence[RunResult], label: str) -> RunResult:
    """Per phase, the fastest of ``runs`` (noise from other work on the machine only slows a run)."""
    phases = [max((run.phase(p.name) for run in runs), key=lambda r: r.rps) for p in runs[0].phases]
    return RunResult(label, phases)


async def settle_worker(server: Server, sink: Server, seconds: float) -> str:
    """After the storm with the worker on: how the outbox stands, and what the sink received."""
    await asyncio.sleep(seconds)
    assert server.database_url is not None
    state = await db_state(server.database_url)
    async with httpx.AsyncClient(base_url=sink.url, timeout=10.0) as client:
        received = (await client.get("/sink")).json()["sink"]
    outbox = ", ".join(
        f"{k.removeprefix('outbox_')} {v:,}" for k, v in sorted(state.items()) if k.startswith("outbox_")
    )
    return f"{seconds:.0f} s after the storm: outbox {outbox}; the channels' sink received {received:,} posts"


# --- output -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


HEADER = (
    f"  {'phase':<8} {'requests':>8} {'alerts':>7} {'seconds':>7} {'req/s':>7} {'alerts/s':>8} "
    f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'non-2xx':>7} {'lost':>4}"
)


def row(result: PhaseResult) -> str:
    lat = result.latencies_s
    non_2xx = sum(v for k, v in result.statuses.items() if not 200 <= k < 300)
    return (
        f"  {result.name:<8} {result.requests:>8,} {result.alerts:>7,} {result.seconds:>7.2f} "
        f"{result.rps:>7,.0f} {result.aps:>8,.0f} {percentile(lat, 50) * 1000:>7.1f} "
        f"{percentile(lat, 95) * 1000:>7.1f} {percentile(lat, 99) * 1000:>7.1f} {max(lat) * 1000:>7.1f} "
        f"{non_2xx:>7,} {result.lost:>4}"
    )


def print_run(run: RunResult) -> None:
    print(f"\n{run.label}")
    print(HEADER)
    for result in [*run.phases, run.total]:
        print(row(result))
    total = run.total
    codes = ", ".join(f"{'conn. error' if k == 0 else k}×{v:,}" for k, v in sorted(total.statuses.items()))
    print(f"  answers: {codes}; retried {total.retries:,}, lost {total.lost:,}")
    if run.cpu:
        print(f"  server CPU: {run.cpu}")
    client = total.client_cpu_s
    print(f"  load generator CPU: {client:.1f} s ({client / total.seconds:.0%} of a core)")
    for result in [*run.phases, total]:
        if result.apply_lag_s is not None:
            print(
                f"  {result.name}: last row applied {result.apply_lag_s * 1000:,.0f} ms after the last "
                "answer; "
                f"counting until applied {result.applied_aps:,.0f} alerts/s "
                f"({result.requests / (result.seconds + result.apply_lag_s):,.0f} webhooks/s)"
            )
    for result in run.phases:
        if result.db:
            print(f"  DB after {result.name}: {result.db}")
    if run.note:
        print(f"  {run.note}")


def verdict(value: float, goal: float) -> str:
    return "PASS" if value >= goal else "MISS"


def print_goals(sqlite: RunResult, postgres: RunResult | None, bare: RunResult, bare_cpu_s: float) -> None:
    """``bare_cpu_s``: the bare server's CPU per webhook (the cheaper of its runs)."""
    bare_total = bare.total
    bare_p99 = percentile(bare_total.latencies_s, 99)
    runs = [("SQLite", sqlite)] + ([("PostgreSQL, 2 replicas", postgres)] if postgres else [])
    print(f"\nPanorama / bare, requests per second (same bodies, same concurrency; {bare.label}):")
    print(f"  {'phase':<8} " + "  ".join(f"{name:>30}" for name, _ in runs))
    for phase in ("fire", "repeat", "resolve", "storm"):
        floor = bare_total.rps if phase == "storm" else bare.phase(phase).rps
        cells = []
        for _, run in runs:
            mine = run.total.rps if phase == "storm" else run.phase(phase).rps
            cells.append(f"{mine:>7,.0f} / {floor:>7,.0f} = {mine / floor:.3f}")
        print(f"  {phase:<8} " + "  ".join(f"{c:>30}" for c in cells))
    client = bare_total.client_cpu_s / bare_total.seconds
    if client > 0.85:
        print(
            f"  note: the load generator used {client:.0%} of a core against the bare endpoint: the bare "
            "figure is partly client-bound, so the true ratio is lower than shown"
        )
    print(
        "\nServer CPU per webhook (every thread of the serving processes, Panorama's worker included), "
        "and bare / Panorama: the ratio the servers' own costs allow, whatever the load generator"
    )
    for name, run in runs:
        mine = run.server_cpu_s / run.total.requests
        figures = f"{mine * 1e6:7,.0f} µs against bare's {bare_cpu_s * 1e6:5,.0f} µs"
        print(f"  {name:<24} {figures} = {bare_cpu_s / mine:.3f}")
    lines: list[tuple[str, str, str, str]] = []
    for name, run in runs:
        total = run.total
        ratio = total.rps / bare_total.rps
        p99 = percentile(total.latencies_s, 99)
        stored = run.db_ok and total.lost == 0
        lines += [
            (
                f"{name}: alerts persisted/s (journaled, 2xx), whole storm ({total.alerts:,} alerts)",
                f"≥ {GOAL_ALERTS_PER_S:,.0f}",
                f"{total.aps:,.0f}",
                verdict(total.aps, GOAL_ALERTS_PER_S),
            ),
            (
                f"{name}: alerts/s counting until the last was applied (informational)",
                f"≥ {GOAL_ALERTS_PER_S:,.0f}",
                f"{total.applied_aps:,.0f}",
                "",
            ),
            (
                f"{name}: throughput ratio Panorama / bare FastAPI, storm",
                f"≥ {GOAL_RATIO}",
                f"{ratio:.3f}",
                verdict(ratio, GOAL_RATIO) if run is sqlite else "",
            ),
            (
                f"{name}: server CPU per webhook, bare / Panorama (informational)",
                f"≥ {GOAL_RATIO}",
                f"{bare_cpu_s / (run.server_cpu_s / total.requests):.3f}",
                "",
            ),
            (
                f"{name}: p99 webhook latency / bare's ({p99 * 1000:,.0f} / {bare_p99 * 1000:,.0f} ms)",
                f"≤ {GOAL_P99_RATIO:.0f}",
                f"{p99 / bare_p99:.1f}",
                ("PASS" if p99 / bare_p99 <= GOAL_P99_RATIO else "MISS") if run is sqlite else "",
            ),
            (
                f"{name}: the DB holds every alert of the storm",
                "all",
                "yes" if stored else "NO",
                "PASS" if stored else "MISS",
            ),
        ]
    width = max(len(line[0]) for line in lines)
    print("\nGoals (issue 13; informational; ratios against the bare endpoint of this run)")
    for name, goal, value, mark in lines:
        print(f"  {name:<{width}}  {goal:>8}  {value:>8}  {mark}")


# --- profiling ----------------------------------------------------------------------------


def print_profile(path: Path) -> None:
    """Where the profiled server's event-loop thread spent its time: by package, then by function.

    Own time only: SQLAlchemy runs the ORM inside greenlets, which cProfile cannot follow, so
    cumulative times of coroutines and of SQLAlchemy calls are unreliable; own times are not."""
    if not path.exists():
        print(f"\n(no profile was written to {path})")
        return
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    entries = [
        (_where(filename, line, function), calls, tottime)
        for (filename, line, function), (_primitive, calls, tottime, _cumtime, _callers) in stats.items()
    ]
    total = sum(e[2] for e in entries)
    packages: defaultdict[str, float] = defaultdict(float)
    for where, _calls, tottime in entries:
        packages[_package(where)] += tottime
    print(
        f"\nProfile of Panorama's event-loop thread, own time ({total:.1f} s in all, "
        "profiler overhead included)"
    )
    print(
        "  by package: "
        + ", ".join(
            f"{name} {t:.1f} s ({t / total:.0%})"
            for name, t in sorted(packages.items(), key=lambda p: -p[1])[:12]
        )
    )
    for title, chosen in (
        ("app/ functions", [e for e in entries if e[0].startswith("app/")]),
        ("all functions", entries),
    ):
        print(f"  {title} by own time:")
        print(f"    {'own s':>7} {'calls':>9}  function   (a coroutine's calls count its resumptions)")
        for where, calls, tottime in sorted(chosen, key=lambda e: e[2], reverse=True)[:PROFILE_TOP]:
            print(f"    {tottime:>7.2f} {calls:>9,}  {where}")


def _package(where: str) -> str:
    if where.startswith("app/"):
        return "/".join(where.split("/")[:2]).split(":")[0].removesuffix(".py")
    if where.startswith("{") or where.startswith("<"):
        return "builtins"
    head = where.split("/")[0].split(":")[0]
    return "stdlib" if head.startswith("/") or head.endswith(".py") else head


def _where(filename: str, line: int, function: str) -> str:
    with contextlib.suppress(ValueError):
        filename = str(Path(filename).resolve().relative_to(ROOT))
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif "/lib/python3" in filename:
        filename = "stdlib:" + filename.rsplit("/", 1)[1]
    return f"{filename}:{line} {function}" if line else function


_STATEMENT = re.compile(r"^\s*(\w+)\b(?:.*?\b(?:INTO|FROM|UPDATE)\s+(\w+))?", re.S | re.I)


def _statement_kind(statement: str, executemany: bool) -> str:
    words = statement.split()
    if words and words[0].upper() == "UPDATE":
        kind = f"UPDATE {words[1]}"
    else:
        found = _STATEMENT.match(statement)
        kind = f"{found.group(1).upper()} {found.group(2) or ''}".strip() if found else statement[:30]
    return kind + (" (executemany)" if executemany else "")


STEPS: tuple[tuple[int, str, str], ...] = (  # (depth, module in app.alerts, function)
    (1, "service", "webhook_caller"),
    (1, "api", "_checked"),
    (1, "service", "receive"),
    (2, "journal", "insert"),
    (1, "journal", "apply_next"),  # behind the answer (the applier), one payload at a time here
    (2, "intake", "store_in"),
    (3, "repository", "prefetch_open_incidents"),
    (3, "intake", "receive"),
    (4, "heartbeats", "observe"),
    (4, "intake", "_open"),
    (4, "intake", "_store_alerts"),
    (4, "intake", "_route"),
    (5, "intake", "maintenance_windows"),
    (5, "escalation", "start"),
    (6, "escalation", "_notify"),
    (4, "intake", "_update"),
    (5, "incidents", "resolve"),
    (5, "incidents", "tell_paged"),
    (0, "repository", "alerts_of"),
    (0, "repository", "paged_deliveries"),
    (0, "repository", "overrides"),
    (0, "messages", "build"),
    (0, "messages", "to_json"),
    (0, "messages", "from_json"),
)


def _timed(
    fn: Callable[..., Any], name: str, spent: dict[str, float], calls: Counter[str]
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
                calls[name] += 1

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started
            calls[name] += 1

    return timed


@contextlib.contextmanager
def step_timers(spent: dict[str, float], calls: Counter[str]) -> Iterator[None]:
    """Wraps the steps of the webhook in app.alerts with timers (module attributes, restored after)."""
    originals = []
    for _depth, module_name, function in STEPS:
        module = importlib.import_module(f"app.alerts.{module_name}")
        original = getattr(module, function)
        originals.append((module, function, original))
        setattr(module, function, _timed(original, f"{module_name}.{function}", spent, calls))
    try:
        yield
    finally:
        for module, function, original in originals:
            setattr(module, function, original)


def print_steps(spent: dict[str, float], calls: Counter[str], n: int, request_s: float) -> None:
    """Inclusive wall time per payload of each step (one payload at a time, so times nest exactly)."""
    rows = [(0, "the request over ASGI (FastAPI, middleware, OpenTelemetry, body, answer)", request_s, n)]
    for depth, module_name, function in STEPS:
        name = f"{module_name}.{function}"
        if calls[name]:
            rows.append((depth, name, spent[name], calls[name]))
    if calls["service.receive"] and calls["intake.receive"]:
        rest = spent["service.receive"] - spent["intake.receive"]
        rows.insert(4, (2, "(session, BEGIN IMMEDIATE, COMMIT: service.receive − intake.receive)", rest, n))
    for depth, name, seconds, count in rows:
        label = ("  " * depth + name) if depth else f"any depth: {name}" if name.count(".") else name
        print(f"    {seconds / n * 1000:7.2f} ms {seconds / request_s:5.0%}  ×{count / n:<5.2f} {label}")


async def statement_census(options: Options, workdir: Path) -> None:
    """One payload at a time through the app over ASGI (no HTTP, no concurrency): time and SQL
    statements per payload, by phase — what each webhook costs Panorama by itself."""
    small = replace(options, groups=min(options.groups, CENSUS_GROUPS))
    config = panorama_config("http://127.0.0.1:9", worker=False)
    settings = settings_for(f"sqlite+aiosqlite:///{workdir / 'census.db'}", **config)
    headers = {**bearer_webhook(), "Content-Type": "application/json"}
    counts: Counter[str] = Counter()
    spent: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()

    def count(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool
    ) -> None:
        counts[_statement_kind(statement, executemany)] += 1

    print(f"\nIn-process, one payload at a time over ASGI ({small.groups} groups; app/ as the tests run it):")
    print(
        "  (SQL statements as SQLAlchemy sends them: on SQLite the journal's transaction, BEGIN IMMEDIATE,\n"
        "  one INSERT per webhook and COMMIT, is one call outside it, app.db.sqlite_transaction, not counted)"
    )
    async with running_app(settings) as (app, client):
        event.listen(app.state.context.engine.sync_engine, "before_cursor_execute", count)
        for body in warmup().bodies:
            (await client.post(WEBHOOK, content=body, headers=headers)).raise_for_status()
        for phase in storm(small):
            counts.clear()
            spent.clear()
            calls.clear()
            request_s = 0.0
            cpu, started = time.process_time(), time.perf_counter()
            with step_timers(spent, calls):
                for body in phase.bodies:
                    sent = time.perf_counter()
                    (await client.post(WEBHOOK, content=body, headers=headers)).raise_for_status()
                    request_s += time.perf_counter() - sent
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            n = len(phase.bodies)
            print(
                f"  {phase.name}: {seconds / n * 1000:.1f} ms/payload ({cpu / n * 1000:.1f} ms CPU, both "
                f"threads), {phase.alerts / seconds:,.0f} alerts/s, "
                f"{sum(counts.values()) / n:.1f} SQL statements/payload:"
            )
            print("      " + ", ".join(f"{k} ×{v / n:.2f}" for k, v in counts.most_common()))
            print_steps(spent, calls, n, request_s)


# --- main ---------------------------------------------------------------------------------


async def bench(options: Options, workdir: Path) -> None:
    phases = storm(options)
    requests = sum(len(p.bodies) for p in phases)
    size = sum(len(b) for p in phases for b in p.bodies) / requests
    load = os.getloadavg()[0]
    fire, repeat, resolve = phases
    worker = "alerts.worker: true, the channels posting to the bare process (as a robot)"
    if not options.worker:
        worker = "alerts.worker: false (no sending; the journal is still applied)"
    print(
        f"Alert storm: {options.groups:,} groups × {options.alerts} alerts fire ({fire.alerts:,} alerts); "
        f"{len(repeat.bodies):,} groups repeat with {options.joining} alerts joining; "
        f"{len(resolve.bodies):,} groups resolve.\n{requests:,} webhook requests (mean body "
        f"{size / 1024:.1f} KiB), {options.concurrency} in flight, over HTTP on 127.0.0.1. "
        f"Panorama with {worker}: on SQLite (WAL), one uvicorn process; on PostgreSQL "
        f"({_server_name()}), two replica processes sharing a fresh database. {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the start."
    )
    servers: list[Server] = []
    runs: list[RunResult] = []
    postgres: RunResult | None = None
    profile_path = workdir / "panorama.prof"
    try:
        bare_server = start_bare(workdir)
        servers.append(bare_server)
        bare_first = await run_storm(bare_server, options, phases)
        bare_first.label += ", run 1 (before Panorama)"
        config = panorama_config(bare_server.url, worker=options.worker)

        on_sqlite = start_panorama(workdir / "sqlite", f"Panorama on SQLite, {worker}", config)
        servers.append(on_sqlite)
        sqlite = await run_storm(on_sqlite, options, phases)
        if options.worker:
            sqlite.note = await settle_worker(on_sqlite, bare_server, 3.0)
        on_sqlite.stop()
        runs = [bare_first, sqlite]

        if options.postgres and POSTGRES_URL:
            database_url = await create_postgres_database()
            try:
                on_postgres = start_panorama(
                    workdir / "postgres",
                    f"Panorama on PostgreSQL, two replicas, {worker}",
                    config,
                    database_url=database_url,
                    replicas=2,
                )
                servers.append(on_postgres)
                postgres = await run_storm(on_postgres, options, phases)
                if options.worker:
                    postgres.note = await settle_worker(on_postgres, bare_server, 3.0)
                on_postgres.stop()
                runs.append(postgres)
            finally:
                for server in servers[2:]:
                    server.stop()
                await drop_postgres_database(database_url)
        elif options.postgres:
            print("(PANORAMA_TEST_POSTGRES_URL is empty: no PostgreSQL run)")

        bare_second = await run_storm(bare_server, options, phases)
        bare_second.label += ", run 2 (after Panorama)"
        runs.append(bare_second)

        if options.profile:
            profiled = start_panorama(
                workdir / "profiled",
                f"Panorama under cProfile, {PROFILE_GROUPS} groups at most, alerts.worker: false (slowed by "
                "the profiler; not compared)",
                panorama_config(bare_server.url, worker=False),
                profile=profile_path,
            )
            servers.append(profiled)
            fewer = replace(options, groups=min(options.groups, PROFILE_GROUPS))
            runs.append(await run_storm(profiled, options, storm(fewer)))
            await interrupt(profiled)
    finally:
        for server in reversed(servers):
            server.stop()

    for run in runs:
        print_run(run)
    bare_cpu_s = min(run.server_cpu_s / run.total.requests for run in (bare_first, bare_second))
    print_goals(
        sqlite,
        postgres,
        best_of([bare_first, bare_second], "bare: the faster of its 2 runs, per phase"),
        bare_cpu_s,
    )
    if options.profile:
        print_profile(profile_path)
        await statement_census(options, workdir)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def _server_name() -> str:
    """The PostgreSQL server the run uses, without its password."""
    if not POSTGRES_URL:
        return "not configured"
    url = make_url(POSTGRES_URL)
    return f"{url.host}:{url.port or 5432}"


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)  # stop the servers on SIGTERM as on Ctrl-C
    workdir = Path(tempfile.mkdtemp(prefix="panorama-alert-storm-"))
    started = time.perf_counter()
    try:
        # uvloop, as uvicorn serves: the load generator's own CPU per request, kept low (Connection)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bench(options, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted; every server started was stopped", file=sys.stderr)
        return 130
    finally:
        if options.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"(bench ran {time.perf_counter() - started:.0f} s; exit status 0 whatever the goals)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

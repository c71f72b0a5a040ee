"""The delivery worker's own cost: event-loop CPU per outbox row delivered, in-process.

Panorama runs in-process (the app over ASGI, SQLite, or a fresh database on the shared PostgreSQL
with ``--postgres``) with its worker off; the storm's pages are queued by posting G groups'
webhooks (``bench/alert_storm.py``'s alerts: 10 per group), then the worker drains the outbox
while the clock runs: ``delivery.drain_channel`` for every channel, as the runtime's senders do,
posting to ``bench/alert_bare.py`` (started on a free port; it answers like a robot that
accepted the message). Per variant of the paged channel:

- ``webhook×1``:   a generic webhook, one message at a time (``concurrency: 1``, the default);
- ``webhook×8``:   the same, eight at once;
- ``dingtalk``:    a DingTalk robot, rate-limited to 20 a minute: the queue goes as digests.

It prints the event loop's CPU (``time.thread_time`` of the loop's thread: the database's thread
not counted) per delivered row and per HTTP post, the SQL statements per row, and the cost of one
wake of the sender loop when nothing is due (``--wakes``): what every stored webhook used to cost
the worker during a storm. No goal: for the record (see the README's Performance rows).

Run: .venv/bin/python bench/delivery_cpu.py [--groups 300] [--rounds 3] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]  # see alert_storm.py

from sqlalchemy import event, text  # noqa: E402

from app.alerts import delivery  # noqa: E402
from app.db import WORKER  # noqa: E402
from bench.alert_storm import start_bare  # noqa: E402
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload  # noqa: E402
from tests.harness.app import running_app, settings_for  # noqa: E402
from tests.harness.database import POSTGRES_URL, create_postgres_database, drop_postgres_database  # noqa: E402
from tests.harness.intake import applied  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "webhook×1": {"type": "webhook"},
    "webhook×8": {"type": "webhook", "concurrency": 8},
    "dingtalk": {"type": "dingtalk", "secret": "SECxyz"},
}


def config(sink: str, variant: str) -> dict[str, Any]:
    """The storm's configuration, its paging robot replaced by the variant's channel (same name)."""
    data = alerting_config(robot_url=f"{sink}/robot")
    data["channels"] = [
        {"name": "ops-robot", "url": f"{sink}/robot?access_token=t1", **VARIANTS[variant]},
        *[c for c in data["channels"] if c["name"] != "ops-robot"],
    ]
    return data


def bodies(groups: int) -> list[bytes]:
    out = []
    for group in range(groups):
        name = f"Deliver{group:05d}"
        severity = "warning" if group % 3 == 0 else "critical"
        alerts = [
            alert(name, severity=severity, service=f"svc-{group % 40:02d}.shop", pod=f"p-{i}")
            for i in range(10)
        ]
        out.append(json.dumps(payload(name, alerts)).encode())
    return out


async def one(
    variant: str, groups: int, sink: str, database_url: str, wakes: int, profile: bool = False
) -> dict[str, float]:
    settings = settings_for(database_url, **config(sink, variant))
    statements: Counter[str] = Counter()

    def count(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        statements["all"] += 1

    async with running_app(settings) as (app, client):
        context = app.state.context
        runtime = context.alerts
        headers = {**bearer_webhook(), "Content-Type": "application/json"}
        answers = [await client.post(WEBHOOK, content=body, headers=headers) for body in bodies(groups)]
        for answer in answers:  # journaled: the incidents (and their pages) follow; wait for them
            answer.raise_for_status()
            await applied(client, answer, timeout_s=120.0)
        async with context.sessions() as session:
            queued = (
                await session.execute(text("SELECT count(*) FROM alert_outbox WHERE status = 'pending'"))
            ).scalar_one()
        enricher = await runtime.enricher()
        sink_before = await _sink_count(sink)
        engines = [context.engine.sync_engine]
        if hasattr(context.engine, "reader"):  # SQLite: the readers' engine beside the writer
            engines.append(context.engine.reader.sync_engine)
        for engine in engines:
            event.listen(engine, "before_cursor_execute", count)
        profiler = cProfile.Profile() if profile else None
        gc.collect()
        cpu, wall = time.thread_time(), time.perf_counter()
        delivered = 0
        if profiler is not None:
            profiler.enable()
        for channel in ("ops-robot", "audit"):
            delivered += await delivery.drain_channel(
                context.sessions, settings, runtime.http, channel, worker=WORKER, enricher=enricher
            )
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
                int(os.environ.get("TOP", "30"))
            )
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        sql = statements["all"]
        statements.clear()
        async with context.sessions() as session:
            sent = (
                await session.execute(text("SELECT count(*) FROM alert_outbox WHERE status = 'delivered'"))
            ).scalar_one()
        posts = await _sink_count(sink) - sink_before
        # Waking the sender loop with nothing to send (a storm wakes it after every stored webhook).
        wake_cpu = time.thread_time()
        dispatch = getattr(runtime, "dispatch_pass", None) or runtime._dispatch_pass  # the code before
        for _ in range(wakes):
            await dispatch()
        wake_cpu = time.thread_time() - wake_cpu
        wake_sql = statements["all"]
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    return {
        "queued": queued,
        "handled": delivered,
        "delivered": sent,
        "posts": posts,
        "cpu_s": cpu,
        "wall_s": wall,
        "sql": sql,
        "wake_ms": wake_cpu / max(wakes, 1) * 1000,
        "wake_sql": wake_sql / max(wakes, 1),
    }


async def _sink_count(sink: str) -> int:
    import httpx

    async with httpx.AsyncClient(base_url=sink, timeout=10.0) as http:
        return int((await http.get("/sink")).json()["sink"])


async def bench(
    groups: int, rounds: int, variants: Sequence[str], postgres: bool, wakes: int, profile: bool
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="panorama-delivery-cpu-"))
    bare = start_bare(workdir)  # the storm's bare endpoint: it answers like a robot that accepted
    sink = bare.urls[0]
    print(
        f"Delivery worker, in-process: {groups} groups × 10 alerts fired, then the outbox drained to a sink "
        f"on 127.0.0.1 ({'PostgreSQL' if postgres else 'SQLite'}); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  {'variant':<10} {'rows':>5} {'posts':>5} {'loop CPU ms/row':>15} {'ms/post':>8} "
        f"{'SQL/row':>7} {'wall s':>6} {'wake ms':>7} {'SQL/wake':>8}"
    )
    try:
        for round_ in range(rounds):
            for variant in variants:
                if postgres:
                    url = await create_postgres_database()
                else:
                    url = f"sqlite+aiosqlite:///{workdir / f'{variant}-{round_}.db'}"
                try:
                    r = await one(variant, groups, sink, url, wakes, profile)
                finally:
                    if postgres:
                        await drop_postgres_database(url)
                rows = max(r["delivered"], 1)
                print(
                    f"  {variant:<10} {r['delivered']:>5.0f} {r['posts']:>5.0f} "
                    f"{r['cpu_s'] / rows * 1000:>15.3f} {r['cpu_s'] / max(r['posts'], 1) * 1000:>8.3f} "
                    f"{r['sql'] / rows:>7.2f} {r['wall_s']:>6.2f} {r['wake_ms']:>7.3f} {r['wake_sql']:>8.1f}"
                    + ("" if r["delivered"] == r["queued"] else f"  (queued {r['queued']:.0f}: not all sent)")
                )
    finally:
        bare.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--wakes", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the drain (own time, top 30)")
    parser.add_argument("--postgres", action="store_true", help="a fresh database on the shared PostgreSQL")
    args = parser.parse_args(argv)
    if args.postgres and not POSTGRES_URL:
        parser.error("PANORAMA_TEST_POSTGRES_URL is empty")
    asyncio.run(
        bench(
            args.groups, args.rounds, args.variant or list(VARIANTS), args.postgres, args.wakes, args.profile
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The webhook intake alone, in-process: event-loop CPU per webhook, from the body's bytes to the commit.

``bench/alert_storm.py`` measures the whole server over HTTP; this measures only what
app/alerts does to apply a webhook (``api._payload`` → ``intake.store``: parsing, validation,
group commit, routing, escalation, outbox: what ``app.alerts.journal`` does per row), without
the HTTP stack every route shares, so a change to the intake shows in its own figure. The storm
is alert_storm's (same bodies), on a fresh SQLite database (or ``--postgres``: a fresh database
on the shared server, dropped after), with ``--concurrency`` webhooks in flight (group commit
batches them as in a real storm).

It prints, per phase (fire, repeat, resolve), the event-loop thread's CPU per webhook (the
figure that bounds a single process's throughput), the whole process's, and the SQL statements
per webhook; ``--profile PHASE`` adds cProfile's top functions for that phase (own time).
Being CPU time, not wall time, it is fairly steady on a loaded machine; compare runs of one
session. Run: .venv/bin/python bench/intake_cpu.py [--groups 300] [--profile fire]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from app.alerts import api, intake, repository  # noqa: E402
from app.alerts.groupcommit import GroupCommit  # noqa: E402
from bench.alert_storm import Options, panorama_config, start_bare, storm, warmup  # noqa: E402
from tests.harness.app import running_app, settings_for  # noqa: E402
from tests.harness.database import create_postgres_database, drop_postgres_database  # noqa: E402


async def settle(sessions: Any) -> None:
    """Until the outbox holds nothing due (the worker sent it all, or gave up on it for now)."""
    for _ in range(600):
        async with sessions() as session:
            if await repository.pending_count(session) == 0:
                return
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, database_url: str, sink: str) -> None:
    options = Options(
        groups=args.groups,
        alerts=10,
        joining=2,
        concurrency=args.concurrency,
        worker=False,
        postgres=False,
        profile=False,
        keep=False,
        full=False,
    )
    settings = settings_for(database_url, **panorama_config(sink, worker=args.worker))
    statements: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements["all"] += 1
        statements[" ".join(statement.split()[:4])[:48]] += 1

    async with running_app(settings) as (app, _client):
        context = app.state.context
        runtime, sessions = context.alerts, context.sessions
        event.listen(context.engine.sync_engine, "before_cursor_execute", count)

        # What applying the journal does per row (``app.alerts.journal``), group-committed as the
        # webhook itself did before the journal: parse, then ``intake.store``.
        applying: GroupCommit[intake.Webhook, int | None] = GroupCommit(
            functools.partial(intake.store, sessions)
        )
        key = await runtime.signing_key()

        async def one(raw: bytes) -> None:
            webhook = intake.webhook(settings, api._payload(raw), key)
            await applying.submit(webhook, webhook.keys)

        async def phase_run(bodies: list[bytes]) -> None:
            pending = iter(bodies)

            async def worker() -> None:
                for raw in pending:
                    await one(raw)

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))

        await phase_run(warmup().bodies)
        print(
            f"intake only (api._payload → intake.store), {args.groups} groups × 10 alerts, "
            f"{args.concurrency} in flight, {database_url.split(':')[0]}"
        )
        for phase in storm(options):
            statements.clear()
            profiler = cProfile.Profile(time.thread_time) if args.profile == phase.name else None
            loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            await phase_run(phase.bodies)
            wall = time.perf_counter() - wall
            loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
            n = len(phase.bodies)
            line = (
                f"  {phase.name:<8} {n:>5} webhooks: event loop {loop_cpu / n * 1000:6.2f} ms CPU/webhook, "
                f"process {cpu / n * 1000:6.2f} ms, {statements['all'] / n:4.1f} statements/webhook, "
                f"{phase.alerts / wall:7,.0f} alerts/s"
            )
            if args.worker:  # what the worker still had to send once the phase's webhooks were in
                after = time.thread_time()
                await settle(sessions)
                line += f"; worker after the phase {(time.thread_time() - after) / n * 1000:5.2f} ms/webhook"
            if profiler:
                profiler.disable()
            print(line)
            if args.statements:
                kinds = [(k, v) for k, v in statements.most_common() if k != "all"]
                print("      " + "; ".join(f"{k} ×{v / n:.2f}" for k, v in kinds[:12]))
            if profiler:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(args.top)
                stats.sort_stats("cumulative").print_stats(args.top)
                print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", choices=("fire", "repeat", "resolve"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--worker", action="store_true", help="the delivery worker on, sending to a sink")
    parser.add_argument("--statements", action="store_true", help="the statements per webhook, by kind")
    args = parser.parse_args()

    async def go(tmp: str) -> None:
        sink = start_bare(Path(tmp)) if args.worker else None
        sink_url = sink.url if sink else "http://127.0.0.1:9"
        try:
            if args.postgres:
                url = await create_postgres_database()
                try:
                    await run(args, url, sink_url)
                finally:
                    await drop_postgres_database(url)
            else:
                await run(args, f"sqlite+aiosqlite:///{tmp}/intake.db", sink_url)
        finally:
            if sink:
                sink.stop()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(go(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

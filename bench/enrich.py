"""A page's context for an alert group of several services, against Elasticsearch and Jaeger fakes
that answer with set delays; and how well the newest-200-lines sample counts error patterns.

1. The bound. Panorama fetches each shown service's context side by side, so a page for a group of
   three services should wait about as long as for one (goal: ratio at most 1.5; one service after
   the other would give about 3). With Elasticsearch hanging, the page must go out within
   :func:`app.alerts.enrichment.fetch_limit_s` however many services it shows (goal: ratio to that
   bound at most 1.1).
2. The counts. Error lines of one window, with a burst at its end: the counts the newest
   ``LOG_SAMPLE`` lines give against the exact counts of every line, and how many buckets an
   Elasticsearch ``terms`` aggregation on the message's ``.keyword`` would make of them (one per
   distinct line: it groups exact messages, not patterns; lines over ``ignore_above: 256`` are not
   in it at all). Why the sample stays is in :mod:`app.alerts.enrichment`'s docstring.

Run: .venv/bin/python bench/enrich.py   (about 20 seconds; not part of the test suite)
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fakes live in tests/, which is not installed

from app import db  # noqa: E402
from app.alerts.channels.base import AlertView, Notification  # noqa: E402
from app.alerts.enrichment import LOG_SAMPLE, fetch_context, fetch_limit_s, group_services  # noqa: E402
from app.backends.registry import Backends  # noqa: E402
from app.backends.traces import Span, make_trace  # noqa: E402
from app.config import Settings  # noqa: E402
from app.correlation.service import message_pattern  # noqa: E402
from tests.fakes.elasticsearch import FakeElasticsearch  # noqa: E402
from tests.fakes.jaeger import FakeJaeger  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

ROUNDS = 7
SERVICES = ("checkout", "payments", "cart", "shipping", "search")
DELAY_S = 0.3  # each fake's answer delay in the timing scenarios
GOAL_SIDE_BY_SIDE = 1.5
GOAL_BOUND = 1.1  # the bound, plus the moment cancelling the hung calls takes


def seed(jaeger: FakeJaeger, es: FakeElasticsearch, start: datetime) -> None:
    """Per service: 30 error lines of three patterns and one failed trace."""
    index = start.strftime("logstash-%Y.%m.%d")
    docs = []
    for k, name in enumerate(SERVICES):
        trace = f"{k + 1:032x}"
        jaeger.add_trace(
            make_trace(trace, [Span(trace, f"{k + 1:016x}", None, f"{name}.shop", "call", start, 80_000)])
        )
        for n in range(30):
            moment = start + timedelta(seconds=n)
            docs.append(
                {
                    "@timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "log": f"request {n} failed after {n * 7}ms (kind {n % 3})",
                    "level": "error",
                    "kubernetes": {
                        "namespace_name": "shop",
                        "pod_name": f"{name}-1",
                        "labels": {"app": name},
                    },
                }
            )
    es.add_documents(index, docs)


def settings(data_dir: str, es_url: str, jaeger_url: str, timeout: str) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "database": {"url": f"sqlite+aiosqlite:///{data_dir}/bench.db"},
            "elasticsearch": {"url": es_url, "retries": 0},
            "jaeger": {"url": jaeger_url, "retries": 0},
            "logging": {"level": "ERROR"},
            "alerts": {"worker": False, "enrich_timeout": timeout, "public_url": "https://p.example.com"},
            "rollups": {"enabled": False},
        }
    )


def page(services: int, start: datetime) -> Notification:
    alerts = [
        AlertView(
            name="HighErrorRate",
            status="firing",
            severity="critical",
            summary=None,
            description=None,
            labels={"alertname": "HighErrorRate", "service": name, "namespace": "shop"},
            starts_at=start,
        )
        for name in SERVICES[:services]
    ]
    return Notification(
        kind="trigger",
        incident_id=1,
        title="HighErrorRate",
        status="triggered",
        severity="critical",
        services=list(SERVICES[:services]),
        started_at=start,
        incident_url="https://p.example.com/incidents/1",
        ack_url=None,
        alerts=alerts,
        firing=len(alerts),
        resolved=0,
        enrich=True,
    )


async def timed(config: Settings, message: Notification, now: datetime, rounds: int) -> list[float]:
    engine = db.create_engine(config.database)
    backends = Backends.from_settings(config, ("elasticsearch", "jaeger"))
    timings = []
    try:
        sessions = db.create_session_factory(engine)
        for _ in range(rounds):
            started = time.perf_counter()
            found = await fetch_context(
                config,
                message,
                group_services(message),
                backends=backends,
                sessions=sessions,
                key=None,
                now=now,
            )
            timings.append(time.perf_counter() - started)
            if not found.services:
                raise SystemExit("no context fetched")
    finally:
        await backends.aclose()
        await engine.dispose()
    return timings


async def bound_scenarios() -> bool:
    now = datetime.now(UTC)
    start = now - timedelta(minutes=3)
    jaeger, es = FakeJaeger(), FakeElasticsearch()
    seed(jaeger, es, start)
    ok = True
    with serve(jaeger) as jaeger_server, serve(es) as es_server, tempfile.TemporaryDirectory() as data_dir:
        try:
            config = settings(data_dir, es_server.url, jaeger_server.url, "2s")
            await timed(config, page(1, start), now, 2)  # warm-up: connections, API detection
            jaeger.hang(DELAY_S)
            es.hang(DELAY_S)
            medians = {}
            for count in (1, 3, 5):
                medians[count] = statistics.median(await timed(config, page(count, start), now, ROUNDS))
            print(f"context of a group, each fake answering after {DELAY_S * 1000:.0f} ms ({ROUNDS} rounds)")
            print("(one service after the other would make the ratio about the number shown)")
            print(f"{'services':>9} {'shown':>6} {'median':>9} {'ratio to 1':>11} {'goal':>7} {'verdict':>8}")
            for count, median in medians.items():
                ratio = median / medians[1]
                good = ratio <= GOAL_SIDE_BY_SIDE
                ok &= good
                print(
                    f"{count:9d} {min(count, 3):6d} {median * 1000:7.0f}ms {ratio:11.2f} "
                    f"{'≤ ' + str(GOAL_SIDE_BY_SIDE):>7} {'PASS' if good else 'MISS':>8}"
                )
            jaeger.clear_faults()
            es.clear_faults()
            es.hang(30)  # a broken Elasticsearch: never answers
            config = settings(data_dir, es_server.url, jaeger_server.url, "1s")
            limit = fetch_limit_s(config)
            worst = max(await timed(config, page(5, start), now, 3))
            ratio = worst / limit
            good = ratio <= GOAL_BOUND
            ok &= good
            print(
                f"Elasticsearch hanging, 5 services (3 shown): slowest page {worst * 1000:.0f} ms against "
                f"the bound {limit * 1000:.0f} ms: ratio {ratio:.2f}, goal ≤ {GOAL_BOUND}: "
                f"{'PASS' if good else 'MISS'}"
            )
        finally:
            jaeger.close()
            es.close()
    return ok


def counting() -> None:
    """A 15-minute window of one service's error lines: a steady timeout, a burst of refused
    connections in its last half-minute, a rare panic with a long stack trace."""
    lines: list[tuple[float, str]] = []  # (seconds into the window, text)
    for n in range(3000):
        lines.append((n * 0.29, f"order {88000 + n} timed out after {300 + n % 700}ms"))
    for n in range(400):
        lines.append((870 + n * 0.07, f"db connection to 10.0.{n % 8}.{n % 250}:5432 refused"))
    trace = "".join(f"\n  at com.shop.Service.step{k}(Service.java:{100 + k})" for k in range(20))
    for n in range(60):
        lines.append((n * 14.0, f"panic: nil map in request {n}{trace}"))
    lines.sort()
    exact = Counter(message_pattern(text) for _, text in lines)
    sample = Counter(message_pattern(text) for _, text in lines[-LOG_SAMPLE:])
    keyword = {text for _, text in lines if len(text) <= 256}
    print()
    print(f"error patterns of one window: {len(lines)} lines; the newest {LOG_SAMPLE} against all")
    print(f"{'pattern':<46} {'exact':>7} {'sample':>7}")
    for pattern, count in exact.most_common():
        print(f"{pattern[:46]:<46} {count:7d} {sample.get(pattern, 0):7d}")
    print(
        f"a terms aggregation on .keyword: {len(keyword)} buckets for {len(exact)} patterns "
        f"({len(lines) - len(keyword)} lines over ignore_above 256 left out)"
    )


async def main() -> int:
    logging.getLogger("panorama").setLevel(logging.ERROR)  # each hung page warns once
    ok = await bound_scenarios()
    counting()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

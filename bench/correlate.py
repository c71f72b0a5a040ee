"""Latency of GET /api/v1/traces/{id} against Jaeger and Elasticsearch fakes that answer with set delays.

Panorama asks both backends at once, so the answer should take about as long as the
slower backend, plus little. This prints the median and p90 latency for each scenario
and the ratio of the median to the slower backend's delay (goal: at most 1.15; asking
one backend after the other would give (a + b) / max(a, b), about 1.6 here).

Run: .venv/bin/python bench/correlate.py   (about 20 seconds; not part of the test suite)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fakes live in tests/, which is not installed

import httpx  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from app.backends.traces import Span, make_trace  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.fakes.elasticsearch import FakeElasticsearch  # noqa: E402
from tests.fakes.jaeger import FakeJaeger  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

TOKEN = "bench-viewer-token-0001"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ROUNDS = 15
WARMUP = 3
GOAL = 1.15
SCENARIOS = (  # (jaeger delay, elasticsearch delay), seconds
    (0.40, 0.25),
    (0.25, 0.40),
    (0.30, 0.30),
)


def seed(jaeger: FakeJaeger, es: FakeElasticsearch) -> None:
    """A five-span trace from a minute ago, and 40 log lines carrying its id (plus noise)."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    spans = [
        Span(TRACE_ID, f"{k + 1:016x}", f"{k:016x}" if k else None, f"svc-{k}.shop", "call", start, 50_000)
        for k in range(5)
    ]
    jaeger.add_trace(make_trace(TRACE_ID, spans))
    index = start.strftime("logstash-%Y.%m.%d")
    docs = []
    for k in range(200):
        moment = (start + timedelta(milliseconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        trace = TRACE_ID if k % 5 == 0 else f"{k:032x}"
        docs.append(
            {
                "@timestamp": moment,
                "log": f"step {k} trace_id={trace}",
                "kubernetes": {
                    "namespace_name": "shop",
                    "pod_name": f"svc-{k % 5}-1",
                    "labels": {"app": f"svc-{k % 5}"},
                },
            }
        )
    es.add_documents(index, docs)


def settings(data_dir: str, es_url: str, jaeger_url: str) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "database": {"url": f"sqlite+aiosqlite:///{data_dir}/bench.db"},
            "auth": {"tokens": [{"name": "bench", "role": "viewer", "token": TOKEN}]},
            "elasticsearch": {"url": es_url, "retries": 0},
            "jaeger": {"url": jaeger_url, "retries": 0},
            "logging": {"level": "WARNING"},
            # No background work: the alert worker and rollups would poll a database nobody
            # migrated here, and take CPU from what is measured.
            "alerts": {"worker": False},
            "rollups": {"enabled": False},
        }
    )


async def measure(client: httpx.AsyncClient, rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await client.get(f"/api/v1/traces/{TRACE_ID}", headers={"Authorization": f"Bearer {TOKEN}"})
        timings.append(time.perf_counter() - started)
        body = answer.json()
        if answer.status_code != 200 or body["trace"] is None or len(body["logs"]) != 40:
            raise SystemExit(f"unexpected answer {answer.status_code}: {answer.text[:300]}")
    return timings


async def direct(url: str, rounds: int = 5) -> float:
    """Median time of a bare GET to a fake: its delay as it really answers (its timer has ~20 ms steps)."""
    timings = []
    async with httpx.AsyncClient() as raw:
        for _ in range(rounds):
            started = time.perf_counter()
            (await raw.get(url)).raise_for_status()
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def run_scenario(jaeger_delay: float, es_delay: float) -> tuple[float, float, float]:
    jaeger, es = FakeJaeger(), FakeElasticsearch()
    seed(jaeger, es)
    with serve(jaeger) as jaeger_server, serve(es) as es_server, tempfile.TemporaryDirectory() as data_dir:
        app = create_app(
            settings(data_dir, es_server.url, jaeger_server.url), tracer_provider=TracerProvider()
        )
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://panorama.bench") as client:
                    await measure(client, WARMUP)  # connections, API detection, imports
                    jaeger.hang(jaeger_delay)
                    es.hang(es_delay)
                    timings = await measure(client, ROUNDS)
                    slower = max(
                        await direct(f"{jaeger_server.url}/api/v3/traces/{TRACE_ID}"),
                        await direct(f"{es_server.url}/"),
                    )
        finally:
            jaeger.close()  # releases any request still held by a delay
            es.close()
    timings.sort()
    return statistics.median(timings), timings[int(0.9 * (len(timings) - 1))], slower


async def main() -> int:
    print(f"GET /api/v1/traces/{{id}}: {ROUNDS} requests per scenario after {WARMUP} warm-up requests")
    print(
        f"{'jaeger':>8} {'elastic':>8} {'median':>8} {'p90':>8} {'ratio':>6} {'goal':>7} {'verdict':>7}"
        f"  {'slower fake alone':>18}"
    )
    worst = 0.0
    for jaeger_delay, es_delay in SCENARIOS:
        median, p90, slower = await run_scenario(jaeger_delay, es_delay)
        ratio = median / max(jaeger_delay, es_delay)
        worst = max(worst, ratio)
        print(
            f"{jaeger_delay * 1000:6.0f}ms {es_delay * 1000:6.0f}ms "
            f"{median * 1000:6.1f}ms {p90 * 1000:6.1f}ms {ratio:6.3f} {'≤ ' + str(GOAL):>7} "
            f"{'PASS' if ratio <= GOAL else 'MISS':>7}  {slower * 1000:16.1f}ms"
        )
    verdict = "PASS" if worst <= GOAL else "MISS"
    print("ratio: median over the slower backend's set delay; slower fake alone: a bare GET to that fake")
    print(f"worst ratio {worst:.3f}, goal ≤ {GOAL}: {verdict} (one backend after the other would be ~1.6)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

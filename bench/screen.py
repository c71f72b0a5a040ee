"""GET /api/v1/screen with 200 wall screens polling at once, against one screen.

Panorama runs as ``panorama serve`` (one process, SQLite) over a real Prometheus that scrapes the
tests' live exporter every second (tests/screen/platform.py). Runs of the same length, each wall
asking once per ``screen.refresh_seconds`` as the page does, with its own token:

- one wall (its requests find the data due, and wait for the refresh, or fresh);
- 200 walls at random phases (most find the data fresh; those arriving during a refresh wait for it);
- for reference, one client asking back to back (the latency of a cache hit).

Printed for each: requests, p50 and p99 latency, and the backend queries per refresh interval,
counted twice: by Panorama (``panorama_screen_backend_queries_total``) and by Prometheus itself
(``prometheus_http_requests_total`` of its query handlers). Goals: the p99 with 200 pollers within
2× of one poller's, and one set of queries per interval whatever the number of pollers (the set is
what a single refresh costs). Both runs share the machine with Prometheus: figures are noisy on a
busy 2-core machine, the ratios less so.

Run: .venv/bin/python bench/screen.py [--seconds 30] [--pollers 200]   (about four minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the exporter and the harness live in tests/, which is not installed

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402

from tests.harness.processes import ManagedProcess, start_on_free_port  # noqa: E402
from tests.harness.prometheus import start_prometheus  # noqa: E402
from tests.screen.platform import LiveExporter  # noqa: E402
from tests.test_observability import sample  # noqa: E402

MAX_POLLERS = 400


def token(n: int) -> str:
    """Wall ``n``'s token: one per wall, as an ops room with many walls has (each its own budget)."""
    return f"bench-wall-{n:04d}-screen-token"


REFRESH_S = 2
"""The walls' refresh interval here: 200 walls make 100 requests a second (the default, 10 s, makes 20)."""
P99_GOAL = 2.0
QUERY_METRIC = re.compile(r'panorama_screen_backend_queries_total\{backend="(\w+)",panel="(\w+)"\} (\S+)')


@dataclass
class Run:
    label: str
    latencies: list[float]
    seconds: float
    panorama_queries: float  # Prometheus queries Panorama's screen sent
    prometheus_queries: float  # queries Prometheus answered meanwhile

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def per_interval(self) -> float:
        return self.panorama_queries / (self.seconds / REFRESH_S)


def start_panorama(workdir: Path, prometheus_url: str) -> tuple[str, ManagedProcess]:
    config = {
        "database": {"url": f"sqlite+aiosqlite:///{workdir / 'panorama.db'}"},
        "data_dir": str(workdir),
        "prometheus": {"url": prometheus_url, "retries": 0},
        "rollups": {"enabled": False},
        "alerts": {"worker": False},
        "auth": {
            "tokens": [{"name": f"wall-{n}", "role": "screen", "token": token(n)} for n in range(MAX_POLLERS)]
        },
        "screen": {"refresh_seconds": REFRESH_S, "window": "10s"},
        "logging": {"level": "WARNING"},
        # the reference client asks back to back with one token, far past the default 600 a minute
        "server": {"rate_limit": {"per_token_per_min": None}},
    }
    config_file = workdir / "panorama.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PANORAMA_CONFIG": str(config_file)}
    panorama = Path(sys.executable).parent / "panorama"
    command = [str(panorama)] if panorama.exists() else [sys.executable, "-m", "app.cli"]
    subprocess.run([*command, "migrate"], env=env, cwd=workdir, check=True, capture_output=True, timeout=120)

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            "panorama",
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            log_path=workdir / "panorama.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            env=env,
            cwd=workdir,
        )

    port, process = start_on_free_port(build)
    return f"http://127.0.0.1:{port}", process


async def counts(client: httpx.AsyncClient, prometheus_url: str) -> tuple[float, float]:
    """(Prometheus queries the screen sent, queries Prometheus answered), so far."""
    ours = sum(
        float(m.group(3))
        for m in QUERY_METRIC.finditer((await client.get("/metrics")).text)
        if m.group(1) == "prometheus"
    )
    text = (await client.get(f"{prometheus_url}/metrics")).text
    theirs = sum(
        sample(text, "prometheus_http_requests_total", code="200", handler=h) or 0.0
        for h in ("/api/v1/query", "/api/v1/query_range")
    )
    return ours, theirs


async def poll(
    session: aiohttp.ClientSession,
    url: str,
    wall: int,
    until: float,
    period: float,
    phase: float,
    out: list[float],
) -> None:
    """One wall: asks every ``period`` (back to back when 0) until ``until``; every answer must be a
    whole, fresh one (each 50th is parsed; the others checked for the traffic panel's fresh status)."""
    await asyncio.sleep(phase)
    headers = {"Authorization": f"Bearer {token(wall)}"}
    while time.monotonic() < until:
        started = time.monotonic()
        async with session.get(f"{url}/api/v1/screen", headers=headers) as answer:
            body = await answer.read()
        out.append(time.monotonic() - started)
        fresh = b'"traffic":{"status":"ok"' in body
        if len(out) % 50 == 0:
            fresh = fresh and json.loads(body)["panels"]["traffic"]["status"] == "ok"
        if answer.status != 200 or not fresh:
            raise SystemExit(f"unexpected answer {answer.status}: {body[:300]!r}")
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def run(label: str, url: str, prometheus_url: str, pollers: int, period: float, seconds: float) -> Run:
    """aiohttp for the pollers (a connection each, kept alive): a client that keeps up with 200."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = await counts(client, prometheus_url)
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=pollers + 2)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.monotonic()
            until = started + seconds
            rng = random.Random(7)
            await asyncio.gather(
                *(
                    poll(
                        session,
                        url,
                        n,
                        until,
                        period,
                        rng.uniform(0, period) if pollers > 1 else 0,
                        latencies,
                    )
                    for n in range(pollers)
                )
            )
            elapsed = time.monotonic() - started
        after = await counts(client, prometheus_url)
    return Run(label, latencies, elapsed, after[0] - before[0], after[1] - before[1])


async def one_set(url: str, prometheus_url: str) -> float:
    """The Prometheus queries one refresh costs: one request after the interval has passed."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.sleep(REFRESH_S + 0.2)
        before = await counts(client, prometheus_url)
        (
            await client.get("/api/v1/screen", headers={"Authorization": f"Bearer {token(0)}"})
        ).raise_for_status()
        after = await counts(client, prometheus_url)
    return after[0] - before[0]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--pollers", type=int, default=200, help="screens polling at once (default 200)")
    options = parser.parse_args(argv)
    if not 1 <= options.pollers <= MAX_POLLERS:
        parser.error(f"--pollers: 1 to {MAX_POLLERS}")
    exporter = LiveExporter().start()
    with tempfile.TemporaryDirectory(prefix="panorama-bench-screen-") as tmp:
        workdir = Path(tmp)
        prometheus = start_prometheus(workdir / "prometheus", scrape=[exporter.target], scrape_interval="1s")
        url, panorama = start_panorama(workdir, prometheus.url)
        try:
            print(
                f"panorama {url}, prometheus {prometheus.url} scraping {exporter.target} every 1 s",
                file=sys.stderr,
            )
            await asyncio.sleep(12)  # the rate window covered
            await run("warm-up", url, prometheus.url, 1, 0.0, 3)
            size = await one_set(url, prometheus.url)
            hits = await run(
                "1 client, back to back (cache hits)", url, prometheus.url, 1, 0.0, options.seconds
            )
            single = await run(
                f"1 wall, every {REFRESH_S} s", url, prometheus.url, 1, REFRESH_S, options.seconds
            )
            many = await run(
                f"{options.pollers} walls, each every {REFRESH_S} s",
                url,
                prometheus.url,
                options.pollers,
                REFRESH_S,
                options.seconds,
            )
        finally:
            panorama.stop()
            prometheus.process.stop()
            exporter.stop()
    print(f"GET /api/v1/screen, refresh every {REFRESH_S} s; one refresh = {size:.0f} Prometheus queries")
    print(
        f"{'':38} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'queries/interval':>17} "
        f"{'(Prometheus saw)':>17}"
    )
    for r in (hits, single, many):
        print(
            f"{r.label:38} {len(r.latencies):9,} "
            f"{r.quantile(0.5) * 1000:8.1f} {r.quantile(0.99) * 1000:8.1f} "
            f"{r.per_interval:17.2f} {r.prometheus_queries / (r.seconds / REFRESH_S):17.2f}"
        )
    ratio = many.quantile(0.99) / single.quantile(0.99)
    intervals = many.seconds / REFRESH_S
    # A run's window cuts intervals at both ends: at most one more set than whole intervals.
    sets_ok = (
        many.panorama_queries <= size * (intervals + 1) and many.prometheus_queries == many.panorama_queries
    )
    print(
        f"p99 with {options.pollers} walls / p99 with one wall: {ratio:.2f} "
        f"(goal ≤ {P99_GOAL:g}): {verdict(ratio <= P99_GOAL)}"
    )
    print(
        f"Prometheus queries per interval with {options.pollers} walls: {many.per_interval:.2f} "
        f"(goal: one set, {size:.0f}; {single.per_interval:.2f} with one wall): {verdict(sets_ok)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""A small live platform for the wall screen's tests: what its exporters say, served for a real
Prometheus to scrape, its last 30 days as history, and what the wall must therefore show.

:class:`LiveExporter` serves node_exporter, kube-state-metrics and Istio series on a loopback
port. Counters grow at fixed rates from the moment it starts and every sample carries its own
timestamp, so Prometheus's ``rate()`` over them is exactly the rate written here (once the
rate window is covered). Both Istio reporters are exported, as real sidecars do, so a query that
forgets ``reporter`` counts every request twice. :func:`write_history` writes the same edges'
daily traffic for the 30 days before (destination reporter, hourly), for the rollups to read.

The expected figures (:func:`expected`) are computed from the definitions below by their
definitions (sums, ratios, Prometheus's documented bucket interpolation), never copied from
what the screen answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.server import LoopbackServer
from tests.harness.openmetrics import Grid, OpenMetricsWriter

NAMESPACE = "shop"
BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)

DEFAULT_LATENCY = {25.0: 0.5, 50.0: 0.8, 100.0: 0.95, 250.0: 0.99, 500.0: 1.0}
SLOW_LATENCY = {50.0: 0.3, 100.0: 0.6, 250.0: 0.85, 500.0: 0.95, 1000.0: 0.99, 2500.0: 1.0}
FAST_LATENCY = {10.0: 0.4, 25.0: 0.8, 50.0: 0.97, 100.0: 1.0}


@dataclass(frozen=True)
class Edge:
    source: str
    source_namespace: str
    destination: str
    requests_per_s: float
    error_ratio: float
    latency: dict[float, float] = field(default_factory=lambda: DEFAULT_LATENCY)
    """Cumulative share of requests at or under each bound (ms); 1.0 at the last one."""

    @property
    def service(self) -> str:
        return f"{self.destination}.{NAMESPACE}.svc.cluster.local"

    def labels(self, reporter: str, code: str) -> dict[str, str]:
        return {
            "reporter": reporter,
            "source_workload": self.source,
            "source_workload_namespace": self.source_namespace,
            "source_canonical_service": self.source,
            "destination_service": self.service,
            "destination_service_name": self.destination,
            "destination_service_namespace": NAMESPACE,
            "destination_workload": self.destination,
            "destination_workload_namespace": NAMESPACE,
            "destination_canonical_service": self.destination,
            "request_protocol": "http",
            "response_code": code,
        }

    def share_at(self, bound: float, slower: float = 1.0) -> float:
        """Cumulative share of requests at or under ``bound`` (linear between the given points,
        from 0 at 0 ms); ``slower`` stretches every latency by that factor."""
        x = bound / slower
        previous_bound, previous_share = 0.0, 0.0
        for limit, share in sorted(self.latency.items()):
            if x <= limit:
                return previous_share + (share - previous_share) * (x - previous_bound) / (
                    limit - previous_bound
                )
            previous_bound, previous_share = limit, share
        return 1.0


EDGES = (
    Edge("istio-ingressgateway", "istio-system", "frontend", 120.0, 0.002),
    Edge("frontend", NAMESPACE, "catalog", 80.0, 0.0),
    Edge("frontend", NAMESPACE, "checkout", 30.0, 0.015),
    Edge("frontend", NAMESPACE, "recommendations", 25.0, 0.008),
    Edge("checkout", NAMESPACE, "payments", 12.0, 0.06, SLOW_LATENCY),
    Edge("checkout", NAMESPACE, "inventory", 18.0, 0.005),
    Edge("catalog", NAMESPACE, "search", 40.0, 0.0025, FAST_LATENCY),
)
REPORTERS = ("destination", "source")


@dataclass(frozen=True)
class Node:
    name: str
    ready: bool
    cpus: int
    idle_share: float  # of each CPU's time
    memory_bytes: float
    available_share: float


NODES = (
    Node("node-a", True, 8, 0.50, 64 * 2**30, 0.35),
    Node("node-b", True, 8, 0.60, 64 * 2**30, 0.45),
    Node("node-c", True, 8, 0.55, 64 * 2**30, 0.40),
    Node("node-d", True, 8, 0.65, 64 * 2**30, 0.50),
    Node("node-e", True, 8, 0.60, 64 * 2**30, 0.30),
)
LIVE_PODS = 46
NOT_READY_PODS = 2
COMPLETED_PODS = 3  # finished jobs: not ready, but not "not ready" either


def pods() -> Iterator[tuple[str, str, bool]]:
    """(pod, phase, ready) of every pod kube-state-metrics knows."""
    for index in range(LIVE_PODS):
        ready = index >= NOT_READY_PODS
        yield f"app-{index:02d}", "Running" if ready else "Pending", ready
    for index in range(COMPLETED_PODS):
        yield f"job-{index}", "Succeeded", False


# --- what the wall must show ---------------------------------------------------------------------


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's documented interpolation over cumulative ``(upper bound, count)`` buckets."""
    total = buckets[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound


def edge_buckets(edges: tuple[Edge, ...]) -> list[tuple[float, float]]:
    return [(b, sum(e.requests_per_s * e.share_at(b) for e in edges)) for b in (*BOUNDS_MS, math.inf)]


@dataclass(frozen=True)
class Expected:
    requests_per_s: float
    error_rate: float
    latency_p99_ms: float
    nodes: int
    nodes_ready: int
    pods: int
    pods_not_ready: int
    cpu_utilization: float
    memory_utilization: float
    services: dict[str, tuple[float, float, float]]  # short name → (req/s, error rate, p99 ms)


def expected() -> Expected:
    requests = sum(e.requests_per_s for e in EDGES)
    errors = sum(e.requests_per_s * e.error_ratio for e in EDGES)
    cpus = sum(n.cpus for n in NODES)
    return Expected(
        requests_per_s=requests,
        error_rate=errors / requests,
        latency_p99_ms=histogram_quantile(0.99, edge_buckets(EDGES)),
        nodes=len(NODES),
        nodes_ready=sum(n.ready for n in NODES),
        pods=LIVE_PODS,
        pods_not_ready=NOT_READY_PODS,
        cpu_utilization=1 - sum(n.idle_share * n.cpus for n in NODES) / cpus,
        memory_utilization=1
        - sum(n.memory_bytes * n.available_share for n in NODES) / sum(n.memory_bytes for n in NODES),
        services={
            f"{e.destination}.{NAMESPACE}": (
                e.requests_per_s,
                e.error_ratio,
                histogram_quantile(0.99, edge_buckets((e,))),
            )
            for e in EDGES
        },
    )


# --- the live exporter -----------------------------------------------------------------------------


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def exposition(started: float, now: float) -> str:
    """Every series at ``now`` (epoch seconds), counters grown since ``started``."""
    elapsed = now - started
    stamp = f" {int(now * 1000)}"
    lines: list[str] = []

    def add(name: str, labels: dict[str, str], value: float) -> None:
        lines.append(f"{name}{_labels(labels)} {value!r}{stamp}")

    lines.append("# TYPE istio_requests_total counter")
    for edge in EDGES:
        for reporter in REPORTERS:
            ok = edge.requests_per_s * (1 - edge.error_ratio) * elapsed
            add("istio_requests_total", edge.labels(reporter, "200"), ok)
            if edge.error_ratio:
                add(
                    "istio_requests_total",
                    edge.labels(reporter, "503"),
                    edge.requests_per_s * edge.error_ratio * elapsed,
                )
    lines.append("# TYPE istio_request_duration_milliseconds histogram")
    for edge in EDGES:
        for reporter in REPORTERS:
            labels = edge.labels(reporter, "200")
            for bound in BOUNDS_MS:
                add(
                    "istio_request_duration_milliseconds_bucket",
                    {**labels, "le": f"{bound:g}"},
                    edge.requests_per_s * edge.share_at(bound) * elapsed,
                )
            add(
                "istio_request_duration_milliseconds_bucket",
                {**labels, "le": "+Inf"},
                edge.requests_per_s * elapsed,
            )
            add("istio_request_duration_milliseconds_count", labels, edge.requests_per_s * elapsed)
            add("istio_request_duration_milliseconds_sum", labels, edge.requests_per_s * 40.0 * elapsed)
    lines.append("# TYPE node_cpu_seconds_total counter")
    for node in NODES:
        for cpu in range(node.cpus):
            add(
                "node_cpu_seconds_total",
                {"instance": node.name, "cpu": str(cpu), "mode": "idle"},
                node.idle_share * elapsed,
            )
            add(
                "node_cpu_seconds_total",
                {"instance": node.name, "cpu": str(cpu), "mode": "user"},
                (1 - node.idle_share) * elapsed,
            )
    lines.append("# TYPE node_memory_MemTotal_bytes gauge")
    for node in NODES:
        add("node_memory_MemTotal_bytes", {"instance": node.name}, node.memory_bytes)
    lines.append("# TYPE node_memory_MemAvailable_bytes gauge")
    for node in NODES:
        add(
            "node_memory_MemAvailable_bytes",
            {"instance": node.name},
            node.memory_bytes * node.available_share,
        )
    lines.append("# TYPE kube_node_info gauge")
    for node in NODES:
        add("kube_node_info", {"node": node.name}, 1.0)
    lines.append("# TYPE kube_node_status_condition gauge")
    for node in NODES:
        for status in ("true", "false", "unknown"):
            value = 1.0 if (status == "true") == node.ready and status != "unknown" else 0.0
            add(
                "kube_node_status_condition",
                {"node": node.name, "condition": "Ready", "status": status},
                value,
            )
    lines.append("# TYPE kube_pod_status_ready gauge")
    for pod, _phase, ready in pods():
        for condition in ("true", "false", "unknown"):
            value = 1.0 if (condition == "true") == ready and condition != "unknown" else 0.0
            add("kube_pod_status_ready", {"namespace": NAMESPACE, "pod": pod, "condition": condition}, value)
    lines.append("# TYPE kube_pod_status_phase gauge")
    for pod, phase, _ready in pods():
        for candidate in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            add(
                "kube_pod_status_phase",
                {"namespace": NAMESPACE, "pod": pod, "phase": candidate},
                1.0 if candidate == phase else 0.0,
            )
    return "\n".join(lines) + "\n"


class LiveExporter:
    """The exposition above over HTTP (``GET /metrics``) on a loopback port, in its own thread."""

    def __init__(self) -> None:
        self.started = time.time()
        self.scrapes = 0

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            self.scrapes += 1
            body = exposition(self.started, time.time()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": body})

        self._server = LoopbackServer(app)

    def start(self) -> LiveExporter:
        self._server.start()
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        self._server.stop()


# --- its history, for the rollups -------------------------------------------------------------------

HISTORY_STEP_S = 3600.0


def day_factor(day_index: int) -> float:
    """Traffic of a past day relative to today's (a weekly shape, and growth over the month)."""
    weekly = (1.0, 1.05, 1.1, 1.08, 1.0, 0.7, 0.65)[day_index % 7]
    return weekly * (0.8 + 0.2 * day_index / 30)


def day_slowness(day_index: int) -> float:
    """How much slower than today a past day's requests were (busy days are slower)."""
    return 1.0 + 0.6 * ((day_index * 5) % 7) / 7


def write_history(path: Path, start: float, end: float) -> None:
    """Hourly destination-reported requests and latency buckets of every edge, ``start``..``end``
    (epoch seconds), each day's rates scaled by :func:`day_factor`."""
    grid = Grid(start, end, HISTORY_STEP_S)

    def factor(t: float) -> float:
        return day_factor(int((t - start) // 86_400))

    def slowness(t: float) -> float:
        return day_slowness(int((t - start) // 86_400))

    with OpenMetricsWriter(path, keep_values=False) as writer:
        writer.begin_family("istio_requests", "counter")
        for edge in EDGES:
            codes = (
                {"200": 1 - edge.error_ratio, "503": edge.error_ratio} if edge.error_ratio else {"200": 1.0}
            )
            for code, share in codes.items():

                def increase(t: float, share: float = share, edge: Edge = edge) -> float:
                    return edge.requests_per_s * share * factor(t) * HISTORY_STEP_S

                writer.counter("istio_requests_total", edge.labels("destination", code), grid, increase)
        writer.begin_family("istio_request_duration_milliseconds", "histogram")
        for edge in EDGES:
            labels = edge.labels("destination", "200")
            for bound in (*BOUNDS_MS, math.inf):
                values = [0.0]
                for t in grid.time_list[1:]:
                    share = edge.share_at(bound, slowness(t)) if math.isfinite(bound) else 1.0
                    values.append(values[-1] + edge.requests_per_s * share * factor(t) * HISTORY_STEP_S)
                writer.series(
                    "istio_request_duration_milliseconds_bucket",
                    {**labels, "le": "+Inf" if math.isinf(bound) else f"{bound:g}"},
                    zip(grid.time_list, values, strict=True),
                )

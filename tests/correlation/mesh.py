"""Istio traffic at the mesh's boundaries, for the dependency-graph tests: the cases the session
dataset's in-mesh edges do not have, written with known truth.

- callers outside the mesh (``source_workload="unknown"``: destination telemetry only), plus the
  odd source-reported ``unknown`` series Kiali ignores;
- traffic leaving the mesh (source telemetry only);
- an edge whose source sidecar sees failures the destination never saw (``503 UF``), with
  different latencies on each side;
- an edge whose source telemetry the platform dropped (destination only);
- gRPC failures (HTTP 200 with a non-zero ``grpc_response_status``);
- canonical service names that differ from workload names, and a second namespace.

Counts are constant per minute, so each edge's true rate is exact: requests per minute / 60.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.datasets import ENVOY_BUCKETS_MS, HEAD_GUARD_S, SCRAPE_INTERVAL_S
from tests.harness.openmetrics import Grid, HistogramData, OpenMetricsWriter, SeriesData

NS, OTHER_NS = "mesh", "other"
HOURS = 3


@dataclass(frozen=True, eq=False)
class Flow:
    """Requests per minute from one workload to one service, as one reporter saw them."""

    reporter: str
    source: tuple[str, str, str]  # workload, namespace, canonical service
    destination: tuple[str, str, str, str]  # service name, namespace, workload, canonical service
    per_minute: dict[tuple[str, str], int]  # (response_code, grpc_response_status) -> requests a minute
    protocol: str = "http"
    latency_ms: float | None = None  # every successful request takes this long (histogram)
    host: str | None = None

    def labels(self, code: str, grpc: str) -> dict[str, str]:
        workload, namespace, canonical = self.source
        service, dest_ns, dest_workload, dest_canonical = self.destination
        labels = {
            "reporter": self.reporter,
            "source_workload": workload,
            "source_workload_namespace": namespace,
            "source_canonical_service": canonical,
            "destination_service": self.host or f"{service}.{dest_ns}.svc.cluster.local",
            "destination_service_name": service,
            "destination_service_namespace": dest_ns,
            "destination_workload": dest_workload,
            "destination_workload_namespace": dest_ns,
            "destination_canonical_service": dest_canonical,
            "request_protocol": self.protocol,
            "response_code": code,
        }
        if grpc:
            labels["grpc_response_status"] = grpc
        return labels


OUTSIDE = ("unknown", "unknown", "unknown")
FRONTEND = ("frontend-v1", NS, "frontend")
REVIEWS = ("reviews-v1", NS, "reviews")
PAYMENTS = ("payments-v1", NS, "payments")
CRON = ("cron-7", NS, "cron")
INDEXER = ("indexer-v1", OTHER_NS, "indexer")
TO_FRONTEND = ("frontend", NS, "frontend-v1", "frontend")
TO_REVIEWS = ("reviews", NS, "reviews-v1", "reviews")
TO_RATINGS = ("ratings", NS, "ratings-v2", "ratings")
TO_CATALOG = ("catalog", NS, "catalog-v1", "catalog")
TO_REPORTS = ("reports", NS, "reports-v1", "reports")
TO_BANK = ("api.bank.example", "unknown", "unknown", "unknown")
TO_SEARCH = ("search", OTHER_NS, "search-v1", "search")

FLOWS: tuple[Flow, ...] = (
    # from outside the mesh: only the destination's sidecar reports it
    Flow("destination", OUTSIDE, TO_FRONTEND, {("200", ""): 59, ("500", ""): 1}, latency_ms=12),
    # Kiali's "unusual corner case": source telemetry with an unknown source; not to be counted
    Flow("source", OUTSIDE, TO_FRONTEND, {("200", ""): 7}),
    # in the mesh, both report; the source also sees 6 a minute that never reached ratings
    Flow("source", REVIEWS, TO_RATINGS, {("200", ""): 30, ("503", ""): 6}, latency_ms=40),
    Flow("destination", REVIEWS, TO_RATINGS, {("200", ""): 30}, latency_ms=20),
    Flow("source", FRONTEND, TO_REVIEWS, {("200", ""): 12}, latency_ms=80),
    Flow("destination", FRONTEND, TO_REVIEWS, {("200", ""): 12}, latency_ms=70),
    # gRPC: failures are HTTP 200 with a non-zero grpc-status
    Flow("source", FRONTEND, TO_CATALOG, {("200", "0"): 20, ("200", "14"): 2}, protocol="grpc"),
    Flow("destination", FRONTEND, TO_CATALOG, {("200", "0"): 20, ("200", "14"): 2}, protocol="grpc"),
    # leaving the mesh: only the source's sidecar reports it
    Flow(
        "source", PAYMENTS, TO_BANK, {("200", ""): 6, ("502", ""): 1}, latency_ms=300, host="api.bank.example"
    ),
    # source telemetry dropped by the platform: only the destination's remains
    Flow("destination", CRON, TO_REPORTS, {("200", ""): 3}),
    # into another namespace
    Flow("source", FRONTEND, TO_SEARCH, {("200", ""): 4}),
    Flow("destination", FRONTEND, TO_SEARCH, {("200", ""): 4}),
    # within the other namespace only
    Flow("source", INDEXER, TO_SEARCH, {("200", ""): 5}),
    Flow("destination", INDEXER, TO_SEARCH, {("200", ""): 5}),
)


@dataclass
class MeshData:
    grid: Grid
    counters: dict[tuple[Flow, str, str], SeriesData] = field(default_factory=dict)
    histograms: dict[Flow, HistogramData] = field(default_factory=dict)
    file: Path | None = None


def timeline(now: float) -> Grid:
    """The last :data:`HOURS` hours before the last UTC midnight at least 3 hours ago."""
    end = (int(now) - HEAD_GUARD_S) // 86_400 * 86_400
    return Grid(end - HOURS * 3600, end, SCRAPE_INTERVAL_S)


def write(path: Path, now: float) -> MeshData:
    grid = timeline(now)
    data = MeshData(grid, file=path)
    with OpenMetricsWriter(path, now=now) as writer:
        for flow in FLOWS:
            for (code, grpc), per_minute in flow.per_minute.items():
                data.counters[(flow, code, grpc)] = writer.counter(
                    "istio_requests_total", flow.labels(code, grpc), grid, _constant(per_minute)
                )
        for flow in FLOWS:
            if flow.latency_ms is None:
                continue
            ok = flow.per_minute[("200", "")]
            data.histograms[flow] = writer.histogram(
                "istio_request_duration_milliseconds",
                flow.labels("200", ""),
                grid,
                _observations(ok, flow.latency_ms),
                bounds=ENVOY_BUCKETS_MS,
            )
    return data


def _constant(value: float) -> Callable[[float], float]:
    return lambda t: value


def _observations(count: int, value: float) -> Callable[[float], list[float]]:
    return lambda t: [value] * count


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus's interpolation over (upper bound, cumulative count) pairs, ``+Inf`` last."""
    ordered = sorted(buckets)
    total = ordered[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    end, count = ordered[index]
    start, below = ordered[index - 1] if index else (0.0, 0.0)
    return start + (end - start) * (rank - below) / (count - below)

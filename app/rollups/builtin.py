"""The platform's standard rollups: Istio services, cAdvisor namespaces, node_exporter cluster.

Users extend or replace these by name in ``rollups`` (see ``config.py``).
"""

from __future__ import annotations

from app.rollups.config import Definition, Derived, EntityKind, FamilyKind

ISTIO = 'reporter="destination",$filter'
LATENCY_FAMILY = "latency"  # the service latency histogram SLOs read
CONTAINERS = 'container!="",container!="POD",$filter'

ENTITIES = [
    EntityKind(
        name="service",
        labels=["destination_service"],
        selector='istio_requests_total{reporter="destination"}',
    ),
    EntityKind(
        name="namespace",
        labels=["namespace"],
        selector='container_cpu_usage_seconds_total{container!="",container!="POD"}',
    ),
    EntityKind(name="cluster", labels=[]),
]


def _definition(name: str, entity: str, kind: FamilyKind, query: str, **extra: object) -> Definition:
    return Definition.model_validate({"name": name, "entity": entity, "kind": kind, "query": query, **extra})


DEFINITIONS = [
    _definition(
        "requests",
        "service",
        FamilyKind.COUNTER,
        f"sum by (destination_service) (increase(istio_requests_total{{{ISTIO}}}[$range]))",
    ),
    _definition(
        "errors",
        "service",
        FamilyKind.COUNTER,
        "sum by (destination_service) "
        f'(increase(istio_requests_total{{response_code=~"5..",{ISTIO}}}[$range]))',
    ),
    _definition(
        "latency_sum_ms",
        "service",
        FamilyKind.COUNTER,
        "sum by (destination_service) "
        f"(increase(istio_request_duration_milliseconds_sum{{{ISTIO}}}[$range]))",
        figures={},
    ),
    _definition(
        "latency_count",
        "service",
        FamilyKind.COUNTER,
        "sum by (destination_service) "
        f"(increase(istio_request_duration_milliseconds_count{{{ISTIO}}}[$range]))",
        figures={},
    ),
    _definition(
        LATENCY_FAMILY,
        "service",
        FamilyKind.HISTOGRAM,
        "sum by (le, destination_service) "
        f"(increase(istio_request_duration_milliseconds_bucket{{{ISTIO}}}[$range]))",
        figures={"latency_p50_ms": "p50", "latency_p95_ms": "p95", "latency_p99_ms": "p99"},
    ),
    _definition(
        "qps",
        "service",
        FamilyKind.GAUGE,
        f"sum by (destination_service) (rate(istio_requests_total{{{ISTIO}}}[5m]))",
        figures={"qps_peak": "peak"},
    ),
    _definition(
        "cpu_cores",
        "namespace",
        FamilyKind.GAUGE,
        f"sum by (namespace) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[5m]))",
    ),
    _definition(
        "memory_bytes",
        "namespace",
        FamilyKind.GAUGE,
        f"sum by (namespace) (container_memory_working_set_bytes{{{CONTAINERS}}})",
    ),
    _definition(
        "cpu_utilization",
        "cluster",
        FamilyKind.GAUGE,
        '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    ),
    _definition(
        "memory_utilization",
        "cluster",
        FamilyKind.GAUGE,
        "1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
    ),
]

DERIVED = [
    Derived(name="error_rate", entity="service", expr="errors / requests"),
    Derived(name="availability", entity="service", expr="1 - errors / requests"),
    Derived(name="qps_avg", entity="service", expr="requests / seconds"),
    Derived(name="latency_avg_ms", entity="service", expr="latency_sum_ms / latency_count"),
]

# The order figures are listed in, per entity kind, for the built-in kinds.
FIGURE_ORDER = {
    "service": [
        "requests",
        "errors",
        "error_rate",
        "availability",
        "qps_avg",
        "qps_peak",
        "latency_avg_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
    ],
}

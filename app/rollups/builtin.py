"""The platform's standard rollups: Istio services, cAdvisor namespaces, node_exporter cluster,
and the platform's whole Istio traffic (one entity, ``platform``: its daily p99 is computed from
every service's buckets summed, never from the services' p99s).

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
    EntityKind(name="platform", labels=[]),
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

PLATFORM = [
    _definition(
        "requests",
        "platform",
        FamilyKind.COUNTER,
        'sum(increase(istio_requests_total{reporter="destination"}[$range]))',
    ),
    _definition(
        "errors",
        "platform",
        FamilyKind.COUNTER,
        'sum(increase(istio_requests_total{response_code=~"5..",reporter="destination"}[$range]))',
    ),
    _definition(
        LATENCY_FAMILY,
        "platform",
        FamilyKind.HISTOGRAM,
        'sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination"}[$range]))',
        figures={"latency_p50_ms": "p50", "latency_p95_ms": "p95", "latency_p99_ms": "p99"},
    ),
]
DEFINITIONS += PLATFORM

DERIVED = [
    Derived(name="error_rate", entity="service", expr="errors / requests"),
    Derived(name="availability", entity="service", expr="1 - errors / requests"),
    Derived(name="qps_avg", entity="service", expr="requests / seconds"),
    Derived(name="latency_avg_ms", entity="service", expr="latency_sum_ms / latency_count"),
    Derived(name="error_rate", entity="platform", expr="errors / requests"),
]

# The order figures are listed in, per entity kind, for the built-in kinds.
FIGURE_ORDER = {
    "platform": ["requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"],
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

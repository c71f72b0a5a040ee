"""The platform's standard rollups: Istio services, cAdvisor namespaces, node_exporter cluster,
and the platform's whole Istio traffic (one entity, ``platform``: its daily p99 is computed from
every service's buckets summed, never from the services' p99s).

Users extend or replace these by name in ``rollups`` (see ``config.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

# --- on-call history ----------------------------------------------------------------------
# Panorama's own figures, recorded from the alerts package's incidents and pages each day
# (``oncall.py``), never queried from Prometheus. Stored additively like the rest: counts,
# sums of seconds with their counts (means re-aggregate exactly), and histograms of the times to
# acknowledge and resolve (percentiles of any period from the summed buckets).

ONCALL = "oncall"  # every incident once: the whole on-call team
ONCALL_SERVICE = "oncall_service"
ONCALL_SCHEDULE = "oncall_schedule"
ONCALL_PERSON = "oncall_person"

ONCALL_ENTITIES = [
    EntityKind(name=ONCALL, labels=[]),
    EntityKind(name=ONCALL_SERVICE, labels=["service"]),
    EntityKind(name=ONCALL_SCHEDULE, labels=["schedule"]),
    EntityKind(name=ONCALL_PERSON, labels=["user"]),
]

SEVERITIES = ("critical", "warning", "info")
"""Severities counted on their own; any other (or none) is counted as ``other``."""

RESPONSE_BOUNDS_S = (
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    259200.0,
    604800.0,
    math.inf,
)
"""``le`` bounds (seconds) of the time-to-acknowledge and time-to-resolve histograms."""


@dataclass(frozen=True)
class RecordedFamily:
    """A family Panorama records from its own data (``oncall.py``): unlike a ``Definition`` it has
    no PromQL, and the catalogue never hands it to the Prometheus rollup (``Catalog.recorded``)."""

    name: str
    entity: str
    kind: FamilyKind
    figures: dict[str, str] | None = None

    def reported(self) -> dict[str, str]:
        if self.figures is not None:
            return dict(self.figures)
        return {self.name: "total"}


def _incident_families(kind: str) -> list[RecordedFamily]:
    counters = [
        "incidents",
        *(f"incidents_{severity}" for severity in (*SEVERITIES, "other")),
        "pages_sent",
        "pages_delivered",
        "acks",
        "resolves",
    ]
    return [
        *(RecordedFamily(name, kind, FamilyKind.COUNTER) for name in counters),
        RecordedFamily("ack_seconds", kind, FamilyKind.COUNTER, figures={}),
        RecordedFamily("resolve_seconds", kind, FamilyKind.COUNTER, figures={}),
        RecordedFamily(
            "ack_time",
            kind,
            FamilyKind.HISTOGRAM,
            figures={"ack_p50_s": "p50", "ack_p95_s": "p95"},
        ),
        RecordedFamily(
            "resolve_time",
            kind,
            FamilyKind.HISTOGRAM,
            figures={"resolve_p50_s": "p50", "resolve_p95_s": "p95"},
        ),
    ]


ONCALL_FAMILIES = [
    *_incident_families(ONCALL),
    *_incident_families(ONCALL_SERVICE),
    *_incident_families(ONCALL_SCHEDULE),
    RecordedFamily("pages", ONCALL_PERSON, FamilyKind.COUNTER),
    RecordedFamily("night_pages", ONCALL_PERSON, FamilyKind.COUNTER),
    RecordedFamily("incidents", ONCALL_PERSON, FamilyKind.COUNTER),
    RecordedFamily("acks", ONCALL_PERSON, FamilyKind.COUNTER),
    RecordedFamily("ack_seconds", ONCALL_PERSON, FamilyKind.COUNTER, figures={}),
]

ONCALL_DERIVED = [
    *(
        derived
        for kind in (ONCALL, ONCALL_SERVICE, ONCALL_SCHEDULE)
        for derived in (
            Derived(name="ack_mean_s", entity=kind, expr="ack_seconds / acks"),
            Derived(name="resolve_mean_s", entity=kind, expr="resolve_seconds / resolves"),
            Derived(name="delivered_ratio", entity=kind, expr="pages_delivered / pages_sent"),
        )
    ),
    Derived(name="ack_mean_s", entity=ONCALL_PERSON, expr="ack_seconds / acks"),
]

_INCIDENT_ORDER = [
    "incidents",
    "incidents_critical",
    "incidents_warning",
    "incidents_info",
    "incidents_other",
    "pages_sent",
    "pages_delivered",
    "delivered_ratio",
    "acks",
    "ack_mean_s",
    "ack_p50_s",
    "ack_p95_s",
    "resolves",
    "resolve_mean_s",
    "resolve_p50_s",
    "resolve_p95_s",
]
FIGURE_ORDER |= {
    ONCALL: _INCIDENT_ORDER,
    ONCALL_SERVICE: _INCIDENT_ORDER,
    ONCALL_SCHEDULE: _INCIDENT_ORDER,
    ONCALL_PERSON: ["pages", "night_pages", "incidents", "acks", "ack_mean_s"],
}

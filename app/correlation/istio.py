"""PromQL over Istio's standard metrics, and reading its answers. No I/O.

Every query is built with :mod:`app.backends.promql` (names validated, values escaped).

Reporter choice (Kiali's convention): both sidecars of a request report it, as
``reporter="source"`` and ``reporter="destination"``, so a sum over both counts it
twice. An edge's counts come from ONE reporter:

- traffic from outside the mesh (``source_workload="unknown"``: no sidecar on the caller)
  exists only as destination telemetry, so it comes from ``reporter="destination"``;
- every other edge comes from ``reporter="source"``, which also sees the requests that never
  reached the destination (connection failures, ``503 UH/UF``) and traffic leaving the mesh;
- an edge with no source-reported series (a platform that drops source telemetry) falls
  back to its destination-reported one.

Latency is the p99 of successful (2xx) requests from ``istio_request_duration_milliseconds``,
of the same reporter when it has buckets for the edge, else of the other one (platforms
often drop one reporter's buckets to save series).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from app.backends.prometheus import Sample
from app.backends.promql import (
    Matcher,
    duration,
    escape_label_value,
    matcher,
    selector,
    validate_label_name,
)

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
UNKNOWN = "unknown"
SOURCE, DESTINATION = "source", "destination"
_SUCCESS = matcher("response_code", "=~", "2..")

SOURCE_LABELS = ("source_workload", "source_workload_namespace", "source_canonical_service")
DESTINATION_LABELS = (
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_canonical_service",
)
EDGE_LABELS = (*SOURCE_LABELS, *DESTINATION_LABELS, "request_protocol")
OUTCOME_LABELS = ("response_code", "grpc_response_status")


@dataclass(frozen=True)
class NodeRef:
    """A graph node: a service in a namespace (None outside Kubernetes), or ``unknown``."""

    service: str
    namespace: str | None

    @property
    def id(self) -> str:
        """``<service>.<namespace>``: the way Istio's sidecars name span services."""
        return f"{self.service}.{self.namespace}" if self.namespace else self.service

    @property
    def is_unknown(self) -> bool:
        return self.service == UNKNOWN and self.namespace is None


UNKNOWN_NODE = NodeRef(UNKNOWN, None)


@dataclass(frozen=True)
class EdgeRef:
    source: NodeRef
    target: NodeRef
    protocol: str | None


@dataclass
class Traffic:
    """Requests per second of one edge as one reporter saw them."""

    requests_per_s: float = 0.0
    errors_per_s: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors_per_s / self.requests_per_s if self.requests_per_s > 0 else None


@dataclass
class EdgeTraffic:
    from_outside: bool
    """The caller has no sidecar (``source_workload="unknown"``)."""
    by_reporter: dict[str, Traffic] = field(default_factory=dict)
    latency_by_reporter: dict[str, float] = field(default_factory=dict)

    @property
    def reporter(self) -> str:
        """The one reporter whose counts this edge uses (see the module docstring)."""
        preferred, other = (DESTINATION, SOURCE) if self.from_outside else (SOURCE, DESTINATION)
        return preferred if preferred in self.by_reporter or other not in self.by_reporter else other

    @property
    def traffic(self) -> Traffic:
        return self.by_reporter[self.reporter]

    @property
    def latency_p99_ms(self) -> float | None:
        chosen = self.latency_by_reporter.get(self.reporter)
        if chosen is not None:
            return chosen
        return next(iter(self.latency_by_reporter.values()), None)


# --- queries --------------------------------------------------------------------------------------


def _by(labels: Sequence[str]) -> str:
    return "by (" + ",".join(validate_label_name(label) for label in labels) + ")"


def _rates(metric: str, window: timedelta, namespace: str | None, *extra: Matcher) -> str:
    """``rate()`` of the series into, out of or within ``namespace`` (all when None), each once.

    The alternatives are joined with ``or``, which keeps a series matched by several of them once.
    """
    if namespace is None:
        selectors = [selector(metric, *extra)]
    else:
        selectors = [
            selector(metric, *extra, matcher(label, "=", namespace))
            for label in (
                "destination_service_namespace",
                "destination_workload_namespace",
                "source_workload_namespace",
            )
        ]
    window_text = duration(window)
    return " or ".join(f"rate({s}[{window_text}])" for s in selectors)


def edge_requests_query(window: timedelta, namespace: str | None) -> str:
    """Per reporter, edge and outcome: requests per second over ``window``."""
    return f"sum {_by(('reporter', *EDGE_LABELS, *OUTCOME_LABELS))} ({_rates(REQUESTS, window, namespace)})"


def edge_latency_query(window: timedelta, namespace: str | None, quantile: float = 0.99) -> str:
    """Per reporter and edge: the ``quantile`` of successful requests' duration, in milliseconds."""
    rates = _rates(DURATION_BUCKETS, window, namespace, _SUCCESS)
    return f"histogram_quantile({quantile:g}, sum {_by(('le', 'reporter', *EDGE_LABELS))} ({rates}))"


def node_latency_query(window: timedelta, namespace: str | None, quantile: float = 0.99) -> str:
    """Per destination: the ``quantile`` of the successful requests it served (its own sidecar's view)."""
    rates = _rates(DURATION_BUCKETS, window, namespace, matcher("reporter", "=", DESTINATION), _SUCCESS)
    return f"histogram_quantile({quantile:g}, sum {_by(('le', *DESTINATION_LABELS))} ({rates}))"


def service_requests_query(service: str, namespace: str | None, window: timedelta) -> str:
    inner = selector(REQUESTS, *_matchers(service, namespace))
    return f"sum {_by(('request_protocol', *OUTCOME_LABELS))} (rate({inner}[{duration(window)}]))"


def service_latency_query(
    service: str, namespace: str | None, window: timedelta, quantiles: Sequence[float]
) -> str:
    """The ``quantiles`` of the service's successful requests, one series each, labelled ``quantile``."""
    inner = selector(DURATION_BUCKETS, *_matchers(service, namespace), _SUCCESS)
    summed = f"sum by (le) (rate({inner}[{duration(window)}]))"
    parts = [
        f"label_replace(histogram_quantile({q:g}, {summed}), "
        f'"quantile", {escape_label_value(f"{q:g}")}, "", "")'
        for q in quantiles
    ]
    return " or ".join(parts)


def _matchers(service: str, namespace: str | None) -> list[Matcher]:
    """The requests ``service`` received, as its own sidecars report them."""
    found = [matcher("reporter", "=", DESTINATION), matcher("destination_service_name", "=", service)]
    if namespace:
        found.append(matcher("destination_service_namespace", "=", namespace))
    return found


# --- reading answers ------------------------------------------------------------------------------


def _known(labels: dict[str, str], *names: str) -> str | None:
    """The first of ``names`` with a real value ("" and Istio's "unknown" are none)."""
    for name in names:
        value = labels.get(name, "")
        if value and value != UNKNOWN:
            return value
    return None


def source_node(labels: dict[str, str]) -> NodeRef:
    workload = _known(labels, "source_workload")
    if workload is None:
        return UNKNOWN_NODE
    name = _known(labels, "source_canonical_service") or workload
    return NodeRef(name, _known(labels, "source_workload_namespace"))


def destination_node(labels: dict[str, str]) -> NodeRef:
    """Named by canonical service when Istio sets it (the same name on both sides of an edge),
    else by the Kubernetes service, else the host or workload."""
    name = _known(
        labels,
        "destination_canonical_service",
        "destination_service_name",
        "destination_service",
        "destination_workload",
    )
    if name is None:
        return UNKNOWN_NODE
    return NodeRef(name, _known(labels, "destination_service_namespace", "destination_workload_namespace"))


def edge_of(labels: dict[str, str]) -> EdgeRef:
    return EdgeRef(source_node(labels), destination_node(labels), labels.get("request_protocol") or None)


def is_error(labels: dict[str, str]) -> bool:
    """A 5xx answer, or a gRPC call that did not end OK."""
    if labels.get("response_code", "").startswith("5"):
        return True
    grpc = labels.get("grpc_response_status", "")
    return labels.get("request_protocol") == "grpc" and grpc not in ("", "0")


def edge_traffic(requests: Sequence[Sample], latencies: Sequence[Sample]) -> dict[EdgeRef, EdgeTraffic]:
    edges: dict[EdgeRef, EdgeTraffic] = {}
    for sample in requests:
        if not math.isfinite(sample.value):
            continue
        edge = edge_of(sample.labels)
        reporter = sample.labels.get("reporter", SOURCE)
        traffic = edges.setdefault(edge, EdgeTraffic(edge.source.is_unknown)).by_reporter.setdefault(
            reporter, Traffic()
        )
        traffic.requests_per_s += sample.value
        if is_error(sample.labels):
            traffic.errors_per_s += sample.value
    for sample in latencies:
        found = edges.get(edge_of(sample.labels))
        if found is not None and math.isfinite(sample.value):
            found.latency_by_reporter[sample.labels.get("reporter", SOURCE)] = sample.value
    return edges


def node_latencies(samples: Sequence[Sample]) -> dict[NodeRef, float]:
    return {destination_node(s.labels): s.value for s in samples if math.isfinite(s.value)}


def red_figures(requests: Sequence[Sample]) -> Traffic:
    traffic = Traffic()
    for sample in requests:
        if math.isfinite(sample.value):
            traffic.requests_per_s += sample.value
            if is_error(sample.labels):
                traffic.errors_per_s += sample.value
    return traffic


def quantiles_from(samples: Sequence[Sample]) -> dict[str, float]:
    """``quantile`` label → value, NaN (no requests) left out."""
    return {
        s.labels["quantile"]: s.value for s in samples if "quantile" in s.labels and math.isfinite(s.value)
    }

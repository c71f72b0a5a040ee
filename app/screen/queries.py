"""The wall screen's PromQL, and reading its answers. No I/O.

Each panel asks Prometheus ONE query however many figures it shows: every figure's expression
is tagged with a ``panorama_figure`` label (``label_replace``) and the expressions are joined
with ``or``. A figure whose series do not exist is simply missing from the answer, which is how
the screen tells "no data" from a real 0.

The figures mean what the daily rollups mean (``app/rollups/builtin.py``), so that the live
numbers and the 30-day trends agree: requests as the destination's sidecar reports them
(``reporter="destination"``: each request once), errors are 5xx answers, latency is over all
requests; cluster CPU and memory as the ``cluster`` rollups compute them; pods not ready as
``alert_rules/kubernetes.rules.yml`` finds them (completed pods are not "not ready").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from app.backends.prometheus import Sample, Series
from app.backends.promql import duration, escape_label_value
from app.numbers import finite

FIGURE_LABEL = "panorama_figure"
SERVICE_LABEL = "destination_service"

KUBE_STATE_METRICS = "kube-state-metrics"
NODE_EXPORTER = "node_exporter"
ISTIO = "istio"

_REQUESTS = 'istio_requests_total{reporter="destination"}'
_ERRORS = 'istio_requests_total{reporter="destination",response_code=~"5.."}'
_BUCKETS = 'istio_request_duration_milliseconds_bucket{reporter="destination"}'
_POD_READY = 'max by (namespace, pod) (kube_pod_status_ready{condition="true"})'
_POD_FINISHED = 'max by (namespace, pod) (kube_pod_status_phase{phase=~"Succeeded|Failed"}) == 1'


@dataclass(frozen=True)
class HealthFigure:
    key: str
    source: str  # the exporter whose series it reads
    expr: str  # with {window} for the rate window


HEALTH: tuple[HealthFigure, ...] = (
    HealthFigure("nodes", KUBE_STATE_METRICS, "count(kube_node_info)"),
    HealthFigure(
        "nodes_ready", KUBE_STATE_METRICS, 'sum(kube_node_status_condition{condition="Ready",status="true"})'
    ),
    HealthFigure(
        "pods", KUBE_STATE_METRICS, f"count({_POD_READY} unless on (namespace, pod) {_POD_FINISHED})"
    ),
    HealthFigure(
        "pods_not_ready",
        KUBE_STATE_METRICS,
        f"count(({_POD_READY} == 0) unless on (namespace, pod) {_POD_FINISHED})",
    ),
    HealthFigure(
        "cpu_utilization", NODE_EXPORTER, '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[{window}]))'
    ),
    HealthFigure(
        "memory_utilization",
        NODE_EXPORTER,
        "1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
    ),
)
COUNTED_WHEN_PRESENT = {"nodes_ready": "nodes", "pods_not_ready": "pods"}
"""A count that is absent while what it counts is present is a real 0 (``count()`` of nothing
answers nothing)."""

TRAFFIC = ("requests_per_s", "error_rate", "latency_p99_ms")


def _named(expr: str, name: str) -> str:
    return f'label_replace({expr}, "{FIGURE_LABEL}", {escape_label_value(name)}, "", "")'


def _joined(named: Iterable[tuple[str, str]]) -> str:
    return " or ".join(_named(expr, name) for name, expr in named)


def _brace(expr: str, window: timedelta) -> str:
    return expr.replace("{window}", duration(window))


def health_query(window: timedelta) -> str:
    """Nodes (and ready ones), live pods (and not ready ones), cluster CPU and memory utilisation."""
    return _joined((f.key, _brace(f.expr, window)) for f in HEALTH)


def traffic_query(window: timedelta) -> str:
    """The platform's requests per second, error rate and p99 latency (ms); a range query."""
    w = duration(window)
    requests = f"sum(rate({_REQUESTS}[{w}]))"
    return _joined(
        (
            ("requests_per_s", requests),
            ("error_rate", f"(sum(rate({_ERRORS}[{w}])) or vector(0)) / {requests}"),
            ("latency_p99_ms", f"histogram_quantile(0.99, sum by (le) (rate({_BUCKETS}[{w}])))"),
        )
    )


def services_query(window: timedelta) -> str:
    """Per service (``destination_service``): requests and 5xx answers per second, p99 latency (ms)."""
    w = duration(window)
    by = f"sum by ({SERVICE_LABEL})"
    return _joined(
        (
            ("requests_per_s", f"{by} (rate({_REQUESTS}[{w}]))"),
            ("errors_per_s", f"{by} (rate({_ERRORS}[{w}]))"),
            (
                "latency_p99_ms",
                f"histogram_quantile(0.99, sum by (le, {SERVICE_LABEL}) (rate({_BUCKETS}[{w}])))",
            ),
        )
    )


# --- reading answers ------------------------------------------------------------------------------


def health_values(samples: Sequence[Sample]) -> dict[str, float | None]:
    """Each health figure's value; None where its series are absent."""
    found = {s.labels.get(FIGURE_LABEL, ""): finite(s.value) for s in samples}
    values = {f.key: found.get(f.key) for f in HEALTH}
    for counted, whole in COUNTED_WHEN_PRESENT.items():
        if values[counted] is None and values[whole] is not None:
            values[counted] = 0.0
    return values


def traffic_lines(series: Sequence[Series]) -> dict[str, dict[float, float | None]]:
    """Each traffic figure's points by time; a figure with no series has no points."""
    lines: dict[str, dict[float, float | None]] = {name: {} for name in TRAFFIC}
    for one in series:
        name = one.labels.get(FIGURE_LABEL, "")
        if name in lines:
            lines[name] = {t: finite(v) for t, v in one.points}
    return lines


@dataclass
class ServiceFigures:
    service: str  # destination_service, as the rollups name it
    requests_per_s: float = 0.0
    errors_per_s: float = 0.0
    latency_p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors_per_s / self.requests_per_s if self.requests_per_s > 0 else None


def service_figures(samples: Sequence[Sample]) -> list[ServiceFigures]:
    """Every service that answered requests in the window, busiest first."""
    found: dict[str, ServiceFigures] = {}
    for sample in samples:
        name = sample.labels.get(SERVICE_LABEL, "")
        if not name:
            continue
        figures = found.setdefault(name, ServiceFigures(name))
        value = finite(sample.value)
        figure = sample.labels.get(FIGURE_LABEL)
        if figure == "requests_per_s":
            figures.requests_per_s = value or 0.0
        elif figure == "errors_per_s":
            figures.errors_per_s = value or 0.0
        elif figure == "latency_p99_ms":
            figures.latency_p99_ms = value
    return sorted(found.values(), key=lambda f: (-f.requests_per_s, f.service))

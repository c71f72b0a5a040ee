"""The session dataset: a few days of deterministic platform history, and its ground truth.

It imitates what the platform's Prometheus holds: Istio request counts and
latency histograms for a few service-to-service edges (both reporters, so a
query that forgets ``reporter`` counts twice), cAdvisor CPU and memory per
container (with the pod-total ``container=""`` and pause ``container="POD"``
series that must be excluded), node_exporter CPU and memory, and a probe family
whose label values need escaping.

The history covers :data:`DAYS` whole UTC days at a 1-minute scrape interval,
ending at the last UTC midnight at least 3 hours before now (promtool must not
write into the running Prometheus's head block), end sample included. Values
are generated from fixed seeds, so the shape is the same every run; only the
dates move. Every written sample is kept in the returned :class:`Dataset`
(``select``/``one``/``histogram``), so tests compare what Prometheus answers
with what was written, never with numbers copied into the test.

To extend it: write one function per metric family taking the writer and the
timeline and returning what it wrote, and add it to :data:`SESSION_FILES`
(families in one file run through one promtool process; files run in parallel).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.harness.openmetrics import Grid, HistogramData, OpenMetricsWriter, SeriesData

DAYS = 3
SCRAPE_INTERVAL_S = 60
DAY_S = 86_400
HEAD_GUARD_S = 3 * 3600

NAMESPACE = "shop"

ENVOY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
"""Envoy's default histogram buckets, in milliseconds (what Istio exports)."""


@dataclass(frozen=True)
class Edge:
    """Traffic from one workload to another, as Istio's sidecars report it."""

    source: str
    destination: str
    requests_per_s: float
    error_ratio: float
    median_ms: float
    incident: tuple[float, float, float] | None = None
    """(start offset s, end offset s, error ratio) of an incident, offsets from the timeline start."""

    def labels(self, reporter: str, code: str) -> dict[str, str]:
        return {
            "reporter": reporter,
            "source_workload": self.source,
            "source_workload_namespace": NAMESPACE,
            "destination_workload": self.destination,
            "destination_service": f"{self.destination}.{NAMESPACE}.svc.cluster.local",
            "destination_service_name": self.destination,
            "destination_service_namespace": NAMESPACE,
            "request_protocol": "http",
            "response_code": code,
        }


EDGES: tuple[Edge, ...] = (
    Edge("frontend", "checkout", requests_per_s=0.5, error_ratio=0.01, median_ms=40),
    Edge(
        "checkout",
        "payments",
        requests_per_s=0.25,
        error_ratio=0.02,
        median_ms=120,
        incident=(DAY_S + 10 * 3600, DAY_S + 11 * 3600, 0.3),
    ),
)
ISTIO_RESET_OFFSET_S = DAY_S + 15 * 3600
"""The checkout→payments sidecar restarts there: its Istio counters reset (both reporters)."""
REPORTERS = ("destination", "source")
"""Both reporters count every request (Istio's double-reporting): pick one."""
ERROR_CODE = "503"


@dataclass(frozen=True)
class Pod:
    workload: str
    name: str
    node: str
    app_cores: float
    app_memory_bytes: float


NODES = ("node-1", "node-2")
PODS: tuple[Pod, ...] = (
    Pod("frontend", "frontend-7d9f8b-abcde", "node-1", 0.20, 300e6),
    Pod("frontend", "frontend-7d9f8b-fghij", "node-2", 0.25, 320e6),
    Pod("checkout", "checkout-5c6d7e-klmno", "node-1", 0.40, 500e6),
    Pod("payments", "payments-6b7c8d-pqrst", "node-2", 0.10, 200e6),
)
CONTAINERS = ("app", "istio-proxy", "POD", "")
"""Per pod: the app, the sidecar, the pause container and the pod total (``""``)."""
SIDECAR_CORES, PAUSE_CORES = 0.05, 0.001
SIDECAR_MEMORY, PAUSE_MEMORY = 60e6, 1e6

APP_RESTART = (PODS[1].name, "app", DAY_S + 13 * 3600)
"""(pod, container, offset s from the start): that container's CPU counter resets there."""
NODE_GAP = ("node-2", 2 * DAY_S + 6 * 3600, 2 * DAY_S + 6 * 3600 + 15 * 60)
"""(node, from offset, to offset): node_exporter on that node was not scraped then."""

NODE_CPUS = ("0", "1")
NODE_MEMORY_TOTAL = 16 * 2**30

ESCAPE_PROBE_METRIC = "panorama_escape_probe"
ESCAPE_TARGET = 'say "hi" \\ then\nbye'
"""A label value with a double quote, a backslash and a newline: the round-trip proof target."""
REGEX_PROBE = "a.b*c+d?(e)[f]{g}|h^i$j"
"""Every RE2 operator: matched only through regex_escape_literal (see the decoys)."""
ESCAPE_DECOYS: tuple[str, ...] = (
    'say "hi" \\ then bye',
    'say "hi" \\ then\\nbye',
    'say \\"hi\\" \\ then\nbye',
    'say "hi" \\\\ then\nbye',
    'say "hi" \\ then\r\nbye',
    "tab\tcarriage\rbell\x07 end",
    "日本語 ✓ café \u200d emoji 🙂",
    REGEX_PROBE,
    "aXb*c+d?(e)[f]{g}|h^i$j",
    "axcef{g}",
)
"""Values close to the target (and other awkward ones) that a bad escaping would confuse."""
ESCAPE_PROBE_INTERVAL_S = 600


@dataclass
class Dataset:
    """What was written, by series; the ground truth tests compare against."""

    timeline: Grid
    series: list[SeriesData] = field(default_factory=list)
    histograms: list[HistogramData] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.timeline.start

    @property
    def end(self) -> float:
        """The last sample time (a UTC midnight)."""
        return self.timeline.end

    @property
    def day_starts(self) -> list[float]:
        """The UTC midnights starting each whole day of the history."""
        return [self.start + k * DAY_S for k in range(int(self.end - self.start) // DAY_S)]

    def select(self, name: str, **labels: str) -> list[SeriesData]:
        """The series named ``name`` whose labels include ``labels``."""
        return [
            s for s in self.series if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def one(self, name: str, **labels: str) -> SeriesData:
        found = self.select(name, **labels)
        if len(found) != 1:
            raise LookupError(f"{len(found)} series match {name}{labels}, expected exactly one")
        return found[0]

    def histogram(self, name: str, **labels: str) -> HistogramData:
        found = [
            h
            for h in self.histograms
            if h.name == name and all(h.labels.get(k) == v for k, v in labels.items())
        ]
        if len(found) != 1:
            raise LookupError(f"{len(found)} histograms match {name}{labels}, expected exactly one")
        return found[0]

    def add(self, written: Sequence[SeriesData | HistogramData]) -> None:
        for item in written:
            if isinstance(item, HistogramData):
                self.histograms.append(item)
                self.series.extend(item.series())
            else:
                self.series.append(item)


Written = list[SeriesData | HistogramData]
Family = Callable[[OpenMetricsWriter, Grid], Written]


def session_timeline(now: float, *, days: int = DAYS, interval: int = SCRAPE_INTERVAL_S) -> Grid:
    """``days`` whole UTC days ending at the last midnight at least 3 hours before ``now``."""
    end = (int(now) - HEAD_GUARD_S) // DAY_S * DAY_S
    return Grid(end - days * DAY_S, end, interval)


def _diurnal(t: float, amplitude: float = 0.5) -> float:
    """1 ± amplitude over the UTC day, lowest around 03:00, highest around 15:00."""
    return 1 + amplitude * math.sin(2 * math.pi * ((t % DAY_S) / DAY_S - 0.375))


def _index(grid: Grid, t: float) -> int:
    return round((t - grid.start) / grid.interval)


def _constant(value: float) -> Callable[[float], float]:
    return lambda t: value


def _per_step(grid: Grid, steps: Sequence[float]) -> Callable[[float], float]:
    """``steps[k]`` at the k-th grid time."""
    return lambda t: float(steps[_index(grid, t)])


def _edge_counts(edge: Edge, grid: Grid) -> tuple[list[int], list[int]]:
    """Per grid step: (successful, failed) requests since the previous scrape."""
    rng = random.Random(f"requests:{edge.source}->{edge.destination}")
    ok, failed = [0], [0]
    for t in list(grid.times())[1:]:
        expected = edge.requests_per_s * grid.interval * _diurnal(t)
        total = max(0, round(rng.gauss(expected, math.sqrt(expected))))
        ratio = edge.error_ratio
        if edge.incident and edge.incident[0] <= t - grid.start < edge.incident[1]:
            ratio = edge.incident[2]
        errors = sum(1 for _ in range(total) if rng.random() < ratio)
        ok.append(total - errors)
        failed.append(errors)
    return ok, failed


def istio_traffic(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``istio_requests_total`` (both reporters, 200 and 503) and
    ``istio_request_duration_milliseconds`` (reporter=destination, 200) per edge.
    The histogram's ``_count`` equals the 200s of ``istio_requests_total``."""
    counts = {edge: _edge_counts(edge, grid) for edge in EDGES}
    written: Written = []
    for edge in EDGES:
        ok, failed = counts[edge]
        resets = [grid.start + ISTIO_RESET_OFFSET_S] if edge is EDGES[1] else []
        for reporter in REPORTERS:
            for code, per_step in (("200", ok), (ERROR_CODE, failed)):
                written.append(
                    writer.counter(
                        "istio_requests_total",
                        edge.labels(reporter, code),
                        grid,
                        _per_step(grid, per_step),
                        resets=resets,
                        help_text="Requests seen by Envoy sidecars.",
                    )
                )
    for edge in EDGES:
        ok, _ = counts[edge]
        rng = random.Random(f"latency:{edge.source}->{edge.destination}")
        mu = math.log(edge.median_ms)

        def observe(t: float, ok: list[int] = ok, rng: random.Random = rng, mu: float = mu) -> list[float]:
            gauss, exp = rng.gauss, math.exp
            return [exp(mu + 0.7 * gauss()) for _ in range(ok[_index(grid, t)])]

        written.append(
            writer.histogram(
                "istio_request_duration_milliseconds",
                edge.labels("destination", "200"),
                grid,
                observe,
                bounds=ENVOY_BUCKETS_MS,
                help_text="Request durations seen by Envoy sidecars.",
            )
        )
    return written


def _pod_labels(pod: Pod, container: str) -> dict[str, str]:
    return {
        "job": "kubelet",
        "metrics_path": "/metrics/cadvisor",
        "instance": pod.node,
        "namespace": NAMESPACE,
        "pod": pod.name,
        "container": container,
    }


def _container_cores(pod: Pod, container: str) -> Callable[[float], float]:
    app, sidecar = _daily_cores(pod.app_cores), _daily_cores(SIDECAR_CORES, 0.3)
    if container == "app":
        return app
    if container == "istio-proxy":
        return sidecar
    if container == "POD":
        return _constant(PAUSE_CORES)
    return lambda t: app(t) + sidecar(t) + PAUSE_CORES


def _cpu_seconds(cores: Callable[[float], float], interval: float) -> Callable[[float], float]:
    """CPU seconds used in one scrape interval at ``cores(t)`` cores (rounded to the microsecond)."""
    return lambda t: round(cores(t) * interval, 6)


def _daily_cores(cores: float, amplitude: float = 0.5) -> Callable[[float], float]:
    return lambda t: cores * _diurnal(t, amplitude)


def _idle(
    user: Callable[[float], float], system: Callable[[float], float], interval: float
) -> Callable[[float], float]:
    return lambda t: interval - user(t) - system(t)


def cadvisor_cpu(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``container_cpu_usage_seconds_total`` per container; ``""`` is the pod total."""
    written: Written = []
    for pod in PODS:
        for container in CONTAINERS:
            seconds = _cpu_seconds(_container_cores(pod, container), grid.interval)
            resets = [grid.start + APP_RESTART[2]] if (pod.name, container) == APP_RESTART[:2] else []
            written.append(
                writer.counter(
                    "container_cpu_usage_seconds_total",
                    _pod_labels(pod, container),
                    grid,
                    seconds,
                    resets=resets,
                    help_text="Cumulative cpu time consumed in seconds.",
                )
            )
    return written


def cadvisor_memory(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``container_memory_working_set_bytes`` per container; ``""`` is the pod total."""
    written: Written = []
    for pod in PODS:

        def app(t: float, pod: Pod = pod) -> float:
            sawtooth = (t % (6 * 3600)) / (6 * 3600)  # grows, then a GC every 6 hours
            return float(round(pod.app_memory_bytes * (0.8 + 0.4 * sawtooth)))

        def pod_total(t: float, app: Callable[[float], float] = app) -> float:
            return app(t) + SIDECAR_MEMORY + PAUSE_MEMORY

        per_container: dict[str, Callable[[float], float]] = {
            "app": app,
            "istio-proxy": _constant(SIDECAR_MEMORY),
            "POD": _constant(PAUSE_MEMORY),
            "": pod_total,
        }
        for container in CONTAINERS:
            written.append(
                writer.gauge(
                    "container_memory_working_set_bytes",
                    _pod_labels(pod, container),
                    grid,
                    per_container[container],
                    help_text="Current working set in bytes.",
                )
            )
    return written


def _node_gaps(node: str, grid: Grid) -> list[tuple[float, float]]:
    if node != NODE_GAP[0]:
        return []
    return [(grid.start + NODE_GAP[1], grid.start + NODE_GAP[2])]


def node_cpu(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``node_cpu_seconds_total{cpu, mode}``: per CPU, idle + user + system = the interval."""
    written: Written = []
    load = {node: sum(p.app_cores for p in PODS if p.node == node) for node in NODES}
    for node in NODES:
        per_cpu = load[node] / len(NODE_CPUS)
        user = _cpu_seconds(_daily_cores(0.7 * per_cpu), grid.interval)
        system = _cpu_seconds(_daily_cores(0.3 * per_cpu), grid.interval)
        modes = {"idle": _idle(user, system, grid.interval), "system": system, "user": user}
        for cpu in NODE_CPUS:
            for mode, increase in modes.items():
                written.append(
                    writer.counter(
                        "node_cpu_seconds_total",
                        {"job": "node", "instance": node, "cpu": cpu, "mode": mode},
                        grid,
                        increase,
                        start_value=1e6,
                        gaps=_node_gaps(node, grid),
                        help_text="Seconds the CPUs spent in each mode.",
                    )
                )
    return written


def node_memory(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``node_memory_MemTotal_bytes`` (constant) and ``node_memory_MemAvailable_bytes``."""
    written: Written = []
    for node in NODES:
        written.append(
            writer.gauge(
                "node_memory_MemTotal_bytes",
                {"job": "node", "instance": node},
                grid,
                _constant(float(NODE_MEMORY_TOTAL)),
                gaps=_node_gaps(node, grid),
            )
        )
    for node in NODES:
        used = sum(p.app_memory_bytes + SIDECAR_MEMORY + PAUSE_MEMORY for p in PODS if p.node == node)

        def available(t: float, used: float = used) -> float:
            return float(round(NODE_MEMORY_TOTAL - 2e9 - used * _diurnal(t, 0.2)))

        written.append(
            writer.gauge(
                "node_memory_MemAvailable_bytes",
                {"job": "node", "instance": node},
                grid,
                available,
                gaps=_node_gaps(node, grid),
            )
        )
    return written


def escape_probe(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``panorama_escape_probe{case, value}``: the value 0 for the target, i for the i-th decoy."""
    sparse = Grid(grid.start, grid.end, ESCAPE_PROBE_INTERVAL_S)
    written: Written = []
    for case, value in enumerate((ESCAPE_TARGET, *ESCAPE_DECOYS)):
        written.append(
            writer.gauge(
                ESCAPE_PROBE_METRIC,
                {"case": str(case), "value": value},
                sparse,
                _constant(float(case)),
            )
        )
    return written


DST_ZONE = "Europe/Berlin"
DST_REQUESTS_PER_MINUTE = 1


DST_PROBE_METRIC = "panorama_dst_probe_total"
"""One increment a minute around each DST day; its own name keeps it out of the platform's metrics."""


def dst_days(before: float, zone: str = DST_ZONE) -> dict[str, date]:
    """The latest local days of ``zone`` that are 23 h (``spring``) and 25 h (``fall``) long,
    whose following day ends before ``before`` (so the window around each is all history)."""
    tz = ZoneInfo(zone)
    found: dict[str, date] = {}
    day = datetime.fromtimestamp(before, UTC).astimezone(tz).date() - timedelta(days=2)
    for _ in range(800):
        start = datetime.combine(day, time(0), tzinfo=tz).timestamp()
        length = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).timestamp() - start
        kind = {23 * 3600: "spring", 25 * 3600: "fall"}.get(int(length))
        if kind and kind not in found:
            found[kind] = day
        if len(found) == 2:
            break
        day -= timedelta(days=1)
    return found


def dst_probe(writer: OpenMetricsWriter, grid: Grid) -> Written:
    """``panorama_dst_probe_total{probe="spring"|"fall"}`` grows by one a minute, from the local
    midnight before each DST day of :data:`DST_ZONE` to the local midnight after the next day."""
    tz = ZoneInfo(DST_ZONE)
    written: Written = []
    for kind, day in sorted(dst_days(grid.end).items()):
        start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=tz).timestamp()
        end = datetime.combine(day + timedelta(days=2), time(0), tzinfo=tz).timestamp()
        written.append(
            writer.counter(
                DST_PROBE_METRIC,
                {"probe": kind},
                Grid(start, end, SCRAPE_INTERVAL_S),
                _constant(DST_REQUESTS_PER_MINUTE),
                help_text="Ticks once a minute around DST changes.",
            )
        )
    return written


SESSION_FILES: dict[str, tuple[Family, ...]] = {
    "istio.om": (istio_traffic,),
    "dst.om": (dst_probe,),
    "infra.om": (cadvisor_cpu, cadvisor_memory, node_cpu, node_memory, escape_probe),
}
"""Which families go into which OpenMetrics file (one promtool process per file)."""


def write_dataset(
    directory: Path,
    timeline: Grid,
    files: dict[str, tuple[Family, ...]],
    *,
    now: float | None = None,
) -> Dataset:
    """Writes ``files`` into ``directory`` and returns their ground truth."""
    dataset = Dataset(timeline)
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, families in files.items():
        path = directory / file_name
        with OpenMetricsWriter(path, now=now) as writer:
            for family in families:
                dataset.add(family(writer, timeline))
        dataset.files.append(path)
    return dataset


def build_session_dataset(directory: Path, *, now: float) -> Dataset:
    """The session dataset, written into ``directory``."""
    return write_dataset(directory, session_timeline(now), SESSION_FILES, now=now)

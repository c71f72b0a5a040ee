"""The metric catalogue: which metrics a query may name, and which payload fields each one has.

A *metric* is ``<entity kind>.<figure>`` for every figure of every configured entity
kind (``service.latency_p99_ms``, ``namespace.cpu_cores_peak``, ``cluster.cpu_utilization_avg``,
user-defined kinds alike), plus the SLO figures ``slo.availability``,
``slo.error_budget_remaining`` and ``slo.error_budget_remaining_minutes``, and
``incidents`` and ``partial_days`` for annotations.

:func:`payload_fields` is the one list of a metric's payload fields: the query builder's
``/metrics`` answer, ``/metric-payload-options`` and its error messages all read it, so
they cannot disagree about what a metric accepts. Nothing here reads the database.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.grafana.errors import InvalidQuery, UnknownMetric
from app.grafana.values import ALL, selection
from app.rollups import service as rollups
from app.rollups.days import Granularity

SLO = "slo"
SLO_FIGURES = ("availability", "error_budget_remaining", "error_budget_remaining_minutes")
SLO_OBJECTIVES = ("availability", "latency_p99_ms")
INCIDENTS = "incidents"
PARTIAL_DAYS = "partial_days"
ANNOTATIONS = (INCIDENTS, PARTIAL_DAYS)
LOCALES = ("zh-CN", "en")
ALL_VALUE = "$__all"
OFFERED_GRANULARITIES = (Granularity.DAY, Granularity.WEEK, Granularity.MONTH, Granularity.YEAR)
FORMATS = ("time_series", "table")


@dataclass(frozen=True)
class Metric:
    kind: str
    figure: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.figure}"

    @property
    def is_slo(self) -> bool:
        return self.kind == SLO


def metrics_of(settings: Settings) -> list[Metric]:
    catalog = rollups.catalog_of(settings)
    found = [Metric(kind, figure) for kind in catalog.entities for figure in catalog.figure_names(kind)]
    return [*found, *(Metric(SLO, figure) for figure in SLO_FIGURES)]


def resolve_metrics(settings: Settings, target: object, *, field: str = "target") -> list[Metric]:
    """The metrics a target names: one, or several through a multi-value variable."""
    names = selection(target, field=field)
    if names is ALL:
        raise InvalidQuery(f"{field}: choose metrics; 'all' is not a metric")
    known = {metric.name: metric for metric in metrics_of(settings)}
    found = []
    for name in names:
        metric = known.get(name)
        if metric is None:
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownMetric(
                f"unknown metric {name!r}: metrics are <kind>.<figure>, e.g. service.latency_p99_ms "
                f"(POST /grafana/metrics lists them){hint}"
            )
        found.append(metric)
    return found


def unit_of(figure: str) -> str | None:
    """Grafana's unit for a figure, guessed from its name."""
    if figure.endswith("_ms"):
        return "ms"
    if figure in ("error_rate", "availability", "error_budget_remaining") or "utilization" in figure:
        return "percentunit"
    if "bytes" in figure:
        return "bytes"
    if figure.startswith("qps"):
        return "reqps"
    if figure.endswith("_minutes"):
        return "m"
    return None


def has_kind(settings: Settings, kind: str) -> bool:
    return kind in rollups.catalog_of(settings).entities


def labelled(settings: Settings, metric: Metric) -> bool:
    """Whether the metric's kind has several entities (a label names them)."""
    if metric.is_slo:
        return True
    return bool(rollups.catalog_of(settings).entities[metric.kind].labels)


def entity_key(metric: Metric) -> str:
    """What one entity of the metric is called: its kind (``service`` for the SLO figures)."""
    return "service" if metric.is_slo else metric.kind


def slo_services(settings: Settings) -> list[str]:
    """The services with an SLO objective, in configuration order."""
    return list(dict.fromkeys(objective.service for objective in settings.slo))


def filter_keys(settings: Settings) -> list[str]:
    """Ad hoc filter keys: ``service``, ``namespace`` and any other entity kind named by labels."""
    catalog = rollups.catalog_of(settings)
    return sorted({"service", "namespace"} | {k for k, kind in catalog.entities.items() if kind.labels})


def has_objective(metric: Metric) -> bool:
    """Whether a payload chooses the SLO objective (``slo.availability`` has exactly one)."""
    return metric.is_slo and metric.figure != "availability"


# --- payload fields --------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadField:
    """One field of a metric's payload, as the query builder shows it.

    ``options`` is None when the values depend on the stored rollups (the entities):
    the builder then asks ``/metric-payload-options`` for them.
    """

    name: str
    label: str
    placeholder: str
    width: int
    options: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = field(default=())

    def answer(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": "select",
            "placeholder": self.placeholder,
        }
        if self.options is None:
            shown["reloadMetric"] = False
        else:
            shown["options"] = options(self.options)
        shown["width"] = self.width
        return shown


def payload_fields(settings: Settings, metric: Metric) -> list[PayloadField]:
    """The payload fields ``metric`` accepts, in the builder's order."""
    fields = []
    if labelled(settings, metric):
        key = entity_key(metric)
        hint = f"a {key}, or a variable such as ${key}"
        fields.append(PayloadField("entity", key.capitalize(), hint, 40, None, (key,)))
    fields.append(
        PayloadField(
            "granularity",
            "Granularity",
            "day (coarser when the panel has fewer points)",
            20,
            tuple(g.value for g in OFFERED_GRANULARITIES),
        )
    )
    if has_objective(metric):
        fields.append(PayloadField("objective", "Objective", "every objective", 20, SLO_OBJECTIVES))
    fields.append(PayloadField("format", "Format", "time_series", 20, FORMATS))
    return fields


INCIDENT_FIELDS = (PayloadField("service", "Service", "every service", 40, None, ("entity",)),)
"""The incidents annotation query's one payload field."""

PARTIAL_DAY_FIELDS = (
    PayloadField("service", "Service", "every service", 40, None, ("entity",)),
    PayloadField("namespace", "Namespace", "every namespace", 30, None),
    PayloadField("lang", "Language", "the team's (alerts.locale)", 20, LOCALES),
)
"""The partial days annotation query's payload fields: the services or namespaces whose partial
days it shows (the dashboard's ``$service`` or ``$namespace``), and the language of its words."""

ANNOTATION_FIELDS = {INCIDENTS: INCIDENT_FIELDS, PARTIAL_DAYS: PARTIAL_DAY_FIELDS}


def declared_field(
    fields: tuple[PayloadField, ...] | list[PayloadField], metric: str, name: str
) -> PayloadField:
    """The payload field ``name`` (or one of its aliases) of ``metric``, one of ``fields``; or the
    400 listing them."""
    found = next((f for f in fields if name == f.name or name in f.aliases), None)
    if found is None:
        has = ", ".join(f.name for f in fields)
        raise InvalidQuery(f"metric {metric} has no payload {name!r} (it has: {has})")
    return found


def options(values: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    return [{"label": value, "value": value} for value in values]


def metric_list(settings: Settings) -> list[dict[str, Any]]:
    """Every metric with its payloads, for the query builder."""
    answer = []
    for metric in metrics_of(settings):
        unit = unit_of(metric.figure)
        label = f"{metric.kind} · {metric.figure}" + (f" ({unit})" if unit else "")
        payloads = [f.answer() for f in payload_fields(settings, metric)]
        answer.append({"label": label, "value": metric.name, "payloads": payloads})
    for name, label in ((INCIDENTS, "incidents"), (PARTIAL_DAYS, "partial days")):
        payloads = [f.answer() for f in ANNOTATION_FIELDS[name]]
        answer.append({"label": f"{label} (annotations)", "value": name, "payloads": payloads})
    return answer

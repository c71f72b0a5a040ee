"""A target's payload read into what the query needs: entities, granularity, format, objectives.

Builder-mode payloads arrive as objects with regex-interpolated values, code-mode ones
as JSON text or objects (``app.grafana.values`` reads the variable forms). Every reader
here raises :class:`InvalidQuery` naming the field, so ``/query`` can check all of a
request's targets before it reads anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.grafana.catalogue import (
    ALL_VALUE,
    FORMATS,
    INCIDENTS,
    LOCALES,
    PARTIAL_DAY_FIELDS,
    PARTIAL_DAYS,
    SLO_OBJECTIVES,
    Metric,
    declared_field,
    entity_key,
    has_objective,
    labelled,
)
from app.grafana.errors import InvalidQuery
from app.grafana.schemas import Target
from app.grafana.values import ALL, Selection, scalar, selection
from app.rollups.days import Granularity

ANNOTATION_REF_ID = "Anno"
FORMAT_ALIASES = {"time_series": "time_series", "timeseries": "time_series", "table": "table"}


@dataclass(frozen=True)
class Job:
    """One target to answer, its payload read."""

    target: Target
    payload: dict[str, Any]
    metrics: list[Metric] | None  # None: an annotation query
    annotation: str = INCIDENTS  # which annotations: incidents or partial_days


def target_payload(target: Target) -> dict[str, Any]:
    raw = target.payload
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise InvalidQuery(f"target {target.ref_id}: payload is not JSON: {raw[:80]!r}") from None
        if not isinstance(parsed, dict):
            raise InvalidQuery(f"target {target.ref_id}: payload must be a JSON object")
        return parsed
    return raw


def annotation_of(target: Target, payload: dict[str, Any]) -> str | None:
    """Which annotations a target asks for (``incidents`` or ``partial_days``: its target or its
    payload's ``kind`` names them; any other target of Grafana's annotation ``refId`` is the
    incidents), or None for a metric query."""
    named = target.target.strip() if isinstance(target.target, str) else None
    if named == PARTIAL_DAYS or payload.get("kind") == PARTIAL_DAYS:
        return PARTIAL_DAYS
    if target.ref_id == ANNOTATION_REF_ID or payload.get("kind") == INCIDENTS or named == INCIDENTS:
        return INCIDENTS
    return None


def lang_of(payload: dict[str, Any], default: str) -> str:
    """The language of an annotation's words (``payload.lang``: zh-CN or en); ``default`` if none."""
    value = scalar(payload.get("lang"), field="payload.lang")
    if value is None or value == "":
        return default
    found = next((locale for locale in LOCALES if locale.lower() == value.lower()), None)
    if found is None:
        raise InvalidQuery(f"payload.lang {value!r} is not one of {', '.join(LOCALES)}")
    return found


def granularity_of(payload: dict[str, Any]) -> Granularity:
    value = scalar(payload.get("granularity"), field="payload.granularity")
    if value is None or value == "auto":
        return Granularity.DAY
    try:
        return Granularity(value)
    except ValueError:
        known = ", ".join(g.value for g in Granularity)
        raise InvalidQuery(f"payload.granularity {value!r} is not one of {known}") from None


def format_of(payload: dict[str, Any]) -> str:
    value = scalar(payload.get("format"), field="payload.format")
    if value is None:
        return "time_series"
    found = FORMAT_ALIASES.get(value.lower().replace(" ", "_"))
    if found is None:
        raise InvalidQuery(f"payload.format {value!r} is not one of {', '.join(FORMATS)}")
    return found


def objectives_of(payload: dict[str, Any], metric: Metric) -> set[str]:
    if not has_objective(metric):
        return {"availability"}
    raw = payload.get("objective")
    if raw is None or raw == "" or raw == []:
        return set(SLO_OBJECTIVES)
    chosen = selection(raw, field="payload.objective")
    if chosen is ALL:
        return set(SLO_OBJECTIVES)
    unknown = [name for name in chosen if name not in SLO_OBJECTIVES]
    if unknown:
        raise InvalidQuery(f"payload.objective {unknown[0]!r} is not one of {', '.join(SLO_OBJECTIVES)}")
    return set(chosen)


def _entity_payload(payload: dict[str, Any], metric: Metric) -> Any:
    raw = payload.get("entity")
    if raw is None:
        raw = payload.get(entity_key(metric))
    if raw == "" or raw == []:
        return None
    return raw


def chosen_entities(
    settings: Settings, payload: dict[str, Any], metric: Metric, *, required: bool
) -> Selection | None:
    """The entities the payload names (``entity``, or the kind's own name); None when it names none."""
    raw = _entity_payload(payload, metric)
    if raw is None:
        if required and labelled(settings, metric):
            raise InvalidQuery(
                f"payload.entity is required for {metric.name}: a {entity_key(metric)} name, a list, "
                f"(a|b) or {ALL_VALUE} (in code mode write a multi-value variable unquoted: "
                '{"entity": $var})'
            )
        return None
    return selection(raw, field="payload.entity")


def annotation_services(payload: dict[str, Any]) -> Selection:
    """The services an annotation query is about (``payload.service``, or ``entity``); all by default."""
    raw = payload.get("service", payload.get("entity"))
    return ALL if raw is None or raw == "" else selection(raw, field="payload.service")


@dataclass(frozen=True)
class PartialDayScope:
    """The services and namespaces a ``partial_days`` annotation query is about (all by default)."""

    services: Selection
    namespaces: Selection

    @property
    def everything(self) -> bool:
        return self.services is ALL and self.namespaces is ALL


def partial_day_scope(payload: dict[str, Any]) -> PartialDayScope:
    """``payload.service`` (or ``entity``) and ``payload.namespace`` of a ``partial_days`` query; a
    field it does not have is refused rather than ignored (a filter the dashboard meant would be
    silently dropped), naming the fields it has."""
    for name in payload:
        if name != "kind":
            declared_field(PARTIAL_DAY_FIELDS, PARTIAL_DAYS, name)
    raw = payload.get("namespace")
    namespaces = ALL if raw is None or raw == "" else selection(raw, field="payload.namespace")
    return PartialDayScope(annotation_services(payload), namespaces)

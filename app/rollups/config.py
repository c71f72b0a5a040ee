"""The ``rollups`` and ``slo`` configuration sections: what is rolled up each day, and when.

A definition is data: an entity kind (the label(s) naming an entity), a family
kind saying how its daily values combine over longer periods, and a PromQL
template. Templates may use:

- ``$range``: the day as a range-selector duration, e.g. ``86399999ms``. The
  query is evaluated at the day's end, and the window stops one millisecond short
  of the day's start, so a sample exactly at midnight belongs to one day only;
- ``$filter``: label matchers Panorama adds to split a family with many entities
  over several queries (write it inside a selector's braces, after a comma:
  ``{reporter="destination",$filter}``; it renders empty when not needed).

Family kinds:

- ``counter``: the day's increase; periods sum it (figure statistic ``total``);
- ``gauge``: sampled every ``step`` over the day by a range query; periods keep
  the sum, count and max of the samples (statistics ``avg``, ``peak``);
- ``histogram``: the day's increase of every ``le`` bucket (the template must keep
  ``le``); periods sum the buckets, and percentiles are interpolated from them
  (statistics ``p50``, ``p95``, ``p99``, ``p999`` or any ``0.xx`` quantile).
"""

from __future__ import annotations

import ast
import re
from datetime import time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from app.config_types import Duration, Model

FIGURE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_STAT_QUANTILE = re.compile(r"^(?:p(\d{2,3})|(0\.\d+))$")
# Names every derived expression may use besides figures.
EXPRESSION_CONSTANTS = ("seconds", "days")


class FamilyKind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@lru_cache(maxsize=256)
def stat_quantile(statistic: str) -> float | None:
    """``p99`` → 0.99, ``p999`` → 0.999, ``0.9`` → 0.9; None for other statistics."""
    match = _STAT_QUANTILE.match(statistic)
    if not match:
        return None
    digits, decimal = (str(part) if part else "" for part in match.group(1, 2))
    if digits:
        return int(digits) / 10.0 ** len(digits)
    return float(decimal)


def _allowed_statistic(kind: FamilyKind, statistic: str) -> bool:
    if kind is FamilyKind.COUNTER:
        return statistic == "total"
    if kind is FamilyKind.GAUGE:
        return statistic in ("avg", "peak", "min")
    quantile = stat_quantile(statistic)
    return quantile is not None and 0 < quantile < 1


class EntityKind(Model):
    name: Annotated[str, Field(pattern=FIGURE_NAME)]
    labels: list[Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]] = Field(
        default_factory=list,
        description="Labels naming an entity (joined with '/'); none: one entity named after the kind",
    )
    selector: str | None = Field(
        default=None,
        description=(
            "Series whose label values list the day's entities, used to split large families"
            " (a split family covers the entities listed here)"
        ),
    )


class Definition(Model):
    name: Annotated[str, Field(pattern=FIGURE_NAME)]
    entity: str
    kind: FamilyKind
    query: str
    step: Duration | None = Field(default=None, description="Gauges: sampling step (default rollups.step)")
    figures: dict[Annotated[str, Field(pattern=FIGURE_NAME)], str] | None = Field(
        default=None,
        description="Reported figure name → statistic; default: counter {name: total}, "
        "gauge {name_avg: avg, name_peak: peak}, histogram {name_p50: p50, name_p95: p95, name_p99: p99}",
    )

    @model_validator(mode="after")
    def _check(self) -> Definition:
        if self.kind is not FamilyKind.GAUGE and self.step is not None:
            raise ValueError("step applies to gauges only")
        if self.kind is not FamilyKind.GAUGE and "$range" not in self.query:
            raise ValueError(f"a {self.kind.value} query must use $range (the day's window)")
        if self.kind is FamilyKind.GAUGE and "$range" in self.query:
            raise ValueError("a gauge query is sampled by a range query; it cannot use $range")
        for figure, statistic in self.reported().items():
            if not _allowed_statistic(self.kind, statistic):
                raise ValueError(
                    f"figure {figure!r}: {statistic!r} is not a statistic of a {self.kind.value}"
                )
        return self

    def reported(self) -> dict[str, str]:
        if self.figures is not None:
            return dict(self.figures)
        if self.kind is FamilyKind.COUNTER:
            return {self.name: "total"}
        if self.kind is FamilyKind.GAUGE:
            return {f"{self.name}_avg": "avg", f"{self.name}_peak": "peak"}
        return {f"{self.name}_p50": "p50", f"{self.name}_p95": "p95", f"{self.name}_p99": "p99"}


class Derived(Model):
    """A figure computed from others over the whole period, e.g. ``errors / requests``."""

    name: Annotated[str, Field(pattern=FIGURE_NAME)]
    entity: str
    expr: str = Field(description="Arithmetic over figure names, numbers, `seconds` and `days`")

    @field_validator("expr")
    @classmethod
    def _parse(cls, value: str) -> str:
        expression_names(value)
        return value


def expression_names(expr: str) -> set[str]:
    """The names an arithmetic expression uses; ValueError for anything but + - * / ( ), numbers, names."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise ValueError(f"{expr!r} is not an arithmetic expression") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise ValueError(f"{expr!r}: only numbers may appear as constants")
        elif not isinstance(
            node,
            ast.Expression
            | ast.BinOp
            | ast.UnaryOp
            | ast.Add
            | ast.Sub
            | ast.Mult
            | ast.Div
            | ast.USub
            | ast.UAdd
            | ast.Load,
        ):
            raise ValueError(f"{expr!r}: only + - * / ( ), numbers and figure names are allowed")
    return names


class RollupSettings(Model):
    enabled: bool = Field(default=True, description="Run the daily and catch-up jobs in this process")
    schedule: time = Field(default=time(0, 15), description="Local time the previous day is rolled up")
    backfill_days: int = Field(
        default=30, ge=0, le=1096, description="How far back missed days are caught up"
    )
    retention_days: int = Field(default=1096, ge=1, description="Days kept (three years by default)")
    step: Duration = Field(default=timedelta(minutes=5), description="Default sampling step of gauges")
    query_concurrency: int = Field(default=4, ge=1, le=64, description="Queries sent to Prometheus at once")
    entities_per_query: int = Field(
        default=5000,
        ge=1,
        description=(
            "Larger families are split over queries (below it: one query per family, no name regex;"
            " a histogram family of 100 entities or more among up to query_concurrency queries, 50+ each)"
        ),
    )
    query_timeout_s: float = Field(default=120, gt=0, le=3600, description="Per query")
    retry_interval: Duration = Field(default=timedelta(minutes=10), description="How often failed days retry")
    builtin: bool = Field(default=True, description="Include the platform's standard definitions")
    entities: list[EntityKind] = Field(default_factory=list, description="Added to (or replacing) built-ins")
    definitions: list[Definition] = Field(default_factory=list, description="Same name replaces a built-in")
    derived: list[Derived] = Field(default_factory=list, description="Same name replaces a built-in")

    @model_validator(mode="after")
    def _check_catalog(self) -> RollupSettings:
        """The definitions must merge into a catalogue: checked here, so that a bad one is refused
        when the file is loaded; the rollups service builds the catalogue it uses
        (``service.catalog_of``)."""
        from app.rollups.catalog import build_catalog  # the catalogue module imports this one

        build_catalog(self)
        return self


class SloObjective(Model):
    service: str
    availability: float | None = Field(default=None, gt=0, lt=1, description="e.g. 0.999")
    latency_p99_ms: float | None = Field(default=None, gt=0, description="99% of requests faster than this")
    window_days: int = Field(default=30, ge=1, le=366)

    @model_validator(mode="after")
    def _needs_a_target(self) -> SloObjective:
        if self.availability is None and self.latency_p99_ms is None:
            raise ValueError("set availability and/or latency_p99_ms")
        return self

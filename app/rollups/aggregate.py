"""Exact re-aggregation: a period's figures from the stored days, never averages of averages.

Counters sum; gauges keep the sum and count of their samples (so the mean is
sample-weighted), the max and the min (only the max or the min when the figures use no mean:
``compute.py``); histograms sum their buckets, and
percentiles are interpolated from the sums. Derived figures are then computed
from the period's totals.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from app.rollups.catalog import Catalog, evaluate
from app.rollups.config import FamilyKind, stat_quantile
from app.rollups.histograms import Buckets, add_buckets, quantile

FigureValues = dict[str, float | None]


@dataclass
class GaugeTotals:
    total: float = 0.0
    samples: int = 0
    peak: float | None = None
    low: float | None = None

    def add(self, total: float | None, samples: int | None, peak: float | None, low: float | None) -> None:
        self.total += total or 0.0
        self.samples += samples or 0
        if peak is not None:
            self.peak = peak if self.peak is None else max(self.peak, peak)
        if low is not None:
            self.low = low if self.low is None else min(self.low, low)


@dataclass
class Totals:
    """What one entity accumulated over one period."""

    days: int = 0
    seconds: int = 0
    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, GaugeTotals] = field(default_factory=dict)
    histograms: dict[str, Buckets] = field(default_factory=dict)

    def add_scalar(
        self,
        family: str,
        kind: FamilyKind,
        total: float | None,
        samples: int | None,
        peak: float | None,
        low: float | None,
    ) -> None:
        if kind is FamilyKind.COUNTER:
            self.counters[family] = self.counters.get(family, 0.0) + (total or 0.0)
        else:
            self.gauges.setdefault(family, GaugeTotals()).add(total, samples, peak, low)

    def add_buckets(self, family: str, buckets: Buckets) -> None:
        existing = self.histograms.get(family)
        if existing is None:
            self.histograms[family] = dict(buckets)
        else:
            add_buckets(existing, buckets)


def statistic(totals: Totals, family: str, kind: FamilyKind, name: str) -> float | None:
    if kind is FamilyKind.COUNTER:
        return totals.counters.get(family)
    if kind is FamilyKind.GAUGE:
        gauge = totals.gauges.get(family)
        if gauge is None:
            return None
        if name == "avg":  # no samples counted: none stored, or only the extremes (``compute.py``)
            return gauge.total / gauge.samples if gauge.samples else None
        return gauge.peak if name == "peak" else gauge.low
    buckets = totals.histograms.get(family)
    q = stat_quantile(name)
    return quantile(q, buckets) if buckets and q is not None else None


def figures(
    catalog: Catalog, entity_kind: str, totals: Totals, *, only: Collection[str] | None = None
) -> FigureValues:
    """Every figure of ``entity_kind``, in catalogue order, from one period's totals.

    With ``only``, just those figures (include what they are computed from: see
    ``Catalog.requirements``).
    """
    values: FigureValues = {}
    scope: dict[str, float | None] = {
        "seconds": float(totals.seconds) if totals.seconds else None,
        "days": float(totals.days) if totals.days else None,
        **totals.counters,
    }
    for figure in catalog.figures.get(entity_kind, []):
        if only is not None and figure.name not in only:
            continue
        if figure.expr is not None:
            value = evaluate(figure.expr, scope)
        else:
            assert figure.family is not None
            assert figure.statistic is not None
            definition = catalog.family(entity_kind, figure.family)
            assert definition is not None
            value = statistic(totals, figure.family, definition.kind, figure.statistic)
        values[figure.name] = value
        scope[figure.name] = value
    return values

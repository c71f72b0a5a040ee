"""Histogram arithmetic on summed bucket increases, exactly as Prometheus does it.

Percentiles of any period come from the period's summed ``le`` buckets, never
from averaging daily percentiles. The interpolation follows ``histogram_quantile``:
linear within the bucket holding the rank, the first bucket's lower bound is 0
(when its upper bound is positive), and a rank in the ``+Inf`` bucket gives the
highest finite bound.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping

Buckets = dict[float, float]
"""Cumulative counts by upper bound (``le``), ``math.inf`` included."""


def add_buckets(total: Buckets, more: Mapping[float, float]) -> None:
    for bound, count in more.items():
        total[bound] = total.get(bound, 0.0) + count


def sum_buckets(many: Iterable[Mapping[float, float]]) -> Buckets:
    total: Buckets = {}
    for buckets in many:
        add_buckets(total, buckets)
    return total


def _ordered(buckets: Mapping[float, float]) -> list[tuple[float, float]]:
    """Sorted by bound, made monotonic (as Prometheus does for float noise), +Inf required."""
    fixed: list[tuple[float, float]] = []
    highest = -math.inf
    for bound, count in sorted(buckets.items()):
        if count > highest:  # max(highest, count), NaN included, without a call per bucket
            highest = count
        fixed.append((bound, highest))
    return fixed


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` over these buckets; None when there is nothing to rank."""
    if len(buckets) < 2:
        return None
    bounds = sorted(buckets)
    if bounds[-1] != math.inf:
        return None
    counts: list[float] = []  # made monotonic, as in _ordered (one pass, no tuples: reports call this a lot)
    highest = -math.inf
    for bound in bounds:
        count = buckets[bound]
        if count > highest:
            highest = count
        counts.append(highest)
    total = counts[-1]
    if total <= 0 or math.isnan(total):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    index = bisect_left(counts, rank)  # the first bucket whose count reaches the rank
    if index == len(counts) - 1:
        return bounds[-2]
    upper, count_upper = bounds[index], counts[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, count_lower = 0.0, 0.0
    else:
        lower, count_lower = bounds[index - 1], counts[index - 1]
    in_bucket = count_upper - count_lower
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * ((rank - count_lower) / in_bucket)


def fraction_above(threshold: float, buckets: Mapping[float, float]) -> float | None:
    """The share of observations above ``threshold``, interpolating linearly inside its bucket."""
    ordered = _ordered(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    lower, count_lower = 0.0, 0.0
    for upper, count in ordered:
        if threshold < upper:
            if upper == math.inf:
                below = count_lower
            else:
                below = count_lower + (count - count_lower) * (threshold - lower) / (upper - lower)
            return max(0.0, min(1.0, 1 - below / total))
        lower, count_lower = upper, count
    return 0.0

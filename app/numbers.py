"""The one guard every answer's numbers pass: no NaN or infinity leaves Panorama.

Prometheus answers ``NaN`` for a quantile of no requests and ``±Inf`` for 0/0-like ratios;
JSON has no spelling for them (Python's would write ``NaN``, which Grafana, browsers and
``jq`` refuse). Reports, Grafana's datasource and the wall all show such a figure as missing
(``null``, "—"), so they share this one function rather than three copies that could drift.
"""

from __future__ import annotations

import math


def finite(value: float | None) -> float | None:
    """``value`` as a float, or None for a missing value, NaN or an infinity."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)

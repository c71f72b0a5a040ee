"""Writing history for Prometheus as OpenMetrics text, for ``promtool tsdb create-blocks-from openmetrics``.

What promtool (2.42) needs, and this writer guarantees:

- timestamps on every sample, in **seconds** (promtool computes
  ``int64(seconds * 1000)``, truncating: sub-second timestamps are written so
  that the truncation lands on the intended millisecond);
- each family's lines together (OpenMetrics forbids interleaving families),
  ``# TYPE`` before its samples, counters named ``*_total``, histogram series
  ``_bucket{le}`` (cumulative, ascending, ``+Inf`` last), ``_count``, ``_sum``;
- per series, strictly increasing timestamps (the TSDB refuses out-of-order ones);
- nothing in the last 3 hours before now: promtool's blocks would overlap the
  running Prometheus's head block, so the writer refuses such samples;
- label values escaped as OpenMetrics does (only ``\\``, ``"`` and newline);
- a final ``# EOF`` line, written by :meth:`OpenMetricsWriter.close` (and on
  leaving the ``with`` block without an exception).

Cost (measured on the 2-core test machine): the writer streams to the file and
keeps only the current family's label sets, so its memory stays flat (~18 MB RSS
for the case below). It writes ~650k samples a second; a sample takes ~130 bytes
with cAdvisor-sized labels (~300 with Istio's). 1,000 series × 3 days at 1-minute
resolution (4.3M samples) take ~7 s and ~570 MB; promtool then needs ~20 s for
that file even with ``--max-block-duration`` (as tests/harness/prometheus.py
passes; without it promtool re-reads the whole file for every 2-hour block).
The returned :class:`SeriesData` keep the written values (16 bytes a sample) as
the test's ground truth; pass ``keep_values=False`` to drop them.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate, pairwise
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from app.backends.promql import validate_label_name, validate_metric_name

MetricKind = Literal["counter", "gauge", "histogram", "unknown"]

HEAD_BLOCK_GUARD_S = 3 * 3600
"""Samples newer than now minus this would overlap Prometheus's head block."""

DEFAULT_LOOKBACK_S = 300.0
"""Prometheus's default ``--query.lookback-delta`` (5m)."""

_FLUSH_LINES = 8192
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "unknown": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}

Gaps = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Grid:
    """Scrape times ``start, start + interval, …`` up to and including ``end`` (epoch seconds)."""

    start: float
    end: float
    interval: float

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"interval must be positive, got {self.interval!r}")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")

    def __len__(self) -> int:
        return int((self.end - self.start) // self.interval) + 1

    def times(self) -> Iterator[float]:
        return iter(self.time_list)

    @cached_property
    def time_list(self) -> list[float]:
        start, interval = self.start, self.interval
        return [start + k * interval for k in range(len(self))]

    @cached_property
    def stamps(self) -> list[str]:
        """The grid times as written in the file (computed once per grid)."""
        return _format_timestamps(self.time_list)

    @property
    def last(self) -> float:
        return self.start + (len(self) - 1) * self.interval


@dataclass
class SeriesData:
    """One written series and, unless dropped, its samples: the test's ground truth."""

    name: str
    labels: dict[str, str]
    times: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    count: int = 0

    @property
    def full_labels(self) -> dict[str, str]:
        """The label set as Prometheus returns it: ``__name__`` included, empty values
        dropped (an empty label value is the same as no label)."""
        return {"__name__": self.name, **{k: v for k, v in self.labels.items() if v != ""}}

    def points(self) -> Iterator[tuple[float, float]]:
        return zip(self.times, self.values, strict=True)

    def value_at(self, t: float) -> float:
        """The sample written exactly at ``t``; KeyError if there is none."""
        index = bisect_left(self.times, t)
        if index == len(self.times) or self.times[index] != t:
            raise KeyError(f"{self.name}{self.labels} has no sample at {t}")
        return self.values[index]

    def latest(self, t: float, lookback: float = DEFAULT_LOOKBACK_S) -> float | None:
        """What an instant query at ``t`` sees: the newest sample in ``[t - lookback, t]``."""
        index = bisect_left(self.times, t)
        if index < len(self.times) and self.times[index] == t:
            return self.values[index]
        if index == 0 or self.times[index - 1] < t - lookback:
            return None
        return self.values[index - 1]

    def between(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """The samples a range selector ending at ``t1`` covering back to ``t0`` sees
        (both ends included, as in Prometheus 2.x)."""
        lo = bisect_left(self.times, t0)
        hi = bisect_left(self.times, t1)
        if hi < len(self.times) and self.times[hi] == t1:
            hi += 1
        return list(zip(self.times[lo:hi], self.values[lo:hi], strict=True))

    def counter_increase(self, t0: float, t1: float) -> float:
        """How much a counter grew between its samples in ``[t0, t1]``, resets counted
        as restarts from zero. Exact: no extrapolation to the window's edges, unlike
        PromQL's ``increase()``."""
        points = self.between(t0, t1)
        grown = 0.0
        for (_, before), (_, after) in pairwise(points):
            grown += after - before if after >= before else after
        return grown


@dataclass
class HistogramData:
    """The series of one written histogram: buckets by ``le`` text, ``_sum`` and ``_count``."""

    name: str
    labels: dict[str, str]
    bounds: tuple[float, ...]
    buckets: dict[str, SeriesData]
    sum: SeriesData
    count: SeriesData

    def series(self) -> list[SeriesData]:
        return [*self.buckets.values(), self.count, self.sum]


def format_bound(bound: float) -> str:
    """A bucket bound as Go's ``strconv.FormatFloat(b, 'g', -1, 64)`` prints it, which is
    how Go exporters (client_golang's text format) write ``le``: ``0.5``, ``1``,
    ``600000``, ``3.6e+06``, ``+Inf``. Prometheus 2.x keeps ``le`` as written."""
    if math.isnan(bound):
        raise ValueError("a bucket bound cannot be NaN")
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    if bound == 0:
        return "0"
    digits, exponent = _shortest_digits(repr(abs(bound)))
    sign = "-" if bound < 0 else ""
    if exponent < -4 or exponent >= 6:
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    frac = digits[exponent + 1 :]
    return sign + whole + ("." + frac if frac else "")


def _shortest_digits(text: str) -> tuple[str, int]:
    """Significant digits and decimal exponent of a Python ``repr`` of a float."""
    mantissa, _, exp_part = text.partition("e")
    exponent = int(exp_part) if exp_part else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    leading_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    exponent += len(whole) - 1 - leading_zeros
    return digits.rstrip("0") or "0", exponent


_SPECIAL_VALUES = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def format_value(value: float) -> str:
    """A sample value: Python's shortest round-trip repr, or ``NaN``/``+Inf``/``-Inf``."""
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)


def format_timestamp(seconds: float) -> str:
    """Epoch seconds as promtool reads them back to the intended millisecond."""
    if seconds == int(seconds):
        return str(int(seconds))
    ms = round(seconds * 1000)
    if abs(seconds * 1000 - ms) > 0.01:
        raise ValueError(f"timestamps must be whole milliseconds, got {seconds!r}")
    whole, frac = divmod(ms, 1000)
    candidate = float(f"{whole}.{frac:03d}")
    while int(candidate * 1000) < ms:  # promtool truncates seconds * 1000
        candidate = math.nextafter(candidate, math.inf)
    return repr(candidate)


def escape_value(value: str) -> str:
    """An OpenMetrics label value body: only backslash, double quote and newline are escaped."""
    value.encode("utf-8")  # lone surrogates raise UnicodeEncodeError (a ValueError) here
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for name, value in labels.items():
        validate_label_name(name)
        if not isinstance(value, str):
            raise TypeError(f"label {name} must be a str, got {type(value).__name__}")
        parts.append(f'{name}="{escape_value(value)}"')
    return "{" + ",".join(parts) + "}"


def _in_gap(t: float, gaps: Gaps) -> bool:
    return any(lo <= t < hi for lo, hi in gaps)


class OpenMetricsWriter:
    """Streams families of series to ``path``; see the module docstring for the rules it keeps."""

    def __init__(self, path: Path, *, now: float | None = None, keep_values: bool = True) -> None:
        self.path = path
        self.latest_allowed = (time.time() if now is None else now) - HEAD_BLOCK_GUARD_S
        self.keep_values = keep_values
        self.samples_written = 0
        self.min_time = math.inf
        self.max_time = -math.inf
        self._out: IO[str] | None = path.open("w", encoding="utf-8", newline="\n")
        self._family: str | None = None
        self._kind: MetricKind | None = None
        self._done: set[str] = set()
        self._series_keys: set[tuple[str, frozenset[tuple[str, str]]]] = set()

    def __enter__(self) -> OpenMetricsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._out is not None:
            self._out.close()
            self._out = None

    def close(self) -> None:
        """Ends the file with ``# EOF``; the file is then complete."""
        if self._out is None:
            return
        self._out.write("# EOF\n")
        self._out.close()
        self._out = None

    def begin_family(self, family: str, kind: MetricKind, help_text: str | None = None) -> None:
        """Starts a family (``# TYPE``/``# HELP``); continuing the current one is a no-op.

        A family may not come back once another one started: OpenMetrics keeps a
        family's lines together.
        """
        validate_metric_name(family)
        if family == self._family:
            if kind != self._kind:
                raise ValueError(f"family {family} is a {self._kind}, not a {kind}")
            return
        if family in self._done:
            raise ValueError(
                f"family {family} was already written: write each family's series together "
                "(OpenMetrics forbids interleaving families)"
            )
        if self._family is not None:
            self._done.add(self._family)
        self._family, self._kind = family, kind
        self._series_keys.clear()
        header = f"# TYPE {family} {kind}\n"
        if help_text:
            escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
            header += f"# HELP {family} {escaped}\n"
        self._write(header)

    def series(
        self, name: str, labels: Mapping[str, str], samples: Iterable[tuple[float, float]]
    ) -> SeriesData:
        """Writes one series from ``(timestamp_seconds, value)`` pairs in time order.

        It joins the current family when ``name`` belongs to it (``foo_total`` to
        counter ``foo``, ``foo_bucket`` to histogram ``foo``, …); otherwise it
        starts an ``unknown`` family named ``name``.
        """
        if not self._belongs(name):
            self.begin_family(name, "unknown")
        data = self._new_series(name, labels)
        times: list[float] = []
        values: list[float] = []
        last = -math.inf
        for t, value in samples:
            if t <= last:
                raise ValueError(f"{name}{dict(labels)}: timestamps must increase ({t} after {last})")
            self._check_time(t)
            last = t
            times.append(t)
            values.append(value)
        self._write_series(data, times, values, _format_timestamps(times))
        return data

    def gauge(
        self,
        name: str,
        labels: Mapping[str, str],
        grid: Grid,
        value: Callable[[float], float],
        *,
        gaps: Gaps = (),
        help_text: str | None = None,
    ) -> SeriesData:
        """A gauge scraped at every grid time (except in ``gaps``, half-open ``[from, to)``)."""
        self._check_time(grid.last)
        self.begin_family(name, "gauge", help_text)
        data = self._new_series(name, labels)
        times, stamps = _without_gaps(grid, gaps)
        self._write_series(data, times, list(map(value, times)), stamps)
        return data

    def counter(
        self,
        name: str,
        labels: Mapping[str, str],
        grid: Grid,
        increase: Callable[[float], float],
        *,
        start_value: float = 0.0,
        resets: Sequence[float] = (),
        gaps: Gaps = (),
        help_text: str | None = None,
    ) -> SeriesData:
        """A counter: ``start_value`` at the first grid time, then ``increase(t)`` added at
        each later one. At the first grid time at or after each time in ``resets`` the
        counter restarts from zero (a process restart). In ``gaps`` nothing is
        scraped, but the counter keeps counting."""
        family = _counter_family(name)
        self._check_time(grid.last)
        self.begin_family(family, "counter", help_text)
        data = self._new_series(name, labels)
        times = grid.time_list
        increases = list(map(increase, times[1:]))
        if increases and min(increases) < 0:
            where = next(t for t, step in zip(times[1:], increases, strict=True) if step < 0)
            raise ValueError(f"{name}: a counter cannot decrease (negative increase at {where})")
        restarts = {max(1, bisect_left(times, r)) for r in resets}
        if restarts:
            values = [float(start_value)]
            total = float(start_value)
            for index, step in enumerate(increases, 1):
                total = step if index in restarts else total + step
                values.append(total)
        else:
            values = list(accumulate(increases, initial=float(start_value)))
        if gaps:
            kept = [i for i, t in enumerate(times) if not _in_gap(t, gaps)]
            self._write_series(
                data, [times[i] for i in kept], [values[i] for i in kept], [grid.stamps[i] for i in kept]
            )
        else:
            self._write_series(data, times, values, grid.stamps)
        return data

    def histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        grid: Grid,
        observe: Callable[[float], Iterable[float]],
        *,
        bounds: Sequence[float],
        resets: Sequence[float] = (),
        gaps: Gaps = (),
        help_text: str | None = None,
    ) -> HistogramData:
        """A classic histogram fed by ``observe(t)``: the values observed since the
        previous grid time (nothing is observed before the first one). Writes, at
        every grid time, the cumulative ``_bucket{le}`` (``+Inf`` last), ``_count``
        and ``_sum``. Resets and gaps work as in :meth:`counter`."""
        if "le" in labels:
            raise ValueError("a histogram's labels cannot include le")
        finite = sorted(float(b) for b in bounds)
        if any(math.isnan(b) or math.isinf(b) for b in finite) or len(set(finite)) != len(finite):
            raise ValueError(f"bucket bounds must be distinct finite numbers, got {bounds!r}")
        self._check_time(grid.last)
        self.begin_family(name, "histogram", help_text)
        all_bounds = (*finite, math.inf)
        le_texts = [format_bound(b) for b in all_bounds]
        members = [self._new_series(f"{name}_bucket", {**labels, "le": le}) for le in le_texts]
        members.append(self._new_series(f"{name}_count", labels))
        members.append(self._new_series(f"{name}_sum", labels))
        columns: list[list[float]] = [[] for _ in members]
        times, stamps = _without_gaps(grid, gaps)
        written = set(times)
        per_bucket = [0.0] * len(all_bounds)
        observed_sum = 0.0
        restarts = {max(1, bisect_left(grid.time_list, r)) for r in resets}
        for index, t in enumerate(grid.time_list):
            if index:
                if index in restarts:
                    per_bucket = [0.0] * len(all_bounds)
                    observed_sum = 0.0
                for value in observe(t):
                    per_bucket[bisect_left(all_bounds, value)] += 1
                    observed_sum += value
            if t not in written:
                continue
            for position, running in enumerate(accumulate(per_bucket)):
                columns[position].append(running)
            columns[-2].append(columns[-3][-1])
            columns[-1].append(observed_sum)
        self._write_interleaved(members, times, columns, stamps)
        *bucket_series, count, total = members
        buckets = dict(zip(le_texts, bucket_series, strict=True))
        return HistogramData(name, dict(labels), tuple(finite), buckets, total, count)

    def _belongs(self, name: str) -> bool:
        if self._family is None or self._kind is None:
            return False
        return any(name == self._family + suffix for suffix in _SUFFIXES[self._kind])

    def _new_series(self, name: str, labels: Mapping[str, str]) -> SeriesData:
        validate_metric_name(name)
        if "__name__" in labels:
            raise ValueError("put the metric name in name, not in a __name__ label")
        key = (name, frozenset(labels.items()))
        if key in self._series_keys:
            raise ValueError(f"series {name}{dict(labels)} was already written in this family")
        self._series_keys.add(key)
        render_labels(labels)
        return SeriesData(name, dict(labels))

    def _check_time(self, t: float) -> None:
        if t > self.latest_allowed:
            raise ValueError(
                f"sample at {t:.0f} is within {HEAD_BLOCK_GUARD_S // 3600}h of now "
                f"(latest allowed {self.latest_allowed:.0f}): promtool's blocks would overlap "
                "the head block of the Prometheus that loads them; end the history earlier"
            )

    def _write_series(
        self, data: SeriesData, times: Sequence[float], values: Sequence[float], stamps: Sequence[str]
    ) -> None:
        """One series, all its samples (time order)."""
        prefix = f"{data.name}{render_labels(data.labels)} "
        texts = _format_values(values)
        for start in range(0, len(texts), _FLUSH_LINES):
            end = start + _FLUSH_LINES
            self._write(
                "".join(
                    [f"{prefix}{v} {t}\n" for v, t in zip(texts[start:end], stamps[start:end], strict=True)]
                )
            )
        self._account(data, times, values)

    def _write_interleaved(
        self,
        members: list[SeriesData],
        times: Sequence[float],
        columns: list[list[float]],
        stamps: Sequence[str],
    ) -> None:
        """Series sharing timestamps (a histogram), written time by time: OpenMetrics
        keeps one MetricPoint's samples (all buckets, count, sum) together."""
        prefixes = [f"{m.name}{render_labels(m.labels)} " for m in members]
        texts = [_format_values(column) for column in columns]
        lines: list[str] = []
        for i, stamp in enumerate(stamps):
            lines.extend(
                f"{prefix}{column[i]} {stamp}\n" for prefix, column in zip(prefixes, texts, strict=True)
            )
            if len(lines) >= _FLUSH_LINES:
                self._write("".join(lines))
                lines.clear()
        self._write("".join(lines))
        for member, column in zip(members, columns, strict=True):
            self._account(member, times, column)

    def _account(self, data: SeriesData, times: Sequence[float], values: Sequence[float]) -> None:
        data.count = len(times)
        self.samples_written += len(times)
        if times:
            self.min_time = min(self.min_time, times[0])
            self.max_time = max(self.max_time, times[-1])
        if self.keep_values:
            data.times, data.values = array("d", times), array("d", values)

    def _write(self, text: str) -> None:
        if self._out is None:
            raise ValueError("the writer is closed")
        self._out.write(text)


def _format_timestamps(times: Sequence[float]) -> list[str]:
    if all(float(t).is_integer() for t in times):
        return [str(int(t)) for t in times]
    return [format_timestamp(t) for t in times]


def _format_values(values: Sequence[float]) -> list[str]:
    """Like :func:`format_value` on each, with a fast path when all are finite."""
    try:
        finite = math.isfinite(sum(values))
    except OverflowError:
        finite = False
    if finite:
        return list(map(repr, map(float, values)))
    return [format_value(v) for v in values]


def _without_gaps(grid: Grid, gaps: Gaps) -> tuple[list[float], list[str]]:
    """The grid's times and their written form, minus those in ``gaps``."""
    if not gaps:
        return grid.time_list, grid.stamps
    kept = [i for i, t in enumerate(grid.time_list) if not _in_gap(t, gaps)]
    return [grid.time_list[i] for i in kept], [grid.stamps[i] for i in kept]


def _counter_family(name: str) -> str:
    if not name.endswith("_total") or len(name) == len("_total"):
        raise ValueError(f"an OpenMetrics counter's samples are named <family>_total, got {name!r}")
    return name[: -len("_total")]

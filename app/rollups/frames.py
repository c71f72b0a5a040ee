"""Stored days as matrices, re-aggregated into periods and figures column by column.

Why: a report turns hundreds of stored days into figures. Done per day and per family in Python
(dicts of buckets, a quantile loop per period) a three-year daily report took 130–175 ms; done on
whole columns with NumPy it takes about a millisecond, with the same arithmetic:

- a :class:`Frame` is rows (days, periods or entities) × the positions of a layout
  (``layouts.py``); NaN marks a number a row does not have;
- :func:`reduce` sums counters, gauge sums and counts and histogram buckets over groups of
  consecutive rows, keeps the highest peak and the lowest low, and leaves NaN where no row of
  the group had the number. Its result is a frame again, so days sum into weeks, weeks of
  entities into a report, exactly as ``aggregate.py`` defines it;
- :func:`figures` computes every figure of the catalogue per row: statistics of families
  (``histogram_quantile``'s interpolation on the summed buckets, sample-weighted means, peaks)
  and derived expressions evaluated on whole columns. A figure that cannot be computed (no
  data, a division by zero) is NaN, which the answers write as ``null``.

The quantile is the same sequence of float operations as ``histograms.quantile`` (so the same
bits); a period whose rows do not all have the same bucket bounds is handed to that scalar
function with exactly the buckets it has, as before.

This module never reads the database and never formats an answer.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.rollups.aggregate import GaugeTotals, Totals
from app.rollups.catalog import Catalog, parsed_expression
from app.rollups.config import FamilyKind, stat_quantile
from app.rollups.histograms import quantile as scalar_quantile
from app.rollups.layouts import FLOAT, GAUGE_WIDTH, Layout, Matrix, Slot, decode_many, make_layout

Column = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
GAUGE_TOTAL, GAUGE_SAMPLES, GAUGE_PEAK, GAUGE_LOW = range(GAUGE_WIDTH)


@dataclass(frozen=True)
class Frame:
    """Rows × the positions of ``layout``; NaN where a row lacks a number."""

    layout: Layout
    matrix: Matrix

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


def empty(layout: Layout | None = None) -> Frame:
    layout = layout or make_layout([])
    return Frame(layout, np.empty((0, layout.width), dtype=FLOAT))


def union(layouts: Collection[Layout], kinds: Mapping[str, FamilyKind] | None = None) -> Layout:
    """One layout holding every family of ``layouts`` (histogram bounds merged).

    With ``kinds`` (the catalogue's), a family stored with another kind than the catalogue now
    gives it is left out: its numbers do not mean what the figure would read.
    """
    if len(layouts) == 1 and kinds is None:
        return next(iter(layouts))
    families: dict[str, tuple[FamilyKind, set[float]]] = {}
    for layout in layouts:
        for slot in layout.slots:
            if kinds is not None and kinds.get(slot.family) is not slot.kind:
                continue
            kind, bounds = families.setdefault(slot.family, (slot.kind, set()))
            if kind is not slot.kind:
                continue  # the first kind seen wins; a kind changed mid-period reads as missing
            bounds.update(slot.bounds)
    return make_layout((name, kind, sorted(bounds)) for name, (kind, bounds) in families.items())


def _columns(source: Layout, target: Layout) -> tuple[list[int], list[int]]:
    """Positions in ``source`` and where they go in ``target`` (families and bounds both have)."""
    source_at: list[int] = []
    target_at: list[int] = []
    for slot in source.slots:
        into = target.by_family.get(slot.family)
        if into is None or into.kind is not slot.kind:
            continue
        if slot.kind is FamilyKind.HISTOGRAM:
            where = {bound: into.offset + i for i, bound in enumerate(into.bounds)}
            for i, bound in enumerate(slot.bounds):
                source_at.append(slot.offset + i)
                target_at.append(where[bound])
        else:
            source_at.extend(range(slot.offset, slot.offset + slot.width))
            target_at.extend(range(into.offset, into.offset + into.width))
    return source_at, target_at


def frame_of(
    layouts: Sequence[Layout], blobs: Sequence[bytes], kinds: Mapping[str, FamilyKind] | None = None
) -> Frame:
    """Stored days (row ``i`` is ``blobs[i]`` in ``layouts[i]``) as one frame.

    The usual case, every row in one layout the catalogue agrees with, is one ``frombuffer``.
    """
    if not blobs:
        return empty()
    first = layouts[0]
    if list(layouts).count(first) == len(layouts):  # one layout (C-level identity checks, no loop)
        distinct = {first.id: first}
    else:
        distinct = {layout.id: layout for layout in layouts}
    target = union(list(distinct.values()), kinds)
    if len(distinct) == 1:
        only = next(iter(distinct.values()))
        matrix = decode_many(only, blobs)
        if target.spec == only.spec:
            return Frame(target, matrix)
        source_at, target_at = _columns(only, target)
        result = np.full((len(blobs), target.width), np.nan, dtype=FLOAT)
        result[:, target_at] = matrix[:, source_at]
        return Frame(target, result)
    result = np.full((len(blobs), target.width), np.nan, dtype=FLOAT)
    by_layout: dict[int, list[int]] = {}
    for index, layout in enumerate(layouts):
        by_layout.setdefault(layout.id, []).append(index)
    for layout_id, rows in by_layout.items():
        layout = distinct[layout_id]
        source_at, target_at = _columns(layout, target)
        decoded = decode_many(layout, [blobs[i] for i in rows])
        result[np.ix_(rows, target_at)] = decoded[:, source_at]
    return Frame(target, result)


def frame_of_vectors(
    layouts: Sequence[Layout],
    vectors: bytes,
    starts: Ints,
    stops: Ints,
    kinds: Mapping[str, FamilyKind] | None = None,
) -> Frame:
    """Stored days lying back to back in ``vectors`` (row ``i`` from float64 ``starts[i]`` to
    ``stops[i]``, in ``layouts[i]``) as one frame, as ``frame_of`` makes it.

    The usual case, one layout the catalogue agrees with, is one ``frombuffer`` and, for one
    entity's days (one run of the vectors), a reshape: no bytes object per day (cutting a
    three-year series into 1,096 of them cost 0.2–0.7 ms).
    """
    if not len(starts):
        return empty()
    first = layouts[0]
    if list(layouts).count(first) == len(layouts) and union([first], kinds).spec == first.spec:
        width = first.width
        if (stops - starts != width).any():
            raise ValueError(f"stored days do not all have the {width} numbers of their layout")
        flat = np.frombuffer(vectors, dtype=FLOAT)
        if (starts[1:] == stops[:-1]).all():  # one entity's days: one run of the vectors, a view
            matrix: Matrix = flat[starts[0] : stops[-1]].reshape(len(starts), width)
        else:
            matrix = flat[starts[:, None] + np.arange(width, dtype=np.int64)]
        return Frame(first, matrix)
    size = FLOAT.itemsize
    blobs = [vectors[a * size : b * size] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]
    return frame_of(layouts, blobs, kinds)


def _positions(layout: Layout) -> tuple[list[int], list[int], list[int]]:
    """Positions that sum, that keep the highest, that keep the lowest."""
    summed: list[int] = []
    highest: list[int] = []
    lowest: list[int] = []
    for slot in layout.slots:
        if slot.kind is FamilyKind.GAUGE:
            summed.extend((slot.offset + GAUGE_TOTAL, slot.offset + GAUGE_SAMPLES))
            highest.append(slot.offset + GAUGE_PEAK)
            lowest.append(slot.offset + GAUGE_LOW)
        else:
            summed.extend(range(slot.offset, slot.offset + slot.width))
    return summed, highest, lowest


def reduce(frame: Frame, starts: Ints) -> Frame:
    """One row per group of consecutive rows; group ``g`` starts at row ``starts[g]``.

    Sums and counts add up, peaks keep the highest and lows the lowest; a number no row of the
    group has stays NaN (so "no data" never turns into zero).
    """
    matrix = frame.matrix
    if frame.rows == 0:
        return frame
    if len(starts) == frame.rows:
        return frame  # one row per group: nothing to combine
    summed, highest, lowest = _positions(frame.layout)
    result = np.empty((len(starts), frame.layout.width), dtype=FLOAT)
    missing = np.isnan(matrix)
    with np.errstate(invalid="ignore"):
        if not missing.any():
            result[:, summed] = _sums_in_order(matrix[:, summed], starts)
        else:
            part = matrix[:, summed]
            absent = missing[:, summed]
            sums = _sums_in_order(np.where(absent, 0.0, part), starts)
            seen = np.logical_or.reduceat(~absent, starts, axis=0)
            result[:, summed] = np.where(seen, sums, np.nan)
        if highest:
            result[:, highest] = np.fmax.reduceat(matrix[:, highest], starts, axis=0)
            result[:, lowest] = np.fmin.reduceat(matrix[:, lowest], starts, axis=0)
    return Frame(frame.layout, result)


def _sums_in_order(matrix: Matrix, starts: Ints) -> Matrix:
    """Each group's rows added one after the other, ``((r0 + r1) + r2) + …``: the order
    ``aggregate.Totals`` adds in and a month's sum grows in night after night, so a sum is the
    same bits however it was reached. (``np.add.reduceat`` adds a group of eight rows or more
    pairwise when the matrix has more than one column: other last bits.) One vectorised addition
    per row position, over every group that long."""
    lengths = np.diff(np.append(starts, len(matrix)))
    longest = int(lengths.max(initial=1))
    if len(starts) and (lengths == longest).all():  # groups of one length (weeks, services): views
        rows = matrix.reshape(len(starts), longest, matrix.shape[1])
        sums = rows[:, 0].copy()
        for position in range(1, longest):
            sums += rows[:, position]
        return sums
    order = np.argsort(-lengths, kind="stable")  # longest first: the groups still going are a prefix
    first = starts[order]
    going = np.searchsorted(-lengths[order], -np.arange(longest), side="left")  # groups longer than p
    ordered = matrix[first]
    for position in range(1, longest):
        live = int(going[position])
        ordered[:live] += matrix[first[:live] + position]
    sums = np.empty_like(ordered)
    sums[order] = ordered
    return sums


def group_starts(keys: npt.NDArray[np.int64]) -> Ints:
    """Where each run of equal consecutive ``keys`` starts."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    changes = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate(([0], changes)).astype(np.int64)


# --- figures ----------------------------------------------------------------------------------


def _nan(rows: int) -> Column:
    return np.full(rows, np.nan, dtype=FLOAT)


def statistic(
    frame: Frame, family: str, kind: FamilyKind, name: str, prepared: dict[str, Ranked] | None = None
) -> Column:
    """One statistic of one family for every row (NaN where it has none); ``prepared`` keeps the
    ranked buckets of histograms between their quantiles."""
    slot = frame.layout.by_family.get(family)
    if slot is None or slot.kind is not kind:
        return _nan(frame.rows)
    matrix = frame.matrix
    if kind is FamilyKind.COUNTER:
        return matrix[:, slot.offset].copy()
    if kind is FamilyKind.GAUGE:
        if name == "avg":
            samples = matrix[:, slot.offset + GAUGE_SAMPLES]
            with np.errstate(invalid="ignore", divide="ignore"):  # NaN: a day without the samples' sum
                return np.where(samples > 0, matrix[:, slot.offset + GAUGE_TOTAL] / samples, np.nan)
        # NaN where the day has none (a gauge whose figures use only its extremes keeps no count)
        return matrix[:, slot.offset + (GAUGE_PEAK if name == "peak" else GAUGE_LOW)].copy()
    q = stat_quantile(name)
    if q is None:
        return _nan(frame.rows)
    if prepared is None:
        return quantiles(q, slot, matrix)
    if family not in prepared:
        prepared[family] = ranked(slot, matrix)
    return quantiles(q, slot, matrix, prepared[family])


@dataclass(frozen=True)
class Ranked:
    """A histogram's rows made ready for quantiles: monotonic cumulative counts and totals."""

    slot: Slot
    buckets: Matrix
    bounds: Column
    whole: npt.NDArray[np.bool_]
    partial: npt.NDArray[np.bool_]
    counts: Matrix
    total: Column


def ranked(slot: Slot, matrix: Matrix) -> Ranked:
    buckets = matrix[:, slot.offset : slot.offset + slot.width]
    missing = np.isnan(buckets)
    whole: npt.NDArray[np.bool_] = np.asarray(~missing.any(axis=1))
    partial: npt.NDArray[np.bool_] = np.asarray(~whole & ~missing.all(axis=1))
    counts = np.maximum.accumulate(buckets[whole], axis=1)  # monotonic, as Prometheus makes them
    total = counts[:, -1] if counts.shape[1] else np.zeros(len(counts), dtype=FLOAT)
    return Ranked(slot, buckets, np.asarray(slot.bounds, dtype=FLOAT), whole, partial, counts, total)


def quantiles(q: float, slot: Slot, matrix: Matrix, prepared: Ranked | None = None) -> Column:
    """``histogram_quantile(q)`` of each row's buckets: ``histograms.quantile`` on whole columns."""
    r = prepared or ranked(slot, matrix)
    bounds, counts, total = r.bounds, r.counts, r.total
    result = _nan(len(r.buckets))
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return _incomplete(q, slot, r.buckets, result, np.ones(len(r.buckets), dtype=bool))
    if len(counts):
        rank = q * total
        index = np.minimum((counts < rank[:, None]).sum(axis=1), len(bounds) - 1)
        picked = np.arange(len(index))
        upper = bounds[index]
        count_upper = counts[picked, index]
        first = index == 0
        below = np.maximum(index - 1, 0)
        lower = np.where(first, 0.0, bounds[below])
        count_lower = np.where(first, 0.0, counts[picked, below])
        in_bucket = count_upper - count_lower
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = lower + (upper - lower) * ((rank - count_lower) / in_bucket)
        value = np.where(in_bucket <= 0, upper, inside)
        value = np.where(first & (upper <= 0), upper, value)
        value = np.where(index == len(bounds) - 1, bounds[-2], value)
        result[r.whole] = np.where(total > 0, value, np.nan)  # nothing to rank (NaN totals compare False)
    return _incomplete(q, slot, r.buckets, result, r.partial)


def _incomplete(q: float, slot: Slot, buckets: Matrix, result: Column, rows: npt.NDArray[np.bool_]) -> Column:
    """Rows lacking some bounds: the scalar quantile over the bounds they have, as before."""
    for row in np.flatnonzero(rows):
        have = {b: float(c) for b, c in zip(slot.bounds, buckets[row], strict=True) if not math.isnan(c)}
        found = scalar_quantile(q, have) if have else None
        result[row] = math.nan if found is None else found
    return result


def evaluate(expr: str, scope: Mapping[str, Column], rows: int) -> Column:
    """A derived expression on whole columns; NaN where an operand is missing or a divisor is 0."""
    with np.errstate(all="ignore"):
        return np.asarray(_evaluate(parsed_expression(expr), scope, rows), dtype=FLOAT)


def _evaluate(node: ast.AST, scope: Mapping[str, Column], rows: int) -> Column:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return np.full(rows, float(node.value), dtype=FLOAT)
    if isinstance(node, ast.Name):
        found = scope.get(node.id)
        return found if found is not None else _nan(rows)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, scope, rows)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, scope, rows), _evaluate(node.right, scope, rows)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return np.divide(left, right, out=_nan(rows), where=right != 0)
    raise ValueError(f"unsupported expression element {type(node).__name__}")


def figures(
    catalog: Catalog,
    entity_kind: str,
    frame: Frame,
    days: Ints,
    seconds: Ints,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Column]:
    """Every figure of ``entity_kind`` (or those of ``only``) for every row, in catalogue order.

    ``days`` and ``seconds`` are each row's number of stored days and their length (what the
    expressions' ``days`` and ``seconds`` stand for).
    """
    rows = frame.rows
    with np.errstate(invalid="ignore"):
        scope: dict[str, Column] = {
            "seconds": np.where(seconds > 0, seconds.astype(FLOAT), np.nan),
            "days": np.where(days > 0, days.astype(FLOAT), np.nan),
        }
    for definition in catalog.stored_families(entity_kind):
        if definition.kind is FamilyKind.COUNTER:
            scope[definition.name] = statistic(frame, definition.name, FamilyKind.COUNTER, "total")
    values: dict[str, Column] = {}
    prepared: dict[str, Ranked] = {}
    for figure in catalog.figures.get(entity_kind, []):
        if only is not None and figure.name not in only:
            continue
        if figure.expr is not None:
            value = evaluate(figure.expr, scope, rows)
        else:
            assert figure.family is not None
            assert figure.statistic is not None
            family = catalog.family(entity_kind, figure.family)
            assert family is not None
            value = statistic(frame, figure.family, family.kind, figure.statistic, prepared)
        values[figure.name] = value
        scope[figure.name] = value
    return values


def totals(frame: Frame, row: int, days: int, seconds: int) -> Totals:
    """One row as ``aggregate.Totals`` (what the SLO arithmetic and the scalar figures read)."""
    found = Totals(days=days, seconds=seconds)
    values = frame.matrix[row]
    for slot in frame.layout.slots:
        part = values[slot.offset : slot.offset + slot.width].tolist()
        if slot.kind is FamilyKind.COUNTER:
            if not math.isnan(part[0]):
                found.counters[slot.family] = part[0]
        elif slot.kind is FamilyKind.GAUGE:
            if not all(math.isnan(v) for v in part):
                total, samples, peak, low = (None if math.isnan(v) else v for v in part)
                found.gauges[slot.family] = GaugeTotals(total or 0.0, int(samples or 0), peak, low)
        else:
            buckets = {b: c for b, c in zip(slot.bounds, part, strict=True) if not math.isnan(c)}
            if buckets:
                found.histograms[slot.family] = buckets
    return found

"""One figure's daily values of a month, stored already computed: what a cold daily series reads.

Why: a cold three-year daily series of one figure (Grafana's ``/grafana/query``, 1,096 points)
read the entity's 37 month rows of every family's numbers (``rollup_day_packs``, 259 KB) and
computed the figure from them. On PostgreSQL that read costs per row, not per byte: each month
row's numbers are a TOASTed value of their own (an index probe of the TOAST table each), and
reading the report's smaller stored rows (89 KB, ``rendered.py``) instead measured no better.
Over HTTP the cold series stayed at 3.19× a bare FastAPI app serving the same bytes (issue 13's
goal: ≤ 3×). What a day's figure is depends only on that day's stored numbers, its length and
the figures' definitions, exactly as for the rendered report rows, so the same writers
(``repository._write_packs``: every writer of a month's days, in the same transaction, under the
month's lock) also keep each figure's values of the month in a row of its own
(``models.RollupFigureMonth``: about 260 bytes, stored in the table's row, never TOASTed), and a
cold series reads 37 of them, one primary-key range, with nothing computed.

The span, measured (PostgreSQL, 1,000 entities × 10 figures, prepared statements, another
entity each call, load ~4): 37 month rows of one figure 0.30 ms, four year rows 0.11 ms, the
month rows of every family's numbers (TOASTed) 1.1–1.8 ms. Year rows were built and measured
first: over HTTP the cold series fell to 2.44× bare on PostgreSQL (median of eight runs; main
3.53×), but a night's write of 1,000 services rewrote 10,000 rows of 3 KB (30 MB) and cost
0.85–1.1 s on SQLite and 1.2–1.6 s on PostgreSQL against main's 0.4–0.9 and 0.4–0.55 s, COPY
included, and they needed a lock per year and a way to mark the months they did not hold.
Month rows follow the month row's own write and lock and cost a night about 0.15 s more on
either database; over HTTP the cold series measured 2.52× bare on PostgreSQL in the median of
twelve runs (main 3.44×) and 2.38× on SQLite (main 2.70×): ``docs/performance.md`` has the runs.
The store: 91.6 B per family value instead of 71.3 (1,000 services × 1,096 days, 0.561 GiB).

Exactness: the values are the ones ``service.renderer`` computes for the month's report rows
(``frames.figures`` over the month's days, which works row by row), stored as float64 bit for
bit; a month's row is used only where the live series would compute its days exactly so: written
with the same figure definitions and timezone (``render_key``, the rendered rows' key), and one
layout for every day of the requested range (the live series merges differing layouts into one
frame). Every month row of days in the range must have its figure row: the same statement lists
the month rows from their primary key's index (``repository.figure_months``), and a month
without one (written without a renderer, of two layouts, before migration 0019) sends the
request to the live path.

Layout of a row's ``data`` (little-endian): ``layout id`` i8, ``day mask`` u4 (bit ``d - 1``
for day ``d``), then one float64 per day of the mask, in day order. This module never reads the
database and never computes a figure.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from app.rollups.frames import Column, Ints

_HEAD = struct.Struct("<qI")
_VALUES = np.dtype("<f8")
_BITS = np.arange(31, dtype=np.int64)


def encode(layout_id: int, mask: int, values: Column) -> bytes:
    """A month's values of one figure (one per day of ``mask``, in day order) as stored."""
    if len(values) != mask.bit_count():
        raise ValueError(f"{len(values)} values for {mask.bit_count()} days")
    return _HEAD.pack(layout_id, mask) + np.ascontiguousarray(values, dtype=_VALUES).tobytes()


def daily_values(
    rows: Sequence[tuple[int, bytes]], held_months: Sequence[int], first: int, last: int
) -> tuple[Ints, Column] | None:
    """The stored days in ``[first, last]`` (day numbers) and the figure's value on each, from
    its month rows (``rows``: (month, data), all of one key, in month order) checked against the
    entity's month rows of days in the range (``held_months``): None when one of those has no
    figure row, or the days in range have more than one layout (the caller computes them)."""
    if [month for month, _ in rows] != sorted(set(held_months)):
        return None  # a month row of days without its figure row (or the other way round)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    heads = [_HEAD.unpack_from(data) for _, data in rows]
    masks = np.asarray([mask for _, mask in heads], dtype=np.int64)
    held = (masks[:, None] >> _BITS) & 1 != 0
    which, day = np.nonzero(held)
    numbers = np.asarray([month for month, _ in rows], dtype=np.int64)[which] + day
    values = np.frombuffer(b"".join(data[_HEAD.size :] for _, data in rows), dtype=_VALUES)
    if len(values) != len(numbers):
        raise ValueError("a figure month's values do not match its days")
    keep = (numbers >= first) & (numbers <= last)
    layouts = np.asarray([layout for layout, _ in heads], dtype=np.int64)[which[keep]]
    if len(layouts) and bool(np.any(layouts != layouts[0])):
        return None
    return numbers[keep], values[keep]

"""A year of one figure's daily values, stored already computed: what a cold daily series reads.

Why: a cold three-year daily series of one figure (Grafana's ``/grafana/query``, 1,096 points)
read the entity's 37 month rows of every family's numbers (``rollup_day_packs``, 259 KB) and
computed the figure from them. On PostgreSQL that read costs per row, not per byte: each month
row's numbers are a TOASTed value of their own (an index probe of the TOAST table each), and
reading the report's smaller stored rows (89 KB, ``rendered.py``) instead measured no better.
Over HTTP the cold series stayed at 3.19× a bare FastAPI app serving the same bytes (issue 13's
goal: ≤ 3×). What a day's figure is depends only on that day's stored numbers, its length and
the figures' definitions, exactly as for the rendered report rows, so the same writers
(``repository._write_packs``: every writer of a month's days, in the same transaction, under the
year's lock) also keep, per entity, figure and calendar year, the daily values of that figure
in one row (``models.RollupFigureYear``): three years of one figure are four rows of 3 KB, one
primary-key range, stored inline (PostgreSQL ``STORAGE PLAIN``, migration 0018).

Exactness: the values are the ones ``service.renderer`` computes for the month's report rows
(``frames.figures`` over the month's days, which works row by row), stored as float64 bit for
bit; a year row is used only where the live series would compute its days exactly so: written
with the same figure definitions and timezone (``render_key``, the rendered rows' key), and one
layout for every day of the requested range (the live series merges differing layouts into one
frame). Whether a month's days are in the row is checked against the month rows themselves,
which the same statement lists from their primary-key index (``repository.figure_years``): a
month row whose days the year row does not hold sends the request to the live path.

Layout of a row's ``data`` (little-endian): 12 month heads of ``layout id`` i8 and ``day mask``
u4 (bit ``d - 1`` for day ``d``; layout ``UNAVAILABLE`` when the month's values are not in the
row: not written with this key, or its days have more than one layout; layout 0 and mask 0 when
the month has no days), then 366 float64 values, one per day of the year (NaN where no day).
This module never reads the database and never computes a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np

from app.rollups.frames import Column, Ints
from app.rollups.layouts import day_number, day_of

MONTHS = 12
DAYS = 366
UNAVAILABLE = -1
_HEAD = np.dtype([("layout", "<i8"), ("mask", "<u4")])
HEAD_BYTES = MONTHS * _HEAD.itemsize
SIZE = HEAD_BYTES + DAYS * 8
_VALUES = np.dtype("<f8")
_BITS = np.arange(31, dtype=np.int64)


def year_of(month: int) -> int:
    """The calendar year of a month row (``month``: the day number of its first day)."""
    return day_of(month).year


def year_start(year: int) -> int:
    return day_number(date(year, 1, 1))


_MONTH_OFFSETS: dict[int, Ints] = {}


def _offsets(year: int) -> Ints:
    """Where each month's first day lies among the year's values."""
    found = _MONTH_OFFSETS.get(year)
    if found is None:
        start = year_start(year)
        found = np.asarray([day_number(date(year, m, 1)) - start for m in range(1, 13)], dtype=np.int64)
        _MONTH_OFFSETS[year] = found
    return found


def blank() -> bytearray:
    """A year row holding no month (every month ``UNAVAILABLE``)."""
    data = bytearray(SIZE)
    head = np.frombuffer(data, dtype=_HEAD, count=MONTHS)
    head["layout"] = UNAVAILABLE
    np.frombuffer(data, dtype=_VALUES, count=DAYS, offset=HEAD_BYTES)[:] = np.nan
    return data


def with_month(data: bytes | bytearray, month: int, layout: int, mask: int, values: Column | None) -> bytes:
    """``data`` with the month starting at day number ``month`` replaced: its days ``mask`` and
    their ``values`` (in day order), written with ``layout``; ``UNAVAILABLE`` (values None) for a
    month whose days the row cannot hold, layout 0 and mask 0 for a month without days."""
    if len(data) != SIZE:
        raise ValueError(f"a year row is {SIZE} bytes, not {len(data)}")
    changed = bytearray(data)
    first = day_of(month)
    index = first.month - 1
    head = np.frombuffer(changed, dtype=_HEAD, count=MONTHS)
    head[index] = (layout, mask)
    days = np.frombuffer(changed, dtype=_VALUES, count=DAYS, offset=HEAD_BYTES)
    offset = int(_offsets(first.year)[index])
    length = int(_offsets(first.year)[index + 1] - offset) if index < 11 else DAYS - offset
    days[offset : offset + min(length, 31)] = np.nan
    if values is not None and mask:
        held = np.flatnonzero((mask >> _BITS) & 1)
        if len(held) != len(values):
            raise ValueError(f"{len(values)} values for {len(held)} days")
        days[offset + held] = values
    return bytes(changed)


Edit = tuple[int, int, int, int, "Column | None"]
"""One month of one row replaced (:func:`edited`): (row index, month, layout, day mask, values)."""


def edited(rows: Sequence[bytes | bytearray], edits: Sequence[Edit]) -> list[bytes]:
    """:func:`with_month` over many rows at once: ``rows`` with each edit applied, in order (a
    night's write edits one month of each of 1,000 services' ten figures: 10,000 rows, whose
    edits one at a time cost 0.36 s of CPU, and about 20 ms this way)."""
    if not rows:
        return []
    if any(len(row) != SIZE for row in rows):
        raise ValueError(f"a year row is {SIZE} bytes")
    matrix = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), SIZE).copy()
    heads = matrix[:, :HEAD_BYTES].view(_HEAD)
    days = matrix[:, HEAD_BYTES:].view(_VALUES)
    by_month: dict[int, list[Edit]] = {}
    for edit in edits:
        by_month.setdefault(edit[1], []).append(edit)
    for month, group in by_month.items():  # in order: a later edit of a month wins
        first = day_of(month)
        index = first.month - 1
        offsets = _offsets(first.year)
        start = int(offsets[index])
        length = int(offsets[index + 1] - start) if index < 11 else DAYS - start
        targets = np.asarray([row for row, *_ in group], dtype=np.int64)
        heads["layout"][targets, index] = [layout for _, _, layout, _, _ in group]
        heads["mask"][targets, index] = [mask for _, _, _, mask, _ in group]
        days[targets, start : start + length] = np.nan
        held: dict[int, Ints] = {}
        places: list[Ints] = []
        spots: list[Ints] = []
        found: list[Column] = []
        for row, _, _, mask, values in group:
            if values is None or not mask:
                continue
            bits = held.get(mask)
            if bits is None:
                bits = held[mask] = np.flatnonzero((mask >> _BITS) & 1)
            if len(bits) != len(values):
                raise ValueError(f"{len(values)} values for {len(bits)} days")
            places.append(np.full(len(bits), row, dtype=np.int64))
            spots.append(start + bits)
            found.append(values)
        if found:
            days[np.concatenate(places), np.concatenate(spots)] = np.concatenate(found)
    return [row.tobytes() for row in matrix]


def daily_values(
    rows: Mapping[int, bytes], held_months: Sequence[int], first: int, last: int
) -> tuple[Ints, Column] | None:
    """The stored days in ``[first, last]`` (day numbers) and the figure's value on each, from
    the year rows (``rows``: year → data, all of one key) and the entity's month rows in that
    range (``held_months``, their day numbers): None when a month row's days are not all in a
    year row, or the days in range have more than one layout (the caller computes them)."""
    numbers: list[Ints] = []
    values: list[Column] = []
    layout: int | None = None
    by_year: dict[int, list[int]] = {}
    for month in held_months:
        at = day_of(month)
        by_year.setdefault(at.year, []).append(at.month - 1)
    for year in sorted(by_year):
        data = rows.get(year)
        if data is None or len(data) != SIZE:
            return None
        head = np.frombuffer(data, dtype=_HEAD, count=MONTHS)
        months = np.asarray(sorted(by_year[year]), dtype=np.int64)
        layouts = head["layout"][months]
        masks = head["mask"][months].astype(np.int64)
        if bool(np.any(layouts == UNAVAILABLE)) or bool(np.any(masks == 0)):
            return None  # a month row whose days this row does not hold
        held = (masks[:, None] >> _BITS) & 1 != 0
        which, day = np.nonzero(held)
        offsets = _offsets(year)[months][which] + day
        start = year_start(year)
        found = start + offsets
        keep = (found >= first) & (found <= last)
        if not bool(np.any(keep)):
            continue
        used = np.unique(layouts[which[keep]])
        if len(used) > 1 or (layout is not None and int(used[0]) != layout):
            return None
        layout = int(used[0])
        days = np.frombuffer(data, dtype=_VALUES, count=DAYS, offset=HEAD_BYTES)
        numbers.append(found[keep])
        values.append(days[offsets[keep]])
    if not numbers:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return np.concatenate(numbers), np.concatenate(values)

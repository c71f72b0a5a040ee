"""How one entity's day is stored: every family's additive figures in one vector of raw float64s.

Why: a three-year report of one entity reads 1,096 days. Stored as one row per family and day
(with histogram buckets as JSON text) that was 6,576 rows, 268 bytes each, and Python work per
row and per bucket; stored as one little-endian float64 vector per entity and day, it is 1,096
vectors that NumPy reads as one matrix without a Python loop
(``frames.py``), in about 40 bytes per former row; the vectors of one entity's month are kept in
one row (``pack_month`` below), so that the three years are 37 rows.

What the vector's positions mean is its *layout*: the families present that day, in name order,
each with its kind and, for histograms, its ``le`` bounds. A counter takes one number (the
day's increase), a gauge four (the sum of its samples, their count, the highest and the lowest),
a histogram one per bound (the day's increase of that cumulative bucket, ``+Inf`` last). A
missing number (a gauge without a lowest sample) is stored as NaN, which a rollup never stores
otherwise (``compute.py`` skips NaN samples). Layouts are few (one per entity kind and
bucket scheme, one more when a family is absent that day) and immutable; their id is a hash of
their text, so the same layout has the same id in every database and a process may cache it.

Exactness: float64 in, float64 out, bit for bit; sums over weeks, months and years stay exact
re-aggregations of these numbers (``frames.py``). Any entity kind fits, built-in or user-defined
(incidents per service or schedule can be rolled up the same way): nothing here knows a family's
meaning, only its kind.

This module never touches the database and never decides what a figure means.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from app.rollups.config import FamilyKind

FLOAT = np.dtype("<f8")
"""Stored numbers: little-endian IEEE 754 double, on every platform."""
GAUGE_WIDTH = 4
GAUGE_FIELDS = ("total", "samples", "peak", "low")
EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH.toordinal()

Matrix = npt.NDArray[np.float64]


def day_number(day: date) -> int:
    """Days since 1970-01-01: what the ``day`` column stores (compact on SQLite, sortable)."""
    return day.toordinal() - _EPOCH_ORDINAL


def day_of(number: int) -> date:
    return date.fromordinal(number + _EPOCH_ORDINAL)


@dataclass(frozen=True)
class Slot:
    """Where one family's numbers sit in a stored vector."""

    family: str
    kind: FamilyKind
    offset: int
    bounds: tuple[float, ...] = ()

    @property
    def width(self) -> int:
        if self.kind is FamilyKind.COUNTER:
            return 1
        if self.kind is FamilyKind.GAUGE:
            return GAUGE_WIDTH
        return len(self.bounds)


@dataclass(frozen=True)
class Layout:
    """The meaning of each position of a stored vector; ``spec`` is its canonical JSON text."""

    spec: str
    slots: tuple[Slot, ...]

    @cached_property
    def id(self) -> int:
        return layout_id(self.spec)

    @property
    def width(self) -> int:
        return sum(slot.width for slot in self.slots)

    @cached_property
    def by_family(self) -> dict[str, Slot]:
        return {slot.family: slot for slot in self.slots}


def layout_id(spec: str) -> int:
    """A positive 63-bit integer from the spec's SHA-256: the same layout, the same id, everywhere."""
    return int.from_bytes(hashlib.sha256(spec.encode()).digest()[:8], "big") >> 1


def _bound_text(bound: float) -> float | str:
    return "+Inf" if math.isinf(bound) and bound > 0 else bound


def _bound_value(raw: float | str) -> float:
    return math.inf if raw == "+Inf" else float(raw)


def make_layout(families: Iterable[tuple[str, FamilyKind, Sequence[float]]]) -> Layout:
    """The layout of these families (name, kind, bounds), put in canonical order."""
    entries: list[list[object]] = []
    slots: list[Slot] = []
    offset = 0
    for name, kind, bounds in sorted(families, key=lambda item: item[0]):
        ordered = tuple(sorted(map(float, bounds))) if kind is FamilyKind.HISTOGRAM else ()
        slot = Slot(name, kind, offset, ordered)
        slots.append(slot)
        offset += slot.width
        entry: list[object] = [name, kind.value]
        if kind is FamilyKind.HISTOGRAM:
            entry.append([_bound_text(b) for b in ordered])
        entries.append(entry)
    return Layout(json.dumps(entries, separators=(",", ":")), tuple(slots))


@lru_cache(maxsize=1024)
def _layout_of(families: tuple[tuple[str, FamilyKind, tuple[float, ...]], ...]) -> Layout:
    """``make_layout`` of a day's families: the same few shapes every day, built once each."""
    return make_layout(families)


_PARSED: dict[str, Layout] = {}


def parse_layout(spec: str) -> Layout:
    """The layout a stored spec describes (cached: layouts never change)."""
    found = _PARSED.get(spec)
    if found is None:
        families = [
            (
                str(entry[0]),
                FamilyKind(entry[1]),
                [_bound_value(b) for b in entry[2]] if len(entry) > 2 else [],
            )
            for entry in json.loads(spec)
        ]
        found = make_layout(families)
        if found.spec != spec:
            raise ValueError(f"layout {spec!r} is not in canonical form")
        _PARSED[spec] = found
    return found


@dataclass(frozen=True)
class EncodedDay:
    """One entity's day, ready to store."""

    entity_kind: str
    entity: str
    layout: Layout
    data: bytes


class FamilyNumbers(Protocol):
    """What ``compute.FamilyValue`` carries, read structurally (this module imports no computing)."""

    @property
    def entity_kind(self) -> str: ...
    @property
    def entity(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def total(self) -> float | None: ...
    @property
    def samples(self) -> int | None: ...
    @property
    def peak(self) -> float | None: ...
    @property
    def low(self) -> float | None: ...
    @property
    def buckets(self) -> Mapping[float, float] | None: ...


def kind_of(value: FamilyNumbers) -> FamilyKind:
    """Histograms carry buckets, gauges their samples (or peak/low); counters only a total."""
    if value.buckets is not None:
        return FamilyKind.HISTOGRAM
    if value.samples is not None or value.peak is not None or value.low is not None:
        return FamilyKind.GAUGE
    return FamilyKind.COUNTER


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def encode_day(entity_kind: str, entity: str, values: Sequence[FamilyNumbers]) -> EncodedDay:
    """One entity's families of one day as a layout and its vector; a family given twice is refused."""
    by_family: dict[str, FamilyNumbers] = {}
    for value in values:
        if value.family in by_family:
            raise ValueError(f"{entity_kind} {entity!r}: family {value.family!r} given twice for one day")
        by_family[value.family] = value
    layout = _layout_of(
        tuple(sorted((name, kind_of(value), tuple(value.buckets or ())) for name, value in by_family.items()))
    )
    numbers: list[float] = []
    for slot in layout.slots:
        value = by_family[slot.family]
        if slot.kind is FamilyKind.COUNTER:
            numbers.append(_number(value.total))
        elif slot.kind is FamilyKind.GAUGE:
            numbers += (_number(value.total), _number(value.samples), _number(value.peak), _number(value.low))
        else:
            numbers += map((value.buckets or {}).__getitem__, slot.bounds)
    doubles = array("d", numbers)
    if sys.byteorder != "little":
        doubles.byteswap()
    return EncodedDay(entity_kind, entity, layout, doubles.tobytes())


def decode(layout: Layout, data: bytes) -> Matrix:
    """One stored vector as a 1-D array (a view on ``data``: no copy)."""
    if len(data) != FLOAT.itemsize * layout.width:
        raise ValueError(f"a stored day has {len(data)} bytes; its layout has {layout.width} numbers")
    array: Matrix = np.frombuffer(data, dtype=FLOAT)
    return array


def decode_many(layout: Layout, blobs: Sequence[bytes]) -> Matrix:
    """Stored vectors of one layout as the rows of a matrix: one join, one C-level conversion."""
    joined = b"".join(blobs)
    if len(joined) != FLOAT.itemsize * layout.width * len(blobs):
        raise ValueError(f"stored days do not all have the {layout.width} numbers of their layout")
    matrix: Matrix = np.frombuffer(joined, dtype=FLOAT)
    return matrix.reshape(len(blobs), layout.width)


# --- a month of days in one row -----------------------------------------------------------------
#
# ``rollup_day_packs`` (``models.RollupDayPack``) keeps one row per entity and calendar month:
# ``day_mask`` has bit ``d - 1`` set for each stored day ``d`` of the month, and ``data`` holds
# those ``n`` days in day order, packed as
#
#     n × int64 layout id | n × uint32 end of the day's vector (in numbers) | the n vectors
#
# all little-endian, the vectors exactly the bytes ``encode_day`` made (float64: every bit
# kept). The header is 12 bytes a day (a day row spent about as much on its key and layout
# id); a day's vector is found without its layout, so the packing reads back on its own.

PACK_ID = np.dtype("<i8")
PACK_END = np.dtype("<u4")
PACK_HEADER = PACK_ID.itemsize + PACK_END.itemsize
"""Bytes of header per packed day."""


def pack_month(days: Mapping[int, tuple[int, bytes]]) -> tuple[int, bytes]:
    """(day mask, packed data) of a month's days, ``{day of month: (layout id, vector)}``."""
    order = sorted(days)
    if order and (order[0] < 1 or order[-1] > 31):
        raise ValueError(f"days of a month are 1–31, not {order}")
    vectors = [days[d][1] for d in order]
    lengths = [len(vector) for vector in vectors]
    if any(length % FLOAT.itemsize for length in lengths):
        raise ValueError("a day's vector is not a whole number of float64s")
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64) // FLOAT.itemsize, dtype=np.int64)
    header = (
        np.asarray([days[d][0] for d in order], dtype=PACK_ID).tobytes() + ends.astype(PACK_END).tobytes()
    )
    return sum(1 << (d - 1) for d in order), header + b"".join(vectors)


_ONE_DAY = struct.Struct("<qI")  # PACK_ID then PACK_END: the header of a month holding one day


def pack_day(layout_id: int, vector: bytes) -> bytes:
    """``pack_month({d: (layout_id, vector)})[1]`` for any ``d``, byte for byte, without NumPy:
    the rows of one day each that a night's store writes, a thousand at a time."""
    if len(vector) % FLOAT.itemsize:
        raise ValueError("a day's vector is not a whole number of float64s")
    return _ONE_DAY.pack(layout_id, len(vector) // FLOAT.itemsize) + vector


def unpack_month(mask: int, data: bytes) -> dict[int, tuple[int, bytes]]:
    """The days of one packed month, ``{day of month: (layout id, vector)}``: bit for bit."""
    # one day (a night's row of its own: ``pack_day``): read in a tenth of the time
    if mask and not mask & (mask - 1):
        if len(data) < _ONE_DAY.size:
            raise ValueError(f"a packed month of 1 day has {len(data)} bytes")
        layout_id, end = _ONE_DAY.unpack_from(data)
        if len(data) != _ONE_DAY.size + end * FLOAT.itemsize:
            raise ValueError(f"a packed month of 1 day has {len(data)} bytes")
        return {mask.bit_length(): (layout_id, data[_ONE_DAY.size :])}
    numbers = [d + 1 for d in range(31) if mask >> d & 1]
    count = len(numbers)
    ids = np.frombuffer(data, dtype=PACK_ID, count=count).tolist()
    ends = np.frombuffer(data, dtype=PACK_END, count=count, offset=count * PACK_ID.itemsize).tolist()
    base = count * PACK_HEADER
    if len(data) != base + (ends[-1] if ends else 0) * FLOAT.itemsize:
        raise ValueError(f"a packed month of {count} days has {len(data)} bytes")
    found: dict[int, tuple[int, bytes]] = {}
    start = base
    for number, layout, end in zip(numbers, ids, ends, strict=True):
        stop = base + end * FLOAT.itemsize
        found[number] = (layout, data[start:stop])
        start = stop
    return found

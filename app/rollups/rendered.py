"""A month's days of the daily report, stored already written as JSON beside the month's numbers.

Why: a cold three-year daily report of one entity (1,096 rows of a dozen figures, 415 KB of
JSON) cost about 4.6 ms in its route: 1.4 ms reading and unpacking the days, 0.9 ms computing
the figures (NumPy), 1.8 ms writing the JSON (orjson, column by column) and 0.5 ms reading the
partial days; against a bare FastAPI app serving the same bytes from memory (2.2–2.9 ms over
HTTP) that left it at 3.1–3.6× (issue 13's goal: ≤ 3×). What a daily row says depends only on
that day's stored numbers, its length (DST) and the figures' definitions, so the month's rows
are written with the numbers (``repository._write_packs``, in the same transaction and under the
same lock) or, after a rollup's days, right after them (``service.render_stale``; until then the
month is empty of rows and answered live), and a cold daily report is one range
read of 37 such fragments, inflated and joined: no figure computed and no number written per
request. Months cut by the requested range are cut at their days' ends (kept in the header).

Exactness: the fragment is written by the very code that writes the live answer
(``service._render_months`` calls ``frames.figures`` and ``answers.json_object_rows``), and a
month's fragment is used only where the live answer would compute its days exactly as they
were computed when it was written: the same figure definitions and timezone (``render_key``,
kept beside the fragment: another configuration reads its report live) and one layout for every
day of the requested range (the live answer merges differing layouts, e.g. two bucket schemes,
into one frame, which can change how a day's percentile is computed: such ranges are answered
live). A month without a fragment, or with another key, answers the whole request live. Tests
compare the two paths byte for byte (``tests/rollups/test_rendered.py``).

Storage: zstd level 1 (the ``zstandard`` package): the JSON of a day is 379 bytes, compressed
75 (compared: zlib 96 bytes and 0.9 ms to inflate three years; zstd 0.23 ms; lz4 149 bytes,
0.06 ms; uncompressed, the store would pass its ≤ 100 B goal at about 113 B per family value).
Measured 2026-12-07 on 1,000 services × 1,096 days (SQLite file): 71.3 B per family value
instead of 50.7, 0.436 GiB instead of 0.311. Writers pay: storing a day of 1,000 services into a
month of 27 days, 233–291 ms instead of 117–140 on SQLite, 389–428 instead of 255–278 on
PostgreSQL (load 1.6–2.4): the month's rows are written whole each time.
Readers gain: a cold three-year report in-process 1.36 ms instead of 3.90 (SQLite, the same
bytes); over HTTP 1.99× a bare app's time on SQLite and 2.24× on PostgreSQL in the median of
sixteen runs, against 3.15× and 3.66× before (README "Performance").

Layout of a fragment (little-endian): ``version`` u8, ``layout id`` i8, ``n`` u4 (days), then
``n`` × u4 end of each day's JSON object in the inflated text (objects joined by ``,``), then
one zstd frame of the text. This module never reads the database and never computes a figure.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import zstandard

VERSION = 1
_HEAD = struct.Struct("<BqI")
_END = np.dtype("<u4")
LEVEL = 1

_COMPRESSOR = zstandard.ZstdCompressor(level=LEVEL)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def render_key(description: Any) -> int:
    """A positive 63-bit integer naming what a fragment's numbers depend on besides the stored
    days (``description``: figure definitions, timezone, this format's version), as ``repr``."""
    digest = hashlib.sha256(repr((VERSION, description)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def encode(layout_id: int, objects: Sequence[bytes]) -> bytes:
    """A month's days' JSON objects (in day order, one per stored day) as a stored fragment."""
    text = b",".join(objects)
    ends = np.cumsum(np.asarray([len(o) + 1 for o in objects], dtype=np.int64)) - 1
    return (
        _HEAD.pack(VERSION, layout_id, len(objects))
        + ends.astype(_END).tobytes()
        + _COMPRESSOR.compress(text)
    )


def layout_of(fragment: bytes) -> int:
    version, layout_id, _ = _HEAD.unpack_from(fragment)
    return int(layout_id) if version == VERSION else -1


def objects_text(fragment: bytes, keep_from: int, keep_to: int) -> bytes:
    """The month's days ``keep_from``–``keep_to`` (indexes among its stored days, inclusive) as
    their JSON objects joined by ``,``; empty when none."""
    _, _, count = _HEAD.unpack_from(fragment)
    keep_to = min(keep_to, count - 1)
    if keep_from > keep_to:
        return b""
    base = _HEAD.size + count * _END.itemsize
    text: bytes = _DECOMPRESSOR.decompress(fragment[base:])
    if keep_from == 0 and keep_to == count - 1:
        return text
    ends = np.frombuffer(fragment, dtype=_END, count=count, offset=_HEAD.size)
    start = 0 if keep_from == 0 else int(ends[keep_from - 1]) + 1
    return text[start : int(ends[keep_to])]

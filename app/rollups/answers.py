"""Report answers as bytes: JSON written by orjson, CSV, and reports of many entities streamed.

Why: a three-year daily report is 1,096 rows of a dozen figures (about 400 KB of JSON).
``json.dumps`` and a dict per figure per row cost more than computing the figures
(``frames.py``); orjson writes the same JSON from the rows' columns in about a millisecond, and
writes NaN and infinities, which mean "no figure", as ``null``. A report of every entity over
years is streamed: its rows leave as each few dozen entities are summed, so neither the server
nor the client holds the whole report before the first byte.

This module never reads the database and never computes a figure.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the service writes stored report rows with this module (``rendered.py``)
    from app.rollups.service import Rows

JSON = "application/json"
CSV = "text/csv; charset=utf-8"


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(body)


PARTIAL_DAYS = "partial_days"
"""The CSV column that counts a row's partial days, always the last one (JSON names them once, at
the top): columns added later go before it, so that readers going by position keep working."""


def series_keys(rows: Rows) -> list[str]:
    """The CSV columns of a series: ``date``, ``period``, ``days``, the figures, ``partial_days``."""
    return ["date", "period", "days", *rows.figures, PARTIAL_DAYS]


def series_rows(rows: Rows, partial: Mapping[str, int]) -> list[dict[str, Any]]:
    """``[{"date", "period", "days", figure…, "partial_days"}]``: one dict per period (for CSV).
    ``partial``: how many partial days each period holds, by its first day (``days.per_period``)."""
    keys = series_keys(rows)
    columns = _series_columns(rows)
    counts = [partial.get(start, 0) for start in columns[0]]
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, counts, strict=True)]


def _series_columns(rows: Rows) -> list[list[Any]]:
    return [rows.start_dates, rows.names, rows.days, *(column.tolist() for column in rows.figures.values())]


def entity_rows(key: str, rows: Rows) -> list[dict[str, Any]]:
    """``[{key: entity, "days", figure…}]``, one per entity."""
    keys = (key, "days", *rows.figures)
    columns = (rows.names, rows.days, *(column.tolist() for column in rows.figures.values()))
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def json_objects(keys: Sequence[str], columns: Sequence[list[Any]]) -> bytes:
    """``[{keys[0]: columns[0][i], …}, …]`` as JSON, written column by column.

    Each column is written by orjson in one call (numbers, strings, NaN as null) and cut at its
    commas (no number, date or period label holds one; a column of other text that does is
    written row by row instead); the pieces are then interleaved by list slicing and joined
    once. About twice as fast as a dict per row through orjson, with the same bytes.
    """
    rows = len(columns[0]) if columns else 0
    if not rows:
        return b"[]"
    pieces = _pieces(keys, columns, rows)
    if pieces is None:
        return orjson.dumps([dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)])
    pieces[-1] = b"}"
    return b"[" + b"".join(pieces) + b"]"


def json_object_rows(keys: Sequence[str], columns: Sequence[list[Any]]) -> list[bytes]:
    """The objects of :func:`json_objects`, one bytes per row: ``b"[" + b",".join(them) + b"]"``
    is its answer, byte for byte (what ``rendered.py`` stores)."""
    rows = len(columns[0]) if columns else 0
    if not rows:
        return []
    pieces = _pieces(keys, columns, rows)
    if pieces is None:
        return [orjson.dumps(dict(zip(keys, values, strict=True))) for values in zip(*columns, strict=True)]
    width = 2 * len(keys) + 1
    pieces[width - 1 :: width] = [b"}"] * rows
    return [b"".join(pieces[start : start + width]) for start in range(0, rows * width, width)]


def _pieces(keys: Sequence[str], columns: Sequence[list[Any]], rows: int) -> list[bytes] | None:
    """Every row's key and value pieces, each row closed by ``},``; None when a text column
    holds a comma (written row by row then)."""
    if any(isinstance(column[0], str) and _commas(column) for column in columns):
        return None
    width = 2 * len(keys) + 1
    pieces: list[bytes] = [b""] * (rows * width)
    for index, (key, column) in enumerate(zip(keys, columns, strict=True)):
        pieces[2 * index :: width] = [(b"{" if index == 0 else b",") + orjson.dumps(key) + b":"] * rows
        pieces[2 * index + 1 :: width] = orjson.dumps(column)[1:-1].split(b",")
    pieces[width - 1 :: width] = [b"},"] * rows
    return pieces


def _commas(column: list[Any]) -> bool:
    """Whether any text of the column holds a comma (one C-level join, not a loop)."""
    return ",".join(column).count(",") != len(column) - 1


def series_json_of(head: dict[str, Any], days: bytes) -> bytes:
    """``{head…, "days": days}`` with the days' JSON array already written (stored fragments)."""
    return _object(head, "days", days)


def series_json(head: dict[str, Any], rows: Rows) -> bytes:
    """``{head…, "days": [{"date", "period", "days", figure…}, …]}``."""
    opening = orjson.dumps(head)
    written = rows.rendered.get(opening)  # rows kept by the service's cache keep their answer too
    if written is None:
        keys = ("date", "period", "days", *rows.figures)
        written = rows.rendered[opening] = _object(head, "days", json_objects(keys, _series_columns(rows)))
    return written


def _object(head: dict[str, Any], key: str, value: bytes) -> bytes:
    """``{head…, key: value}`` with ``value`` already JSON."""
    opening = orjson.dumps(head)
    return opening[:-1] + (b"," if len(opening) > 2 else b"") + orjson.dumps(key) + b":" + value + b"}"


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def to_csv(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, header: bool = True
) -> str:
    """A header line (the union of the rows' keys unless ``columns``: give them, so that an answer
    without rows still has its header), then one line per row; empty cells for missing values."""
    names = list(columns) if columns is not None else _columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue()


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


async def streamed_json(
    head: dict[str, Any], key: str, entity_key: str, chunks: AsyncIterator[Rows]
) -> AsyncIterator[bytes]:
    """``{head…, key: [rows…]}``, written a chunk of entities at a time."""
    yield _object(head, key, b"[")[:-1]
    separator = b""
    async for rows in chunks:
        if not len(rows):
            continue
        columns = [rows.names, rows.days, *(column.tolist() for column in rows.figures.values())]
        yield separator + json_objects((entity_key, "days", *rows.figures), columns)[1:-1]
        separator = b","
    yield b"]}"


async def streamed_csv(
    columns: Sequence[str], entity_key: str, chunks: AsyncIterator[Rows], same: Mapping[str, Any]
) -> AsyncIterator[bytes]:
    """A header line, then the rows a chunk of entities at a time; ``same``: the cells every row
    has alike (``partial_days``: the range's, for every entity)."""
    yield to_csv([], columns).encode()
    async for rows in chunks:
        yield to_csv(
            [{**row, **same} for row in entity_rows(entity_key, rows)], columns, header=False
        ).encode()

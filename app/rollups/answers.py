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
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from app.rollups.service import Rows

JSON = "application/json"
CSV = "text/csv; charset=utf-8"


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(body)


def series_rows(rows: Rows) -> list[dict[str, Any]]:
    """``[{"date", "period", "days", figure…}]``: one dict per period, built from whole columns."""
    keys = ("date", "period", "days", *rows.figures)
    columns = (
        rows.start_dates(),
        rows.names,
        rows.days,
        *(column.tolist() for column in rows.figures.values()),
    )
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def entity_rows(key: str, rows: Rows) -> list[dict[str, Any]]:
    """``[{key: entity, "days", figure…}]``, one per entity."""
    keys = (key, "days", *rows.figures)
    columns = (rows.names, rows.days, *(column.tolist() for column in rows.figures.values()))
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def to_csv(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, header: bool = True
) -> str:
    """A header line (the union of the rows' keys unless ``columns``), then one line per row;
    empty cells for missing values."""
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
    opening = orjson.dumps(head)
    yield opening[:-1] + (b"," if len(opening) > 2 else b"") + orjson.dumps(key) + b":["
    separator = b""
    async for rows in chunks:
        if not len(rows):
            continue
        yield separator + orjson.dumps(entity_rows(entity_key, rows))[1:-1]
        separator = b","
    yield b"]}"


async def streamed_csv(
    columns: Sequence[str], entity_key: str, chunks: AsyncIterator[Rows]
) -> AsyncIterator[bytes]:
    """A header line, then the rows a chunk of entities at a time."""
    yield to_csv([], columns).encode()
    async for rows in chunks:
        yield to_csv(entity_rows(entity_key, rows), columns, header=False).encode()

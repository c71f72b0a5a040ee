"""Report answers written column by column are byte for byte what a dict per row would give."""

from __future__ import annotations

import math

import orjson

from app.rollups.answers import json_objects, to_csv


def as_dicts(keys: list[str], columns: list[list[object]]) -> bytes:
    return orjson.dumps([dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)])


def test_columns_give_the_bytes_of_one_dict_per_row() -> None:
    keys = ["date", "period", "days", "p99", "rate"]
    columns: list[list[object]] = [
        ["2026-03-29", "2026-03-30"],
        ["2026-W13", "2026-W14"],
        [1, 7],
        [0.1 + 0.2, 1e-300],
        [math.nan, math.inf],  # no figure: null
    ]
    written = json_objects(keys, columns)
    assert written == as_dicts(keys, columns)
    assert orjson.loads(written)[0]["rate"] is None


def test_text_with_commas_is_still_written_whole() -> None:
    columns: list[list[object]] = [["queue/a,b", "queue/c"], [3, 4]]
    assert json_objects(["queue", "days"], columns) == as_dicts(["queue", "days"], columns)
    assert json_objects(["queue"], [[]]) == b"[]"


def test_csv_leaves_missing_and_non_finite_figures_empty() -> None:
    text = to_csv([{"service": "a", "p99": math.nan, "rate": None, "days": 3}])
    assert text == "service,p99,rate,days\na,,,3\n"

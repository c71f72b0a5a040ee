"""Scalar values as Elasticsearch's field types read them (in documents and in queries)."""

from __future__ import annotations

from typing import Any

LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)
INTEGER_TYPES = frozenset({"long", "integer", "short", "byte"})
FLOAT_TYPES = frozenset({"double", "float", "half_float"})


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_number(value: Any) -> int | float:
    """A JSON number, or a string holding one; ValueError for anything else (booleans too)."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    number = float(value) if isinstance(value, str) else value
    if not isinstance(number, int | float):
        raise ValueError("not a number")
    return number


def to_number(value: Any, *, integer: bool) -> int | float:
    number = as_number(value)
    return int(number) if integer else float(number)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ValueError(f"Can't parse boolean value [{value}], expected [true] or [false]")

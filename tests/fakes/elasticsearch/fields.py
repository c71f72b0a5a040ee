"""Where a query meets an index's mapping: field patterns, and query values read as the field's type."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from tests.fakes.elasticsearch.dates import parse_date_math
from tests.fakes.elasticsearch.errors import (
    date_parse_error,
    illegal_argument,
    parsing_error,
    shard_query_error,
)
from tests.fakes.elasticsearch.indices import Doc, FieldRef, Index
from tests.fakes.elasticsearch.values import FLOAT_TYPES, INTEGER_TYPES, as_text, to_bool, to_number

Matcher = Callable[[Index, Doc], bool]


@dataclass
class QueryContext:
    now_ms: int
    allow_expensive_queries: bool = True


class _NoMatch:
    """A query value that cannot match this field (a lenient conversion failure)."""


NO_MATCH = _NoMatch()


def query_value(ref: FieldRef, value: Any, ctx: QueryContext, *, lenient: bool) -> Any:
    """``value`` as the field's type holds it; NO_MATCH (lenient) or a shard failure when it cannot be."""
    if isinstance(value, dict | list) or value is None:
        raise parsing_error(f"[{ref.name}] value must be a scalar, got {json.dumps(value)}")
    try:
        if ref.type in ("text", "keyword"):
            return as_text(value)
        if ref.type == "date":
            return parse_date_math(value, ref.formats, UTC, round_up=False, now_ms=ctx.now_ms)
        if ref.type in INTEGER_TYPES or ref.type in FLOAT_TYPES:
            return to_number(value, integer=False)
        return to_bool(value)
    except ValueError as exc:
        if lenient:
            return NO_MATCH
        if ref.type == "date":
            raise date_parse_error(str(exc)) from None
        if ref.type == "boolean":
            raise shard_query_error(f"failed to create query: {exc}") from None
        raise shard_query_error(f'failed to create query: For input string: "{value}"') from None


def holds(doc: Doc, ref: FieldRef, value: Any) -> bool:
    """Whether one of the document's values of the field is ``value`` (as :func:`query_value` gave it)."""
    return value is not NO_MATCH and value in doc.field_values(ref)


def per_index(convert: Callable[[FieldRef], Any]) -> Callable[[Index, FieldRef], Any]:
    """Caches a per-index conversion of the query's value (done once per index, not per document)."""
    cache: dict[str, Any] = {}

    def get(index: Index, ref: FieldRef) -> Any:
        key = f"{index.name}\0{ref.name}"
        if key not in cache:
            cache[key] = convert(ref)
        return cache[key]

    return get


def expand_fields(index: Index, patterns: Sequence[str]) -> list[str]:
    """Field names and ``*`` patterns (boosts such as ``^2`` dropped) → the index's field names."""
    names: list[str] = []
    for pattern in patterns:
        bare = pattern.split("^", 1)[0]
        if "*" in bare:
            names.extend(n for n in index.field_names() if fnmatch.fnmatchcase(n, bare))
        else:
            names.append(bare)
    return list(dict.fromkeys(names))


def check_options(name: str, body: Any, allowed: frozenset[str], *, unknown: str) -> None:
    """A query's body is an object of ``allowed`` options; ``unknown`` words the refusal of another."""
    if not isinstance(body, dict):
        raise parsing_error(f"[{name}] query malformed")
    for key in body:
        if key not in allowed:
            raise parsing_error(f"[{name}] " + unknown.format(key=key))


def multi_field_options(name: str, body: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The ``fields`` of a multi-field query (all, ``*``, by default) and its ``lenient`` option,
    which is on by default when the query runs on every field."""
    raw = body.get("fields")
    if raw is None:
        patterns = ["*"]
    elif isinstance(raw, str):
        patterns = [raw]
    elif isinstance(raw, list) and all(isinstance(f, str) for f in raw):
        patterns = list(raw)
    else:
        raise parsing_error(f"[{name}] query does not support [fields] of that shape")
    return patterns, bool(body.get("lenient", patterns == ["*"]))


def operator_option(raw: Any) -> str:
    """``operator`` / ``default_operator``: ``or`` or ``and``, in any case."""
    operator = str(raw).lower()
    if operator not in ("or", "and"):
        raise illegal_argument(f"No enum constant org.elasticsearch.index.query.Operator.{operator.upper()}")
    return operator

"""Sorting: sort specs, sort keys with Elasticsearch's ``missing`` sentinels, ``search_after``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.elasticsearch.dates import DEFAULT_DATE_FORMATS, format_date, parse_date
from tests.fakes.elasticsearch.errors import illegal_argument, parsing_error, shard_query_error, unimplemented
from tests.fakes.elasticsearch.indices import Doc, Index, Shard
from tests.fakes.elasticsearch.values import INTEGER_TYPES, LONG_MAX, LONG_MIN

SortKey = tuple[bool, Any]
"""(missing, value): a document's comparable value for one sort spec."""
_SORT_OPTIONS = frozenset({"order", "missing", "mode", "unmapped_type", "format"})
_BUILT_IN = ("_score", "_doc", "_shard_doc")


@dataclass(frozen=True)
class SortSpec:
    field: str
    desc: bool
    missing_first: bool = False
    mode: str | None = None
    unmapped_type: str | None = None
    format: str | None = None


def parse_sort(raw: Any) -> list[SortSpec]:
    items = raw if isinstance(raw, list) else [raw]
    specs: list[SortSpec] = []
    for item in items:
        if isinstance(item, str):
            specs.append(SortSpec(item, desc=item == "_score"))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise parsing_error(f"[sort] malformed sort element {json.dumps(item)}")
        name, options = next(iter(item.items()))
        if isinstance(options, str):
            options = {"order": options}
        if not isinstance(options, dict):
            raise parsing_error(f"[sort] malformed options for [{name}]")
        for key in options:
            if key not in _SORT_OPTIONS:
                raise parsing_error(f"[field_sort] unknown field [{key}]")
        order = str(options.get("order", "desc" if name == "_score" else "asc")).lower()
        if order not in ("asc", "desc"):
            raise illegal_argument(f"Unknown SortOrder [{order}]")
        missing = options.get("missing", "_last")
        if missing not in ("_last", "_first"):
            raise unimplemented("[sort] missing values other than _last/_first")
        mode = options.get("mode")
        if mode not in (None, "min", "max"):
            raise unimplemented(f"[sort] mode [{mode}]")
        specs.append(
            SortSpec(
                name,
                desc=order == "desc",
                missing_first=missing == "_first",
                mode=mode,
                unmapped_type=options.get("unmapped_type"),
                format=options.get("format"),
            )
        )
    return specs


def parse_sort_param(raw: str) -> list[SortSpec]:
    """The ``sort`` URL parameter: ``field:order,field``."""
    specs = []
    for part in raw.split(","):
        name, _, order = part.partition(":")
        specs.extend(parse_sort([{name: order or ("desc" if name == "_score" else "asc")}]))
    return specs


def sort_key(spec: SortSpec, index: Index, shard: int, doc: Doc) -> tuple[SortKey, Any]:
    """The document's key for ``spec``, and the value shown in the hit's ``sort``."""
    if spec.field == "_score":
        return (False, 1.0), 1.0
    if spec.field == "_doc":
        return (False, doc.seq), doc.seq
    if spec.field == "_shard_doc":
        value = (shard << 32) | doc.seq
        return (False, value), value
    ref = index.resolve(spec.field)
    if ref is None:
        if spec.unmapped_type:
            return (True, None), _missing_sentinel(spec, spec.unmapped_type)
        raise shard_query_error(f"No mapping found for [{spec.field}] in order to sort on")
    if ref.type == "text":
        raise illegal_argument(
            "Text fields are not optimised for operations that require per-document field data like "
            "aggregations and sorting, so these operations are disabled by default. Please use a "
            f"keyword field instead. Alternatively, set fielddata=true on [{spec.field}] in order to load "
            "field data by uninverting the inverted index. Note that this can use significant memory.",
            shard_level=True,
        )
    values = [int(v) if isinstance(v, bool) else v for v in doc.field_values(ref)]
    if not values:
        return (True, None), _missing_sentinel(spec, ref.type)
    use_max = spec.mode == "max" or (spec.mode is None and spec.desc)
    value = max(values) if use_max else min(values)
    shown = format_date(value) if ref.type == "date" and spec.format else value
    return (False, value), shown


def sort_kind(spec: SortSpec, shards: list[Shard]) -> str | None:
    """The field type a sort spec reads (from the first index that maps it), for ``search_after``."""
    if spec.field in _BUILT_IN:
        return "long"
    for _, index, _ in shards:
        ref = index.resolve(spec.field)
        if ref is not None:
            return ref.type
    return spec.unmapped_type


def after_key(kind: str | None, raw: Any) -> SortKey:
    """A ``search_after`` value as a comparable key (sentinels and null mean "missing")."""
    if raw is None:
        return True, None
    if kind is not None and _numeric_like(kind) and raw in (LONG_MAX, LONG_MIN) and not isinstance(raw, bool):
        return True, None
    if kind == "date" and isinstance(raw, str):
        try:
            return False, parse_date(raw, DEFAULT_DATE_FORMATS)
        except ValueError:
            raise illegal_argument(f"search_after value [{raw}] is not a date") from None
    if kind == "keyword" and not isinstance(raw, str):
        return False, str(raw)
    return False, raw


def compare(a: list[SortKey], b: list[SortKey], specs: Sequence[SortSpec]) -> int:
    for (a_missing, a_value), (b_missing, b_value), spec in zip(a, b, specs, strict=True):
        if a_missing or b_missing:
            if a_missing and b_missing:
                continue
            first = spec.missing_first
            return (-1 if first else 1) if a_missing else (1 if first else -1)
        try:
            order = int(a_value > b_value) - int(a_value < b_value)
        except TypeError:
            raise illegal_argument(f"Can't sort on field [{spec.field}]: values of different types") from None
        if order:
            return -order if spec.desc else order
    return 0


def _numeric_like(kind: str) -> bool:
    return kind == "date" or kind == "boolean" or kind in INTEGER_TYPES


def _missing_sentinel(spec: SortSpec, kind: str) -> Any:
    """What Elasticsearch shows as the sort value of a document without the field."""
    if not _numeric_like(kind):
        return None
    goes_high = spec.desc == spec.missing_first
    return LONG_MAX if goes_high else LONG_MIN

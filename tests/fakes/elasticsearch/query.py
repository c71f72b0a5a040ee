"""The query DSL: each query compiles to a matcher ``(index, doc) -> bool``; every hit scores 1.0."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from typing import Any

from tests.fakes.elasticsearch.analysis import analyze, has_phrase
from tests.fakes.elasticsearch.dates import parse_date_math, time_zone
from tests.fakes.elasticsearch.errors import (
    EsError,
    date_parse_error,
    illegal_argument,
    parsing_error,
    shard_query_error,
    unimplemented,
)
from tests.fakes.elasticsearch.fields import (
    Matcher,
    QueryContext,
    check_options,
    expand_fields,
    holds,
    multi_field_options,
    operator_option,
    per_index,
    query_value,
)
from tests.fakes.elasticsearch.indices import Doc, FieldRef, Index
from tests.fakes.elasticsearch.simple_query_string import compile_simple_query_string
from tests.fakes.elasticsearch.values import as_text

_MULTI_MATCH_OPTIONS = frozenset(
    {"query", "fields", "type", "operator", "lenient", "boost", "slop", "minimum_should_match"}
)
_UNIMPLEMENTED_QUERIES = frozenset({
    "wildcard", "regexp", "fuzzy", "ids", "query_string", "nested", "has_child",
    "has_parent", "function_score", "script_score", "script", "constant_score", "dis_max",
    "boosting", "match_bool_prefix", "match_phrase_prefix", "combined_fields", "intervals",
    "more_like_this", "geo_distance", "geo_bounding_box", "terms_set", "span_term", "knn",
})  # fmt: skip


def compile_query(query: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(query, dict):
        raise parsing_error("[_na] query malformed, must start with start_object")
    if not query:
        raise parsing_error("query malformed, empty clause found")
    if len(query) > 1:
        first, second = list(query)[:2]
        raise parsing_error(
            f"[{first}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ([{second}])"
        )
    name, body = next(iter(query.items()))
    compiler = _COMPILERS.get(name)
    if compiler is None:
        if name in _UNIMPLEMENTED_QUERIES:
            raise unimplemented(f"the [{name}] query")
        raise parsing_error(f"unknown query [{name}]")
    return compiler(body, ctx)


def _on_field(name: str, match_field: Callable[[Index, FieldRef, Doc], bool]) -> Matcher:
    """Matches the documents that ``match_field`` accepts, in indices that map the field ``name``
    (in other indices, none)."""

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        return ref is not None and match_field(index, ref, doc)

    return match


def _field_query(name: str, body: Any, main: str, allowed: frozenset[str]) -> tuple[str, dict[str, Any]]:
    """Splits ``{field: value}`` / ``{field: {main: value, ...}}`` and checks the options."""
    if not isinstance(body, dict):
        raise parsing_error(f"[{name}] query malformed, no start_object after query name")
    if "_name" in body:
        raise unimplemented(f"[{name}] option [_name]")
    fields = list(body)
    if not fields:
        raise parsing_error(f"[{name}] query malformed, no field")
    if len(fields) > 1:
        raise parsing_error(
            f"[{name}] query doesn't support multiple fields, found [{fields[0]}] and [{fields[1]}]"
        )
    field_name = fields[0]
    value = body[field_name]
    if isinstance(value, dict):
        for key in value:
            if key not in allowed and key != main:
                if key == "_name":
                    raise unimplemented(f"[{name}] option [_name]")
                raise parsing_error(f"[{name}] query does not support [{key}]")
        if main not in value:
            raise parsing_error(f"[{name}] query malformed, missing [{main}]")
        return field_name, dict(value)
    return field_name, {main: value}


def _compile_term(body: Any, ctx: QueryContext) -> Matcher:
    name, params = _field_query("term", body, "value", frozenset({"boost", "case_insensitive"}))
    raw, insensitive = params["value"], bool(params.get("case_insensitive", False))
    target = per_index(lambda ref: query_value(ref, raw, ctx, lenient=False))

    def match_field(index: Index, ref: FieldRef, doc: Doc) -> bool:
        value = target(index, ref)
        if ref.type == "text":
            return any(value in tokens for tokens in doc.tokens(ref))
        if insensitive and ref.type == "keyword":
            return any(v.lower() == value.lower() for v in doc.field_values(ref))
        return value in doc.field_values(ref)

    return _on_field(name, match_field)


def _compile_prefix(body: Any, ctx: QueryContext) -> Matcher:
    """``prefix``: a term-level query, so the value is not analysed. On a ``text`` field it matches
    any indexed token starting with it, on a ``keyword`` field the whole value's start; any other
    type fails the shard, as in Elasticsearch."""
    name, params = _field_query("prefix", body, "value", frozenset({"boost", "case_insensitive"}))
    raw = params["value"]
    if isinstance(raw, dict | list) or raw is None:
        raise parsing_error(f"[prefix] value must be a scalar, got {raw!r}")
    wanted = as_text(raw)
    insensitive = bool(params.get("case_insensitive", False))
    if not ctx.allow_expensive_queries:  # prefix queries on string fields without index_prefixes
        raise EsError(
            500,
            "exception",
            "[prefix] queries cannot be executed when 'search.allow_expensive_queries' is set to false. "
            "For optimised prefix queries on text fields please enable [index_prefixes].",
            shard_level=True,
        )

    def starts(value: str) -> bool:
        return value.lower().startswith(wanted.lower()) if insensitive else value.startswith(wanted)

    def match_field(index: Index, ref: FieldRef, doc: Doc) -> bool:
        if ref.type == "text":
            return any(starts(token) for tokens in doc.tokens(ref) for token in tokens)
        if ref.type == "keyword":
            return any(starts(str(value)) for value in doc.field_values(ref))
        raise shard_query_error(
            f"Can only use prefix queries on keyword, text and wildcard fields - not on [{ref.name}] "
            f"which is of type [{ref.type}]"
        ).with_index(index.name)

    return _on_field(name, match_field)


def _compile_terms(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict):
        raise parsing_error("[terms] query malformed, no start_object after query name")
    fields = [key for key in body if key not in ("boost", "_name")]
    if "_name" in body:
        raise unimplemented("[terms] option [_name]")
    if len(fields) != 1:
        raise parsing_error(f"[terms] query requires exactly one field, found {fields}")
    name = fields[0]
    raw = body[name]
    if isinstance(raw, dict):
        raise unimplemented("the terms lookup")
    if not isinstance(raw, list):
        raise parsing_error(f"[terms] query does not support [{name}] as a value: it must be an array")
    targets = per_index(lambda ref: {query_value(ref, item, ctx, lenient=False) for item in raw})

    def match_field(index: Index, ref: FieldRef, doc: Doc) -> bool:
        wanted = targets(index, ref)
        if ref.type == "text":
            return any(token in wanted for tokens in doc.tokens(ref) for token in tokens)
        return any(value in wanted for value in doc.field_values(ref))

    return _on_field(name, match_field)


def _field_matcher(
    name: str,
    query: Any,
    ctx: QueryContext,
    *,
    phrase: bool,
    operator: str = "or",
    minimum_should_match: Any = None,
    lenient: bool = False,
    slop: int = 0,
) -> Matcher:
    """``match`` / ``match_phrase`` of one field (keyword and non-text fields compare whole values)."""
    tokens = analyze(as_text(query)) if not isinstance(query, dict | list) else []
    target = per_index(lambda ref: query_value(ref, query, ctx, lenient=lenient))

    def match_field(index: Index, ref: FieldRef, doc: Doc) -> bool:
        if ref.type != "text":
            return holds(doc, ref, target(index, ref))
        if not tokens:
            return False
        if phrase:
            return any(has_phrase(value_tokens, tokens, slop) for value_tokens in doc.tokens(ref))
        present = {token for value_tokens in doc.tokens(ref) for token in value_tokens}
        hits = sum(1 for token in tokens if token in present)
        if operator == "and":
            return hits == len(tokens)
        needed = _minimum_should_match(minimum_should_match, len(tokens), default=1)
        return hits >= needed

    return _on_field(name, match_field)


def _compile_match(body: Any, ctx: QueryContext) -> Matcher:
    allowed = frozenset({"operator", "boost", "lenient", "minimum_should_match", "zero_terms_query"})
    name, params = _field_query("match", body, "query", allowed)
    operator = operator_option(params.get("operator", "or"))
    if params.get("zero_terms_query", "none") != "none":
        raise unimplemented("[match] zero_terms_query [all]")
    return _field_matcher(
        name,
        params["query"],
        ctx,
        phrase=False,
        operator=operator,
        minimum_should_match=params.get("minimum_should_match"),
        lenient=bool(params.get("lenient", False)),
    )


def _compile_match_phrase(body: Any, ctx: QueryContext) -> Matcher:
    name, params = _field_query("match_phrase", body, "query", frozenset({"boost", "slop"}))
    return _field_matcher(name, params["query"], ctx, phrase=True, slop=int(params.get("slop", 0)))


def _compile_multi_match(body: Any, ctx: QueryContext) -> Matcher:
    check_options("multi_match", body, _MULTI_MATCH_OPTIONS, unknown="query does not support [{key}]")
    if "query" not in body:
        raise illegal_argument("[multi_match] requires query value")
    kind = body.get("type", "best_fields")
    if kind not in ("best_fields", "most_fields", "phrase"):
        raise unimplemented(f"[multi_match] type [{kind}]")
    operator = operator_option(body.get("operator", "or"))
    patterns, lenient = multi_field_options("multi_match", body)
    cache: dict[str, list[Matcher]] = {}

    def matchers(index: Index) -> list[Matcher]:
        if index.name not in cache:
            cache[index.name] = [
                _field_matcher(
                    name,
                    body["query"],
                    ctx,
                    phrase=kind == "phrase",
                    operator=operator,
                    minimum_should_match=body.get("minimum_should_match"),
                    lenient=lenient,
                    slop=int(body.get("slop", 0)),
                )
                for name in expand_fields(index, patterns)
            ]
        return cache[index.name]

    return lambda index, doc: any(m(index, doc) for m in matchers(index))


def _compile_range(body: Any, ctx: QueryContext) -> Matcher:
    allowed = frozenset({"gte", "gt", "lte", "lt", "format", "time_zone", "boost", "relation"})
    if not isinstance(body, dict) or len(body) != 1:
        raise parsing_error("[range] query malformed, expected exactly one field")
    name, params = next(iter(body.items()))
    if not isinstance(params, dict):
        raise parsing_error(f"[range] query malformed, no start_object after field [{name}]")
    for key in params:
        if key not in allowed:
            raise parsing_error(f"[range] query does not support [{key}]")
    if params.get("relation", "intersects") != "intersects":
        raise unimplemented("[range] relation")
    tz = time_zone(params["time_zone"]) if "time_zone" in params else UTC
    bounds = [(op, params[op]) for op in ("gte", "gt", "lte", "lt") if params.get(op) is not None]

    def convert(ref: FieldRef) -> list[tuple[str, Any]]:
        converted = []
        for op, raw in bounds:
            if ref.type == "date":
                formats = tuple(str(params["format"]).split("||")) if "format" in params else ref.formats
                try:
                    value = parse_date_math(raw, formats, tz, round_up=op in ("gt", "lte"), now_ms=ctx.now_ms)
                except ValueError as exc:
                    raise date_parse_error(str(exc)) from None
            else:
                value = query_value(ref, raw, ctx, lenient=False)
            converted.append((op, value))
        return converted

    limits = per_index(convert)

    def within(value: Any, checks: list[tuple[str, Any]]) -> bool:
        for op, bound in checks:
            if (
                (op == "gte" and not value >= bound)
                or (op == "gt" and not value > bound)
                or (op == "lte" and not value <= bound)
                or (op == "lt" and not value < bound)
            ):
                return False
        return True

    def match_field(index: Index, ref: FieldRef, doc: Doc) -> bool:
        checks = limits(index, ref)
        if ref.type == "text":
            return any(within(t, checks) for tokens in doc.tokens(ref) for t in tokens)
        return any(within(v, checks) for v in doc.field_values(ref))

    return _on_field(name, match_field)


def _compile_exists(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict) or set(body) - {"field", "boost"} or "field" not in body:
        raise parsing_error('[exists] query malformed, expected {"field": ...}')
    name = body["field"]

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        if ref is not None:
            return bool(doc.field_values(ref))
        mapping = index.fields.get(name)
        if mapping is not None and mapping.type == "object":
            prefix = f"{name}."
            return any(path.startswith(prefix) and values for path, values in doc.values.items())
        return False

    return match


def _constant(name: str, result: bool) -> Callable[[Any, QueryContext], Matcher]:
    """``match_all`` / ``match_none``."""

    def compile_constant(body: Any, ctx: QueryContext) -> Matcher:
        if not isinstance(body, dict) or set(body) - {"boost"}:
            raise parsing_error(f"[{name}] query does not support those options")
        return lambda index, doc: result

    return compile_constant


def _clauses(value: Any, ctx: QueryContext) -> list[Matcher]:
    items = value if isinstance(value, list) else [value]
    return [compile_query(item, ctx) for item in items]


def _minimum_should_match(raw: Any, count: int, *, default: int) -> int:
    if raw is None:
        return default
    text = str(raw).strip()
    match = re.fullmatch(r"(-?)(\d+)(%?)", text)
    if match is None:
        raise unimplemented(f"minimum_should_match [{text}]")
    negative, number, percent = match.group(1) == "-", int(match.group(2)), match.group(3) == "%"
    amount = count * number // 100 if percent else number
    return max(0, count - amount) if negative else amount


def _compile_bool(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict):
        raise parsing_error("[bool] query malformed")
    allowed = {
        "must",
        "filter",
        "should",
        "must_not",
        "minimum_should_match",
        "boost",
        "adjust_pure_negative",
    }
    for key in body:
        if key == "_name":
            raise unimplemented("[bool] option [_name]")
        if key not in allowed:
            raise parsing_error(f"[bool] query does not support [{key}]")
    required = _clauses(body.get("must", []), ctx) + _clauses(body.get("filter", []), ctx)
    excluded = _clauses(body.get("must_not", []), ctx)
    optional = _clauses(body.get("should", []), ctx)
    default = 0 if required else 1
    needed = _minimum_should_match(body.get("minimum_should_match"), len(optional), default=default)

    def match(index: Index, doc: Doc) -> bool:
        if not all(m(index, doc) for m in required):
            return False
        if any(m(index, doc) for m in excluded):
            return False
        if optional and needed > 0:
            return sum(1 for m in optional if m(index, doc)) >= needed
        return not (not optional and not required and not excluded and needed > 0)

    return match


_COMPILERS: dict[str, Callable[[Any, QueryContext], Matcher]] = {
    "bool": _compile_bool,
    "term": _compile_term,
    "terms": _compile_terms,
    "prefix": _compile_prefix,
    "match": _compile_match,
    "match_phrase": _compile_match_phrase,
    "multi_match": _compile_multi_match,
    "simple_query_string": compile_simple_query_string,
    "range": _compile_range,
    "exists": _compile_exists,
    "match_all": _constant("match_all", True),
    "match_none": _constant("match_none", False),
}

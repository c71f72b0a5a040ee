"""``_search``: the request's keys, paging (``from``/``size``, the result window, ``search_after``),
sorting the hits, ``_source`` filtering, ``track_total_hits`` and the answer's envelope."""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.elasticsearch.dates import now_millis
from tests.fakes.elasticsearch.errors import (
    NODE_ID,
    EsError,
    illegal_argument,
    parsing_error,
    unimplemented,
    validation_failed,
)
from tests.fakes.elasticsearch.fields import QueryContext
from tests.fakes.elasticsearch.indices import Doc, Index, Shard
from tests.fakes.elasticsearch.query import compile_query
from tests.fakes.elasticsearch.sorting import (
    SortKey,
    SortSpec,
    after_key,
    compare,
    parse_sort,
    parse_sort_param,
    sort_key,
    sort_kind,
)

MAX_RESULT_WINDOW = 10_000
DEFAULT_SIZE = 10
DEFAULT_TRACK_TOTAL_HITS = 10_000
SEARCH_PARAMS = frozenset({
    "ignore_unavailable", "allow_no_indices", "expand_wildcards", "size", "from", "sort",
    "track_total_hits", "_source", "_source_includes", "_source_excludes", "typed_keys",
    "pretty", "error_trace",
})  # fmt: skip
_INDICES_OPTIONS = ("ignore_unavailable", "allow_no_indices", "expand_wildcards")
_BODY_KEYS = frozenset(
    {"query", "sort", "size", "from", "search_after", "_source", "track_total_hits", "pit"}
)
# Search-body keys Elasticsearch knows but this fake does not implement.
_UNIMPLEMENTED_BODY_KEYS = frozenset({
    "aggs", "aggregations", "highlight", "post_filter", "collapse", "rescore", "suggest",
    "script_fields", "docvalue_fields", "fields", "stored_fields", "explain", "version",
    "seq_no_primary_term", "indices_boost", "min_score", "profile", "runtime_mappings", "stats",
    "terminate_after", "timeout", "track_scores", "knn", "rank", "retriever", "ext", "slice",
})  # fmt: skip


def check_search_body(body: Mapping[str, Any]) -> None:
    for key in body:
        if key in _UNIMPLEMENTED_BODY_KEYS:
            raise unimplemented(f"search option [{key}]")
        if key not in _BODY_KEYS:
            kind = "START_OBJECT" if isinstance(body[key], dict) else "VALUE"
            raise parsing_error(f"Unknown key for a {kind} in [{key}].")


def check_pit_search(target: str | None, params: Mapping[str, str]) -> None:
    """A search with a point in time names no indices and takes no indices options."""
    problems = []
    if target:
        problems.append(
            "[indices] cannot be used with point in time. Do not specify any index with point in time."
        )
    if any(p in params for p in _INDICES_OPTIONS):
        problems.append("[indicesOptions] cannot be used with point in time")
    if problems:
        raise validation_failed(*problems)


@dataclass
class _Candidate:
    index: Index
    doc: Doc
    keys: list[SortKey]
    shown: list[Any]


ShardFault = Callable[[Index], "EsError | bool | None"]
"""What happens to an index's shard in a search: an EsError (the shard fails), True (it runs out of
time and contributes no hits) or None (it answers)."""


def run_search(
    body: Mapping[str, Any],
    params: Mapping[str, str],
    shards: list[Shard],
    *,
    with_pit: bool,
    started: float,
    shard_fault: ShardFault | None = None,
    allow_expensive_queries: bool = True,
) -> dict[str, Any]:
    """The answer to a checked search body over ``shards`` (``took`` counted from ``started``).

    A shard that fails leaves the search a 200 with ``_shards.failed`` and ``failures`` (Elasticsearch's
    default ``allow_partial_search_results=true``), unless every shard failed: then the search fails.
    A shard that times out contributes no hits and sets ``timed_out`` (the real one keeps what it had
    collected so far; none is the worst case).
    """
    ctx = QueryContext(now_ms=now_millis(), allow_expensive_queries=allow_expensive_queries)
    matcher = compile_query(body.get("query", {"match_all": {}}), ctx)
    size = _int_option(body, params, "size", DEFAULT_SIZE)
    offset = _int_option(body, params, "from", 0)
    if "sort" in body:
        specs = parse_sort(body["sort"])
    elif "sort" in params:
        specs = parse_sort_param(params["sort"])
    else:
        specs = []
    explicit = bool(specs) or with_pit
    if not specs:
        specs = [SortSpec("_score", desc=True)]
    if with_pit and not any(s.field == "_shard_doc" for s in specs):
        specs.append(SortSpec("_shard_doc", desc=False))
    elif not with_pit and any(s.field == "_shard_doc" for s in specs):
        raise illegal_argument("[_shard_doc] sort field cannot be used without [point in time]")
    if size < 0 or offset < 0:
        raise illegal_argument(f"[{'size' if size < 0 else 'from'}] parameter cannot be negative")
    if offset + size > MAX_RESULT_WINDOW:
        raise illegal_argument(
            "Result window is too large, from + size must be less than or equal to: "
            f"[{MAX_RESULT_WINDOW}] but was [{offset + size}]. See the scroll api for a more efficient "
            "way to request large data sets. This limit can be set by changing the "
            "[index.max_result_window] index level setting.",
            shard_level=True,
        ).with_index(shards[0][1].name if shards else "_na_")
    after = body.get("search_after")
    if after is not None:
        if not isinstance(after, list):
            raise parsing_error("[search_after] must be an array")
        if len(after) != len(specs):
            raise illegal_argument(f"search_after has {len(after)} value(s) but sort has {len(specs)}.")
        if offset not in (0, -1):
            raise illegal_argument("`from` parameter must be set to 0 when `search_after` is used.")
    source_spec = body.get("_source", _source_param(params))
    track = body.get("track_total_hits", params.get("track_total_hits", DEFAULT_TRACK_TOTAL_HITS))
    candidates: list[_Candidate] = []
    failures: list[tuple[Index, EsError]] = []
    timed_out = False
    for shard, index, docs in shards:
        fault = shard_fault(index) if shard_fault is not None else None
        if isinstance(fault, EsError):
            failures.append((index, fault))
            continue
        if fault is True:
            timed_out = True
            continue
        try:
            found = []
            for doc in docs:
                if matcher(index, doc):
                    pairs = [sort_key(spec, index, shard, doc) for spec in specs]
                    found.append(_Candidate(index, doc, [p[0] for p in pairs], [p[1] for p in pairs]))
            candidates.extend(found)
        except EsError as exc:
            if not exc.shard_level:
                raise
            failures.append((index, exc))
    if failures and len(failures) == len(shards):
        failed_index, failure = failures[0]
        raise failure.with_index(failed_index.name)
    total = len(candidates)
    if after is not None:
        after_keys = [after_key(sort_kind(spec, shards), raw) for spec, raw in zip(specs, after, strict=True)]
        candidates = [c for c in candidates if compare(c.keys, after_keys, specs) > 0]
    candidates.sort(key=functools.cmp_to_key(lambda a, b: compare(a.keys, b.keys, specs)))
    page = candidates[offset : offset + size]
    scored = not explicit or any(s.field == "_score" for s in specs)
    hits = []
    for candidate in page:
        hit: dict[str, Any] = {
            "_index": candidate.index.name,
            "_id": candidate.doc.id,
            "_score": 1.0 if scored else None,
        }
        filtered = filter_source(candidate.doc.source, source_spec)
        if filtered is not None:
            hit["_source"] = filtered
        if explicit:
            hit["sort"] = candidate.shown
        hits.append(hit)
    hits_obj: dict[str, Any] = {}
    total_obj = _total(total, track)
    if total_obj is not None:
        hits_obj["total"] = total_obj
    hits_obj["max_score"] = 1.0 if scored and hits else None
    hits_obj["hits"] = hits
    shards_obj: dict[str, Any] = {
        "total": len(shards),
        "successful": len(shards) - len(failures),
        "skipped": 0,
        "failed": len(failures),
    }
    if failures:
        shards_obj["failures"] = [
            {"shard": 0, "index": index.name, "node": NODE_ID, "reason": exc.cause} for index, exc in failures
        ]
    took = int((time.perf_counter() - started) * 1000)
    return {"took": took, "timed_out": timed_out, "_shards": shards_obj, "hits": hits_obj}


def filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    """``_source`` filtering: true/false, a pattern, a list, or ``{includes, excludes}``."""
    if spec is None or spec is True:
        return source
    if spec is False:
        return None
    excludes: list[str] = []
    if isinstance(spec, str):
        includes = [spec]
    elif isinstance(spec, list):
        includes = [str(s) for s in spec]
    elif isinstance(spec, dict):
        includes = _patterns(spec.get("includes", spec.get("include", [])))
        excludes = _patterns(spec.get("excludes", spec.get("exclude", [])))
    else:
        raise parsing_error("[_source] must be a boolean, a string, an array or an object")
    return _filter_node(source, "", includes, excludes, included=not includes)


def _patterns(raw: Any) -> list[str]:
    return [raw] if isinstance(raw, str) else [str(p) for p in raw or []]


def _filter_node(
    node: dict[str, Any], prefix: str, includes: list[str], excludes: list[str], *, included: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if any(fnmatch.fnmatchcase(path, p) for p in excludes):
            continue
        here = included or any(fnmatch.fnmatchcase(path, p) for p in includes)
        could_descend = here or any(p.startswith(f"{path}.") or "*" in p for p in includes)
        if isinstance(value, dict):
            if could_descend:
                child = _filter_node(value, f"{path}.", includes, excludes, included=here)
                if child or (here and not value):
                    out[key] = child
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            if could_descend:
                items = [
                    _filter_node(v, f"{path}.", includes, excludes, included=here)
                    if isinstance(v, dict)
                    else v
                    for v in value
                ]
                kept = [v for v in items if v != {}]
                if kept:
                    out[key] = kept
        elif here:
            out[key] = value
    return out


def _int_option(body: Mapping[str, Any], params: Mapping[str, str], name: str, default: int) -> int:
    raw = body.get(name, params.get(name, default))
    if isinstance(raw, bool):
        raise parsing_error(f"[{name}] must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise parsing_error(f"[{name}] must be an integer, got [{raw}]") from None


def _source_param(params: Mapping[str, str]) -> Any:
    if "_source_includes" in params or "_source_excludes" in params:
        return {
            "includes": [p for p in params.get("_source_includes", "").split(",") if p],
            "excludes": [p for p in params.get("_source_excludes", "").split(",") if p],
        }
    raw = params.get("_source")
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    return raw.split(",")


def _total(count: int, track: Any) -> dict[str, Any] | None:
    if track is False or track == "false":
        return None
    if track is True or track == "true":
        return {"value": count, "relation": "eq"}
    try:
        limit = int(track)
    except (TypeError, ValueError):
        raise illegal_argument(f"[track_total_hits] must be a boolean or an integer, got [{track}]") from None
    if count > limit:
        return {"value": limit, "relation": "gte"}
    return {"value": count, "relation": "eq"}

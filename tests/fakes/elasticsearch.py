"""A small, honest fake of Elasticsearch 8's HTTP API, served over real HTTP in tests.

What it does like the real server: the root info, index/doc/bulk writes with
dynamic mappings (strings become ``text`` with a ``.keyword`` sub-field, ISO
strings become ``date``), index expressions (comma lists, ``*``, ``-excl``,
``ignore_unavailable``/``allow_no_indices``), the query-DSL subset a log search
needs, sorting (with ``missing`` sentinels, ``_doc``, ``_shard_doc``),
``from``/``size`` with the 10,000 ``index.max_result_window``, ``search_after``,
``track_total_hits``, ``_source`` filtering, points in time (snapshots with
keep-alive and the implicit ``_shard_doc`` tiebreaker), error envelopes with
``root_cause``, ``X-Elastic-Product`` and REST-compatibility content types.

What it refuses (400, never silently ignored): any query, search key or
parameter outside that subset; ES features it knows but does not implement say
so in the reason ("not implemented by FakeElasticsearch").

Known simplifications: every hit scores 1.0 (no relevance ranking); documents
are visible at once (no refresh interval); one shard per index; the analyzer
approximates the standard one (lowercased word tokens); missing ``double``
sort values are rendered as ``null``.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ES_VERSION = "8.15.3"
MAX_RESULT_WINDOW = 10_000
DEFAULT_SIZE = 10
DEFAULT_TRACK_TOTAL_HITS = 10_000
KEYWORD_IGNORE_ABOVE = 256
LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)
DEFAULT_DATE_FORMATS = ("strict_date_optional_time", "epoch_millis")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NODE_ID = "fAkEnOdE0000000000000A"
_ONE_MS = timedelta(milliseconds=1)
_INTEGER_TYPES = frozenset({"long", "integer", "short", "byte"})
_FLOAT_TYPES = frozenset({"double", "float", "half_float"})
_LEAF_TYPES = frozenset({"text", "keyword", "date", "boolean"} | _INTEGER_TYPES | _FLOAT_TYPES)
_TOKEN_RE = re.compile(r"\w+(?:[.'’]\w+)*")
_COMPAT_RE = re.compile(r"compatible-with\s*=\s*(\d+)")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SEARCH_PARAMS = _words(
    "ignore_unavailable allow_no_indices expand_wildcards size from sort track_total_hits "
    "_source _source_includes _source_excludes typed_keys pretty error_trace"
)
_SEARCH_BODY_KEYS = frozenset(
    {"query", "sort", "size", "from", "search_after", "_source", "track_total_hits", "pit"}
)
# Search-body keys Elasticsearch knows but this fake does not implement.
_UNIMPLEMENTED_BODY_KEYS = _words(
    "aggs aggregations highlight post_filter collapse rescore suggest script_fields "
    "docvalue_fields fields stored_fields explain version seq_no_primary_term indices_boost "
    "min_score profile runtime_mappings stats terminate_after timeout track_scores knn rank "
    "retriever ext slice"
)
_UNIMPLEMENTED_QUERIES = _words(
    "prefix wildcard regexp fuzzy ids query_string nested has_child has_parent "
    "function_score script_score script constant_score dis_max boosting match_bool_prefix "
    "match_phrase_prefix combined_fields intervals more_like_this geo_distance "
    "geo_bounding_box terms_set span_term knn"
)


# ---------------------------------------------------------------------------------------------
# Errors, in Elasticsearch's envelope


class EsError(Exception):
    """An error answer. ``shard_level`` errors are wrapped in ``search_phase_execution_exception``."""

    def __init__(
        self,
        status: int,
        error_type: str,
        reason: str,
        *,
        shard_level: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.shard_level = shard_level
        self.extra = dict(extra or {})
        self.index: str | None = None

    def with_index(self, index: str) -> EsError:
        """The same error, naming the index whose shard failed."""
        self.index = index
        return self

    @property
    def cause(self) -> dict[str, Any]:
        return {"type": self.error_type, "reason": self.reason, **self.extra}

    def body(self) -> dict[str, Any]:
        cause = self.cause
        if not self.shard_level:
            return {"error": {"root_cause": [cause], **cause}, "status": self.status}
        failure = {"shard": 0, "index": self.index, "node": NODE_ID, "reason": cause}
        error = {
            "root_cause": [cause],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "phase": "query",
            "grouped": True,
            "failed_shards": [failure],
            "caused_by": cause,
        }
        return {"error": error, "status": self.status}


def _parsing(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason, extra={"line": 1, "col": 1})


def _unimplemented(what: str) -> EsError:
    return _parsing(f"{what} is not implemented by FakeElasticsearch")


def _illegal(reason: str, *, shard_level: bool = False) -> EsError:
    return EsError(400, "illegal_argument_exception", reason, shard_level=shard_level)


def _shard_query_error(reason: str) -> EsError:
    return EsError(400, "query_shard_exception", reason, shard_level=True)


def _index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        extra={
            "resource.type": "index_or_alias",
            "resource.id": name,
            "index_uuid": "_na_",
            "index": name,
        },
    )


# ---------------------------------------------------------------------------------------------
# Dates: formats, date math


_ISO_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?)?)?"
    r"(?P<z>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DYNAMIC_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T[\d:.,]+(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")
_ISO_FORMATS = frozenset(
    {
        "strict_date_optional_time",
        "date_optional_time",
        "strict_date_optional_time_nanos",
        "strict_date_time",
        "date_time",
    }
)
_JAVA_TOKENS = (
    ("yyyy", r"(?P<y>\d{4})"),
    ("uuuu", r"(?P<y>\d{4})"),
    ("MM", r"(?P<mo>\d{2})"),
    ("dd", r"(?P<d>\d{2})"),
    ("HH", r"(?P<h>\d{2})"),
    ("mm", r"(?P<mi>\d{2})"),
    ("ss", r"(?P<s>\d{2})"),
    ("SSSSSSSSS", r"(?P<f>\d{9})"),
    ("SSSSSS", r"(?P<f>\d{6})"),
    ("SSS", r"(?P<f>\d{3})"),
    ("XXX", r"(?P<z>Z|[+-]\d{2}:\d{2})"),
    ("Z", r"(?P<z>Z|[+-]\d{4})"),
)
_MATH_RE = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")


def _zone(text: str | None, default: tzinfo) -> tzinfo:
    if not text:
        return default
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _millis(moment: datetime) -> int:
    return (moment - EPOCH) // _ONE_MS


def _from_groups(groups: Mapping[str, str | None], tz: tzinfo) -> int:
    fraction = (groups.get("f") or "0").ljust(9, "0")
    moment = datetime(
        int(groups["y"] or 0),
        int(groups.get("mo") or 1),
        int(groups.get("d") or 1),
        int(groups.get("h") or 0),
        int(groups.get("mi") or 0),
        int(groups.get("s") or 0),
        int(fraction[:6]),
        tzinfo=_zone(groups.get("z"), tz),
    )
    return _millis(moment)


@functools.lru_cache(maxsize=64)
def _java_pattern(pattern: str) -> re.Pattern[str]:
    out, position = "", 0
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            end = pattern.index("'", position + 1)
            out += re.escape(pattern[position + 1 : end])
            position = end + 1
            continue
        for token, regex in _JAVA_TOKENS:
            if pattern.startswith(token, position):
                out += regex
                position += len(token)
                break
        else:
            if char.isalpha():
                raise ValueError(f"date pattern letter [{char}] in [{pattern}]")
            out += re.escape(char)
            position += 1
    return re.compile(f"^{out}$")


def parse_date(value: Any, formats: Sequence[str], tz: tzinfo = UTC) -> int:
    """Epoch milliseconds of ``value`` in the first of ``formats`` that reads it; ValueError otherwise."""
    for fmt in formats:
        try:
            return _parse_one(value, fmt, tz)
        except (ValueError, TypeError, OverflowError):
            continue
    raise ValueError(f"failed to parse date field [{value}] with format [{'||'.join(formats)}]")


def _parse_one(value: Any, fmt: str, tz: tzinfo) -> int:
    if fmt in ("epoch_millis", "epoch_second"):
        if isinstance(value, bool):
            raise ValueError("boolean")
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, int | float):
            raise ValueError("not a number")
        return int(number * 1000) if fmt == "epoch_second" else int(number)
    if not isinstance(value, str):
        raise ValueError("not a string")
    if fmt in _ISO_FORMATS:
        match = _ISO_RE.match(value)
    else:
        try:
            match = _java_pattern(fmt).match(value)
        except ValueError:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"date format [{fmt}] is not implemented by FakeElasticsearch",
            ) from None
    if not match:
        raise ValueError(value)
    return _from_groups(match.groupdict(), tz)


def format_date(millis: int) -> str:
    moment = EPOCH + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _add_units(moment: datetime, amount: int, unit: str, tz: tzinfo) -> datetime:
    if unit in "hHms":
        seconds = {"h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
        return moment + timedelta(seconds=amount * seconds)
    local = moment.astimezone(tz)
    if unit in "dw":
        local = local.replace(tzinfo=None) + timedelta(days=amount * (7 if unit == "w" else 1))
        return local.replace(tzinfo=tz).astimezone(UTC)
    months = local.year * 12 + local.month - 1 + (amount * 12 if unit == "y" else amount)
    year, month = divmod(months, 12)
    day = min(local.day, _days_in_month(year, month + 1))
    return local.replace(year=year, month=month + 1, day=day).astimezone(UTC)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _round_down(moment: datetime, unit: str, tz: tzinfo) -> datetime:
    local = moment.astimezone(tz).replace(tzinfo=None)
    if unit == "y":
        local = datetime(local.year, 1, 1)
    elif unit == "M":
        local = datetime(local.year, local.month, 1)
    elif unit == "w":
        local = datetime(local.year, local.month, local.day) - timedelta(days=local.weekday())
    elif unit == "d":
        local = datetime(local.year, local.month, local.day)
    elif unit in "hH":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif unit == "m":
        local = local.replace(second=0, microsecond=0)
    else:
        local = local.replace(microsecond=0)
    return local.replace(tzinfo=tz).astimezone(UTC)


def parse_date_math(value: Any, formats: Sequence[str], tz: tzinfo, *, round_up: bool, now_ms: int) -> int:
    """A date or date-math expression (``now-15m/m``, ``2024-01-01||+1d``) in epoch milliseconds.

    ``round_up`` rounds to the last millisecond of the unit, as ``gt`` and ``lte`` do.
    """
    if not isinstance(value, str) or not (value.startswith("now") or "||" in value):
        return parse_date(value, formats, tz)
    if value.startswith("now"):
        base, expression = now_ms, value[3:]
    else:
        anchor, expression = value.split("||", 1)
        base = parse_date(anchor, formats, tz)
    moment = EPOCH + timedelta(milliseconds=base)
    position = 0
    while position < len(expression):
        match = _MATH_RE.match(expression, position)
        if match is None:
            raise ValueError(f"operator not supported for date math [{expression}]")
        if match.group(1):
            amount = int(match.group(2)) * (1 if match.group(1) == "+" else -1)
            moment = _add_units(moment, amount, match.group(3), tz)
        else:
            unit = match.group(4)
            moment = _round_down(moment, unit, tz)
            if round_up:
                moment = _add_units(moment, 1, unit, tz) - _ONE_MS
        position = match.end()
    return _millis(moment)


def _time_zone(name: Any) -> tzinfo:
    if not isinstance(name, str):
        raise _parsing("[range] time_zone must be a string")
    if name == "Z" or re.fullmatch(r"[+-]\d{2}(:?\d{2})?", name):
        return _zone(name, UTC)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _illegal(f"Unknown time-zone ID: {name}") from None


# ---------------------------------------------------------------------------------------------
# Mappings, documents, indices


def analyze(text: str) -> list[str]:
    """Approximately the standard analyzer: lowercased word tokens (``foo.bar`` and ``1.2`` stay whole)."""
    return _TOKEN_RE.findall(text.lower())


@dataclass
class FieldMapping:
    type: str
    formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    keyword_sub: int | None = None  # ignore_above of a text field's .keyword sub-field
    ignore_above: int | None = None  # of a keyword field


@dataclass(frozen=True)
class FieldRef:
    """A queryable field of one index: where its values live and how they are typed."""

    name: str
    path: str
    type: str
    formats: tuple[str, ...]
    ignore_above: int | None


@dataclass
class Doc:
    seq: int
    id: str
    source: dict[str, Any]
    version: int
    values: dict[str, list[Any]]
    objects: frozenset[str]
    _tokens: dict[str, list[list[str]]] = field(default_factory=dict)

    def field_values(self, ref: FieldRef) -> list[Any]:
        found = self.values.get(ref.path, [])
        if ref.ignore_above is not None:
            return [v for v in found if len(v) <= ref.ignore_above]
        return found

    def tokens(self, ref: FieldRef) -> list[list[str]]:
        """The analyzed tokens of each value of a text field."""
        cached = self._tokens.get(ref.path)
        if cached is None:
            cached = [analyze(str(v)) for v in self.values.get(ref.path, [])]
            self._tokens[ref.path] = cached
        return cached


class Index:
    def __init__(self, name: str) -> None:
        self.name = name
        self.uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.fields: dict[str, FieldMapping] = {}
        self.docs: dict[str, Doc] = {}
        self._seq = 0
        self._refs: dict[str, FieldRef | None] = {}

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def resolve(self, name: str) -> FieldRef | None:
        if name not in self._refs:
            self._refs[name] = self._resolve(name)
        return self._refs[name]

    def _resolve(self, name: str) -> FieldRef | None:
        mapping = self.fields.get(name)
        if mapping is not None:
            if mapping.type == "object":
                return None
            return FieldRef(name, name, mapping.type, mapping.formats, mapping.ignore_above)
        if "." in name:
            base, sub = name.rsplit(".", 1)
            parent = self.fields.get(base)
            if parent is not None and parent.type == "text" and sub == "keyword" and parent.keyword_sub:
                return FieldRef(name, base, "keyword", DEFAULT_DATE_FORMATS, parent.keyword_sub)
        return None

    def field_names(self) -> list[str]:
        """Every queryable field name, sub-fields included (what ``*`` expands to)."""
        names: list[str] = []
        for path, mapping in sorted(self.fields.items()):
            if mapping.type == "object":
                continue
            names.append(path)
            if mapping.keyword_sub:
                names.append(f"{path}.keyword")
        return names

    def add_mappings(self, properties: Mapping[str, Any], prefix: str = "") -> None:
        for key, spec in properties.items():
            path = f"{prefix}{key}"
            if not isinstance(spec, Mapping):
                raise EsError(400, "mapper_parsing_exception", f"Expected map for property [{path}]")
            if "properties" in spec or spec.get("type", "object") == "object":
                self.fields[path] = FieldMapping("object")
                self.add_mappings(spec.get("properties", {}), f"{path}.")
                continue
            kind = spec["type"]
            if kind not in _LEAF_TYPES:
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    f"field type [{kind}] is not implemented by FakeElasticsearch",
                )
            mapping = FieldMapping(kind)
            if kind == "date" and "format" in spec:
                mapping.formats = tuple(str(spec["format"]).split("||"))
            if kind == "keyword":
                mapping.ignore_above = spec.get("ignore_above")
            sub = (spec.get("fields") or {}).get("keyword")
            if kind == "text" and isinstance(sub, Mapping) and sub.get("type") == "keyword":
                mapping.keyword_sub = int(sub.get("ignore_above", LONG_MAX))
            self.fields[path] = mapping
        self._refs.clear()

    def index_document(self, doc_id: str, source: dict[str, Any]) -> tuple[Doc, bool]:
        """Stores (or replaces) a document, growing the mapping as dynamic mapping does."""
        raw: dict[str, list[Any]] = {}
        objects: set[str] = set()
        _flatten(source, "", raw, objects)
        new_fields: dict[str, FieldMapping] = {}
        for path in sorted(objects):
            known = self.fields.get(path)
            if known is not None and known.type != "object":
                raise _mapper_error(path, known.type, doc_id, "an object")
            new_fields.setdefault(path, FieldMapping("object"))
        values: dict[str, list[Any]] = {}
        for path, items in raw.items():
            mapping = self.fields.get(path) or new_fields.get(path)
            if mapping is None:
                mapping = _infer(items[0])
                new_fields[path] = mapping
            if mapping.type == "object":
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    f"object mapping for [{path}] tried to parse field [{path.rsplit('.', 1)[-1]}] "
                    "as object, but found a concrete value",
                )
            values[path] = [_coerce(mapping, item, path, doc_id) for item in items]
        for path, mapping in new_fields.items():
            self.fields.setdefault(path, mapping)
        if new_fields:
            self._refs.clear()
        previous = self.docs.get(doc_id)
        doc = Doc(
            seq=previous.seq if previous else self.next_seq(),
            id=doc_id,
            source=source,
            version=previous.version + 1 if previous else 1,
            values=values,
            objects=frozenset(objects),
        )
        self.docs[doc_id] = doc
        return doc, previous is None

    def ordered_docs(self) -> list[Doc]:
        return sorted(self.docs.values(), key=lambda d: d.seq)


def _flatten(value: Any, path: str, raw: dict[str, list[Any]], objects: set[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        if path:
            objects.add(path)
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            for index in range(child.count(".")):
                objects.add(child.rsplit(".", index + 1)[0])
            _flatten(item, child, raw, objects)
    elif isinstance(value, list):
        for item in value:
            _flatten(item, path, raw, objects)
    else:
        raw.setdefault(path, []).append(value)


def _infer(value: Any) -> FieldMapping:
    if isinstance(value, bool):
        return FieldMapping("boolean")
    if isinstance(value, int):
        return FieldMapping("long")
    if isinstance(value, float):
        return FieldMapping("float")
    if isinstance(value, str) and _DYNAMIC_DATE_RE.match(value):
        try:
            parse_date(value, DEFAULT_DATE_FORMATS)
            return FieldMapping("date")
        except ValueError:
            pass
    return FieldMapping("text", keyword_sub=KEYWORD_IGNORE_ABOVE)


def _mapper_error(path: str, kind: str, doc_id: str, value: Any) -> EsError:
    return EsError(
        400,
        "mapper_parsing_exception",
        f"failed to parse field [{path}] of type [{kind}] in document with id '{doc_id}'. "
        f"Preview of field's value: '{value}'",
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(mapping: FieldMapping, value: Any, path: str, doc_id: str) -> Any:
    kind = mapping.type
    try:
        if kind in ("text", "keyword"):
            return _as_text(value)
        if kind == "date":
            return parse_date(value, mapping.formats)
        if kind in _INTEGER_TYPES:
            return _to_number(value, integer=True)
        if kind in _FLOAT_TYPES:
            return _to_number(value, integer=False)
        if kind == "boolean":
            return _to_bool(value)
    except ValueError:
        raise _mapper_error(path, kind, doc_id, value) from None
    raise _mapper_error(path, kind, doc_id, value)


def _to_number(value: Any, *, integer: bool) -> int | float:
    if isinstance(value, bool):
        raise ValueError("boolean")
    number = float(value) if isinstance(value, str) else value
    if not isinstance(number, int | float):
        raise ValueError("not a number")
    return int(number) if integer else float(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ValueError(f"Can't parse boolean value [{value}], expected [true] or [false]")


# ---------------------------------------------------------------------------------------------
# Query DSL


Matcher = Callable[[Index, Doc], bool]


@dataclass
class QueryContext:
    now_ms: int


def compile_query(query: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(query, dict):
        raise _parsing("[_na] query malformed, must start with start_object")
    if not query:
        raise _parsing("query malformed, empty clause found")
    if len(query) > 1:
        first, second = list(query)[:2]
        raise _parsing(
            f"[{first}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ([{second}])"
        )
    name, body = next(iter(query.items()))
    compiler = _COMPILERS.get(name)
    if compiler is None:
        if name in _UNIMPLEMENTED_QUERIES:
            raise _unimplemented(f"the [{name}] query")
        raise _parsing(f"unknown query [{name}]")
    return compiler(body, ctx)


def _field_query(
    name: str, body: Any, main: str, allowed: frozenset[str], *, extra_top: frozenset[str] = frozenset()
) -> tuple[str, dict[str, Any]]:
    """Splits ``{field: value}`` / ``{field: {main: value, ...}}`` and checks the options."""
    if not isinstance(body, dict):
        raise _parsing(f"[{name}] query malformed, no start_object after query name")
    fields = [key for key in body if key not in extra_top]
    for key in body:
        if key in extra_top and key not in ("boost", "_name"):
            raise _parsing(f"[{name}] query does not support [{key}]")
        if key == "_name":
            raise _unimplemented(f"[{name}] option [_name]")
    if not fields:
        raise _parsing(f"[{name}] query malformed, no field")
    if len(fields) > 1:
        raise _parsing(
            f"[{name}] query doesn't support multiple fields, found [{fields[0]}] and [{fields[1]}]"
        )
    field_name = fields[0]
    value = body[field_name]
    if isinstance(value, dict):
        for key in value:
            if key not in allowed and key != main:
                if key == "_name":
                    raise _unimplemented(f"[{name}] option [_name]")
                raise _parsing(f"[{name}] query does not support [{key}]")
        if main not in value:
            raise _parsing(f"[{name}] query malformed, missing [{main}]")
        return field_name, dict(value)
    return field_name, {main: value}


def _per_index(convert: Callable[[FieldRef], Any]) -> Callable[[Index, FieldRef], Any]:
    """Caches a per-index conversion of the query's value (done once per index, not per document)."""
    cache: dict[str, Any] = {}

    def get(index: Index, ref: FieldRef) -> Any:
        key = f"{index.name}\0{ref.name}"
        if key not in cache:
            cache[key] = convert(ref)
        return cache[key]

    return get


class _NoMatch:
    """A query value that cannot match this field (a lenient conversion failure)."""


NO_MATCH = _NoMatch()


def _query_value(
    ref: FieldRef, value: Any, ctx: QueryContext, *, lenient: bool, round_up: bool = False
) -> Any:
    if isinstance(value, dict | list) or value is None:
        raise _parsing(f"[{ref.name}] value must be a scalar, got {json.dumps(value)}")
    try:
        if ref.type in ("text", "keyword"):
            return _as_text(value)
        if ref.type == "date":
            return parse_date_math(value, ref.formats, UTC, round_up=round_up, now_ms=ctx.now_ms)
        if ref.type in _INTEGER_TYPES or ref.type in _FLOAT_TYPES:
            return _to_number(value, integer=False)
        return _to_bool(value)
    except ValueError as exc:
        if lenient:
            return NO_MATCH
        if ref.type == "date":
            raise EsError(400, "parse_exception", str(exc), shard_level=True) from None
        if ref.type == "boolean":
            raise _shard_query_error(f"failed to create query: {exc}") from None
        raise _shard_query_error(f'failed to create query: For input string: "{value}"') from None


def _compile_term(body: Any, ctx: QueryContext) -> Matcher:
    name, params = _field_query("term", body, "value", frozenset({"boost", "case_insensitive"}))
    raw, insensitive = params["value"], bool(params.get("case_insensitive", False))
    target = _per_index(lambda ref: _query_value(ref, raw, ctx, lenient=False))

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        if ref is None:
            return False
        value = target(index, ref)
        if ref.type == "text":
            return any(value in tokens for tokens in doc.tokens(ref))
        if insensitive and ref.type == "keyword":
            return any(v.lower() == value.lower() for v in doc.field_values(ref))
        return value in doc.field_values(ref)

    return match


def _compile_terms(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict):
        raise _parsing("[terms] query malformed, no start_object after query name")
    fields = [key for key in body if key not in ("boost", "_name")]
    if "_name" in body:
        raise _unimplemented("[terms] option [_name]")
    if len(fields) != 1:
        raise _parsing(f"[terms] query requires exactly one field, found {fields}")
    name = fields[0]
    raw = body[name]
    if isinstance(raw, dict):
        raise _unimplemented("the terms lookup")
    if not isinstance(raw, list):
        raise _parsing(f"[terms] query does not support [{name}] as a value: it must be an array")
    targets = _per_index(
        lambda ref: {v for v in (_query_value(ref, item, ctx, lenient=False) for item in raw)}
    )

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        if ref is None:
            return False
        wanted = targets(index, ref)
        if ref.type == "text":
            return any(token in wanted for tokens in doc.tokens(ref) for token in tokens)
        return any(value in wanted for value in doc.field_values(ref))

    return match


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
    tokens = analyze(_as_text(query)) if not isinstance(query, dict | list) else []
    target = _per_index(lambda ref: _query_value(ref, query, ctx, lenient=lenient))

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        if ref is None:
            return False
        if ref.type != "text":
            value = target(index, ref)
            return value is not NO_MATCH and value in doc.field_values(ref)
        if not tokens:
            return False
        if phrase:
            return any(_has_phrase(value_tokens, tokens, slop) for value_tokens in doc.tokens(ref))
        present = {token for value_tokens in doc.tokens(ref) for token in value_tokens}
        hits = sum(1 for token in tokens if token in present)
        if operator == "and":
            return hits == len(tokens)
        needed = _minimum_should_match(minimum_should_match, len(tokens), default=1)
        return hits >= needed

    return match


def _has_phrase(haystack: list[str], phrase: list[str], slop: int) -> bool:
    if slop == 0:
        width = len(phrase)
        return any(haystack[i : i + width] == phrase for i in range(len(haystack) - width + 1))
    for start, token in enumerate(haystack):
        if token != phrase[0]:
            continue
        position, gaps = start, 0
        for wanted in phrase[1:]:
            following = next((j for j in range(position + 1, len(haystack)) if haystack[j] == wanted), None)
            if following is None:
                break
            gaps += following - position - 1
            position = following
        else:
            if gaps <= slop:
                return True
    return False


def _compile_match(body: Any, ctx: QueryContext) -> Matcher:
    allowed = frozenset({"operator", "boost", "lenient", "minimum_should_match", "zero_terms_query"})
    name, params = _field_query("match", body, "query", allowed)
    operator = str(params.get("operator", "or")).lower()
    if operator not in ("or", "and"):
        raise _illegal(f"No enum constant org.elasticsearch.index.query.Operator.{operator.upper()}")
    if params.get("zero_terms_query", "none") != "none":
        raise _unimplemented("[match] zero_terms_query [all]")
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


def _expand_fields(index: Index, patterns: Sequence[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        bare = pattern.split("^", 1)[0]
        if "*" in bare:
            names.extend(n for n in index.field_names() if fnmatch.fnmatchcase(n, bare))
        else:
            names.append(bare)
    return list(dict.fromkeys(names))


def _field_list(name: str, raw: Any) -> list[str]:
    if raw is None:
        return ["*"]
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise _parsing(f"[{name}] query does not support [fields] of that shape")
    return list(raw)


def _compile_multi_match(body: Any, ctx: QueryContext) -> Matcher:
    allowed = {"query", "fields", "type", "operator", "lenient", "boost", "slop", "minimum_should_match"}
    if not isinstance(body, dict):
        raise _parsing("[multi_match] query malformed")
    for key in body:
        if key not in allowed:
            raise _parsing(f"[multi_match] query does not support [{key}]")
    if "query" not in body:
        raise _illegal("[multi_match] requires query value")
    kind = body.get("type", "best_fields")
    if kind not in ("best_fields", "most_fields", "phrase"):
        raise _unimplemented(f"[multi_match] type [{kind}]")
    operator = str(body.get("operator", "or")).lower()
    patterns = _field_list("multi_match", body.get("fields"))
    lenient = bool(body.get("lenient", patterns == ["*"]))
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
                for name in _expand_fields(index, patterns)
            ]
        return cache[index.name]

    return lambda index, doc: any(m(index, doc) for m in matchers(index))


def _compile_range(body: Any, ctx: QueryContext) -> Matcher:
    allowed = frozenset({"gte", "gt", "lte", "lt", "format", "time_zone", "boost", "relation"})
    if not isinstance(body, dict) or len(body) != 1:
        raise _parsing("[range] query malformed, expected exactly one field")
    name, params = next(iter(body.items()))
    if not isinstance(params, dict):
        raise _parsing(f"[range] query malformed, no start_object after field [{name}]")
    for key in params:
        if key not in allowed:
            raise _parsing(f"[range] query does not support [{key}]")
    if params.get("relation", "intersects") != "intersects":
        raise _unimplemented("[range] relation")
    tz = _time_zone(params["time_zone"]) if "time_zone" in params else UTC
    bounds = [(op, params[op]) for op in ("gte", "gt", "lte", "lt") if params.get(op) is not None]

    def convert(ref: FieldRef) -> list[tuple[str, Any]]:
        converted = []
        for op, raw in bounds:
            if ref.type == "date":
                formats = tuple(str(params["format"]).split("||")) if "format" in params else ref.formats
                try:
                    value = parse_date_math(raw, formats, tz, round_up=op in ("gt", "lte"), now_ms=ctx.now_ms)
                except ValueError as exc:
                    raise EsError(400, "parse_exception", str(exc), shard_level=True) from None
            else:
                value = _query_value(ref, raw, ctx, lenient=False)
            converted.append((op, value))
        return converted

    limits = _per_index(convert)

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

    def match(index: Index, doc: Doc) -> bool:
        ref = index.resolve(name)
        if ref is None:
            return False
        checks = limits(index, ref)
        if ref.type == "text":
            return any(within(t, checks) for tokens in doc.tokens(ref) for t in tokens)
        return any(within(v, checks) for v in doc.field_values(ref))

    return match


def _compile_exists(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict) or set(body) - {"field", "boost"} or "field" not in body:
        raise _parsing('[exists] query malformed, expected {"field": ...}')
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


def _compile_match_all(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict) or set(body) - {"boost"}:
        raise _parsing("[match_all] query does not support those options")
    return lambda index, doc: True


def _compile_match_none(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict) or set(body) - {"boost"}:
        raise _parsing("[match_none] query does not support those options")
    return lambda index, doc: False


def _clauses(value: Any, ctx: QueryContext) -> list[Matcher]:
    items = value if isinstance(value, list) else [value]
    return [compile_query(item, ctx) for item in items]


def _minimum_should_match(raw: Any, count: int, *, default: int) -> int:
    if raw is None:
        return default
    text = str(raw).strip()
    match = re.fullmatch(r"(-?)(\d+)(%?)", text)
    if match is None:
        raise _unimplemented(f"minimum_should_match [{text}]")
    negative, number, percent = match.group(1) == "-", int(match.group(2)), match.group(3) == "%"
    amount = count * number // 100 if percent else number
    return max(0, count - amount) if negative else amount


def _compile_bool(body: Any, ctx: QueryContext) -> Matcher:
    if not isinstance(body, dict):
        raise _parsing("[bool] query malformed")
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
            raise _unimplemented("[bool] option [_name]")
        if key not in allowed:
            raise _parsing(f"[bool] query does not support [{key}]")
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


# simple_query_string ------------------------------------------------------------------------


@dataclass
class _SqsLeaf:
    text: str
    phrase: bool = False
    prefix: bool = False
    fuzzy: int | None = None
    slop: int = 0


@dataclass
class _SqsNot:
    child: Any


@dataclass
class _SqsBool:
    op: str  # "and" / "or"
    children: list[Any]


class _SqsParser:
    """Lucene's SimpleQueryParser grammar: ``+`` AND, ``|`` OR, ``-`` NOT, ``"phrase"``, ``prefix*``,
    ``term~N``, ``( )``, ``\\`` escapes. Like the real one it never fails: odd input just parses somehow.
    """

    def __init__(self, text: str, default_operator: str) -> None:
        self.text = text
        self.pos = 0
        self.default = default_operator

    def parse(self) -> Any:
        return self._sub_query(top=True)

    def _sub_query(self, *, top: bool) -> Any:
        tree: Any = None
        previous: str | None = None
        current: str | None = None
        negations = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            branch: Any = None
            if char == "(":
                self.pos += 1
                branch = self._sub_query(top=False)
            elif char == ")":
                self.pos += 1
                if not top:
                    break
                continue
            elif char == '"':
                branch = self._phrase()
            elif char == "+":
                if current is None and tree is not None:
                    current = "and"
                self.pos += 1
                continue
            elif char == "|":
                if current is None and tree is not None:
                    current = "or"
                self.pos += 1
                continue
            elif char == "-":
                negations += 1
                self.pos += 1
                continue
            elif char.isspace():
                self.pos += 1
                continue
            else:
                branch = self._token()
            if branch is not None:
                if negations % 2 == 1:
                    branch = _SqsNot(branch)
                if tree is None:
                    tree = branch
                else:
                    op = current or self.default
                    if previous != op or not isinstance(tree, _SqsBool):
                        tree = _SqsBool(op, [tree])
                    tree.children.append(branch)
                    previous = op
                current = None
            negations = 0
        return tree

    def _phrase(self) -> Any:
        end = self.text.find('"', self.pos + 1)
        if end < 0:
            self.pos += 1
            return self._token()
        text = self.text[self.pos + 1 : end]
        self.pos = end + 1
        slop = self._tilde()
        return _SqsLeaf(text, phrase=True, slop=slop or 0) if text.strip() else None

    def _tilde(self) -> int | None:
        if self.pos < len(self.text) and self.text[self.pos] == "~":
            self.pos += 1
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos].isdigit():
                self.pos += 1
            return int(self.text[start : self.pos]) if self.pos > start else 2
        return None

    def _token(self) -> Any:
        out = ""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out += self.text[self.pos + 1]
                self.pos += 2
                continue
            if char in '"|+()' or char.isspace():
                break
            if char == "~":
                fuzzy = self._tilde()
                return _SqsLeaf(out, fuzzy=fuzzy) if out else None
            out += char
            self.pos += 1
        if not out:
            return None
        if out.endswith("*") and len(out) > 1:
            return _SqsLeaf(out.rstrip("*"), prefix=True)
        return _SqsLeaf(out)


def _edit_distance(a: str, b: str, limit: int) -> int:
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _compile_simple_query_string(body: Any, ctx: QueryContext) -> Matcher:
    allowed = {"query", "fields", "default_operator", "lenient", "analyze_wildcard", "boost", "flags"}
    if not isinstance(body, dict):
        raise _parsing("[simple_query_string] query malformed")
    for key in body:
        if key not in allowed:
            raise _parsing(f"[simple_query_string] unsupported field [{key}]")
    if "query" not in body:
        raise _parsing("[simple_query_string] query text missing")
    if body.get("flags", "ALL") != "ALL":
        raise _unimplemented("[simple_query_string] flags other than ALL")
    operator = str(body.get("default_operator", "or")).lower()
    if operator not in ("or", "and"):
        raise _illegal(f"No enum constant org.elasticsearch.index.query.Operator.{operator.upper()}")
    patterns = _field_list("simple_query_string", body.get("fields"))
    lenient = bool(body.get("lenient", patterns == ["*"]))
    tree = _SqsParser(str(body["query"]), operator).parse()

    def leaf_matches(leaf: _SqsLeaf, index: Index, doc: Doc) -> bool:
        for name in _expand_fields(index, patterns):
            ref = index.resolve(name)
            if ref is None:
                continue
            if ref.type == "text":
                if _text_leaf(leaf, doc.tokens(ref), operator):
                    return True
            elif ref.type == "keyword":
                values = doc.field_values(ref)
                if leaf.prefix and any(v.startswith(leaf.text) for v in values):
                    return True
                if not leaf.prefix and leaf.text in values:
                    return True
            else:
                value = _query_value(ref, leaf.text, ctx, lenient=lenient)
                if value is not NO_MATCH and value in doc.field_values(ref):
                    return True
        return False

    def evaluate(node: Any, index: Index, doc: Doc) -> bool:
        if isinstance(node, _SqsLeaf):
            return leaf_matches(node, index, doc)
        if isinstance(node, _SqsNot):
            return not evaluate(node.child, index, doc)
        if isinstance(node, _SqsBool):
            results = (evaluate(child, index, doc) for child in node.children)
            return all(results) if node.op == "and" else any(results)
        return False

    return lambda index, doc: tree is not None and evaluate(tree, index, doc)


def _text_leaf(leaf: _SqsLeaf, value_tokens: list[list[str]], operator: str) -> bool:
    if leaf.prefix:
        prefix = leaf.text.lower()
        return any(token.startswith(prefix) for tokens in value_tokens for token in tokens)
    wanted = analyze(leaf.text)
    if not wanted:
        return False
    if leaf.phrase:
        return any(_has_phrase(tokens, wanted, leaf.slop) for tokens in value_tokens)
    present = {token for tokens in value_tokens for token in tokens}
    if leaf.fuzzy is not None:
        limit = leaf.fuzzy
        found = [any(_edit_distance(w, p, limit) <= limit for p in present) for w in wanted]
    else:
        found = [w in present for w in wanted]
    return all(found) if operator == "and" else any(found)


_COMPILERS: dict[str, Callable[[Any, QueryContext], Matcher]] = {
    "bool": _compile_bool,
    "term": _compile_term,
    "terms": _compile_terms,
    "match": _compile_match,
    "match_phrase": _compile_match_phrase,
    "multi_match": _compile_multi_match,
    "simple_query_string": _compile_simple_query_string,
    "range": _compile_range,
    "exists": _compile_exists,
    "match_all": _compile_match_all,
    "match_none": _compile_match_none,
}


# ---------------------------------------------------------------------------------------------
# Sorting, source filtering


@dataclass(frozen=True)
class SortSpec:
    field: str
    desc: bool
    missing_first: bool = False
    mode: str | None = None
    unmapped_type: str | None = None
    format: str | None = None


_SORT_OPTIONS = frozenset({"order", "missing", "mode", "unmapped_type", "format"})


def parse_sort(raw: Any) -> list[SortSpec]:
    items = raw if isinstance(raw, list) else [raw]
    specs: list[SortSpec] = []
    for item in items:
        if isinstance(item, str):
            specs.append(SortSpec(item, desc=item == "_score"))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise _parsing(f"[sort] malformed sort element {json.dumps(item)}")
        name, options = next(iter(item.items()))
        if isinstance(options, str):
            options = {"order": options}
        if not isinstance(options, dict):
            raise _parsing(f"[sort] malformed options for [{name}]")
        for key in options:
            if key not in _SORT_OPTIONS:
                raise _parsing(f"[field_sort] unknown field [{key}]")
        order = str(options.get("order", "desc" if name == "_score" else "asc")).lower()
        if order not in ("asc", "desc"):
            raise _illegal(f"Unknown SortOrder [{order}]")
        missing = options.get("missing", "_last")
        if missing not in ("_last", "_first"):
            raise _unimplemented("[sort] missing values other than _last/_first")
        mode = options.get("mode")
        if mode not in (None, "min", "max"):
            raise _unimplemented(f"[sort] mode [{mode}]")
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
    specs = []
    for part in raw.split(","):
        name, _, order = part.partition(":")
        specs.extend(parse_sort([{name: order or ("desc" if name == "_score" else "asc")}]))
    return specs


def _numeric_like(kind: str) -> bool:
    return kind == "date" or kind == "boolean" or kind in _INTEGER_TYPES


def _missing_sentinel(spec: SortSpec, kind: str) -> Any:
    """What Elasticsearch shows as the sort value of a document without the field."""
    if not _numeric_like(kind):
        return None
    goes_high = spec.desc == spec.missing_first
    return LONG_MAX if goes_high else LONG_MIN


@dataclass
class _Candidate:
    index: Index
    shard: int
    doc: Doc
    keys: list[tuple[bool, Any]]
    shown: list[Any]


def _sort_key(spec: SortSpec, index: Index, shard: int, doc: Doc) -> tuple[tuple[bool, Any], Any]:
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
        raise _shard_query_error(f"No mapping found for [{spec.field}] in order to sort on")
    if ref.type == "text":
        raise _illegal(
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


def _after_key(spec: SortSpec, kind: str | None, raw: Any) -> tuple[bool, Any]:
    """A ``search_after`` value as a comparable key (sentinels and null mean "missing")."""
    if raw is None:
        return True, None
    if kind is not None and _numeric_like(kind) and raw in (LONG_MAX, LONG_MIN) and not isinstance(raw, bool):
        return True, None
    if kind == "date" and isinstance(raw, str):
        try:
            return False, parse_date(raw, DEFAULT_DATE_FORMATS)
        except ValueError:
            raise _illegal(f"search_after value [{raw}] is not a date") from None
    if kind == "keyword" and not isinstance(raw, str):
        return False, str(raw)
    return False, raw


def _compare(a: list[tuple[bool, Any]], b: list[tuple[bool, Any]], specs: Sequence[SortSpec]) -> int:
    for (a_missing, a_value), (b_missing, b_value), spec in zip(a, b, specs, strict=True):
        if a_missing or b_missing:
            if a_missing and b_missing:
                continue
            first = spec.missing_first
            return (-1 if first else 1) if a_missing else (1 if first else -1)
        try:
            order = int(a_value > b_value) - int(a_value < b_value)
        except TypeError:
            raise _illegal(f"Can't sort on field [{spec.field}]: values of different types") from None
        if order:
            return -order if spec.desc else order
    return 0


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
        raise _parsing("[_source] must be a boolean, a string, an array or an object")
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


# ---------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class _Fault:
    status: int | None
    hang_s: float
    remaining: int | None
    error_type: str
    reason: str


@dataclass
class _Pit:
    shards: list[tuple[int, Index, list[Doc]]]
    keep_alive_ms: int
    expires_at: float


class FakeElasticsearch:
    """An in-memory Elasticsearch 8 node. Serve it with ``tests.fakes.server.serve``.

    Tests add data with :meth:`create_index` / :meth:`add_documents` (or over
    HTTP), inject failures with :meth:`fail_with` / :meth:`hang` /
    ``product_header = False`` / :meth:`stop`, and inspect :attr:`requests`.
    """

    def __init__(self, *, cluster_name: str = "panorama-test", version: str = ES_VERSION) -> None:
        self.cluster_name = cluster_name
        self.version = version
        self.product_header = True
        self.rotate_pit_ids = False
        self.requests: list[RecordedRequest] = []
        self._indices: dict[str, Index] = {}
        self._pits: dict[str, _Pit] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._stop: Callable[[], None] | None = None
        self._id_counter = 0
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "HEAD", "POST", "PUT", "DELETE"])]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- test-side API ------------------------------------------------------------------------

    def create_index(self, name: str, mappings: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._create_index(name, mappings)

    def add_documents(
        self, index: str, documents: Iterable[Mapping[str, Any]], *, ids: Iterable[str] | None = None
    ) -> list[str]:
        """Indexes documents (creating the index on first use) and returns their ids."""
        id_iter = iter(ids) if ids is not None else None
        added = []
        with self._lock:
            target = self._index_for_write(index)
            for document in documents:
                doc_id = next(id_iter) if id_iter is not None else self._new_id()
                target.index_document(doc_id, json.loads(json.dumps(document)))
                added.append(doc_id)
        return added

    def add_document(self, index: str, document: Mapping[str, Any], doc_id: str | None = None) -> str:
        return self.add_documents(index, [document], ids=[doc_id] if doc_id else None)[0]

    @property
    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    def count(self, index: str) -> int:
        with self._lock:
            return len(self._indices[index].docs)

    def fail_with(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        error_type: str = "cluster_block_exception",
        reason: str = "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
    ) -> None:
        """Answers the next ``times`` requests (all, when None) with ``status`` and an ES error body."""
        with self._lock:
            self._faults.append(_Fault(status, 0.0, times, error_type, reason))

    def hang(self, seconds: float, *, times: int | None = None) -> None:
        """Delays the next ``times`` requests by ``seconds`` (ends early if the client goes away)."""
        with self._lock:
            self._faults.append(_Fault(None, seconds, times, "", ""))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def open_pits(self) -> int:
        with self._lock:
            self._expire_pits()
            return len({id(pit) for pit in self._pits.values()})

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def bind_stop(self, stop: Callable[[], None]) -> None:
        """Set by the fixture: how :meth:`stop` shuts the server down."""
        self._stop = stop

    def stop(self) -> None:
        """Stops serving: connections to the URL are refused from now on."""
        self.close()
        if self._stop is not None:
            self._stop()

    def close(self) -> None:
        """Releases hanging requests (called before the server shuts down)."""
        self._closing.set()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        raw_body = await request.body()
        segments = [unquote(s) for s in request.url.path.strip("/").split("/") if s]
        params = dict(request.query_params)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.url.path, params, _loose_json(raw_body), dict(request.headers)
                )
            )
            fault = self._take_fault()
        if fault is not None and fault.hang_s:
            await self._hang(request, fault.hang_s)
        try:
            compat = _compat_version(request)
            if fault is not None and fault.status is not None:
                raise EsError(fault.status, fault.error_type, fault.reason)
            with self._lock:
                status, payload = self._route(request.method, segments, params, raw_body, started)
        except EsError as exc:
            compat = _safe_compat(request)
            status, payload = exc.status, exc.body()
        return self._respond(request.method, status, payload, compat)

    def _respond(self, method: str, status: int, payload: Any, compat: int | None) -> Response:
        headers = {"X-elastic-product": "Elasticsearch"} if self.product_header else {}
        media = (
            f"application/vnd.elasticsearch+json;compatible-with={compat}" if compat else "application/json"
        )
        content = b"" if method == "HEAD" else json.dumps(payload, separators=(",", ":")).encode()
        return Response(content, status_code=status, headers=headers, media_type=media)

    async def _hang(self, request: Request, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._closing.is_set():
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    def _take_fault(self) -> _Fault | None:
        while self._faults:
            fault = self._faults[0]
            if fault.remaining is None:
                return fault
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.pop(0)
                return fault
            self._faults.pop(0)
        return None

    def _route(
        self, method: str, parts: list[str], params: dict[str, str], body: bytes, started: float
    ) -> tuple[int, Any]:
        routes: dict[str, Callable[[], tuple[int, Any]]] = {}
        n = len(parts)
        if n == 0:
            routes = {"GET": self._info, "HEAD": lambda: (200, {})}
        elif parts == ["_search"] or (n == 2 and parts[1] == "_search"):
            target = parts[0] if n == 2 else None
            routes = {m: (lambda: self._search(target, params, body, started)) for m in ("GET", "POST")}
        elif n == 2 and parts[1] == "_pit":
            routes = {"POST": lambda: self._open_pit(parts[0], params)}
        elif parts == ["_pit"]:
            routes = {"DELETE": lambda: self._close_pit(body)}
        elif parts == ["_bulk"] or (n == 2 and parts[1] == "_bulk"):
            default = parts[0] if n == 2 else None
            routes = {m: (lambda: self._bulk(default, params, body)) for m in ("POST", "PUT")}
        elif n == 2 and parts[1] == "_doc":
            routes = {"POST": lambda: self._put_doc(parts[0], None, body)}
        elif n == 3 and parts[1] == "_doc":
            routes = {m: (lambda: self._put_doc(parts[0], parts[2], body)) for m in ("PUT", "POST")}
        elif parts[:2] == ["_cat", "indices"] and n <= 3:
            routes = {"GET": lambda: self._cat_indices(parts[2] if n == 3 else None, params)}
        elif n == 1 and not parts[0].startswith("_"):
            routes = {"PUT": lambda: self._put_index(parts[0], body)}
        path = "/" + "/".join(parts)
        if not routes:
            return 400, {"error": f"no handler found for uri [{path}] and method [{method}]", "status": 400}
        handler = routes.get(method)
        if handler is None:
            allowed = ", ".join(sorted(routes))
            reason = f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"
            return 405, {"error": reason, "status": 405}
        return handler()

    # -- endpoints ----------------------------------------------------------------------------

    def _info(self) -> tuple[int, Any]:
        return 200, {
            "name": "fake-node-1",
            "cluster_name": self.cluster_name,
            "cluster_uuid": "fAkEcLuStEr0uUiD0000Aa",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2024-10-25T10:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _search(
        self, target: str | None, params: dict[str, str], raw: bytes, started: float
    ) -> tuple[int, Any]:
        path = f"/{target}/_search" if target else "/_search"
        _check_params(path, params, _SEARCH_PARAMS)
        body = _json_body(raw)
        for key in body:
            if key in _UNIMPLEMENTED_BODY_KEYS:
                raise _unimplemented(f"search option [{key}]")
            if key not in _SEARCH_BODY_KEYS:
                kind = "START_OBJECT" if isinstance(body[key], dict) else "VALUE"
                raise _parsing(f"Unknown key for a {kind} in [{key}].")
        pit = body.get("pit")
        if pit is not None:
            problems = []
            if target:
                problems.append(
                    "[indices] cannot be used with point in time. "
                    "Do not specify any index with point in time."
                )
            if any(p in params for p in ("ignore_unavailable", "allow_no_indices", "expand_wildcards")):
                problems.append("[indicesOptions] cannot be used with point in time")
            if problems:
                numbered = "".join(f"{i}: {p};" for i, p in enumerate(problems, 1))
                raise EsError(400, "action_request_validation_exception", f"Validation Failed: {numbered}")
            pit_id, live = self._lookup_pit(pit)
            shards = live.shards
        else:
            pit_id = None
            indices = self._resolve(
                target or "_all",
                ignore_unavailable=_param_bool(params, "ignore_unavailable", False),
                allow_no_indices=_param_bool(params, "allow_no_indices", True),
            )
            shards = [(n, index, index.ordered_docs()) for n, index in enumerate(indices)]
        result = self._execute(body, params, shards, pit is not None)
        result["took"] = int((time.perf_counter() - started) * 1000)
        if pit_id is not None:
            return 200, {"pit_id": pit_id, **result}
        return 200, result

    def _execute(
        self,
        body: dict[str, Any],
        params: dict[str, str],
        shards: list[tuple[int, Index, list[Doc]]],
        with_pit: bool,
    ) -> dict[str, Any]:
        ctx = QueryContext(now_ms=_millis(datetime.now(UTC)))
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
            raise _illegal("[_shard_doc] sort field cannot be used without [point in time]")
        if size < 0 or offset < 0:
            raise _illegal(f"[{'size' if size < 0 else 'from'}] parameter cannot be negative")
        if offset + size > MAX_RESULT_WINDOW:
            raise _illegal(
                "Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{offset + size}]. See the scroll api for a more efficient "
                "way to request large data sets. This limit can be set by changing the "
                "[index.max_result_window] index level setting.",
                shard_level=True,
            ).with_index(shards[0][1].name if shards else "_na_")
        after = body.get("search_after")
        if after is not None:
            if not isinstance(after, list):
                raise _parsing("[search_after] must be an array")
            if len(after) != len(specs):
                raise _illegal(f"search_after has {len(after)} value(s) but sort has {len(specs)}.")
            if offset not in (0, -1):
                raise _illegal("`from` parameter must be set to 0 when `search_after` is used.")
        source_spec = body.get("_source", _source_param(params))
        track = body.get("track_total_hits", params.get("track_total_hits", DEFAULT_TRACK_TOTAL_HITS))
        candidates: list[_Candidate] = []
        failures: list[tuple[Index, EsError]] = []
        for shard, index, docs in shards:
            try:
                found = []
                for doc in docs:
                    if matcher(index, doc):
                        pairs = [_sort_key(spec, index, shard, doc) for spec in specs]
                        found.append(
                            _Candidate(index, shard, doc, [p[0] for p in pairs], [p[1] for p in pairs])
                        )
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
            kinds = [self._sort_kind(spec, shards) for spec in specs]
            after_keys = [
                _after_key(spec, kind, raw) for spec, kind, raw in zip(specs, kinds, after, strict=True)
            ]
            candidates = [c for c in candidates if _compare(c.keys, after_keys, specs) > 0]
        candidates.sort(key=functools.cmp_to_key(lambda a, b: _compare(a.keys, b.keys, specs)))
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
                {"shard": 0, "index": index.name, "node": NODE_ID, "reason": exc.cause}
                for index, exc in failures
            ]
        return {"took": 0, "timed_out": False, "_shards": shards_obj, "hits": hits_obj}

    @staticmethod
    def _sort_kind(spec: SortSpec, shards: list[tuple[int, Index, list[Doc]]]) -> str | None:
        if spec.field in ("_score", "_doc", "_shard_doc"):
            return "long"
        for _, index, _ in shards:
            ref = index.resolve(spec.field)
            if ref is not None:
                return ref.type
        return spec.unmapped_type

    def _open_pit(self, target: str, params: dict[str, str]) -> tuple[int, Any]:
        _check_params(
            f"/{target}/_pit",
            params,
            frozenset(
                {"keep_alive", "ignore_unavailable", "expand_wildcards", "allow_partial_search_results"}
            ),
        )
        if "keep_alive" not in params:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [keep_alive] is not specified;",
            )
        keep_alive = _time_value(params["keep_alive"], "keep_alive")
        indices = self._resolve(
            target, ignore_unavailable=_param_bool(params, "ignore_unavailable", False), allow_no_indices=True
        )
        shards = [(n, index, index.ordered_docs()) for n, index in enumerate(indices)]
        pit_id = _new_pit_id()
        self._pits[pit_id] = _Pit(shards, keep_alive, time.monotonic() + keep_alive / 1000)
        counts = {"total": len(shards), "successful": len(shards), "skipped": 0, "failed": 0}
        return 200, {"id": pit_id, "_shards": counts}

    def _lookup_pit(self, pit: Any) -> tuple[str, _Pit]:
        if not isinstance(pit, dict) or not isinstance(pit.get("id"), str) or set(pit) - {"id", "keep_alive"}:
            raise _parsing("[pit] must be an object with [id] and optional [keep_alive]")
        self._expire_pits()
        live = self._pits.get(pit["id"])
        if live is None:
            context = sum(pit["id"].encode()) % 1000
            raise EsError(
                404,
                "search_context_missing_exception",
                f"No search context found for id [{context}]",
                shard_level=True,
            )
        if "keep_alive" in pit:
            live.keep_alive_ms = _time_value(str(pit["keep_alive"]), "keep_alive")
        live.expires_at = time.monotonic() + live.keep_alive_ms / 1000
        pit_id = pit["id"]
        if self.rotate_pit_ids:
            pit_id = _new_pit_id()
            self._pits[pit_id] = live
        return pit_id, live

    def _expire_pits(self) -> None:
        now = time.monotonic()
        for pit_id in [p for p, pit in self._pits.items() if pit.expires_at < now]:
            del self._pits[pit_id]

    def _close_pit(self, raw: bytes) -> tuple[int, Any]:
        body = _json_body(raw)
        pit_id = body.get("id")
        if not isinstance(pit_id, str):
            raise EsError(
                400, "action_request_validation_exception", "Validation Failed: 1: no pit ids specified;"
            )
        self._expire_pits()
        live = self._pits.get(pit_id)
        if live is None:
            return 404, {"succeeded": True, "num_freed": 0}
        for alias in [p for p, pit in self._pits.items() if pit is live]:
            del self._pits[alias]
        return 200, {"succeeded": True, "num_freed": len(live.shards)}

    def _put_doc(self, index_name: str, doc_id: str | None, raw: bytes) -> tuple[int, Any]:
        body = _json_body(raw)
        index = self._index_for_write(index_name)
        doc, created = index.index_document(doc_id or self._new_id(), body)
        return (201 if created else 200), self._write_result(index, doc, created)

    def _bulk(self, default: str | None, params: dict[str, str], raw: bytes) -> tuple[int, Any]:
        _check_params("/_bulk", params, frozenset({"refresh", "pretty", "error_trace"}))
        text = raw.decode("utf-8")
        if not text.endswith("\n"):
            raise _illegal("The bulk request must be terminated by a newline [\\n]")
        lines = [line for line in text.split("\n") if line.strip()]
        items: list[dict[str, Any]] = []
        position = 0
        while position < len(lines):
            action_line = _loose_json(lines[position].encode())
            position += 1
            if not isinstance(action_line, dict) or len(action_line) != 1:
                raise _illegal(f"Malformed action/metadata line [{position}], expected START_OBJECT")
            action, meta = next(iter(action_line.items()))
            meta = meta or {}
            index_name = meta.get("_index", default)
            doc_id = meta.get("_id")
            if action not in ("index", "create", "delete", "update"):
                raise _illegal(
                    f"Malformed action/metadata line [{position}], expected field [create], [delete], "
                    f"[index] or [update] but found [{action}]"
                )
            if index_name is None:
                raise EsError(
                    400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"
                )
            if action == "delete":
                target = self._indices.get(index_name)
                removed = target.docs.pop(str(doc_id), None) if target else None
                result = {
                    "_index": index_name,
                    "_id": doc_id,
                    "result": "deleted" if removed else "not_found",
                }
                items.append({"delete": {**result, "status": 200 if removed else 404}})
                continue
            if position >= len(lines):
                raise _illegal("The bulk request must be terminated by a newline [\\n]")
            source = _loose_json(lines[position].encode())
            position += 1
            if action == "update":
                items.append(
                    {
                        action: {
                            "_index": index_name,
                            "_id": doc_id,
                            "status": 400,
                            "error": {
                                "type": "illegal_argument_exception",
                                "reason": "bulk [update] is not implemented by FakeElasticsearch",
                            },
                        }
                    }
                )
                continue
            items.append(self._bulk_write(action, index_name, doc_id, source))
        errors = any("error" in next(iter(item.values())) for item in items)
        return 200, {"errors": errors, "took": 1, "items": items}

    def _bulk_write(self, action: str, index_name: str, doc_id: Any, source: Any) -> dict[str, Any]:
        try:
            if not isinstance(source, dict):
                raise EsError(400, "mapper_parsing_exception", "failed to parse: source is not an object")
            index = self._index_for_write(index_name)
            if action == "create" and doc_id is not None and str(doc_id) in index.docs:
                current = index.docs[str(doc_id)].version
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [{current}])",
                    extra={"index_uuid": index.uuid, "shard": "0", "index": index_name},
                )
            doc, created = index.index_document(str(doc_id) if doc_id is not None else self._new_id(), source)
            return {action: {**self._write_result(index, doc, created), "status": 201 if created else 200}}
        except EsError as exc:
            return {action: {"_index": index_name, "_id": doc_id, "status": exc.status, "error": exc.cause}}

    def _write_result(self, index: Index, doc: Doc, created: bool) -> dict[str, Any]:
        return {
            "_index": index.name,
            "_id": doc.id,
            "_version": doc.version,
            "result": "created" if created else "updated",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": doc.seq,
            "_primary_term": 1,
        }

    def _put_index(self, name: str, raw: bytes) -> tuple[int, Any]:
        body = _json_body(raw)
        for key in body:
            if key not in ("mappings", "settings"):
                raise _parsing(f"unknown key [{key}] for create index")
        self._create_index(name, body.get("mappings"))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _cat_indices(self, target: str | None, params: dict[str, str]) -> tuple[int, Any]:
        if params.get("format") != "json":
            raise _illegal("FakeElasticsearch serves _cat/indices only with format=json")
        indices = self._resolve(target or "_all", ignore_unavailable=False, allow_no_indices=True)
        rows = [
            {
                "health": "yellow",
                "status": "open",
                "index": index.name,
                "uuid": index.uuid,
                "pri": "1",
                "rep": "1",
                "docs.count": str(len(index.docs)),
                "docs.deleted": "0",
                "store.size": f"{len(index.docs)}kb",
                "pri.store.size": f"{len(index.docs)}kb",
                "dataset.size": f"{len(index.docs)}kb",
            }
            for index in indices
        ]
        return 200, rows

    # -- helpers ------------------------------------------------------------------------------

    def _create_index(self, name: str, mappings: Mapping[str, Any] | None) -> Index:
        _check_index_name(name)
        if name in self._indices:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self._indices[name].uuid}] already exists",
                extra={"index_uuid": self._indices[name].uuid, "index": name},
            )
        index = Index(name)
        if mappings:
            unknown = set(mappings) - {"properties", "dynamic"}
            if unknown:
                raise _unimplemented(f"mapping options {sorted(unknown)}")
            index.add_mappings(mappings.get("properties", {}))
        self._indices[name] = index
        return index

    def _index_for_write(self, name: str) -> Index:
        return self._indices.get(name) or self._create_index(name, None)

    def _resolve(self, expression: str, *, ignore_unavailable: bool, allow_no_indices: bool) -> list[Index]:
        """Index expression → indices: comma lists, ``*`` wildcards, ``-`` exclusions, ``_all``."""
        chosen: dict[str, Index] = {}
        wildcard_seen = False
        for part in (p.strip() for p in expression.split(",")):
            if part in ("_all", "*"):
                chosen.update((n, i) for n, i in self._indices.items() if not n.startswith("."))
                wildcard_seen = True
            elif part.startswith("-") and wildcard_seen:
                for name in [n for n in chosen if fnmatch.fnmatchcase(n, part[1:])]:
                    del chosen[name]
            elif "*" in part:
                wildcard_seen = True
                matches = {
                    n: i
                    for n, i in self._indices.items()
                    if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))
                }
                if not matches and not allow_no_indices:
                    raise _index_not_found(part)
                chosen.update(matches)
            elif part in self._indices:
                chosen[part] = self._indices[part]
            elif not ignore_unavailable:
                raise _index_not_found(part)
        if not chosen and not allow_no_indices:
            raise _index_not_found(expression)
        return [chosen[name] for name in sorted(chosen)]

    def _new_id(self) -> str:
        self._id_counter += 1
        raw = self._id_counter.to_bytes(6, "big") + secrets.token_bytes(9)
        return base64.urlsafe_b64encode(raw).decode()


# ---------------------------------------------------------------------------------------------
# Request parsing helpers


def _new_pit_id() -> str:
    return base64.b64encode(secrets.token_bytes(60)).decode()


def _loose_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:1] Unexpected character: {exc}") from None
    if not isinstance(body, dict):
        raise EsError(400, "x_content_parse_exception", "[1:1] request body must be an object")
    return body


def _check_params(path: str, params: Mapping[str, str], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _illegal(f"request [{path}] contains unrecognized parameter: [{name}]")


def _param_bool(params: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in params:
        return default
    value = params[name]
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise _illegal(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def _int_option(body: Mapping[str, Any], params: Mapping[str, str], name: str, default: int) -> int:
    raw = body.get(name, params.get(name, default))
    if isinstance(raw, bool):
        raise _parsing(f"[{name}] must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _parsing(f"[{name}] must be an integer, got [{raw}]") from None


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
        raise _illegal(f"[track_total_hits] must be a boolean or an integer, got [{track}]") from None
    if count > limit:
        return {"value": limit, "relation": "gte"}
    return {"value": count, "relation": "eq"}


_TIME_UNITS = {
    "nanos": 1e-6,
    "micros": 1e-3,
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


def _time_value(raw: str, name: str) -> int:
    match = re.fullmatch(r"(\d+)(nanos|micros|ms|s|m|h|d)", raw.strip())
    if match is None:
        raise EsError(
            400,
            "parse_exception",
            f"failed to parse setting [{name}] with value [{raw}] as a time value: "
            "unit is missing or unrecognized",
        )
    return int(int(match.group(1)) * _TIME_UNITS[match.group(2)])


def _check_index_name(name: str) -> None:
    bad = set('\\/*?"<>| ,#:')
    if name != name.lower() or name.startswith(("_", "-", "+")) or set(name) & bad or name in (".", ".."):
        raise EsError(
            400,
            "invalid_index_name_exception",
            f'Invalid index name [{name}], must be lowercase and must not contain \\, /, *, ?, ", <, >, |, '
            "space, comma, #, : or start with _, - or +",
            extra={"index_uuid": "_na_", "index": name},
        )


def _compat_version(request: Request) -> int | None:
    """The REST-compatibility version asked for (``compatible-with=8``); 400 for one ES 8 cannot serve."""
    versions = {}
    for header in ("accept", "content-type"):
        match = _COMPAT_RE.search(request.headers.get(header, ""))
        if match:
            versions[header] = int(match.group(1))
    for version in versions.values():
        if version not in (7, 8):
            raise EsError(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                extra={
                    "caused_by": {
                        "type": "status_exception",
                        "reason": f"Compatible version must be equal or less than the current version. "
                        f"Accept={request.headers.get('accept')}, "
                        f"Content-Type={request.headers.get('content-type')}",
                    }
                },
            )
    if len(set(versions.values())) > 1:
        raise EsError(
            400,
            "media_type_header_exception",
            "Invalid media-type value on headers [Accept, Content-Type]",
        )
    return versions.get("accept") or versions.get("content-type")


def _safe_compat(request: Request) -> int | None:
    try:
        return _compat_version(request)
    except EsError:
        return None

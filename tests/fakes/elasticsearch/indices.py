"""Indices: mappings (explicit and dynamic), documents, index names and index expressions."""

from __future__ import annotations

import base64
import fnmatch
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.elasticsearch.analysis import analyze
from tests.fakes.elasticsearch.dates import DEFAULT_DATE_FORMATS, looks_like_date, parse_date
from tests.fakes.elasticsearch.errors import EsError, index_not_found, mapper_parsing_error
from tests.fakes.elasticsearch.values import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    LONG_MAX,
    as_text,
    to_bool,
    to_number,
)

KEYWORD_IGNORE_ABOVE = 256
_LEAF_TYPES = frozenset({"text", "keyword", "date", "boolean"} | INTEGER_TYPES | FLOAT_TYPES)
_BAD_NAME_CHARS = frozenset('\\/*?"<>| ,#:')


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
                raise mapper_parsing_error(f"Expected map for property [{path}]")
            if "properties" in spec or spec.get("type", "object") == "object":
                self.fields[path] = FieldMapping("object")
                self.add_mappings(spec.get("properties", {}), f"{path}.")
                continue
            kind = spec["type"]
            if kind not in _LEAF_TYPES:
                raise mapper_parsing_error(f"field type [{kind}] is not implemented by FakeElasticsearch")
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
                raise mapper_parsing_error(
                    f"object mapping for [{path}] tried to parse field [{path.rsplit('.', 1)[-1]}] "
                    "as object, but found a concrete value"
                )
            values[path] = [_coerce(mapping, item, path, doc_id) for item in items]
        for path, mapping in new_fields.items():
            self.fields.setdefault(path, mapping)
        if new_fields:
            self._refs.clear()
        previous = self.docs.get(doc_id)
        doc = Doc(
            seq=previous.seq if previous else self._next_seq(),
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

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1


Shard = tuple[int, Index, list[Doc]]
"""What a search reads: the shard number, its index and the documents it holds, in index order."""


def snapshot(indices: list[Index]) -> list[Shard]:
    """The indices' shards as they are now (one shard per index); a point in time keeps this."""
    return [(n, index, index.ordered_docs()) for n, index in enumerate(indices)]


def check_index_name(name: str) -> None:
    if (
        name != name.lower()
        or name.startswith(("_", "-", "+"))
        or set(name) & _BAD_NAME_CHARS
        or name in (".", "..")
    ):
        raise EsError(
            400,
            "invalid_index_name_exception",
            f'Invalid index name [{name}], must be lowercase and must not contain \\, /, *, ?, ", <, >, |, '
            "space, comma, #, : or start with _, - or +",
            extra={"index_uuid": "_na_", "index": name},
        )


def resolve_indices(
    indices: Mapping[str, Index], expression: str, *, ignore_unavailable: bool, allow_no_indices: bool
) -> list[Index]:
    """Index expression → indices: comma lists, ``*`` wildcards, ``-`` exclusions, ``_all``."""
    chosen: dict[str, Index] = {}
    wildcard_seen = False
    for part in (p.strip() for p in expression.split(",")):
        if part in ("_all", "*"):
            chosen.update((n, i) for n, i in indices.items() if not n.startswith("."))
            wildcard_seen = True
        elif part.startswith("-") and wildcard_seen:
            for name in [n for n in chosen if fnmatch.fnmatchcase(n, part[1:])]:
                del chosen[name]
        elif "*" in part:
            wildcard_seen = True
            matches = {
                n: i
                for n, i in indices.items()
                if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))
            }
            if not matches and not allow_no_indices:
                raise index_not_found(part)
            chosen.update(matches)
        elif part in indices:
            chosen[part] = indices[part]
        elif not ignore_unavailable:
            raise index_not_found(part)
    if not chosen and not allow_no_indices:
        raise index_not_found(expression)
    return [chosen[name] for name in sorted(chosen)]


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
    if isinstance(value, str) and looks_like_date(value):
        try:
            parse_date(value, DEFAULT_DATE_FORMATS)
            return FieldMapping("date")
        except ValueError:
            pass
    return FieldMapping("text", keyword_sub=KEYWORD_IGNORE_ABOVE)


def _mapper_error(path: str, kind: str, doc_id: str, value: Any) -> EsError:
    return mapper_parsing_error(
        f"failed to parse field [{path}] of type [{kind}] in document with id '{doc_id}'. "
        f"Preview of field's value: '{value}'"
    )


def _coerce(mapping: FieldMapping, value: Any, path: str, doc_id: str) -> Any:
    kind = mapping.type
    try:
        if kind in ("text", "keyword"):
            return as_text(value)
        if kind == "date":
            return parse_date(value, mapping.formats)
        if kind in INTEGER_TYPES:
            return to_number(value, integer=True)
        if kind in FLOAT_TYPES:
            return to_number(value, integer=False)
        if kind == "boolean":
            return to_bool(value)
    except ValueError:
        raise _mapper_error(path, kind, doc_id, value) from None
    raise _mapper_error(path, kind, doc_id, value)

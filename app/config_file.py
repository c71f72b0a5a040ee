"""Reading the configuration file, and saying everything that is wrong with it in one pass.

Kept apart from ``app/config.py`` (which defines the settings) because it is about the *file*: a
person fixing a configuration wants every problem at once, each once, with the file, the line and
the key path, and a suggestion when a key is misspelt. So:

- YAML is composed into nodes first, whose marks give each key path its line; a duplicate key is a
  problem found on the way (with both lines), not an exception that hides the rest;
- validation errors become problems whose line is that of their key, or of the nearest key above
  it that the file has; an unknown key gets the closest known key at that level (difflib);
- cross-reference checks (unknown escalation, schedule, channel names...) run only once every
  section validates, so when some do not, the invalid parts are left out and the rest is validated
  again (``cross_problems``): references to the left-out parts are not reported, the others are.

It never reads the environment or decides what a setting means; ``load_settings`` does.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from app.config_types import unknown

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    message: str
    line: int | None = None  # 1-based line of the key in the file, when the file has it

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def located(self, source: str) -> str:
        """``panorama.yaml:12: routes[0].escalation: unknown escalation 'pager'``."""
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason found, each once, by line."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: p.line if p.line is not None else 1 << 30)
        self.source = source
        self.problems = unique
        super().__init__(f"{source}: " + "; ".join(str(p) for p in unique))

    def lines(self) -> list[str]:
        """Each problem with the file and line in front, as check-config, serve and reload show them."""
        return [p.located(self.source) for p in self.problems]


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader whose integers are YAML 1.2's (see below); duplicate keys are reported by
    ``read_document`` from the nodes, where each one's path and line are known."""


# YAML 1.1 reads `10:00` as the base-60 integer 600 and `1:5` as 65; configurations copied
# from Alertmanager (times of day, day ranges) mean strings. Integers are read as YAML 1.2 does.
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)


def format_path(loc: Loc) -> str:
    """``("routes", 2, "matchers", 0)`` → ``routes[2].matchers[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def parse_path(path: str) -> Loc:
    """``routes[2].matchers[0]`` → ``("routes", 2, "matchers", 0)`` (the inverse of ``format_path``)."""
    return tuple(int(index) if index else str(key) for index, key in _PATH_PART.findall(path))


@dataclass
class Document:
    """A parsed file: its data, the line of every key path, and the duplicate keys found."""

    data: dict[str, Any]
    lines: dict[Loc, int]
    problems: list[ConfigProblem]

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of the nearest key above it that the file has."""
        for end in range(len(loc), 0, -1):
            if (line := self.lines.get(loc[:end])) is not None:
                return line
        return None


def read_document(path: Path) -> Document:
    """Reads and parses ``path``; raises ConfigError when it cannot be read or is not YAML."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [ConfigProblem("", f"cannot read the file: {exc.strerror}")]) from None
    loader = _StrictLoader(text)
    loader.name = source  # marks name the file, not "<unicode string>"
    lines: dict[Loc, int] = {}
    problems: list[ConfigProblem] = []
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(node, (), lines, problems, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        said = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {said}", line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("", "the top level must be a mapping of keys", 1)])
    return Document(data, lines, problems)


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[ConfigProblem], above: set[int]
) -> None:
    if id(node) in above:  # an alias of a node that contains it
        return
    above = above | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            child = (*loc, key)
            if key in first:
                problems.append(
                    ConfigProblem(
                        format_path(child),
                        f"duplicate key (first at line {first[key]}); YAML would keep only the last: "
                        "remove one",
                        line,
                    )
                )
            else:
                first[key] = line
                lines.setdefault(child, line)
            _walk(value_node, child, lines, problems, above)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _walk(item, child, lines, problems, above)


# --- did you mean -------------------------------------------------------------------------


def suggestion(model: type[BaseModel], loc: Loc) -> str | None:
    """The known key closest to the unknown one at ``loc`` (pydantic's location, union tags included)."""
    if not loc or not isinstance(loc[-1], str):
        return None
    known = _keys_at(model, loc[:-1])
    close = difflib.get_close_matches(loc[-1], sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _keys_at(annotation: Any, loc: Loc) -> set[str]:
    """The keys a mapping at ``loc`` below ``annotation`` may have."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _keys_at(get_args(annotation)[0], loc)
    if origin is Union or origin is types.UnionType:
        members = [m for m in get_args(annotation) if m is not type(None)]
        if loc and isinstance(loc[0], str):
            tagged = [m for m in members if loc[0] in _tags(m)]
            if tagged:
                return _keys_at(tagged[0], loc[1:])
        found: set[str] = set()
        for member in members:
            found |= _keys_at(member, loc)
        return found
    if origin in (list, tuple, set, frozenset, Sequence):
        args = get_args(annotation)
        return _keys_at(args[0], loc[1:]) if loc and isinstance(loc[0], int) and args else set()
    if origin in (dict, Mapping):
        args = get_args(annotation)
        return _keys_at(args[1], loc[1:]) if loc and len(args) == 2 else set()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = {info.alias or name: info for name, info in annotation.model_fields.items()}
        if not loc:
            return set(fields)
        info = fields.get(str(loc[0])) or annotation.model_fields.get(str(loc[0]))
        return _keys_at(info.annotation, loc[1:]) if info is not None else set()
    return set()


def _tags(member: Any) -> set[str]:
    """What pydantic puts into an error's location for this member of a union."""
    tags = {getattr(member, "__name__", "")}
    if isinstance(member, type) and issubclass(member, BaseModel):
        kind = member.model_fields.get("type")
        if kind is not None and get_origin(kind.annotation) is Literal:
            tags |= {str(value) for value in get_args(kind.annotation)}
    return tags


# --- cross-references despite other errors ------------------------------------------------------


def cross_problems(
    validate: Callable[[dict[str, Any]], object], data: dict[str, Any], errors: Sequence[Mapping[str, Any]]
) -> list[tuple[Loc, str]]:
    """The cross-reference problems of ``data``, whose sections did not all validate (``errors``).

    The parts that failed are left out (a list item whole, a key of a mapping section) and the rest
    is validated again, a few rounds at most, until only the cross-reference check (an error at the
    root) fails. Problems naming a left-out item are dropped (the item's own problem is reported),
    and list indexes are those of the file.
    """
    current = copy.deepcopy(data)
    kept: dict[str, list[int]] = {k: list(range(len(v))) for k, v in current.items() if isinstance(v, list)}
    removed: set[str] = set()
    for _ in range(5):
        _prune(current, errors, kept, removed)
        try:
            validate(current)
        except ValidationError as exc:
            found = exc.errors(include_url=False)
            if any(error["loc"] for error in found):
                errors = found
                continue
            return [
                _remapped(_named_among_all(line, data), kept)
                for e in found
                for line in root_lines(e["msg"])
                if not _names(line, removed)
            ]
        return []
    return []


# The kinds a reference names (config_types.unknown), and the list section holding their entries.
_REFERRED = {
    "escalation": "escalations",
    "schedule": "schedules",
    "channel": "channels",
    "user": "users",
    "time interval": "time_intervals",
}
_UNKNOWN = re.compile(
    r"^(?P<path>[^:]*: )unknown (?P<kind>[a-z ]+) (?P<name>'[^'\\]*')"
    r"(?:: none is configured| \(configured: .*\))$"
)


def _named_among_all(line: str, data: Mapping[str, Any]) -> str:
    """A dangling reference checked while some entries were left out as invalid: its suggestion (or
    list) is made from every entry the file names, those left out included, so a misspelt name of
    an invalid entry reads "did you mean 'oncall'?", not "none is configured"."""
    found = _UNKNOWN.match(line)
    section = data.get(_REFERRED.get(found["kind"], "")) if found else None
    if found is None or not isinstance(section, list):
        return line
    names = [item["name"] for item in section if isinstance(item, dict) and isinstance(item.get("name"), str)]
    return found["path"] + unknown(found["kind"], found["name"][1:-1], names)


def root_lines(message: str) -> list[str]:
    return message.removeprefix("Value error, ").splitlines()


def _names(line: str, removed: set[str]) -> bool:
    return any(repr(name) in line for name in removed)


def _remapped(line: str, kept: dict[str, list[int]]) -> tuple[Loc, str]:
    path, _, text = line.partition(": ")
    loc = parse_path(path)
    if len(loc) > 1 and isinstance(loc[0], str) and isinstance(loc[1], int) and loc[0] in kept:
        indexes = kept[loc[0]]
        if loc[1] < len(indexes):
            loc = (loc[0], indexes[loc[1]], *loc[2:])
    return loc, text


def _prune(
    data: dict[str, Any], errors: Sequence[Mapping[str, Any]], kept: dict[str, list[int]], removed: set[str]
) -> None:
    items: dict[str, set[int]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing":  # what lacks the key goes
            loc = loc[:-1]
        if not loc:
            continue
        section = data.get(str(loc[0]))
        if isinstance(section, list) and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(section):
            if (found := _scalar_key(section[loc[1]], loc[2:])) is not None and error["type"] != "missing":
                parent, key = found  # a bad value of the item's own: its default, the item stays
                del parent[key]
            else:
                items.setdefault(str(loc[0]), set()).add(loc[1])
        elif not (isinstance(section, dict) and len(loc) > 1 and _drop(section, loc[1:])):
            data.pop(str(loc[0]), None)
    for name, indexes in items.items():
        section = data[name]
        for index in sorted(indexes, reverse=True):
            item = section.pop(index)
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                removed.add(item["name"])
            if name in kept:
                del kept[name][index]


def _scalar_key(item: Any, loc: Loc) -> tuple[dict[str, Any], str] | None:
    """The mapping and key holding the plain value (no list, no mapping) at ``loc`` in ``item``,
    when ``loc`` leads exactly there; dropping such a key lets its default apply without taking
    anything away that cross-references read (a list emptied could read as "has no rules")."""
    if not loc or not isinstance(loc[-1], str):
        return None
    parent = item
    for part in loc[:-1]:
        parent = _child(parent, part)
    if not isinstance(parent, dict) or loc[-1] not in parent or isinstance(parent[loc[-1]], dict | list):
        return None
    return parent, loc[-1]


def _drop(container: Any, loc: Loc) -> bool:
    """Removes the deepest part of ``loc`` that ``container`` has (its default then applies);
    False when it has none of it."""
    if _child(container, loc[0]) is None:
        return False
    parent, key = container, loc[0]
    for part in loc[1:]:
        child = _child(parent, key)
        if _child(child, part) is None:
            break
        parent, key = child, part
    del parent[key]
    return True


def _child(container: Any, key: str | int) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, list) and isinstance(key, int) and key < len(container):
        return container[key]
    return None

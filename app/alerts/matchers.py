"""Alertmanager's label matchers: ``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.

Regexes are anchored at both ends, as in Alertmanager. Values may be double-quoted
(with ``\\"``, ``\\\\`` and ``\\n`` escapes) or bare.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Literal

from pydantic import model_serializer, model_validator

from app.config_types import Model

Op = Literal["=", "!=", "=~", "!~"]
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}


class Matcher(Model):
    name: str
    op: Op
    value: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        return _parts(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _compiles(self) -> Matcher:
        if self.op in ("=~", "!~"):
            _ = self.regex
        return self

    @cached_property
    def regex(self) -> re.Pattern[str]:
        try:
            return re.compile(f"^(?:{self.value})$", re.DOTALL)
        except re.error as exc:
            raise ValueError(f"{self.value!r} is not a valid regular expression: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """A missing label counts as the empty string, as in Alertmanager."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self.regex.match(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'

    @model_serializer
    def _as_text(self) -> str:
        return str(self)


def _unquote(text: str) -> str:
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        if '"' in text:
            raise ValueError(f"unbalanced quotes in {text!r}")
        return text
    out, chars, i = [], text[1:-1], 0
    while i < len(chars):
        char = chars[i]
        if char == "\\" and i + 1 < len(chars):
            out.append(_ESCAPES.get(chars[i + 1], "\\" + chars[i + 1]))
            i += 2
            continue
        if char == '"':
            raise ValueError(f"unescaped quote inside {text!r}")
        out.append(char)
        i += 1
    return "".join(out)


def _parts(text: str) -> dict[str, str]:
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(
            f'{text!r} is not a matcher; write name="value", name!="value", name=~"regex" or name!~"regex"'
        )
    return {"name": match.group(1), "op": match.group(2), "value": _unquote(match.group(3))}


def parse_matcher(text: str) -> Matcher:
    return Matcher.model_validate(text)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)

"""``simple_query_string``: Lucene's SimpleQueryParser grammar, and the parsed query run over fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.elasticsearch.analysis import analyze, edit_distance, has_phrase
from tests.fakes.elasticsearch.errors import parsing_error, unimplemented
from tests.fakes.elasticsearch.fields import (
    Matcher,
    QueryContext,
    check_options,
    expand_fields,
    holds,
    multi_field_options,
    operator_option,
    query_value,
)
from tests.fakes.elasticsearch.indices import Doc, Index

_OPTIONS = frozenset({"query", "fields", "default_operator", "lenient", "analyze_wildcard", "boost", "flags"})


@dataclass
class Leaf:
    text: str
    phrase: bool = False
    prefix: bool = False
    fuzzy: int | None = None
    slop: int = 0


@dataclass
class Not:
    child: Node


@dataclass
class Bool:
    op: str  # "and" / "or"
    children: list[Node]


Node = Leaf | Not | Bool


def compile_simple_query_string(body: Any, ctx: QueryContext) -> Matcher:
    check_options("simple_query_string", body, _OPTIONS, unknown="unsupported field [{key}]")
    if "query" not in body:
        raise parsing_error("[simple_query_string] query text missing")
    if body.get("flags", "ALL") != "ALL":
        raise unimplemented("[simple_query_string] flags other than ALL")
    operator = operator_option(body.get("default_operator", "or"))
    patterns, lenient = multi_field_options("simple_query_string", body)
    tree = _Parser(str(body["query"]), operator).parse()

    def leaf_matches(leaf: Leaf, index: Index, doc: Doc) -> bool:
        for name in expand_fields(index, patterns):
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
            elif holds(doc, ref, query_value(ref, leaf.text, ctx, lenient=lenient)):
                return True
        return False

    def evaluate(node: Node, index: Index, doc: Doc) -> bool:
        if isinstance(node, Leaf):
            return leaf_matches(node, index, doc)
        if isinstance(node, Not):
            return not evaluate(node.child, index, doc)
        results = (evaluate(child, index, doc) for child in node.children)
        return all(results) if node.op == "and" else any(results)

    return lambda index, doc: tree is not None and evaluate(tree, index, doc)


def _text_leaf(leaf: Leaf, value_tokens: list[list[str]], operator: str) -> bool:
    if leaf.prefix:
        prefix = leaf.text.lower()
        return any(token.startswith(prefix) for tokens in value_tokens for token in tokens)
    wanted = analyze(leaf.text)
    if not wanted:
        return False
    if leaf.phrase:
        return any(has_phrase(tokens, wanted, leaf.slop) for tokens in value_tokens)
    present = {token for tokens in value_tokens for token in tokens}
    if leaf.fuzzy is not None:
        limit = leaf.fuzzy
        found = [any(edit_distance(w, p, limit) <= limit for p in present) for w in wanted]
    else:
        found = [w in present for w in wanted]
    return all(found) if operator == "and" else any(found)


class _Parser:
    """Lucene's SimpleQueryParser grammar: ``+`` AND, ``|`` OR, ``-`` NOT, ``"phrase"``, ``prefix*``,
    ``term~N``, ``( )``, ``\\`` escapes. Like the real one it never fails: odd input just parses somehow.
    """

    def __init__(self, text: str, default_operator: str) -> None:
        self.text = text
        self.pos = 0
        self.default = default_operator

    def parse(self) -> Node | None:
        return self._sub_query(top=True)

    def _sub_query(self, *, top: bool) -> Node | None:
        tree: Node | None = None
        previous: str | None = None
        current: str | None = None
        negations = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            branch: Node | None = None
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
            elif char in "+|":
                if current is None and tree is not None:
                    current = "and" if char == "+" else "or"
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
                    branch = Not(branch)
                if tree is None:
                    tree = branch
                else:
                    op = current or self.default
                    if previous != op or not isinstance(tree, Bool):
                        tree = Bool(op, [tree])
                    tree.children.append(branch)
                    previous = op
                current = None
            negations = 0
        return tree

    def _phrase(self) -> Leaf | None:
        end = self.text.find('"', self.pos + 1)
        if end < 0:
            self.pos += 1
            return self._token()
        text = self.text[self.pos + 1 : end]
        self.pos = end + 1
        slop = self._tilde()
        return Leaf(text, phrase=True, slop=slop or 0) if text.strip() else None

    def _tilde(self) -> int | None:
        if self.pos < len(self.text) and self.text[self.pos] == "~":
            self.pos += 1
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos].isdigit():
                self.pos += 1
            return int(self.text[start : self.pos]) if self.pos > start else 2
        return None

    def _token(self) -> Leaf | None:
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
                return Leaf(out, fuzzy=fuzzy) if out else None
            out += char
            self.pos += 1
        if not out:
            return None
        if out.endswith("*") and len(out) > 1:
            return Leaf(out.rstrip("*"), prefix=True)
        return Leaf(out)

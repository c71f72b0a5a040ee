"""The rollup catalogue: built-in and configured definitions merged, checked, and their figures listed.

A *family* is what is stored per day (a counter, gauge or histogram); a *figure*
is what reports show: a statistic of a family (``qps_peak``) or an expression
over other figures (``error_rate = errors / requests``).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TypeVar

from app.rollups import builtin
from app.rollups.builtin import RecordedFamily
from app.rollups.config import (
    EXPRESSION_CONSTANTS,
    Definition,
    Derived,
    EntityKind,
    FamilyKind,
    RollupSettings,
    expression_names,
)


@dataclass(frozen=True)
class Figure:
    """A reported figure: a statistic of one family, or a derived expression."""

    name: str
    entity_kind: str
    family: str | None = None
    statistic: str | None = None
    expr: str | None = None


Family = Definition | RecordedFamily


@dataclass(frozen=True)
class Catalog:
    """``definitions`` are queried from Prometheus; ``recorded`` families are Panorama's own
    (the on-call history, ``oncall.py``): both are stored, re-aggregated and reported alike."""

    entities: dict[str, EntityKind]
    definitions: list[Definition]
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    recorded: list[RecordedFamily] = field(default_factory=list)

    def families(self, entity_kind: str) -> list[Definition]:
        """The kind's families queried from Prometheus."""
        return [d for d in self.definitions if d.entity == entity_kind]

    def stored_families(self, entity_kind: str) -> list[Family]:
        """Every family stored for the kind: queried from Prometheus, or recorded by Panorama."""
        found: list[Family] = [d for d in self.definitions if d.entity == entity_kind]
        return found + [f for f in self.recorded if f.entity == entity_kind]

    def family(self, entity_kind: str, name: str) -> Family | None:
        return self._by_kind_and_name.get((entity_kind, name))

    @cached_property
    def _by_kind_and_name(self) -> dict[tuple[str, str], Family]:
        found: dict[tuple[str, str], Family] = {}
        every: list[Family] = [*self.definitions, *self.recorded]
        for family in every:
            found.setdefault((family.entity, family.name), family)
        return found

    @cached_property
    def recorded_kinds(self) -> list[str]:
        """The entity kinds whose days Panorama records itself (never from Prometheus)."""
        return list(dict.fromkeys(f.entity for f in self.recorded))

    @cached_property
    def queried_kinds(self) -> list[str]:
        """The entity kinds whose days are computed from Prometheus."""
        return [kind for kind in self.entities if kind not in self.recorded_kinds]

    def figure_names(self, entity_kind: str) -> list[str]:
        return [f.name for f in self.figures.get(entity_kind, [])]

    def figure(self, entity_kind: str, name: str) -> Figure | None:
        return next((f for f in self.figures.get(entity_kind, []) if f.name == name), None)

    def requirements(self, entity_kind: str, names: Collection[str]) -> tuple[set[str], set[str]]:
        """The figures and the families that computing the figures ``names`` needs (their closure)."""
        by_name = {f.name: f for f in self.figures.get(entity_kind, [])}
        counters = {d.name for d in self.stored_families(entity_kind) if d.kind is FamilyKind.COUNTER}
        figures: set[str] = set()
        families: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name in figures:
                continue
            found = by_name.get(name)
            if found is None:
                if name in counters:
                    families.add(name)
                continue
            figures.add(name)
            if found.family is not None:
                families.add(found.family)
            if found.expr is not None:
                pending.extend(expression_names(found.expr))
        return figures, families


_Item = TypeVar("_Item", EntityKind, Definition, Derived)


def _merge(
    builtins: list[_Item], configured: list[_Item], key: Callable[[_Item], tuple[str, ...]]
) -> list[_Item]:
    merged = {key(item): item for item in builtins}
    for item in configured:
        merged[key(item)] = item
    return list(merged.values())


def build_catalog(settings: RollupSettings) -> Catalog:
    """Merges the configured definitions over the built-ins (by name); ValueError lists every problem."""
    use_builtin = settings.builtin
    entities = _merge(builtin.ENTITIES if use_builtin else [], settings.entities, lambda e: (e.name,))
    definitions = _merge(
        builtin.DEFINITIONS if use_builtin else [], settings.definitions, lambda d: (d.entity, d.name)
    )
    derived = _merge(
        [*(builtin.DERIVED if use_builtin else []), *builtin.ONCALL_DERIVED],
        settings.derived,
        lambda d: (d.entity, d.name),
    )
    problems: list[str] = []
    recorded = {e.name: e for e in builtin.ONCALL_ENTITIES}
    for taken in sorted(recorded.keys() & {e.name for e in settings.entities}):
        problems.append(f"entity kind {taken!r} is Panorama's on-call history; give yours another name")
    by_name = {e.name: e for e in entities} | recorded
    figures: dict[str, list[Figure]] = {name: [] for name in by_name}
    families: list[Definition | RecordedFamily] = [*definitions, *builtin.ONCALL_FAMILIES]
    for definition in families:
        if definition.entity not in by_name:
            problems.append(f"definition {definition.name!r}: unknown entity kind {definition.entity!r}")
            continue
        if isinstance(definition, Definition) and definition.entity in recorded:
            problems.append(
                f"definition {definition.name!r}: {definition.entity!r} is recorded by Panorama, "
                "not queried from Prometheus"
            )
            continue
        for name, statistic in definition.reported().items():
            figures[definition.entity].append(
                Figure(name, definition.entity, family=definition.name, statistic=statistic)
            )
    for item in derived:
        if item.entity not in by_name:
            problems.append(f"derived {item.name!r}: unknown entity kind {item.entity!r}")
            continue
        known = {f.name for f in figures[item.entity]} | {
            d.name for d in families if d.entity == item.entity and d.kind is FamilyKind.COUNTER
        }
        unknown = expression_names(item.expr) - known - set(EXPRESSION_CONSTANTS)
        if unknown:
            problems.append(
                f"derived {item.name!r}: {', '.join(sorted(unknown))} is not a figure or counter "
                f"of {item.entity!r} defined before it"
            )
            continue
        figures[item.entity].append(Figure(item.name, item.entity, expr=item.expr))
    for kind, listed in figures.items():
        names = [f.name for f in listed]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"entity kind {kind!r}: figure {name!r} is defined twice")
        order = builtin.FIGURE_ORDER.get(kind)
        if order:
            listed.sort(key=lambda f: order.index(f.name) if f.name in order else len(order))
    if problems:
        raise ValueError("; ".join(problems))
    return Catalog(
        entities=by_name, definitions=definitions, figures=figures, recorded=list(builtin.ONCALL_FAMILIES)
    )


_OPERATORS: dict[type[ast.AST], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expr: str, values: Mapping[str, float | None]) -> float | None:
    """The value of a derived expression; None when an operand is missing or a division is by zero."""
    return _evaluate(parsed_expression(expr), values)


@lru_cache(maxsize=1024)
def parsed_expression(expr: str) -> ast.expr:
    return ast.parse(expr, mode="eval").body


def _evaluate(node: ast.AST, values: Mapping[str, float | None]) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values), _evaluate(node.right, values)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div) and right == 0:
            return None
        return _OPERATORS[type(node.op)](left, right)
    raise ValueError(f"unsupported expression element {type(node).__name__}")

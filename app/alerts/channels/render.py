"""The Jinja2 templates of the channels (``templates/``, next to this module) and the cut
that keeps a message within its channel's limit.

Templates get a :class:`~app.alerts.channels.views.View` whose strings are already
escaped for the channel's format, so they hold no escaping logic of their own;
only the e-mail HTML template is autoescaped (by Jinja, at output).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.alerts.channels.views import Prepared

TEMPLATES = Path(__file__).parent / "templates"
T = TypeVar("T")
_FIRST_TRY = 32
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    auto_reload=False,
)


def render(template: str, **context: Any) -> str:
    """``template`` rendered, with runs of blank lines folded into one."""
    return _BLANK_LINES.sub("\n\n", _env.get_template(template).render(**context)).strip()


def macros(template: str, **context: Any) -> Any:
    """The macros of ``template`` seeing ``context``, callable from Python (Slack builds blocks from them)."""
    return _env.get_template(template).make_module(context)


def fit(prepared: Prepared, build: Callable[[int], T], fits: Callable[[T], bool]) -> T | None:
    """The message showing as many alerts (or digest items) as fit, None if not even zero do.

    Alerts are cut from the end of their reading order (resolved, least severe,
    newest go first), and the view then says how many were left out. A page's
    context gives way before its first alert would: its last service first (then
    counted with the services left out), the whole context once none is left.
    """
    while True:
        found: tuple[int, T] | None = _most_alerts(prepared, build, fits)
        if (found is not None and found[0] >= min(1, prepared.total)) or not prepared.drop_context():
            return found[1] if found is not None else None


def _most_alerts(
    prepared: Prepared, build: Callable[[int], T], fits: Callable[[T], bool]
) -> tuple[int, T] | None:
    """How many alerts fit, and the message showing them (None if not even zero do).

    Sizes grow with each alert shown, so the search doubles the count while it fits, then
    bisects: a few renders, each of only what could be shown, even when a group
    holds thousands of alerts.
    """
    total = prepared.total
    high = total
    if total <= _FIRST_TRY:
        whole = build(total)
        if fits(whole):
            return total, whole
        high = total - 1
    best = build(0)
    if not fits(best):
        return None
    low, probe = 0, min(_FIRST_TRY, high)
    while probe > low:
        candidate = build(probe)
        if not fits(candidate):
            high = probe - 1
            break
        low, best = probe, candidate
        probe = min(probe * 2, high)
    while low < high:
        middle = (low + high + 1) // 2
        candidate = build(middle)
        if fits(candidate):
            low, best = middle, candidate
        else:
            high = middle - 1
    return low, best

"""How text from alerts (labels, annotations: anyone who can write a Prometheus rule or
push to Alertmanager controls them) is made inert in each message format.

Every user-controlled string reaches a template through :meth:`Dialect.text`, which
folds it onto one line, drops control and bidi-override characters, caps its length
(counted after escaping, so a cap also bounds the escaped size) and escapes what the
format would otherwise interpret:

- DingTalk and WeCom markdown document no escape character, so the characters that
  open markup which can do harm are replaced by their full-width forms: ``<`` ``>``
  (WeCom's ``<@userid>`` mentions, ``<font>`` and HTML), ``[`` ``]`` (links and
  images, e.g. a phishing link or a tracking pixel), ``&`` (entities) and the
  backtick (a code span that would swallow our own links). Emphasis characters stay:
  at worst they restyle text. Folding newlines keeps a value from starting a
  heading, quote or list line.
- Feishu's lark_md takes HTML numeric entities (``&#60;``), as its card docs say.
- Slack's mrkdwn needs ``&``, ``<`` and ``>`` as entities (this also stops
  ``<!channel>`` and ``<@U…>`` injection).
- E-mail HTML is escaped by Jinja's autoescape; plain text needs nothing.

URLs are only rendered when they are http(s), percent-encoded so that they cannot
close the link syntax they sit in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

ELLIPSIS = "…"
_URL_SAFE = ":/?#@!$&'*+,;=%-._~"
_BIDI = {0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u2028\u2029]+")


@dataclass(frozen=True)
class Dialect:
    name: str
    table: Mapping[int, str] = field(default_factory=dict)
    link_entities: bool = False

    def text(self, value: object, limit: int, *, multiline: bool = False) -> str:
        """``value`` made inert for this format, at most ``limit`` characters once escaped."""
        if value is None:
            return ""
        pieces = [self.table.get(ord(char), char) for char in _clean(str(value), multiline=multiline)]
        if sum(len(piece) for piece in pieces) <= limit:
            return "".join(pieces)
        budget, used = limit - len(ELLIPSIS), 0
        out: list[str] = []
        for piece in pieces:
            if used + len(piece) > budget:
                break
            out.append(piece)
            used += len(piece)
        return "".join(out) + ELLIPSIS

    def url(self, value: str | None) -> str | None:
        """An http(s) URL that cannot break out of this format's link syntax; None otherwise."""
        safe = safe_url(value)
        if safe is None:
            return None
        return safe.replace("&", "&amp;") if self.link_entities else safe


def safe_url(value: str | None) -> str | None:
    """``value`` if it is an absolute http(s) URL, percent-encoding anything outside RFC 3986."""
    if not value:
        return None
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(value, safe=_URL_SAFE)


def _clean(value: str, *, multiline: bool) -> str:
    kept = "".join(
        char
        for char in value
        if char in "\n\t" or (unicodedata.category(char) != "Cc" and ord(char) not in _BIDI)
    )
    if multiline:
        lines = [_SPACES.sub(" ", line).strip() for line in kept.splitlines()]
        return "\n".join(line for line in lines if line)
    return _SPACES.sub(" ", kept).strip()


def _table(pairs: Mapping[str, str]) -> dict[int, str]:
    return {ord(char): replacement for char, replacement in pairs.items()}


ROBOT_MARKDOWN = Dialect(
    "robot-markdown",
    _table({"<": "＜", ">": "＞", "[": "［", "]": "］", "&": "＆", "`": "｀"}),
)
LARK_MD = Dialect(
    "lark_md",
    _table({c: f"&#{ord(c)};" for c in "&<>*~_[]()`\\$"}),
)
SLACK_MRKDWN = Dialect(
    "mrkdwn",
    _table({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "｀"}),
    link_entities=True,
)
PLAIN = Dialect("plain")
"""Plain text, and HTML through Jinja's autoescape (which escapes at output)."""

"""Laying out a :class:`~app.alerts.channels.base.Notice` (a hand-over, a swap) for a channel.

A notice's words are made in its locale where it is made (``app/alerts/notices.py``); here each
line is only made inert for the channel's format (:mod:`dialects`) and joined with the channel's
line break, the mentions and the footer. Never anything incident-shaped: no severity, no ack link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from app.alerts.channels.base import Notice
from app.alerts.channels.dialects import PLAIN, Dialect
from app.alerts.channels.strings import strings
from app.alerts.channels.views import Mentioner

ICON = {"shift_start": "📟", "shift_end": "🌙", "swap_offered": "🔄", "swap_taken": "🤝", "digest": "📊"}
LINE_CHARS = 300
TITLE_CHARS = 120


@dataclass(frozen=True)
class NoticeText:
    title: str  # plain text, for a header or a push title
    lines: list[str]  # escaped for the dialect
    links: list[tuple[str, str]]  # (escaped label, safe URL)
    mentions: list[str]  # the channel's mention tokens, or escaped names
    footer: str
    locale: str


def lay_out(notice: Notice, dialect: Dialect, mention: Mentioner | None = None) -> NoticeText:
    t = strings(notice.locale)
    tokens: list[str] = []
    for person in notice.mentions:
        token = mention(person) if mention is not None else None
        tokens.append(token if token is not None else dialect.text(person.name, 40))
    links = []
    for label, url in notice.links:
        safe = dialect.url(url)
        if safe is not None:
            links.append((dialect.text(label, 40), safe))
    return NoticeText(
        title=PLAIN.text(f"{ICON.get(notice.kind, '📅')} {notice.title}", TITLE_CHARS),
        lines=[dialect.text(line, LINE_CHARS) for line in notice.lines],
        links=links,
        mentions=tokens,
        footer=t.footer,
        locale=notice.locale,
    )


def fit(text: NoticeText, render: Callable[[NoticeText], str], fits: Callable[[str], bool]) -> str | None:
    """``render(text)``, or — when the channel's limit is smaller — with its last lines replaced by
    one that counts them: the title, the links (a digest ends with them), the mentions and the
    footer are always kept, so a long digest loses its tail lines, never its links or a cut-off
    markup. None when not even the title and the links fit."""
    whole = render(text)
    if fits(whole):
        return whole
    t = strings(text.locale)

    def kept(count: int) -> str:
        return render(replace(text, lines=[*text.lines[:count], t.more(len(text.lines) - count, lines=True)]))

    low, high = -1, len(text.lines) - 1  # kept(low + 1 …) is what we look for: the most lines that fit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(kept(middle)):
            low = middle
        else:
            high = middle - 1
    return kept(low) if low >= 0 else None


def markdown(text: NoticeText, *, heading: str = "###", br: str = "  ") -> str:
    """Robot markdown (DingTalk, WeCom): a heading, the lines, links, mentions, the footer."""
    parts = [f"{heading} {text.title}", "", *(f"{line}{br}" for line in text.lines)]
    if text.links:
        parts += ["", " · ".join(f"[{label}]({url})" for label, url in text.links)]
    if text.mentions:
        parts += ["", " ".join(text.mentions)]
    return "\n".join([*parts, "", text.footer])


def plain(text: NoticeText) -> str:
    """Plain text (e-mail, SMS, push): the lines, then each link on its own line (``label: url``,
    in Chinese with its full-width colon)."""
    colon = "：" if text.locale == "zh-CN" else ": "
    parts = [*text.lines, *(f"{label}{colon}{url}" for label, url in text.links)]
    if text.mentions:
        parts.append(" ".join(text.mentions))
    return "\n".join(parts)

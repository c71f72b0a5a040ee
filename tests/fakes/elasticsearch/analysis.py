"""Text analysis: approximately the standard analyzer, phrase positions and edit distance."""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\w+(?:[.'’]\w+)*")


def analyze(text: str) -> list[str]:
    """Approximately the standard analyzer: lowercased word tokens (``foo.bar`` and ``1.2`` stay whole)."""
    return _TOKEN_RE.findall(text.lower())


def has_phrase(haystack: list[str], phrase: list[str], slop: int) -> bool:
    """Whether the tokens of ``phrase`` stand in order in ``haystack``, at most ``slop`` positions apart."""
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


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or ``limit + 1`` when the lengths alone exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]

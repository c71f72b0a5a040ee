"""Text analysis: the standard analyzer, phrase positions and edit distance.

The standard analyzer is Lucene's ``StandardTokenizer`` (Unicode word segmentation, UAX #29)
followed by lowercasing. Word boundaries decide what a search can find, so this follows them
exactly rather than approximately: :mod:`regex` with its ``WORD`` flag implements UAX #29's
default word boundaries, the same rules the tokenizer's grammar is generated from. What they
mean for log lines (``analyze`` tests pin each):

- letters on both sides of ``:``, ``.`` or ``'`` stay one token: ``trace_id:abf92f…`` and
  ``…473e:af067…`` are single tokens (``_`` joins too: ``trace_id`` is one word);
- digits on both sides of ``.``, ``,`` or ``;`` stay one token: ``…4736,00f067…``;
- ``-``, ``=``, ``/``, ``"``, spaces and brackets always split.

Segments without a letter, digit or ideograph (punctuation, spaces, a lone ``_``) are not
tokens; a token longer than ``max_token_length`` (255) is split into 255-character pieces.
"""

from __future__ import annotations

import regex

MAX_TOKEN_LENGTH = 255
_BOUNDARIES = regex.compile(r"\b", flags=regex.WORD | regex.V1)
_WORDLIKE = regex.compile(r"[\p{L}\p{N}\p{Ideographic}]")


def analyze(text: str) -> list[str]:
    """The standard analyzer's tokens of ``text``: UAX #29 words, lowercased."""
    tokens: list[str] = []
    for segment in _BOUNDARIES.split(text):
        if not segment or not _WORDLIKE.search(segment):
            continue
        lowered = segment.lower()
        tokens.extend(lowered[i : i + MAX_TOKEN_LENGTH] for i in range(0, len(lowered), MAX_TOKEN_LENGTH))
    return tokens


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

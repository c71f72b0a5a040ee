"""Elasticsearch queries over Fluent Bit's log documents. Pure functions: no I/O.

Choices that matter on a real cluster:

- Only ``term``/``terms``/``match``/``match_phrase``/``prefix``/``range``/``exists`` clauses are
  built. User text never reaches a query parser (no ``query_string``) nor a ``prefix``, so a
  search can never fail with a syntax error nor run a regex, wildcard or fuzzy expansion.
- Dynamic mappings make a JSON string a ``text`` field with a ``.keyword`` sub-field, while
  ECS templates map ids and Kubernetes metadata as ``keyword``. :func:`exact` matches whole
  values under both mappings without knowing which one an index uses.
- A trace id is looked for in every configured id field and in the message fields, in each of
  the id's written forms. In a message the standard analyzer (UAX #29 word boundaries) does not
  always make the id a token of its own: letters on both sides of ``:`` or ``.`` and digits on
  both sides of ``,`` or ``.`` join, so ``trace_id:abf92f…`` (an id starting with a-f after a key),
  ``uber-trace-id=…473e:af067…`` (trace id ending, span id starting with a letter) and
  Sleuth's ``[svc,…4736,00f067…]`` are each one token. :func:`trace_id_query` therefore asks for
  indexed tokens that *start* with the id (``prefix``: the bare id and every id glued to what
  follows it) or with a key glued to it (``trace_id:<id>…``: the keys the configured patterns find
  an id after, :func:`app.correlation.ids.glued_keys`), or ``0x<id>``. A prefix of 16
  or 32 hex digits is a seek in the term dictionary, as cheap as the phrase it replaces, and it
  stays one request. A cluster with ``search.allow_expensive_queries: false`` refuses every
  ``prefix`` on a text field: it is asked again with whole-token phrases only (once; the client
  remembers), and the answer says glued ids were not looked for (:data:`GLUED_NOT_SEARCHED`).
  Never found: an id glued to a word *ending in a digit* before it (``v2,4bf9…``), which no
  configured key produces.
- Id and level fields are matched with ``match`` + ``lenient``, in lower and upper case: exact
  on ``keyword``, analysed on ``text``, and ignored (instead of failing the shard, which would
  silently drop that day's index) where some index maps the field as a number or a boolean.
  ``term`` with ``case_insensitive`` would fail there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.correlation.config import CorrelationSettings
from app.correlation.ids import TraceId, glued_keys
from app.correlation.window import Window, iso

Query = dict[str, Any]

LEVEL_ALIASES: dict[str, tuple[str, ...]] = {
    "trace": ("trace", "10"),
    "debug": ("debug", "20"),
    "info": ("info", "information", "30"),
    "warning": ("warning", "warn", "40"),
    "error": ("error", "err", "50"),
    "fatal": ("fatal", "critical", "crit", "panic", "emergency", "emerg", "60"),
}
"""How log levels are spelt (numbers: pino/bunyan JSON logs); a filter on one level matches all
its spellings, in lower, upper or capitalised case."""

ERROR_LEVELS = ("error", "fatal")


def bool_filter(*clauses: Query | None) -> Query:
    """All ``clauses`` (None ones left out) must match; match_all when there are none."""
    kept = [c for c in clauses if c is not None]
    return {"bool": {"filter": kept}} if kept else {"match_all": {}}


def any_of(clauses: Sequence[Query]) -> Query:
    """At least one of ``clauses`` matches."""
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def time_range(field: str, window: Window) -> Query:
    return {
        "range": {
            field: {
                "gte": iso(window.start),
                "lte": iso(window.end, round_up=True),
                "format": "strict_date_optional_time",
            }
        }
    }


def exact(field: str, values: Sequence[str]) -> Query:
    """``field`` equals one of ``values``, whether it is mapped as ``keyword`` or as ``text``
    with a ``.keyword`` sub-field (the sub-field holds the whole value; the text field only tokens)."""
    keyword_sub = f"{field}.keyword"
    return any_of(
        [
            {"terms": {keyword_sub: list(values)}},
            {
                "bool": {
                    "filter": [{"terms": {field: list(values)}}],
                    "must_not": [{"exists": {"field": keyword_sub}}],
                }
            },
        ]
    )


def exact_in_any(fields: Iterable[str], values: Sequence[str]) -> Query:
    return any_of([exact(f, values) for f in fields])


def lenient_match(fields: Iterable[str], values: Iterable[str]) -> Query:
    """One of ``fields`` holds one of ``values`` (see the module docstring for why ``match``)."""
    wanted = list(dict.fromkeys(values))
    return any_of([{"match": {f: {"query": v, "lenient": True}}} for f in fields for v in wanted])


def _cases(values: Iterable[str]) -> list[str]:
    """Each value as written, lowercased, upper-cased and capitalised (keyword fields are exact)."""
    return [variant for v in values for variant in (v, v.lower(), v.upper(), v.capitalize())]


PREFIX_MIN_DIGITS = 16
"""Forms at least this long are looked for as token prefixes. Shorter ones (an id with many leading
zeros, written without them) would then match unrelated longer ids: they are looked for as a whole
token, or followed by a character the analyzer glues on (``…43dd:a7a7…``)."""
_HEX_LETTERS = frozenset("abcdef")
_GLUE_AFTER_LETTER = (":", ".")  # UAX #29 MidLetter / MidNumLet between letters
_GLUE_AFTER_DIGIT = (",", ".", ";")  # MidNum / MidNumLet between digits


def message_id_clauses(field: str, form: str, keys: Sequence[str]) -> list[Query]:
    """Clauses finding the id ``form`` (lowercase hex) in the message ``field``, alone or glued to its
    neighbours the way the standard analyzer glues them (see the module docstring); ``keys`` are
    the words that may stand glued before it (``trace_id`` in ``trace_id:<id>``)."""
    heads = [form]
    if form[0] in _HEX_LETTERS:  # letters on both sides of ':' join; digits do not
        heads.extend(f"{key}:{form}" for key in keys)
    if len(form) >= PREFIX_MIN_DIGITS:
        heads.append(f"0x{form}")  # `trace_id=0x4bf9…`: the 0 and x start one word
        return [{"prefix": {field: head}} for head in heads]
    glue = _GLUE_AFTER_LETTER if form[-1] in _HEX_LETTERS else _GLUE_AFTER_DIGIT
    clauses: list[Query] = []
    for head in heads:
        clauses.append({"match_phrase": {field: head}})
        clauses.extend({"prefix": {field: head + joiner}} for joiner in glue)
    return clauses


PREFIX_REFUSED = "search.allow_expensive_queries"
"""What Elasticsearch's error says when the cluster refuses ``prefix`` queries."""
GLUED_NOT_SEARCHED = (
    "search.allow_expensive_queries is false on this cluster, so ids glued to a neighbouring word "
    "in the text (trace_id:<id>, <trace>:<span>) were not looked for"
)


def trace_id_query(trace_id: TraceId, settings: CorrelationSettings, *, glued: bool = True) -> Query:
    """Documents carrying ``trace_id`` in an id field or in their message, in any written form
    (``glued=False``: only where the message has it as a word of its own, without ``prefix``)."""
    ids = [variant for form in trace_id.forms for variant in (form, form.upper())]
    clauses: list[Query] = [lenient_match(settings.trace_id_fields, ids)]
    keys = glued_keys(tuple(settings.trace_id_patterns))
    for field in settings.message_fields:
        for form in trace_id.forms:
            if glued:
                clauses.extend(message_id_clauses(field, form, keys))
            else:
                clauses.append({"match_phrase": {field: form}})
    return any_of(clauses)


def text_query(text: str, settings: CorrelationSettings) -> Query:
    """Plain-text search: every word of ``text`` appears in the message (any order, any case).

    ``match`` analyses the text like the indexed messages and has no syntax: quotes,
    ``*``, ``:``, ``/`` or unbalanced brackets are just characters.
    """
    return any_of(
        [{"match": {field: {"query": text, "operator": "and"}}} for field in settings.message_fields]
    )


def service_query(service: str, settings: CorrelationSettings) -> Query:
    """Logs of ``service``: its application label, or ``<app>.<namespace>`` as Istio names span services."""
    fields = settings.log_fields
    options = [exact_in_any(fields.service, [service])]
    app, dot, namespace = service.partition(".")
    if dot and app and namespace:
        options.append(
            bool_filter(exact_in_any(fields.service, [app]), exact_in_any(fields.namespace, [namespace]))
        )
    return any_of(options)


def level_values(levels: Iterable[str]) -> list[str]:
    """Every spelling of each level (``warning`` → warning, warn), lowercase, each once."""
    values: list[str] = []
    for level in levels:
        key = level.strip().lower()
        values.extend(LEVEL_ALIASES.get(_canonical_level(key), (key,)))
    return list(dict.fromkeys(v for v in values if v))


def level_query(levels: Iterable[str], settings: CorrelationSettings) -> Query:
    return lenient_match(settings.log_fields.level, _cases(level_values(levels)))


def error_logs_query(settings: CorrelationSettings) -> Query:
    """Error lines: level error/fatal (any spelling), or an HTTP status 500-599.

    The statuses are listed rather than ranged: a ``range`` fails the shard of an index where
    a status field happens to be a boolean or an object, ``match`` with ``lenient`` does not.
    """
    statuses = lenient_match(settings.log_fields.status, [str(code) for code in range(500, 600)])
    return any_of([level_query(ERROR_LEVELS, settings), statuses])


def canonical_level(value: object) -> str | None:
    """A document's level as one of :data:`LEVEL_ALIASES`' keys when it is a known spelling,
    else lowercased as written."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _canonical_level(value.strip().lower())


def _canonical_level(lowered: str) -> str:
    for level, spellings in LEVEL_ALIASES.items():
        if lowered in spellings:
            return level
    return lowered


def sort_by_time(settings: CorrelationSettings, order: str) -> list[Query]:
    """Sort on the timestamp; ``unmapped_type`` keeps indices without it from failing the search."""
    return [{settings.log_fields.timestamp: {"order": order, "unmapped_type": "date"}}]

"""One way to read a service's name, for every filter in Panorama.

The same Kubernetes service reaches Panorama under three spellings, and a filter may be written in
any of them:

- the short name ``checkout``: an alert's ``service``/``app`` label, an instrumented app's Jaeger
  service, what people type;
- ``checkout.shop`` (``<name>.<namespace>``): how Istio's sidecars name span services and graph
  nodes, and how pages and the wall show a service;
- the FQDN ``checkout.shop.svc.cluster.local`` (any cluster domain, or just ``checkout.shop.svc``):
  Istio's ``destination_service``, the entity the rollups store.

Kubernetes names (RFC 1123 labels) have no dots, so the first dot ends the name and the second
part is the namespace; whatever follows (``svc.cluster.local``) adds nothing. A name that does not
say its namespace (the short form) means that service in *any* namespace: it matches every
spelling with the same name, and ``checkout.shop`` never matches ``checkout.other``. Matching is
on the parsed parts, exactly: no pattern characters (``%``, ``_``, ``*``) mean anything here, so
a service called ``pay_ments`` matches only itself.

A *filter* someone types (``?service=`` of the incident list, its page, a Grafana annotation) is
read by :func:`parse_filter`, which refuses what cannot name a service: an empty part around a dot
(``.shop``, ``checkout.``, ``checkout..svc``), a namespace that is not a Kubernetes name (RFC 1123
label: lowercase letters, digits and ``-``, at most 63), whitespace or control characters inside,
more than 253 characters, and the ``namespace/name`` form of kubectl (its answer names the form to
write instead). A stored name (a label's value) is never refused: :func:`parse` reads anything, and
:func:`parse_filter` accepts any spelling a store holds when it is told them (``stored``): a value
Panorama offered to pick (Grafana's ``/tag-values``) always reads back, as that stored name reads,
even ``api.Example.com``, ``My App`` or ``checkout..svc.cluster.local``; so does the way Panorama
shows such a name (its :attr:`ServiceName.key`, ``api.Example``), and a stored bare name in a
namespace (``My App.shop``, an alert's ``service=My App`` with ``namespace=shop``).

A *regex* on services (Grafana's ``=~``/``!~``) matches one text per service, its canonical
:attr:`ServiceName.key` (``name.namespace``, the name alone when the namespace is unknown), in
full: :func:`pattern_matches`, whichever way the service reached Panorama (a rollup's FQDN, an
alert's short name with a ``namespace`` label). A key has at most one dot, so a pattern spelling
the FQDN's ``.svc.cluster.local`` could never match and :func:`check_pattern` refuses it, naming
the pattern to write instead.

Pure functions, no I/O; this module must never learn about a store (SQL, PromQL, Jaeger): callers
turn :func:`spellings` into their own exact queries.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from app.errors import Phrase

MAX_FILTER_CHARS = 253  # a DNS name's length: the longest FQDN spelling
_NAMESPACE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True, order=True)
class ServiceName:
    """A service's name and, when its spelling said it, its namespace."""

    name: str
    namespace: str | None = None

    @property
    def key(self) -> str:
        """The canonical spelling: ``name.namespace``, or ``name`` when the namespace is unknown
        (how pages, the wall and digests show a service, and what their URLs carry)."""
        return f"{self.name}.{self.namespace}" if self.namespace else self.name

    def matches(self, other: ServiceName) -> bool:
        """Same name, and namespaces that do not contradict (an unknown one matches any)."""
        return self.name == other.name and (
            self.namespace is None or other.namespace is None or self.namespace == other.namespace
        )


def kubectl_spelled(text: str) -> str | None:
    """``payments.shop`` for kubectl's ``shop/payments`` (``namespace/name``): how Panorama writes
    that service; None when ``text`` is not in that form."""
    namespace, slash, name = text.strip().rpartition("/")
    if not slash or not namespace or not name or "/" in namespace:
        return None
    return f"{name}.{namespace}"


def parse(service: str, namespace: str | None = None) -> ServiceName:
    """``checkout``, ``checkout.shop`` or ``checkout.shop.svc.cluster.local`` → its parts. An
    explicit ``namespace`` (a ``namespace`` label or query parameter) wins over the spelling's."""
    service = service.strip()
    name, dot, rest = service.partition(".")
    if dot and name and rest:
        return ServiceName(name, namespace or rest.split(".", 1)[0] or None)
    return ServiceName(service, namespace or None)


class InvalidServiceName(ValueError):
    """A typed service filter that names no service: the message says why in English, ``said`` as a
    page says it (:class:`app.errors.Phrase`)."""

    def __init__(self, message: str, said: Phrase) -> None:
        super().__init__(message)
        self.said = said


def parse_filter(wanted: str, stored: Collection[str] = ()) -> ServiceName:
    """A typed filter's parts, as :func:`parse` reads them; :class:`InvalidServiceName` (a
    ``ValueError``) saying what is wrong with it (and the form to use) when it cannot name a
    service. A value that is exactly one of the ``stored`` spellings (those a store holds and
    offered to pick) is never refused: it names that service, read as :func:`parse` reads it; nor
    is the key of one, or a stored bare name in a Kubernetes namespace (how Panorama shows and
    links such a service)."""
    text = wanted.strip()
    if not text:
        raise InvalidServiceName("a service name is empty", Phrase("problem.service.empty"))
    if wanted in stored or text in stored:
        return parse(text)
    if stored:
        known = _stored_reading(text, stored)
        if known is not None:
            return known
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidServiceName(
            f"a service name is at most {MAX_FILTER_CHARS} characters",
            Phrase("problem.service.too_long", most=MAX_FILTER_CHARS),
        )
    if _SPACE_OR_CONTROL.search(text):
        raise InvalidServiceName(
            f"{text!r} holds a space or a control character", Phrase("problem.service.space", value=text)
        )
    if "/" in text:
        hint = kubectl_spelled(text) or "name.namespace"
        raise InvalidServiceName(
            f"{text!r}: write a service in a namespace as {hint!r} (name.namespace)",
            Phrase("problem.service.slash", value=text, hint=hint),
        )
    parts = text.split(".")
    if any(not part for part in parts):
        raise InvalidServiceName(
            f"{text!r} has an empty part around a dot: write 'name' or 'name.namespace'",
            Phrase("problem.service.empty_part", value=text),
        )
    parsed = parse(text)
    if parsed.namespace is not None and not _NAMESPACE.fullmatch(parsed.namespace):
        raise InvalidServiceName(
            f"{text!r}: namespace {parsed.namespace!r} is not a Kubernetes name "
            "(lowercase letters, digits and '-', at most 63)",
            Phrase("problem.service.namespace", value=text, namespace=parsed.namespace),
        )
    return parsed


def _stored_reading(text: str, stored: Collection[str]) -> ServiceName | None:
    """``text`` read as Panorama shows a ``stored`` spelling: its canonical key (``api.Example`` of
    ``api.Example.com``), or a stored bare name in a Kubernetes namespace (``My App.shop``: an
    alert's ``service=My App`` with ``namespace=shop``, as pages and messages link it); None else."""
    name, dot, namespace = text.partition(".")
    if dot and name in stored and parse(name).namespace is None and _NAMESPACE.fullmatch(namespace):
        return ServiceName(name, namespace)
    return next((found for found in map(parse, stored) if found.key == text), None)


def key(service: str) -> str:
    """The canonical ``name.namespace`` (or ``name``) of any spelling."""
    return parse(service).key


def matches(wanted: str | ServiceName, service: str | ServiceName) -> bool:
    """Whether the filter ``wanted`` (any spelling) means ``service`` (any spelling)."""
    want = wanted if isinstance(wanted, ServiceName) else parse(wanted)
    found = service if isinstance(service, ServiceName) else parse(service)
    return want.matches(found)


def matches_any(service: str | ServiceName, wanted: Iterable[str | ServiceName]) -> bool:
    """Whether ``service`` is one of the filters ``wanted``."""
    return any(matches(w, service) for w in wanted)


@dataclass(frozen=True)
class Spellings:
    """Every stored spelling a filter matches, for a store that compares strings: the ``exact``
    spellings, and the ``prefixes`` (each ending in a dot) that start longer ones."""

    exact: tuple[str, ...]
    prefixes: tuple[str, ...]


def spellings(wanted: str | ServiceName) -> Spellings:
    """The stored names that ``wanted`` matches: ``checkout`` → ``checkout`` and ``checkout.*``;
    ``checkout.shop`` → ``checkout``, ``checkout.shop`` and ``checkout.shop.*``."""
    want = wanted if isinstance(wanted, ServiceName) else parse(wanted)
    if want.namespace is None:
        return Spellings(exact=(want.name,), prefixes=(f"{want.name}.",))
    return Spellings(exact=(want.name, want.key), prefixes=(f"{want.key}.",))


def unique_match(wanted: str, services: Iterable[str]) -> str | None:
    """The one service of ``services`` that ``wanted`` names: a same-key spelling first, else the
    single match (``checkout`` alone names nothing when two namespaces have a ``checkout``)."""
    want = parse(wanted)
    candidates = list(dict.fromkeys(services))
    if wanted in candidates:
        return wanted
    same = [s for s in candidates if parse(s) == want]
    if len(same) == 1:
        return same[0]
    found = [s for s in candidates if want.matches(parse(s))]
    return found[0] if len(found) == 1 else None


_FQDN_SUFFIX = re.compile(r"(?:\\\.|\.)svc(?:(?:\\\.|\.)[A-Za-z0-9-]+)*")
_DOT = r"(?:\\\.|\.)"
_SPELLS_FQDN = re.compile(rf"{_DOT}svc{_DOT}|{_DOT}[^|()]*{_DOT}svc\$?(?:$|[|)])")
"""``.svc.`` anywhere, or ``.svc`` ending an alternative that has another dot before it (``x\\.svc``
alone may be the namespace ``svc``)."""


def check_pattern(pattern: str) -> None:
    """``ValueError`` naming the pattern to write when a service regex spells the FQDN
    (``reviews\\.bookinfo\\.svc\\.cluster\\.local``, ``.*\\.svc\\..*``): it is matched
    against ``name.namespace`` (:func:`pattern_matches`), which has no ``.svc``."""
    if _SPELLS_FQDN.search(pattern):
        hint = _FQDN_SUFFIX.sub("", pattern)
        raise ValueError(
            f"'{pattern}': a service regex matches name.namespace (reviews.bookinfo), not the FQDN "
            f"(reviews.bookinfo.svc.cluster.local): write '{hint}'"
        )


def pattern_matches(pattern: re.Pattern[str], service: str | ServiceName) -> bool:
    """Whether a service regex matches ``service`` (any spelling): in full, its canonical key."""
    found = service if isinstance(service, ServiceName) else parse(service)
    return pattern.fullmatch(found.key) is not None

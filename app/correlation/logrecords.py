"""Log documents (Elasticsearch hits) as :class:`LogEntry` answers. Pure functions: no I/O."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from app.backends.elasticsearch import Hit
from app.correlation.config import CorrelationSettings
from app.correlation.ids import IdExtractor, normalise_span_id, normalise_trace_id
from app.correlation.logquery import canonical_level
from app.correlation.schemas import LogEntry

TRACE_URL = "/api/v1/traces/{trace_id}"


class LogReader:
    """Reads the configured fields of log documents, and the trace/span ids they carry."""

    def __init__(self, settings: CorrelationSettings) -> None:
        self.settings = settings
        self.fields = settings.log_fields
        self.extractor = IdExtractor(settings.trace_id_patterns)

    def entry(self, hit: Hit, *, trace_services: Collection[str] = ()) -> LogEntry:
        """One log line; with ``trace_services``, its service is spelt as the trace's spans spell it."""
        source = hit.source
        message = first_text(source, self.settings.message_fields)
        trace_id = _first(source, self.settings.trace_id_fields, normalise_trace_id)
        span_id = _first(source, self.settings.span_id_fields, normalise_span_id)
        if (trace_id is None or span_id is None) and message:
            found = self.extractor.find(message)
            if found is not None and trace_id in (None, found.trace_id):
                trace_id = found.trace_id
                span_id = span_id or found.span_id
        app = first_text(source, self.fields.service)
        namespace = first_text(source, self.fields.namespace)
        container = first_text(source, self.fields.container)
        return LogEntry(
            timestamp=parse_timestamp(lookup(source, self.fields.timestamp)),
            service=reconcile_service(app or container, namespace, trace_services),
            namespace=namespace,
            pod=first_text(source, self.fields.pod),
            container=container,
            level=canonical_level(first_text(source, self.fields.level)),
            message=message,
            trace_id=trace_id,
            span_id=span_id,
            index=hit.index,
            id=hit.id,
            trace_url=TRACE_URL.format(trace_id=trace_id) if trace_id else None,
        )


def reconcile_service(app: str | None, namespace: str | None, trace_services: Collection[str]) -> str | None:
    """The log's application as a trace names it: Istio's sidecars name span services
    ``<app>.<namespace>``, instrumented apps usually ``<app>``; otherwise the app as labelled."""
    if app is None:
        return None
    if namespace and f"{app}.{namespace}" in trace_services:
        return f"{app}.{namespace}"
    return app


def lookup(source: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path``, stored as nested objects, as one dotted key, or any mix."""
    return _lookup(source, _parts(path), 0)


@functools.lru_cache(maxsize=256)
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _lookup(node: Any, parts: tuple[str, ...], start: int) -> Any:
    if start == len(parts):
        return node
    if type(node) is list:
        for item in node:
            found = _lookup(item, parts, start)
            if found is not None:
                return found
        return None
    if type(node) is not dict:
        return None
    key = parts[start]
    for end in range(start + 1, len(parts) + 1):  # nested objects first, then ever longer dotted keys
        child = node.get(key)
        if child is not None:
            found = _lookup(child, parts, end)
            if found is not None:
                return found
        if end < len(parts):
            key = f"{key}.{parts[end]}"
    return None


def first_text(source: Mapping[str, Any], paths: list[str]) -> str | None:
    """The first of ``paths`` holding a non-empty scalar, as text."""
    for path in paths:
        value = lookup(source, path)
        if isinstance(value, list):
            value = next((v for v in value if v not in (None, "")), None)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float) and value != "":
            return str(value)
    return None


def _first(source: Mapping[str, Any], paths: list[str], normalise: Any) -> str | None:
    for path in paths:
        value = lookup(source, path)
        if isinstance(value, list):
            value = value[0] if value else None
        normalised: str | None = normalise(value)
        if normalised is not None:
            return normalised
    return None


def parse_timestamp(value: Any) -> datetime | None:
    """An ``@timestamp`` as written by Fluent Bit (ISO 8601, up to nanoseconds) or epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds: cut nanoseconds, keep the zone
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Elasticsearch reads a zoneless date as UTC
    return moment.astimezone(UTC)

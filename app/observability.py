"""Panorama's own telemetry: Prometheus metrics, JSON logs and OpenTelemetry traces.

Metrics live in a registry per application instance (not the process-global
one), so that several apps in one process (tests, workers) never collide.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagate import extract, set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.types import Scope

from app import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "<unmatched>"
REDACTED = "[REDACTED]"

ACCESS_LOGGER = "panorama.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class Metrics:
    """The service's own metrics, exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.http_requests = Counter(
            "panorama_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "panorama_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_requests = Counter(
            "panorama_backend_requests",
            "Calls to backends (each attempt), by backend and outcome (ok or the error kind).",
            ["backend", "outcome"],
            registry=self.registry,
        )
        self.backend_duration = Histogram(
            "panorama_backend_request_duration_seconds",
            "Time of one call to a backend, by backend.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "panorama_alert_deliveries",
            "Notification attempts by channel and outcome (delivered, retried, dead_lettered).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.delivery_failures = Counter(
            "panorama_alert_delivery_failures",
            "Failed notification attempts by channel and failure class (4xx, 5xx, timeout, errcode: "
            "refused inside an HTTP 2xx answer, other: no answer), as Alertmanager's notifiers count them.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.journal_backlog = Gauge(
            "panorama_alert_journal_backlog",
            "Journaled webhooks not applied yet (by any replica), as this process last counted them.",
            registry=self.registry,
        )
        self.journal_lag = Histogram(
            "panorama_alert_journal_apply_lag_seconds",
            "Time from a webhook's 2xx (its journal row committed) to its incident change being applied.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.journal_oldest = Gauge(
            "panorama_alert_journal_oldest_queued_seconds",
            "Age of the oldest journaled webhook not applied yet (0: none), as this process last saw it: "
            "the apply lag in a storm, and growing when the journal does not move.",
            registry=self.registry,
        )
        self.journal_failed = Counter(
            "panorama_alert_journal_failed",
            "Journaled webhooks given up after failed applies (see GET /api/v1/alerts/intake/{id}).",
            registry=self.registry,
        )
        self.journal_errors = Counter(
            "panorama_alert_journal_errors",
            "Passes of the journal's applier that failed (database errors are retried with a backoff).",
            registry=self.registry,
        )
        self.rollup_history_pending = Gauge(
            "panorama_rollup_history_pending_days",
            "Days of the last 90 (or rollups.backfill_days if more: those the catch-up completes) whose "
            "Prometheus figures are stored and whose on-call history is pending (the alert journal has "
            "not moved past them), as this process's last catch-up saw them.",
            registry=self.registry,
        )

        self.backend_call_listeners: list[Callable[[str], None]] = []
        """Also told of each backend call (its backend), e.g. the wall screen counting its own."""

    def observe_delivery(self, channel: str, outcome: str, failure: str | None = None) -> None:
        self.deliveries.labels(channel, outcome).inc()
        if failure is not None:
            self.delivery_failures.labels(channel, failure).inc()

    def observe_journal(
        self, backlog: int | None, lags: Sequence[float], failed: int, oldest_s: float | None
    ) -> None:
        """One pass of the journal's applier (``backlog`` None: the pass failed); ``oldest_s``: the
        age of the oldest row queued when it began (None: not known, the read failed)."""
        if oldest_s is not None:
            self.journal_oldest.set(oldest_s)
        if backlog is None:
            self.journal_errors.inc()
            return
        self.journal_backlog.set(backlog)
        for lag in lags:
            self.journal_lag.observe(lag)
        if failed:
            self.journal_failed.inc(failed)

    def observe_backend_call(self, backend: str, outcome: str, seconds: float) -> None:
        self.backend_requests.labels(backend, outcome).inc()
        self.backend_duration.labels(backend).observe(seconds)
        for listener in self.backend_call_listeners:
            listener(backend)

    def watch_database(self, engine: AsyncEngine) -> None:
        self.registry.register(DatabasePoolCollector(engine))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class DatabasePoolCollector(Collector):
    """Reads the SQLAlchemy connection pool's state at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        pool = self._engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return []
        size = GaugeMetricFamily("panorama_db_pool_size", "Configured size of the database connection pool.")
        size.add_metric([], pool.size())
        connections = GaugeMetricFamily(
            "panorama_db_pool_connections",
            "Database connections by state (checked_out: in use; idle: in the pool; overflow).",
            labels=["state"],
        )
        connections.add_metric(["checked_out"], pool.checkedout())
        connections.add_metric(["idle"], pool.checkedin())
        connections.add_metric(["overflow"], max(pool.overflow(), 0))
        return [size, connections]


class RequestTelemetry:
    """Counts and times every request by route template (never the raw path: bounded cardinality).

    Also writes the access log, without query strings (view links carry tokens) and without the
    token of an ack link's path. Called once per request by ``app.http_stack``, after the answer;
    the labelled children are kept, so a request costs two dict lookups rather than two
    ``labels()`` calls (each a lock, a tuple of label strings and a dict lookup of its own).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def record(self, scope: Scope, status: int, elapsed: float) -> None:
        template = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        method: str = scope["method"]
        counter = self._counters.get((template, method, status))
        if counter is None:
            counter = self.metrics.http_requests.labels(template, method, str(status))
            self._counters[(template, method, status)] = counter
        counter.inc()
        histogram = self._histograms.get((template, method))
        if histogram is None:
            histogram = self._histograms[(template, method)] = self.metrics.http_duration.labels(
                template, method
            )
        histogram.observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            path = template if "{token}" in template else scope["path"]  # ack links carry their token
            duration_ms = round(elapsed * 1000, 2)
            handler = _own_handler()
            if handler is not None:
                handler.access_line(method, path, status, template, duration_ms)
            else:
                access_log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={"route": template, "status": status, "duration_ms": duration_ms},
                )


# --- logging -----------------------------------------------------------------------------

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace ids and any extras.

    Written with orjson (a tenth of ``json.dumps``'s time for an access log line, which every
    request writes); datetimes and dataclasses go through ``str`` as with ``json.dumps``, and
    what orjson refuses (an integer past 64 bits) falls back to ``json.dumps``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:
            return json.dumps(entry, default=str, ensure_ascii=False)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class RedactingFilter(logging.Filter):
    """Replaces known secret values in a record's final text (a last line of defence)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.use(secrets)

    def use(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, self.clean(value))
        return True

    def clean(self, text: str) -> str:
        """``text`` with every known secret replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs: JSON lines (:class:`JsonFormatter`), secrets
    redacted (:class:`RedactingFilter`), to a stream.

    It also writes the access log's lines itself (:meth:`access_line`), when they would reach it
    alone (:func:`_own_handler`): the very line ``access_log.info`` writes, without a ``LogRecord``
    (and the caller's frame looked up for it), the filter's and the formatter's walks over the
    record's attributes. Every request writes one: 27 µs through ``logging`` into a file, about a
    tenth of a storm webhook's server CPU (``bench/alert_storm.py``), 6 µs this way.
    """

    def __init__(self, stream: Any, secrets: Iterable[str]) -> None:
        super().__init__(stream)
        self.redacting = RedactingFilter(secrets)
        self.setFormatter(JsonFormatter())
        self.addFilter(self.redacting)

    def access_line(self, method: str, path: str, status: int, route: str, duration_ms: float) -> None:
        """``access_log.info("%s %s %d", method, path, status, extra={"route": …, "status": …,
        "duration_ms": …})`` as this handler writes it: the same keys, in the same order."""
        clean = self.redacting.clean
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "time": now,
            "level": "info",
            "logger": ACCESS_LOGGER,
            "message": clean(f"{method} {path} {status}"),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry["route"] = clean(route)
        entry["status"] = status
        entry["duration_ms"] = duration_ms
        try:
            line = orjson.dumps(entry, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # as the formatter: what orjson refuses goes through json.dumps
            line = json.dumps(entry, default=str, ensure_ascii=False)
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"name": ACCESS_LOGGER, "msg": line}))
        finally:
            self.release()


def _own_handler() -> JsonLines | None:
    """The handler the access log's lines reach, when that is :class:`JsonLines` alone: no other
    handler, filter or logger level on their way (a test's ``caplog``, a user's handler). Else
    None, and the line goes through ``logging`` as any other."""
    handlers = logging.root.handlers
    if len(handlers) != 1 or access_log.handlers or access_log.filters or not access_log.propagate:
        return None
    handler = handlers[0]
    if type(handler) is not JsonLines or len(handler.filters) != 1 or handler.level > logging.INFO:
        return None
    parent = access_log.parent
    if (
        parent is not None
        and parent is not logging.root
        and (parent.handlers or parent.filters or not parent.propagate)
    ):
        return None
    return handler


def configure_logging(level: str, secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Sends every logger (uvicorn's included) as JSON lines to stdout."""
    handler = JsonLines(stream or sys.stdout, secrets)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware writes the access log
    for noisy in ("httpx", "httpcore", "elastic_transport", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def update_log_settings(level: str, secrets: Iterable[str]) -> None:
    """Applies a reloaded configuration's log level and secrets to the running handlers."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        for candidate in handler.filters:
            if isinstance(candidate, RedactingFilter):
                candidate.use(secrets)


# --- tracing -----------------------------------------------------------------------------


def configure_propagation() -> None:
    """Accepts W3C ``traceparent`` and Jaeger ``uber-trace-id`` on incoming requests."""
    set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator(), JaegerPropagator()])
    )


_LINK_TOKEN = re.compile(r"((?:^|[?&])(?:view|token)=)[^&#\s]+|(/ack/|/gather/)[^/?#\s]+")
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query", "url.path")


def hide_link_tokens(span: trace.Span, _scope: dict[str, Any]) -> None:
    """Keeps the tokens of view links (``?view=``), calendar feeds and the wall screen's kiosk URL
    (``?token=``) and ack links (``/ack/<token>``, ``…/gather/<token>``) out of the server span's URL
    attributes, which are exported to a tracing backend."""
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or not attributes:
        return
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str):
            hidden = _LINK_TOKEN.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, value)
            if hidden != value:
                span.set_attribute(key, hidden)


TRACING_EXCLUDED = ("/healthz", "/readyz", "/metrics")
"""Paths never traced (probes and scrapes)."""

_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage", b"uber-trace-id"})


def exports_spans(provider: TracerProvider) -> bool:
    """Whether spans made by ``provider`` go anywhere (a span processor is registered). When the
    SDK's internals are not what this expects, it answers True: then everything is traced."""
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    return processors is None or bool(processors)


class TraceContext:
    """The request's trace context when no span is exported (``app.http_stack``, step 1).

    The incoming ``traceparent``/``uber-trace-id`` (through the global propagator, baggage
    included) or else a fresh trace id becomes the current span context, with a span id of its
    own, for the request's duration: log lines carry ``trace_id``/``span_id`` and outgoing calls
    propagate the trace, as with a recorded server span, but no span is built, filled and dropped.
    A sampled parent stays sampled, an unsampled one unsampled, a new trace is sampled (the SDK's
    default ``ParentBased(ALWAYS_ON)``).
    """

    def __init__(self, provider: TracerProvider) -> None:
        self._ids = provider.id_generator
        self._excluded = frozenset(TRACING_EXCLUDED)

    def enter(self, scope: Scope) -> object | None:
        """Makes the request's span context current; the token for ``exit``, or None (untraced)."""
        if scope["path"] in self._excluded:
            return None
        carrier: dict[str, str] | None = None
        for name, value in scope.get("headers", ()):
            if name in _PROPAGATION_HEADERS or name.startswith(b"uberctx-"):
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        incoming = extract(carrier) if carrier is not None else None
        parent = trace.get_current_span(incoming).get_span_context() if incoming is not None else None
        if parent is not None and parent.is_valid:
            span_context = SpanContext(
                parent.trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=parent.trace_flags,
                trace_state=parent.trace_state,
            )
        else:
            span_context = SpanContext(
                self._ids.generate_trace_id(),
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=_SAMPLED,
            )
        return otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context), incoming))

    @staticmethod
    def exit(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def build_tracer_provider(environ: dict[str, str] | None = None) -> TracerProvider:
    """A tracer provider; spans go out over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    env = os.environ if environ is None else environ
    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME", "panorama"), "service.version": __version__}
    )
    provider = TracerProvider(resource=resource)
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider

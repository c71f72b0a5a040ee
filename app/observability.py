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
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "<unmatched>"
REDACTED = "[REDACTED]"

access_log = logging.getLogger("panorama.access")


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

        self.backend_call_listeners: list[Callable[[str], None]] = []
        """Also told of each backend call (its backend), e.g. the wall screen counting its own."""

    def observe_delivery(self, channel: str, outcome: str, failure: str | None = None) -> None:
        self.deliveries.labels(channel, outcome).inc()
        if failure is not None:
            self.delivery_failures.labels(channel, failure).inc()

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


class HttpMetricsMiddleware:
    """Counts and times every request by route template (never the raw path: bounded cardinality).

    Also writes the access log, without query strings (view links carry tokens) and without the
    token of an ack link's path.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"]
            self.metrics.http_requests.labels(template, method, str(status)).inc()
            self.metrics.http_duration.labels(template, method).observe(elapsed)
            access_log.info(
                "%s %s %d",
                method,
                template if "{token}" in template else scope["path"],  # ack links carry their token
                status,
                extra={"route": template, "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )


# --- logging -----------------------------------------------------------------------------

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace ids and any extras."""

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
        return json.dumps(entry, default=str, ensure_ascii=False)


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
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, self._clean(value))
        return True

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def configure_logging(level: str, secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Sends every logger (uvicorn's included) as JSON lines to stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(secrets))
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

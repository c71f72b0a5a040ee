"""The ``correlation`` configuration section: how logs are matched to traces, and the limits of the
correlation endpoints.

Defaults fit Fluent Bit's Elasticsearch output (``logstash_format On``, the ``kubernetes``
filter with labels, ``Replace_Dots On``) and Istio's sidecar telemetry; each key can be
adapted to an ECS or hand-made mapping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import Field, field_validator, model_validator

from app.config_types import Duration, Model

DEFAULT_TRACE_ID_PATTERNS: tuple[str, ...] = (
    # W3C trace context: traceparent: 00-<32 hex trace>-<16 hex span>-<2 hex flags>
    r"(?<![0-9a-z])[0-9a-f]{2}-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})-[0-9a-f]{2}(?![0-9a-z])",
    # Jaeger: uber-trace-id: <trace>:<span>:<parent>:<flags> (old clients drop leading zeros)
    r"uber-trace-id[\"']?\s*[:=]\s*[\"']?(?P<trace_id>[0-9a-f]{1,32})(?::|%3a)(?P<span_id>[0-9a-f]{1,16})",
    # B3 single header: b3: <trace>-<span>[-<sampled>[-<parent>]]
    r"\bb3[\"']?\s*[:=]\s*[\"']?(?P<trace_id>[0-9a-f]{32}|[0-9a-f]{16})-(?P<span_id>[0-9a-f]{16})",
    # key=value / key: value / "key": "value" — trace_id, traceId, traceID, trace.id, trace-id, X-B3-TraceId
    r"\b(?:x-b3-)?trace[_.-]?id[\"']?\s*[:=]\s*[\"']?(?:0x)?(?P<trace_id>[0-9a-f]{1,32})(?![0-9a-z_-])",
)
"""Where a trace id is found in a message's text; each regex names its ``trace_id`` group
(and optionally ``span_id``). They run case-insensitively, first match wins."""


class LogFields(Model):
    """Where the parts of a log record live in an Elasticsearch document (dotted paths).

    Lists are tried in order; the first field with a value wins. A path may be stored
    either as nested objects (``{"kubernetes": {"pod_name": ...}}``) or as one dotted key.
    """

    timestamp: str = Field(default="@timestamp", description="The event time (a date field)")
    service: list[str] = Field(
        default_factory=lambda: [
            "kubernetes.labels.app_kubernetes_io/name",
            "kubernetes.labels.app",
            "service.name",
        ],
        description="The application name: Kubernetes labels, or ECS service.name",
    )
    namespace: list[str] = Field(
        default_factory=lambda: ["kubernetes.namespace_name", "kubernetes.namespace"]
    )
    pod: list[str] = Field(default_factory=lambda: ["kubernetes.pod_name", "kubernetes.pod.name"])
    container: list[str] = Field(
        default_factory=lambda: ["kubernetes.container_name", "kubernetes.container.name"]
    )
    level: list[str] = Field(default_factory=lambda: ["level", "log.level", "severity", "levelname"])
    status: list[str] = Field(
        default_factory=lambda: ["response_code", "status", "http.response.status_code"],
        description="An HTTP status code (5xx lines count as errors in the service overview)",
    )

    @field_validator("service", "namespace", "pod", "container", "level", "status")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        return _field_list(value)

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: str) -> str:
        return _field_list([value])[0]


class CorrelationSettings(Model):
    skew: Duration = Field(
        default=timedelta(seconds=5),
        description="How far outside a trace's span window its logs are still searched, each side",
    )
    trace_id_fields: list[str] = Field(
        default_factory=lambda: ["trace.id", "trace_id", "traceId", "traceID"],
        description="Fields of a log document that may carry a trace id (ECS, JSON logs)",
    )
    span_id_fields: list[str] = Field(
        default_factory=lambda: ["span.id", "span_id", "spanId", "spanID"],
        description="Fields of a log document that may carry a span id",
    )
    message_fields: list[str] = Field(
        default_factory=lambda: ["log", "message"],
        description="The text of a log line (Fluent Bit writes `log` or `message`); searched for ids and q",
    )
    trace_id_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRACE_ID_PATTERNS),
        description="Regexes finding a trace id in message text, each with a (?P<trace_id>...) group",
    )
    log_fields: LogFields = Field(default_factory=LogFields)
    index_format: str = Field(
        default="logstash-%Y.%m.%d",
        description="strftime name of the daily log index, in UTC (Fluent Bit's Logstash_Prefix + date)",
    )
    log_lookback: Duration = Field(
        default=timedelta(hours=24),
        description="How far back a trace's logs are searched while Jaeger is asked for its time window",
    )
    default_window: Duration = Field(
        default=timedelta(minutes=15),
        description="The time window of searches, overviews and the graph when `from` is not given",
    )
    # One more hit than these is asked for (to know whether there are more), and Elasticsearch
    # answers at most index.max_result_window (10,000) hits at once.
    max_trace_logs: int = Field(default=1000, ge=1, le=5000, description="Most logs returned with a trace")
    default_log_limit: int = Field(default=100, ge=1, le=5000, description="Log search page size")
    max_log_limit: int = Field(default=1000, ge=1, le=5000, description="Largest log search page size")
    cursor_keep_alive: Duration = Field(
        default=timedelta(minutes=5),
        description="How long a log search cursor stays usable after its last page",
    )
    max_trace_search: int = Field(default=100, ge=1, le=1500, description="Largest trace search limit")
    overview_logs: int = Field(default=20, ge=1, le=1000, description="Error logs in a service overview")
    overview_traces: int = Field(
        default=10, ge=1, le=100, description="Slowest and failed traces in a service overview (each)"
    )

    @field_validator("trace_id_fields", "span_id_fields", "message_fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        return _field_list(value)

    @field_validator("trace_id_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for position, pattern in enumerate(value):
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"pattern {position} ({pattern!r}) is not a valid regex: {exc}") from None
            if "trace_id" not in compiled.groupindex:
                raise ValueError(f"pattern {position} ({pattern!r}) has no (?P<trace_id>...) group")
        return value

    @field_validator("index_format")
    @classmethod
    def _index_format(cls, value: str) -> str:
        if not all(code in value for code in ("%Y", "%m", "%d")):
            raise ValueError(f"{value!r} must contain %Y, %m and %d (one index per UTC day)")
        sample = datetime(2024, 1, 31, tzinfo=UTC).strftime(value)
        if (
            sample != sample.lower()
            or any(c in sample for c in '\\/*?"<>| ,#:')
            or sample.startswith(("_", "-", "+"))
        ):
            raise ValueError(f"{value!r} does not make a valid Elasticsearch index name (got {sample!r})")
        return value

    @field_validator("skew")
    @classmethod
    def _skew(cls, value: timedelta) -> timedelta:
        if value > timedelta(hours=1):
            raise ValueError("at most 1h: a wider skew pulls in logs of unrelated requests")
        return value

    @field_validator("log_lookback", "default_window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("cursor_keep_alive")
    @classmethod
    def _keep_alive(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(hours=1):
            raise ValueError("must be between 10s and 1h (Elasticsearch keeps the point in time that long)")
        return value

    @model_validator(mode="after")
    def _limits(self) -> CorrelationSettings:
        if self.default_log_limit > self.max_log_limit:
            raise ValueError(
                f"default_log_limit ({self.default_log_limit}) is above max_log_limit ({self.max_log_limit})"
            )
        return self


def _field_list(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("list at least one field")
    for name in value:
        if not name or name != name.strip() or name.startswith(".") or name.endswith(".") or ".." in name:
            raise ValueError(f"{name!r} is not a field path (write it like kubernetes.pod_name)")
    if len(set(value)) != len(value):
        raise ValueError("a field is listed twice")
    return value

"""Answers of the correlation endpoints (Pydantic only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from functools import reduce

from pydantic import BaseModel, Field

from app.alerts.schemas import IncidentSummary
from app.backends.errors import BackendError, BackendErrorKind, display_name
from app.backends.traces import TagValue
from app.errors import Phrase


class SpanOut(BaseModel):
    span_id: str = Field(description="16 lowercase hex digits")
    parent_id: str | None
    service: str
    operation: str
    start: datetime
    duration_ms: float
    error: bool
    kind: str | None = None
    tags: dict[str, TagValue]


class TraceOut(BaseModel):
    trace_id: str = Field(description="32 lowercase hex digits")
    start: datetime
    duration_ms: float
    services: list[str]
    spans: list[SpanOut]


class LogEntry(BaseModel):
    timestamp: datetime | None
    service: str | None = Field(
        description="The application; inside a trace, spelt as the trace's spans name it (e.g. app.namespace)"
    )
    namespace: str | None
    pod: str | None
    container: str | None
    level: str | None = Field(description="error, warning, info… (known spellings unified), else as written")
    message: str | None
    trace_id: str | None = Field(description="From an id field or the message text, as 32 hex digits")
    span_id: str | None = Field(description="16 hex digits; the span this line belongs to, when it says")
    index: str
    id: str
    trace_url: str | None = Field(default=None, description="This API's URL of the line's trace")


class ErrorPattern(BaseModel):
    """Error log lines that differ only in their numbers, ids and addresses, counted together."""

    pattern: str = Field(description="The message with numbers, ids and addresses replaced by <n>, <id>…")
    example: str = Field(description="The newest line of the group, as written")
    count: int
    level: str | None
    last_seen: datetime | None


class TimeWindow(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")


class SourceError(BaseModel):
    """Why one part of an answer is missing: the backend it comes from failed (the part's
    ``partial`` note says the same in one line)."""

    backend: str = Field(description="prometheus, elasticsearch, jaeger or database")
    kind: BackendErrorKind = Field(
        description="not_configured, unreachable, timeout, bad_query, bad_response or unauthorized"
    )
    status: int | None = Field(description="The backend's HTTP status, when it answered at all")
    message: str = Field(description="What happened, in the backend's own words where it gave any")

    @property
    def phrase(self) -> Phrase:
        """The failure as a page says it, as every page says a backend's failure (``BackendError.phrase``)."""
        return self._error.phrase

    @property
    def configured(self) -> bool:
        """False when the backend is not configured (nothing failed: ``BackendError.configured``)."""
        return self._error.configured

    def missing(self, part: str) -> Phrase:
        """Why the part named by the catalogue key ``part`` is not shown, as every page says it
        (``BackendError.missing``: not configured said plainly, a failure as temporary)."""
        return self._error.missing(Phrase(part))

    @property
    def _error(self) -> BackendError:
        return BackendError(self.backend, self.kind, self.message, status=self.status)


class GapCode(StrEnum):
    """Why a part that answered may lack something (Panorama's own finding, not a failure)."""

    SHARDS_FAILED = "shards_failed"
    SEARCH_TIMED_OUT = "search_timed_out"
    GLUED_IDS_NOT_SEARCHED = "glued_ids_not_searched"
    TRACE_NOT_FOUND = "trace_not_found"
    NO_REQUESTS = "no_requests"


class Gap(BaseModel):
    """What a part whose backend answered lacks, for programs and for pages to say in their language
    (the part's ``partial`` note says the same in English)."""

    part: str = Field(
        description="The part it is about: a key of the answer's `partial` (`logs` in the log search, "
        "whose `partial` is one line)"
    )
    backend: str = Field(description="prometheus, elasticsearch or jaeger")
    code: GapCode = Field(
        description="shards_failed (values: failed, total; index, reason of the first failure when "
        "Elasticsearch said), search_timed_out, glued_ids_not_searched, trace_not_found (trace_id), "
        "no_requests (service; namespace when given)"
    )
    values: dict[str, str | int] = Field(default_factory=dict, description="What the code's sentence names")

    @property
    def phrase(self) -> Phrase:
        """The gap as a page says it: the catalogue's ``gap.<code>``, a variant naming what is known."""
        values = dict(self.values)
        backend = display_name(self.backend)
        if self.code is GapCode.SHARDS_FAILED:
            index, reason = values.pop("index", None), values.pop("reason", None)
            where = Phrase("gap.shard.index", index=index) if index else Phrase("gap.shard.unknown")
            first = Phrase("gap.shard.reason", where=where, reason=reason) if reason else where
            return Phrase("gap.shards_failed", backend=backend, first=first, **values)
        if self.code is GapCode.NO_REQUESTS and values.get("namespace"):
            return Phrase("gap.no_requests.namespace", backend=backend, **values)
        return Phrase(f"gap.{self.code.value}", backend=backend, **values)


def part_note(error: SourceError | None, gaps: Sequence[Gap]) -> Phrase | None:
    """Why a part is missing or incomplete, as a page says it: its backend's failure, else each of
    its gaps in turn; None when it is whole."""
    if error is not None:
        return error.phrase
    phrases = [gap.phrase for gap in gaps]
    if not phrases:
        return None
    return reduce(lambda said, then: Phrase("gap.and", first=said, then=then), phrases)


class Partial(BaseModel):
    """Why a part of the answer is missing (null when it is complete)."""

    logs: str | None = None
    trace: str | None = None


class TraceErrors(BaseModel):
    """Each part whose backend failed, and how (null: it answered)."""

    logs: SourceError | None = None
    trace: SourceError | None = None


class TraceWithLogs(BaseModel):
    trace: TraceOut | None
    logs: list[LogEntry]
    logs_window: TimeWindow = Field(
        description="Where the logs were searched: the trace's window widened by the skew, or the lookback"
    )
    logs_truncated: bool = Field(description="True when more logs matched than correlation.max_trace_logs")
    partial: Partial
    errors: TraceErrors = Field(
        default_factory=TraceErrors,
        description="The parts whose backend failed: which backend, the kind of failure, its HTTP status",
    )
    gaps: list[Gap] = Field(
        default_factory=list,
        description="What the parts whose backend answered lack (each also said in `partial`)",
    )

    def note(self, part: str) -> Phrase | None:
        """Why ``part`` (logs, trace) is missing or incomplete, for a page to say (None: it is whole)."""
        return part_note(getattr(self.errors, part), [g for g in self.gaps if g.part == part])


class LogPage(BaseModel):
    logs: list[LogEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")
    partial: str | None = Field(
        default=None,
        description="Why lines may be missing from this page (Elasticsearch shards that failed or timed "
        "out); null when every shard answered",
    )
    gaps: list[Gap] = Field(
        default_factory=list,
        description="What this page lacks although Elasticsearch answered, part `logs` (the same as "
        "`partial`, as data); empty when every shard answered. Elasticsearch failing is a 502/503/504, "
        "never a page",
    )


class TraceSummary(BaseModel):
    trace_id: str
    root_service: str
    root_operation: str
    start: datetime
    duration_ms: float
    span_count: int
    error_count: int
    services: list[str]
    url: str


class TraceList(BaseModel):
    traces: list[TraceSummary]
    services_searched: list[str] = Field(description="The Jaeger service names the search used")


class Red(BaseModel):
    """Rate, errors and duration of the requests a service received (Istio, reporter=destination)."""

    requests_per_s: float
    error_rate: float | None = Field(description="Share of 5xx (or failed gRPC) responses, 0-1")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None


class OverviewPartial(BaseModel):
    red: str | None = None
    error_logs: str | None = None
    traces: str | None = None
    incidents: str | None = None


class OverviewErrors(BaseModel):
    """Each part whose backend failed, and how (null: it answered)."""

    red: SourceError | None = None
    error_logs: SourceError | None = None
    traces: SourceError | None = None
    incidents: SourceError | None = None


class ServiceOverview(BaseModel):
    service: str
    namespace: str | None
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    red: Red | None
    error_logs: list[LogEntry]
    slowest_traces: list[TraceSummary]
    failed_traces: list[TraceSummary]
    incidents: list[IncidentSummary] = Field(description="The service's incidents not yet resolved")
    partial: OverviewPartial
    errors: OverviewErrors = Field(
        default_factory=OverviewErrors,
        description="The parts whose backend failed: which backend, the kind of failure, its HTTP status",
    )
    gaps: list[Gap] = Field(
        default_factory=list,
        description="What the parts whose backend answered lack (each also said in `partial`)",
    )

    def note(self, part: str) -> Phrase | None:
        """Why ``part`` is missing or incomplete, for a page to say (None: it is whole)."""
        return part_note(getattr(self.errors, part), [g for g in self.gaps if g.part == part])


class IncidentContext(BaseModel):
    """An incident with the overview of each of its services, around its time."""

    incident: IncidentSummary
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    services: list[ServiceOverview]


class GraphNode(BaseModel):
    id: str = Field(
        description="<service>.<namespace>, as Istio names span services; `unknown` outside the mesh"
    )
    service: str
    namespace: str | None
    requests_per_s: float | None = Field(description="Requests it received")
    error_rate: float | None
    latency_p99_ms: float | None


class GraphEdge(BaseModel):
    source: str
    target: str
    requests_per_s: float | None
    error_rate: float | None
    latency_p99_ms: float | None
    protocol: str | None
    reporter: str | None = Field(description="The Istio reporter whose counts this edge shows")
    trace_calls: int | None = Field(description="Calls Jaeger's dependencies saw in the window")


class GraphPartial(BaseModel):
    """Why a part of the graph is missing (null when it is complete)."""

    jaeger: str | None = Field(
        default=None, description="Why Jaeger's call counts (`trace_calls`) are missing, in one line"
    )


class GraphErrors(BaseModel):
    """Each part whose backend failed, and how (null: it answered, or is not configured)."""

    jaeger: SourceError | None = None


class Graph(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    namespace: str | None
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    partial: GraphPartial
    errors: GraphErrors = Field(
        default_factory=GraphErrors,
        description="The parts whose backend failed (Jaeger's call counts): which backend, the kind of "
        "failure, its HTTP status; Prometheus failing is a 502/503/504, never a graph",
    )

"""A faithful fake of Jaeger's query service (port 16686): API v3, the v1 UI API and the UI page.

Modelled on Jaeger's own handlers (``cmd/query/app/apiv3/http_gateway.go``,
``cmd/query/app/http_handler.go``, ``static_handler.go``):

- v3 answers OTLP JSON ``{"result": {"resourceSpans": [...]}}`` with hex ids,
  nanosecond times as strings, enums as numbers and empty lists omitted (gogo
  jsonpb); an unknown trace or an empty search is a 404
  ``{"error": {"httpCode": 404, "message": "No traces found"}}``;
- v1 answers ``{"data", "total", "limit", "offset", "errors"}`` with 64-bit
  trace ids printed as 16 hex digits, µs times, ``references`` and typed tags;
- errors are written with Go's ``http.Error``: JSON text sent as ``text/plain``;
- ``GET /`` (and, like the SPA fallback, any unknown non-API path) serves
  index.html with ``JAEGER_VERSION = {...};`` injected;
- ``v1_only = True`` behaves like Jaeger 1.x without API v3, whose router sent
  every unknown path, ``/api/v3/...`` included, to the SPA page (200, HTML);
  otherwise unknown ``/api/...`` paths get Go's plain ``404 page not found``.
- ``v3_params = "snake"`` accepts only the snake_case search parameters of
  Jaeger 2.0-2.x (no ``query.attributes``); the default accepts the newest
  camelCase names with the snake_case aliases, and ``query.attributes``.

``version`` picks the release whose v3 quirks are modelled (see :data:`MODELLED_VERSIONS`;
each rule below is a test in ``tests/backends/test_jaeger.py`` naming the release):

- up to 1.52: an unknown trace id is a plain-text error (not the JSON envelope), an empty
  search an empty 200 body;
- up to 1.53: v3 writes trace and span ids in base64 (hex from 1.54);
- 1.53 to 2.18 (every 1.6x release and most 2.x): v3 search ignores ``query.attributes`` but
  still caps the answer at ``num_traces``, so matches beyond the cap are lost;
- before 1.65 (1.x) and 2.2 (2.x): an empty v3 search is a 200 with an empty result; from
  then on a 404 "No traces found".

The v1 search (``/api/traces?tags=``) filters by tags on the server in every release.

Traces are held in the internal model (:class:`app.backends.traces.Trace`);
:meth:`FakeJaeger.set_raw` overrides any route with a verbatim answer.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.backends.traces import (
    DependencyLink,
    Span,
    TagValue,
    Trace,
    make_trace,
    pad_trace_id,
    short_trace_id,
    us_from_datetime,
)
from tests.fakes.faults import FaultInjector

DEFAULT_VERSION = "v2.5.0"
MODELLED_VERSIONS = ("v1.52.0", "v1.60.0", "v2.1.0", "v2.5.0", "v2.19.0")
"""One release on each side of every v3 quirk the fake models (see the module docstring)."""
GO_TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
_KIND_NUMBERS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_US = {"ns": 0.001, "us": 1, "µs": 1, "ms": 1000, "s": 1e6, "m": 6e7, "h": 3.6e9}
_V3_NAMES = {
    "service": ("query.serviceName", "query.service_name"),
    "operation": ("query.operationName", "query.operation_name"),
    "start_min": ("query.startTimeMin", "query.start_time_min"),
    "start_max": ("query.startTimeMax", "query.start_time_max"),
    "duration_min": ("query.durationMin", "query.duration_min"),
    "duration_max": ("query.durationMax", "query.duration_max"),
    "depth": ("query.searchDepth", "query.search_depth", "query.num_traces"),
}
INDEX_HTML = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <base href="/" data-inject-target="BASE_URL" />
    <title>Jaeger UI</title>
    <script>
      // Jaeger UI config data is embedded by the query-service via search-replace.
      // JAEGER_CONFIG_JS
      const JAEGER_CONFIG = DEFAULT_CONFIG;
      const JAEGER_STORAGE_CAPABILITIES = DEFAULT_STORAGE_CAPABILITIES;
      const JAEGER_VERSION = DEFAULT_VERSION;
    </script>
  </head>
  <body><div id="jaeger-ui-root"></div></body>
</html>
"""


class JaegerQueryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: list[tuple[str, str]]


@dataclass(frozen=True)
class _Raw:
    status: int
    body: str
    content_type: str


class FakeJaeger(FaultInjector):
    """An in-memory Jaeger query service. Serve it with ``tests.fakes.server.serve``.

    Failures on demand (:meth:`fail_with`, :meth:`hang`, :meth:`stop`) come from
    :class:`~tests.fakes.faults.FaultInjector`; an injected failure is worded like
    Jaeger's own errors of that route (``simulated failure <status>``).
    """

    def __init__(
        self,
        *,
        v1_only: bool = False,
        version: str | None = DEFAULT_VERSION,
        v3_params: str = "camel",
    ) -> None:
        super().__init__()
        self.v1_only = v1_only
        self.version = version
        self.v3_params = v3_params
        self.requests: list[RecordedRequest] = []
        self.extra_dependencies: list[DependencyLink] = []
        self._traces: dict[str, Trace] = {}
        self._raw: dict[str, _Raw] = {}
        self._lock = threading.RLock()
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- release quirks (None: a build that does not say its version behaves like the newest) ---

    @property
    def release(self) -> tuple[int, int] | None:
        return release_of(self.version)

    def _since(self, *release: int) -> bool:
        return self.release is None or self.release >= release

    @property
    def plain_not_found(self) -> bool:
        """≤ 1.52: an unknown id is a plain-text error, an empty search an empty body."""
        return not self._since(1, 53)

    @property
    def base64_ids(self) -> bool:
        """≤ 1.53: v3 ids in base64."""
        return not self._since(1, 54)

    @property
    def ignores_attributes(self) -> bool:
        """1.53 to 2.18 (and the snake_case-only mode): ``query.attributes`` is ignored."""
        if self.v3_params == "snake":
            return True
        return self.release is not None and (1, 53) <= self.release < (2, 19)

    @property
    def empty_search_404(self) -> bool:
        """From 1.65 (1.x) and 2.2 (2.x): an empty v3 search is a 404."""
        if self.release is None:
            return True
        return self.release >= (2, 2) or (1, 65) <= self.release < (2, 0)

    # -- test-side API ------------------------------------------------------------------------

    def add_trace(self, trace: Trace) -> None:
        """Stores a trace (spans of an already stored trace id are merged in)."""
        with self._lock:
            known = self._traces.get(trace.trace_id)
            spans = [*(known.spans if known else ()), *trace.spans]
            self._traces[trace.trace_id] = make_trace(trace.trace_id, spans)

    def add_spans(self, spans: Iterable[Span]) -> None:
        """Stores raw spans, grouped into traces by their trace id."""
        by_trace: dict[str, list[Span]] = {}
        for span in spans:
            by_trace.setdefault(pad_trace_id(span.trace_id), []).append(span)
        for trace_id, members in by_trace.items():
            self.add_trace(make_trace(trace_id, members))

    def set_raw(self, path: str, body: str, *, status: int = 200, content_type: str = GO_TEXT) -> None:
        """Answers ``path`` (exactly, without query) with this verbatim body."""
        with self._lock:
            self._raw[path] = _Raw(status, body, content_type)

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        path = request.url.path
        params = list(request.query_params.multi_items())
        with self._lock:
            self.requests.append(RecordedRequest(request.method, path, params))
            raw = self._raw.get(path)
        failure = await self.injected_failure(request)
        if failure is not None:
            return self._error(path, failure.status, f"simulated failure {failure.status}")
        if raw is not None:
            return Response(raw.body, status_code=raw.status, media_type=raw.content_type)
        try:
            with self._lock:
                answer = self._route(request.method, path, request.query_params)
        except JaegerQueryError as exc:
            return self._error(path, exc.status, exc.message)
        if isinstance(answer, Response):
            return answer
        return Response(json.dumps(answer, separators=(",", ":")), media_type=self._json_type(path))

    def _json_type(self, path: str) -> str:
        # v1 sets application/json; the v3 gateway sets nothing, so Go sniffs JSON as text/plain.
        return GO_TEXT if path.startswith("/api/v3/") else "application/json"

    def _error(self, path: str, status: int, message: str) -> Response:
        if path.startswith("/api/v3/") and not self.v1_only:
            body: dict[str, Any] = {"error": {"httpCode": status, "message": message}}
        else:
            body = {
                "data": None,
                "total": 0,
                "limit": 0,
                "offset": 0,
                "errors": [{"code": status, "msg": message}],
            }
        return Response(json.dumps(body) + "\n", status_code=status, media_type=GO_TEXT)

    def _route(self, method: str, path: str, query: Mapping[str, str]) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if method != "GET":
            raise JaegerQueryError(405, "method not allowed")
        if parts[:2] == ["api", "v3"] and not self.v1_only:
            return self._route_v3(parts[2:], query)
        if parts[:1] == ["api"] and parts[1:2] != ["v3"]:
            return self._route_v1(parts[1:], query)
        if parts[:1] == ["api"] and not self.v1_only:
            return _go_not_found()
        return self._index_page()

    def _index_page(self) -> Response:
        return Response(self.index_html(), media_type=HTML)

    def index_html(self) -> str:
        if self.version is None:
            return INDEX_HTML
        info = {
            "gitCommit": "0123456789abcdef",
            "gitVersion": self.version,
            "buildDate": "2025-01-01T00:00:00Z",
        }
        return INDEX_HTML.replace(
            "JAEGER_VERSION = DEFAULT_VERSION;", f"JAEGER_VERSION = {json.dumps(info)};"
        )

    # -- API v3 -------------------------------------------------------------------------------

    def _route_v3(self, parts: list[str], query: Mapping[str, str]) -> Any:
        if len(parts) == 2 and parts[0] == "traces":
            if self.plain_not_found and _parse_trace_id(parts[1], "trace_id") not in self._traces:
                return Response("trace not found\n", status_code=404, media_type=GO_TEXT)
            trace = self._stored_trace(parts[1], "trace_id", missing="No traces found")
            return {"result": otlp_json([trace], base64_ids=self.base64_ids)}
        if parts == ["traces"]:
            traces = self._search(self._v3_query(query))
            if not traces:
                if self.plain_not_found:
                    return Response("", media_type=GO_TEXT)
                if not self.empty_search_404:
                    return {"result": {}}
                raise JaegerQueryError(404, "No traces found")
            return {"result": otlp_json(traces, base64_ids=self.base64_ids)}
        if parts == ["services"]:
            services = self._services()
            return {"services": services} if services else {}
        if parts == ["operations"]:
            operations = [
                {"name": name, "spanKind": kind or "internal"}
                for name, kind in self._operations(query.get("service", ""), query.get("span_kind"))
            ]
            return {"operations": operations} if operations else {}
        return _go_not_found()

    def _v3_param(self, query: Mapping[str, str], key: str) -> tuple[str, str]:
        names = _V3_NAMES[key]
        accepted = [n for n in names if "_" in n] if self.v3_params == "snake" else list(names)
        for name in accepted:
            if query.get(name):
                return query[name], name
        return "", accepted[0]

    def _v3_query(self, query: Mapping[str, str]) -> _Query:
        start_min, min_name = self._v3_param(query, "start_min")
        start_max, max_name = self._v3_param(query, "start_max")
        if not start_min or not start_max:
            raise JaegerQueryError(400, f"{min_name} and {max_name} are required")
        attributes: dict[str, str] = {}
        if not self.ignores_attributes and query.get("query.attributes"):
            try:
                attributes = {str(k): str(v) for k, v in json.loads(query["query.attributes"]).items()}
            except (ValueError, AttributeError) as exc:
                raise JaegerQueryError(400, f"malformed parameter query.attributes: {exc}") from None
        depth, depth_name = self._v3_param(query, "depth")
        service, _ = self._v3_param(query, "service")
        operation, _ = self._v3_param(query, "operation")
        duration_min, dmin_name = self._v3_param(query, "duration_min")
        duration_max, dmax_name = self._v3_param(query, "duration_max")
        return _Query(
            service=service,
            operation=operation,
            start_min_us=_rfc3339_us(start_min, min_name),
            start_max_us=_rfc3339_us(start_max, max_name),
            duration_min_us=_go_duration_us(duration_min, dmin_name) if duration_min else None,
            duration_max_us=_go_duration_us(duration_max, dmax_name) if duration_max else None,
            tags=attributes,
            limit=_int_param(depth, depth_name) if depth else 0,
        )

    # -- API v1 -------------------------------------------------------------------------------

    def _route_v1(self, parts: list[str], query: Mapping[str, str]) -> Any:
        if len(parts) == 2 and parts[0] == "traces":
            trace = self._stored_trace(parts[1], "traceID", missing="trace not found")
            return _envelope([v1_trace_json(trace)], total=0)
        if parts == ["traces"]:
            traces = self._search(self._v1_query(query))
            return _envelope([v1_trace_json(t) for t in traces], total=0)
        if parts == ["services"]:
            services = self._services()
            return _envelope(services or None, total=len(services))
        if len(parts) == 3 and parts[0] == "services" and parts[2] == "operations":
            names = list(dict.fromkeys(name for name, _ in self._operations(parts[1], None)))
            return _envelope(names or None, total=len(names))
        if parts == ["operations"]:
            if not query.get("service"):
                raise JaegerQueryError(400, "parameter 'service' is required")
            operations = [
                {"name": n, "spanKind": k or ""} for n, k in self._operations(query["service"], None)
            ]
            return _envelope(operations, total=len(operations))
        if parts == ["dependencies"]:
            return _envelope([_link_json(link) for link in self._dependencies(query)], total=0)
        if self.v1_only:
            return self._index_page()
        return _go_not_found()

    def _v1_query(self, query: Mapping[str, str]) -> _Query:
        if not query.get("service"):
            raise JaegerQueryError(400, "parameter 'service' is required")
        tags: dict[str, str] = {}
        if query.get("tags"):
            try:
                tags = {str(k): str(v) for k, v in json.loads(query["tags"]).items()}
            except (ValueError, AttributeError) as exc:
                raise JaegerQueryError(400, f"malformed 'tags' parameter: {exc}") from None
        end_us = _int_param(query["end"], "end") if query.get("end") else us_from_datetime(_now())
        start_us = _int_param(query["start"], "start") if query.get("start") else end_us - 3_600_000_000
        return _Query(
            service=query["service"],
            operation=query.get("operation", ""),
            start_min_us=start_us,
            start_max_us=end_us,
            duration_min_us=_go_duration_us(query["minDuration"], "minDuration")
            if query.get("minDuration")
            else None,
            duration_max_us=_go_duration_us(query["maxDuration"], "maxDuration")
            if query.get("maxDuration")
            else None,
            tags=tags,
            limit=_int_param(query["limit"], "limit") if query.get("limit") else 20,
        )

    def _dependencies(self, query: Mapping[str, str]) -> list[DependencyLink]:
        """Like the memory store: calls from a span's service to its children's other services."""
        end_ms = (
            _int_param(query["endTs"], "endTs") if query.get("endTs") else us_from_datetime(_now()) // 1000
        )
        lookback_ms = _int_param(query["lookback"], "lookback") if query.get("lookback") else 86_400_000
        counts: dict[tuple[str, str], int] = {}
        for trace in self._traces.values():
            by_id = {span.span_id: span for span in trace.spans}
            for span in trace.spans:
                start_ms = span.start_us // 1000
                parent = by_id.get(span.parent_id or "")
                if parent is None or parent.service == span.service:
                    continue
                if end_ms - lookback_ms <= start_ms <= end_ms:
                    key = (parent.service, span.service)
                    counts[key] = counts.get(key, 0) + 1
        for link in self.extra_dependencies:
            key = (link.parent, link.child)
            counts[key] = counts.get(key, 0) + link.call_count
        return [DependencyLink(p, c, n) for (p, c), n in sorted(counts.items())]

    # -- shared -------------------------------------------------------------------------------

    def _stored_trace(self, raw_id: str, param: str, *, missing: str) -> Trace:
        trace = self._traces.get(_parse_trace_id(raw_id, param))
        if trace is None:
            raise JaegerQueryError(404, missing)
        return trace

    def _services(self) -> list[str]:
        return sorted({span.service for trace in self._traces.values() for span in trace.spans})

    def _operations(self, service: str, kind: str | None) -> list[tuple[str, str | None]]:
        found = {
            (span.operation, span.kind)
            for trace in self._traces.values()
            for span in trace.spans
            if span.service == service and (not kind or span.kind == kind)
        }
        return sorted(found, key=lambda item: (item[0], item[1] or ""))

    def _search(self, query: _Query) -> list[Trace]:
        found = [trace for trace in self._traces.values() if any(query.matches(s) for s in trace.spans)]
        found.sort(key=lambda t: t.start, reverse=True)
        return found[: query.limit] if query.limit > 0 else found


@dataclass(frozen=True)
class _Query:
    service: str
    operation: str
    start_min_us: int
    start_max_us: int
    duration_min_us: int | None
    duration_max_us: int | None
    tags: dict[str, str]
    limit: int

    def matches(self, span: Span) -> bool:
        if self.service and span.service != self.service:
            return False
        if self.operation and span.operation != self.operation:
            return False
        if not self.start_min_us <= span.start_us <= self.start_max_us:
            return False
        if self.duration_min_us is not None and span.duration_us < self.duration_min_us:
            return False
        if self.duration_max_us is not None and span.duration_us > self.duration_max_us:
            return False
        for key, wanted in self.tags.items():
            value = span.tags.get(key, span.resource.get(key))
            if value is None or _tag_text(value) != wanted:
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Renderings


def otlp_json(traces: Iterable[Trace], *, base64_ids: bool = False) -> dict[str, Any]:
    """``TracesData`` as Jaeger's v3 gateway writes it: one resourceSpans per service and trace
    (ids in base64 as releases up to 1.53 wrote them, with ``base64_ids``)."""
    resource_spans: list[dict[str, Any]] = []
    for trace in traces:
        by_service: dict[str, list[Span]] = {}
        for span in trace.spans:
            by_service.setdefault(span.service, []).append(span)
        for service, spans in by_service.items():
            resource = {"service.name": service, **spans[0].resource}
            resource_spans.append(
                {
                    "resource": {"attributes": _otlp_attributes(resource)},
                    "scopeSpans": [{"scope": {}, "spans": [_otlp_span(span, base64_ids) for span in spans]}],
                }
            )
    return {"resourceSpans": resource_spans} if resource_spans else {}


def _otlp_span(span: Span, base64_ids: bool = False) -> dict[str, Any]:
    start_ns = span.start_us * 1000

    def written(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode() if base64_ids and hex_id else hex_id

    out: dict[str, Any] = {
        "traceId": written(pad_trace_id(span.trace_id)),
        "spanId": written(span.span_id),
        "parentSpanId": written(span.parent_id or ""),
        "name": span.operation,
    }
    if span.kind in _KIND_NUMBERS:
        out["kind"] = _KIND_NUMBERS[span.kind]
    if start_ns:  # OTLP JSON omits zero values
        out["startTimeUnixNano"] = str(start_ns)
    if start_ns + span.duration_us:
        out["endTimeUnixNano"] = str(start_ns + span.duration_us * 1000)
    if span.tags:
        out["attributes"] = _otlp_attributes(span.tags)
    out["status"] = {"code": 2} if span.error else {}
    return out


def _otlp_attributes(values: Mapping[str, TagValue]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            any_value: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            any_value = {"intValue": str(value)}
        elif isinstance(value, float):
            any_value = {"doubleValue": value}
        else:
            any_value = {"stringValue": value}
        out.append({"key": key, "value": any_value})
    return out


def v1_trace_json(trace: Trace) -> dict[str, Any]:
    """A trace in the v1 UI model: ``processes`` keyed p1, p2… in order of first appearance."""
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[str, str] = {}
    spans = []
    for span in trace.spans:
        key = json.dumps([span.service, sorted((k, str(v)) for k, v in span.resource.items())])
        if key not in process_ids:
            process_ids[key] = f"p{len(process_ids) + 1}"
            processes[process_ids[key]] = {"serviceName": span.service, "tags": _v1_tags(span.resource)}
        spans.append(_v1_span(span, process_ids[key]))
    return {
        "traceID": short_trace_id(trace.trace_id),
        "spans": spans,
        "processes": processes,
        "warnings": None,
    }


def _v1_span(span: Span, process_id: str) -> dict[str, Any]:
    tags = dict(span.tags)
    if span.kind and "span.kind" not in tags:
        tags["span.kind"] = span.kind
    if span.error and "error" not in tags:
        tags["error"] = True
    references = []
    if span.parent_id:
        references.append(
            {"refType": "CHILD_OF", "traceID": short_trace_id(span.trace_id), "spanID": span.parent_id}
        )
    return {
        "traceID": short_trace_id(span.trace_id),
        "spanID": span.span_id,
        "flags": 1,
        "operationName": span.operation,
        "references": references,
        "startTime": span.start_us,
        "duration": span.duration_us,
        "tags": _v1_tags(tags),
        "logs": [],
        "processID": process_id,
        "warnings": None,
    }


def _v1_tags(values: Mapping[str, TagValue]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            kind = "bool"
        elif isinstance(value, int):
            kind = "int64"
        elif isinstance(value, float):
            kind = "float64"
        else:
            kind = "string"
        out.append({"key": key, "type": kind, "value": value})
    return out


def _link_json(link: DependencyLink) -> dict[str, Any]:
    return {"parent": link.parent, "child": link.child, "callCount": link.call_count}


def _go_not_found() -> Response:
    """Go's ``http.NotFound``."""
    return Response("404 page not found\n", status_code=404, media_type=GO_TEXT)


def _envelope(data: Any, *, total: int) -> dict[str, Any]:
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": None}


# ---------------------------------------------------------------------------------------------
# Parameter parsing, as strict as Jaeger's


def _parse_trace_id(raw: str, name: str) -> str:
    """Jaeger's TraceIDFromString: 1-32 hex digits (a 64-bit id may come unpadded)."""
    try:
        return pad_trace_id(raw)
    except ValueError:
        if name == "trace_id":
            raise JaegerQueryError(400, f"malformed parameter trace_id: invalid trace id {raw!r}") from None
        raise JaegerQueryError(400, f'strconv.ParseUint: parsing "{raw}": invalid syntax') from None


def _rfc3339_us(raw: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in raw:
        raise JaegerQueryError(400, f'malformed parameter {name}: parsing time "{raw}" as RFC3339')
    return us_from_datetime(moment)


def _go_duration_us(raw: str, name: str) -> int:
    """Go's time.ParseDuration, in microseconds (``1.5s``, ``250ms``, ``1500us``, ``1h2m``)."""
    position, total = 0, 0.0
    while position < len(raw):
        match = _DURATION_RE.match(raw, position)
        if match is None:
            raise JaegerQueryError(400, f'malformed parameter {name}: time: invalid duration "{raw}"')
        total += float(match.group(1)) * _DURATION_US[match.group(2)]
        position = match.end()
    if not raw:
        raise JaegerQueryError(400, f'malformed parameter {name}: time: invalid duration ""')
    return int(total)


def _int_param(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise JaegerQueryError(
            400, f'malformed parameter {name}: strconv.Atoi: parsing "{raw}": invalid syntax'
        ) from None


def release_of(version: str | None) -> tuple[int, int] | None:
    """``v1.52.0`` → (1, 52); None when there is no version."""
    if version is None:
        return None
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def _tag_text(value: TagValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _now() -> datetime:
    return datetime.now().astimezone()

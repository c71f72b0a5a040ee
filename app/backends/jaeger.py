"""Jaeger query-service client: API v3 (OTLP JSON, Jaeger 2.x) first, the v1 UI API as fallback.

Which API works is detected on the first call and remembered: a Jaeger without
API v3 either answers ``/api/v3/...`` with the UI's ``index.html`` (Jaeger 1.x
serves the SPA for every unknown path) or with a plain-text 404, whereas a real
v3 "not found" is a JSON error body. Both answer formats normalise into the
model of :mod:`app.backends.traces`.

Wire facts this relies on (Jaeger source, ``cmd/query/app/apiv3/http_gateway.go``
and ``cmd/query/app/http_handler.go``):

- error bodies are JSON sent with ``http.Error``, i.e. ``text/plain``: v3
  ``{"error": {"httpCode", "message"}}``, v1 ``{"data": null, "errors": [{"code", "msg"}]}``;
- v3 trace search takes ``query.service_name`` / ``query.start_time_min`` (RFC 3339)
  … in Jaeger 2.0-2.x; the newest releases made ``query.serviceName`` … canonical
  and keep the snake_case names as deprecated aliases. Both spellings are sent;
- v3 answers "No traces found" with a 404 for an empty search or an unknown id (an empty
  search: from 1.65 / 2.2; before, a 200 with an empty result). Up to 1.52 an unknown id is a
  plain-text error and an empty search an empty body: both mean "nothing", not "no API v3" (that
  is the SPA page, or Go's own ``404 page not found``);
- OTLP JSON omits zero values: a span without ``startTimeUnixNano`` is read, not refused (it
  takes its end, else the trace's earliest start, so one bad span cannot stretch the trace
  window to 1970);
- v3 search ignores ``query.attributes`` (tags) from 1.53 to 2.18 but still caps the answer at
  ``num_traces``: re-checking tags on that capped set silently loses matches beyond the cap.
  So a search *with tags* goes to v1 ``/api/traces?tags=`` (filtered by the server in every
  release) unless the server is known to be 2.19 or newer.

How the version is known: v3 has no version endpoint in every release, but the query service
injects ``JAEGER_VERSION = {"gitVersion": ...}`` into the UI's ``index.html`` at ``/`` in 1.x and
2.x alike (:func:`version_from_index_html`). It is read once, on the first tag search, and kept.
A Jaeger without the UI, behind a proxy that hides it, or a build without a version is
*unknown* and treated as old: the v1 search is right on every release that still has it, and
when it is gone (a 404 that is not Jaeger's JSON) the v3 search with the tags re-checked here is
the fallback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from app.backends.errors import BackendError, BackendErrorKind, not_configured
from app.backends.http import (
    BackendStatus,
    CallObserver,
    HttpBackend,
    ignore_call,
    kind_for_status,
    response_excerpt,
    timed_probe,
)
from app.backends.traces import (
    DependencyLink,
    Span,
    TagValue,
    Trace,
    datetime_from_us,
    is_zero_id,
    make_trace,
    pad_span_id,
    pad_trace_id,
    us_from_datetime,
)
from app.config import JaegerSettings

ApiVersion = Literal["v3", "v1"]
T = TypeVar("T")

UNKNOWN_SERVICE = "unknown_service"
_NOT_FOUND = frozenset({404})
_VERSION_RE = re.compile(r"JAEGER_VERSION\s*=\s*(\{.*?\})\s*;", re.DOTALL)
_OTLP_KINDS: dict[Any, str] = {
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}
_OTLP_STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR")
# v3 search parameters: canonical camelCase (newest Jaeger) → snake_case (Jaeger 2.0 and later, deprecated).
_V3_SPELLINGS = {
    "query.serviceName": "query.service_name",
    "query.operationName": "query.operation_name",
    "query.startTimeMin": "query.start_time_min",
    "query.startTimeMax": "query.start_time_max",
    "query.durationMin": "query.duration_min",
    "query.durationMax": "query.duration_max",
    "query.searchDepth": "query.search_depth",
}


class JaegerClient(HttpBackend):
    """Reads traces, services, operations and dependencies from Jaeger's query service."""

    name = "jaeger"

    def __init__(
        self,
        settings: JaegerSettings,
        *,
        observer: CallObserver = ignore_call,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if settings.url is None:
            raise not_configured(self.name)
        super().__init__(settings, observer=observer, transport=transport)
        self._api: ApiVersion | None = None
        self._release: tuple[int, int] | None = None
        self._release_known = False

    @property
    def api_version(self) -> ApiVersion | None:
        """The API found to work (None until the first call tells)."""
        return self._api

    async def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with this id (16 or 32 hex digits), or None when Jaeger does not know it."""
        tid = pad_trace_id(trace_id)
        api, response = await self._get_v3_or_v1(f"api/v3/traces/{tid}", None, f"api/traces/{tid}", None)
        if api == "v3":
            # a JSON "No traces found", or the plain error of 1.52 and older (v3_is_absent ruled out
            # the rest); an empty body: older gateways ending the stream without a trace
            if response.status_code == 404 or not response.text.strip():
                return None
            documents = self._documents(response, "trace")
            if _stream_not_found(documents):
                return None
            spans = self._parse(lambda: otlp_spans(documents), "v3 trace")
        else:
            if response.status_code == 404:
                self._check_v1_not_found(response)
                return None
            data = self._v1_data(response, "trace")
            spans = [s for t in self._parse(lambda: v1_traces(data), "v1 trace") for s in t.spans]
        own = [span for span in spans if span.trace_id == tid]
        return make_trace(tid, own) if own else None

    async def search_traces(
        self,
        service: str,
        *,
        operation: str | None = None,
        tags: Mapping[str, TagValue] | None = None,
        start: datetime,
        end: datetime,
        min_duration_us: int | None = None,
        max_duration_us: int | None = None,
        limit: int = 20,
    ) -> list[Trace]:
        """Traces with a span of ``service`` (and ``operation``, ``tags``, duration) started in the window."""
        wanted = {key: tag_text(value) for key, value in (tags or {}).items()}
        v3: dict[str, str] = {
            "query.serviceName": service,
            "query.startTimeMin": rfc3339(start),
            "query.startTimeMax": rfc3339(end),
            "query.searchDepth": str(limit),
        }
        v1: dict[str, str] = {
            "service": service,
            "start": str(us_from_datetime(start)),
            "end": str(us_from_datetime(end)),
            "limit": str(limit),
        }
        if operation:
            v3["query.operationName"] = v1["operation"] = operation
        if min_duration_us is not None:
            v3["query.durationMin"] = v1["minDuration"] = f"{min_duration_us}us"
        if max_duration_us is not None:
            v3["query.durationMax"] = v1["maxDuration"] = f"{max_duration_us}us"
        if wanted:
            v3["query.attributes"] = v1["tags"] = json.dumps(wanted, separators=(",", ":"))
            if self._api == "v3" and not await self._filters_attributes():
                found = await self._v1_tag_search(v1)
                if found is not None:
                    return found[:limit]
        api, response = await self._get_v3_or_v1("api/v3/traces", v3_params(v3), "api/traces", v1)
        if api == "v3" and wanted and not await self._filters_attributes():
            found = await self._v1_tag_search(v1)  # v3 was only just found: same reasoning as above
            if found is not None:
                return found[:limit]
        if api == "v3":
            if response.status_code == 404 or not response.text.strip():
                return []
            documents = self._documents(response, "trace search")
            if _stream_not_found(documents):
                return []
            spans = self._parse(lambda: otlp_spans(documents), "v3 trace search")
            traces = group_traces(spans)
            if wanted:
                traces = [t for t in traces if has_tags(t, wanted)]
        else:
            if response.status_code == 404:
                raise self._v1_missing(response)
            data = self._v1_data(response, "trace search")
            traces = self._parse(lambda: v1_traces(data), "v1 trace search")
        return traces[:limit]

    async def _filters_attributes(self) -> bool:
        """Whether v3 search honours ``query.attributes``: only from 2.19 on (unknown: no)."""
        if not self._release_known:
            try:
                self._release = release_of(await self._version(retries=0))
            except BackendError:
                self._release = None
            self._release_known = True
        return self._release is not None and self._release >= (2, 19)

    async def _v1_tag_search(self, params: dict[str, str]) -> list[Trace] | None:
        """The v1 search (the server filters the tags); None when this Jaeger no longer has it."""
        response = await self.request("GET", "api/traces", params=params, passthrough=_NOT_FOUND)
        if response.status_code == 404 or v3_is_absent(response):
            return None
        data = self._v1_data(response, "trace search")
        return self._parse(lambda: v1_traces(data), "v1 trace search")

    async def services(self) -> list[str]:
        """The services Jaeger has seen."""
        return await self._services(retries=None)

    async def _services(self, *, retries: int | None) -> list[str]:
        api, response = await self._get_v3_or_v1(
            "api/v3/services", None, "api/services", None, retries=retries
        )
        if response.status_code == 404:
            raise self.error_for_response(response)
        if api == "v3":
            body = self._object(response, "services")
            return self._parse(lambda: _strings(body.get("services"), "services"), "v3 services")
        data = self._v1_data(response, "services")
        return self._parse(lambda: _strings(data, "data"), "v1 services")

    async def operations(self, service: str) -> list[str]:
        """The operation (span) names of ``service``, each once."""
        api, response = await self._get_v3_or_v1(
            "api/v3/operations",
            {"service": service},
            f"api/services/{quote(service, safe='')}/operations",
            None,
        )
        if response.status_code == 404:
            raise self.error_for_response(response)
        if api == "v3":
            body = self._object(response, "operations")
            names = self._parse(lambda: _operation_names(body.get("operations")), "v3 operations")
        else:
            data = self._v1_data(response, "operations")
            names = self._parse(lambda: _strings(data, "data"), "v1 operations")
        return list(dict.fromkeys(names))

    async def dependencies(self, end: datetime, lookback: timedelta) -> list[DependencyLink]:
        """Service-to-service call counts in (end - lookback, end] (v1 API; v3 has none)."""
        params = {
            "endTs": str(us_from_datetime(end) // 1000),
            "lookback": str(lookback // timedelta(milliseconds=1)),
        }
        response = await self.request("GET", "api/dependencies", params=params)
        data = self._v1_data(response, "dependencies")
        return self._parse(lambda: dependency_links(data), "dependencies")

    async def version(self) -> str | None:
        """Jaeger's version as its UI page tells it (``gitVersion``), or None when it cannot tell."""
        return await self._version(retries=None)

    async def _version(self, *, retries: int | None) -> str | None:
        response = await self.request("GET", "", passthrough=_NOT_FOUND, retries=retries)
        if response.status_code == 404:
            return None
        return version_from_index_html(response.text)

    async def probe(self, timeout_s: float) -> BackendStatus:
        """Readiness: the services endpoint answers (no retries); the version is best effort."""

        async def check() -> str | None:
            await self._services(retries=0)
            with contextlib.suppress(BackendError):
                return await self._version(retries=0)
            return None

        return await timed_probe(self.name, self.settings, check, timeout_s=timeout_s)

    def error_for_response(self, response: httpx.Response) -> BackendError:
        """A non-2xx answer as a BackendError carrying Jaeger's own message when it gave one."""
        status = response.status_code
        message = jaeger_error_message(response.text) or response_excerpt(response)
        return self.error(kind_for_status(status), f"HTTP {status}: {message}", status=status)

    async def _get_v3_or_v1(
        self,
        v3_path: str,
        v3_query: Any,
        v1_path: str,
        v1_query: Any,
        *,
        retries: int | None = None,
    ) -> tuple[ApiVersion, httpx.Response]:
        """GETs the v3 route unless v1 is known to be the one; falls back to v1 when v3 is absent."""
        if self._api != "v1":
            response = await self.request(
                "GET", v3_path, params=v3_query, passthrough=_NOT_FOUND, retries=retries
            )
            if not v3_is_absent(response):
                self._api = "v3"
                return "v3", response
            self._api = "v1"
        response = await self.request(
            "GET", v1_path, params=v1_query, passthrough=_NOT_FOUND, retries=retries
        )
        return "v1", response

    def _documents(self, response: httpx.Response, what: str) -> list[Any]:
        try:
            return json_documents(response.text)
        except ValueError:
            raise self.error(
                BackendErrorKind.BAD_RESPONSE,
                f"{what} answer is not JSON: {response_excerpt(response)}",
                status=response.status_code,
            ) from None

    def _object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        body = self.decode_json(response)
        if not isinstance(body, dict):
            raise self.error(
                BackendErrorKind.BAD_RESPONSE,
                f"{what} answer is not a JSON object: {response_excerpt(response)}",
            )
        return body

    def _v1_data(self, response: httpx.Response, what: str) -> Any:
        body = self._object(response, what)
        if "data" not in body:
            raise self.error(
                BackendErrorKind.BAD_RESPONSE, f"{what} answer has no 'data': {response_excerpt(response)}"
            )
        return body["data"]

    def _check_v1_not_found(self, response: httpx.Response) -> None:
        """A v1 404 means "unknown trace" only when it is Jaeger's JSON envelope with ``errors``."""
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and body.get("errors")):
            raise self._v1_missing(response)

    def _v1_missing(self, response: httpx.Response) -> BackendError:
        return self.error(
            BackendErrorKind.BAD_RESPONSE,
            f"neither API v3 nor the v1 route {response.url.path} answered: HTTP {response.status_code}: "
            f"{response_excerpt(response)}",
            status=response.status_code,
        )

    def _parse(self, parse: Callable[[], T], what: str) -> T:
        try:
            return parse()
        except (ValueError, TypeError) as exc:
            raise self.error(BackendErrorKind.BAD_RESPONSE, f"unexpected {what} answer: {exc}") from None


def v3_is_absent(response: httpx.Response) -> bool:
    """True when a /api/v3 answer came from something other than API v3: the SPA page (1.x
    without v3), or Go's ``404 page not found`` (no such route). Other 404s are v3's own
    "not found", JSON or (1.52 and older) plain text."""
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or response.text.lstrip().startswith("<"):
        return True
    if response.status_code != 404:
        return False
    try:
        body = json.loads(response.text)
    except ValueError:
        return response.text.strip() in ("404 page not found", "")
    return not (isinstance(body, dict) and isinstance(body.get("error"), dict))


def release_of(version: str | None) -> tuple[int, int] | None:
    """``v2.19.0`` / ``2.19.0-rc1`` → (2, 19); None when it is not a version."""
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def v3_params(canonical: Mapping[str, str]) -> list[tuple[str, str]]:
    """The search parameters in both spellings (new camelCase and the snake_case every 2.x takes)."""
    params: list[tuple[str, str]] = []
    for name, value in canonical.items():
        params.append((name, value))
        old = _V3_SPELLINGS.get(name)
        if old:
            params.append((old, value))
    if "query.searchDepth" in canonical:
        params.append(("query.num_traces", canonical["query.searchDepth"]))
    return params


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2024-05-01T10:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tag_text(value: TagValue) -> str:
    """A tag value as Jaeger compares it in searches (``true``, ``42``, ``1.5``, text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def has_tags(trace: Trace, wanted: Mapping[str, str]) -> bool:
    """Whether one span of ``trace`` carries every wanted tag (in its own or its resource attributes)."""
    for span in trace.spans:
        found = True
        for key, text in wanted.items():
            value = span.tags.get(key, span.resource.get(key))
            if value is None or tag_text(value) != text:
                found = False
                break
        if found:
            return True
    return False


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Spans grouped into traces, in the order their traces first appear."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    return [make_trace(trace_id, members) for trace_id, members in by_trace.items()]


def jaeger_error_message(text: str) -> str | None:
    """Jaeger's message in an error body: v1 ``errors[0].msg``, v3 ``error.message``, or ``message``."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("msg"):
        return str(errors[0]["msg"])
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(body.get("message"), str):
        return str(body["message"])
    return None


def version_from_index_html(html: str) -> str | None:
    """``gitVersion`` from the ``JAEGER_VERSION = {...};`` the query service injects into index.html."""
    match = _VERSION_RE.search(html)
    if not match:
        return None
    try:
        info = json.loads(match.group(1))
    except ValueError:
        return None
    version = info.get("gitVersion") if isinstance(info, dict) else None
    return version if isinstance(version, str) and version else None


def json_documents(text: str) -> list[Any]:
    """One JSON document, or several in a row (grpc-gateway streams one ``{"result": ...}`` per chunk)."""
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    if not documents:
        raise ValueError("empty answer")
    return documents


def _stream_not_found(documents: list[Any]) -> bool:
    """A streamed v3 answer can carry its 404 inside the body instead of the status line."""
    for document in documents:
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict) and error.get("httpCode") == 404:
            return True
    return False


def otlp_spans(documents: list[Any]) -> list[Span]:
    """Spans from v3 answers: ``{"result": {"resourceSpans": [...]}}`` in OTLP JSON."""
    spans: list[Span] = []
    for document in documents:
        if not isinstance(document, dict):
            raise ValueError(f"expected an object, got {_short(document)}")
        result = document.get("result")
        if not isinstance(result, dict):
            error = document.get("error")
            if isinstance(error, dict):
                raise ValueError(f"Jaeger reported: {error.get('message') or error}")
            raise ValueError(f"no 'result' object in {_short(document)}")
        for resource_spans in _list(result.get("resourceSpans"), "resourceSpans"):
            resource_obj = _dict(resource_spans, "resourceSpans[]").get("resource") or {}
            resource = otlp_attributes(_dict(resource_obj, "resource").get("attributes"))
            service = str(resource.pop("service.name", None) or UNKNOWN_SERVICE)
            scopes = resource_spans.get("scopeSpans", resource_spans.get("instrumentationLibrarySpans"))
            for scope_spans in _list(scopes, "scopeSpans"):
                for raw in _list(_dict(scope_spans, "scopeSpans[]").get("spans"), "spans"):
                    spans.append(_otlp_span(_dict(raw, "span"), service, resource))
    return _date_undated(spans)


_UNDATED = datetime_from_us(0)


def _date_undated(spans: list[Span]) -> list[Span]:
    """Spans without a start (OTLP JSON omits a zero ``startTimeUnixNano``) take the earliest start
    of their trace's other spans, so that one bad span does not stretch the trace back to 1970."""
    earliest: dict[str, datetime] = {}
    for span in spans:
        if span.start != _UNDATED:
            known = earliest.get(span.trace_id)
            earliest[span.trace_id] = span.start if known is None else min(known, span.start)
    return [
        replace(span, start=earliest[span.trace_id])
        if span.start == _UNDATED and span.trace_id in earliest
        else span
        for span in spans
    ]


def _otlp_span(raw: dict[str, Any], service: str, resource: dict[str, TagValue]) -> Span:
    trace_id = otlp_id(raw.get("traceId"), 16)
    span_id = otlp_id(raw.get("spanId"), 8)
    parent_raw = raw.get("parentSpanId") or ""
    parent_id = None if is_zero_id(str(parent_raw)) else otlp_id(parent_raw, 8)
    end_ns = _nanos(raw.get("endTimeUnixNano", 0), "endTimeUnixNano")
    # omitted means zero (OTLP JSON); then the span is dated by its end, else by its trace
    start_ns = _nanos(raw.get("startTimeUnixNano", end_ns), "startTimeUnixNano")
    end_ns = end_ns or start_ns
    tags = otlp_attributes(raw.get("attributes"))
    status = raw.get("status") or {}
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(status, dict) and status.get("message"):
        tags.setdefault("otel.status_description", str(status["message"]))
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"span name is not text: {_short(name)}")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        service=service,
        operation=name,
        start=datetime_from_us(start_ns // 1000),
        duration_us=max(0, (end_ns - start_ns) // 1000),
        error=code in _OTLP_STATUS_ERROR or tags.get("error") in (True, "true"),
        tags=tags,
        kind=_OTLP_KINDS.get(raw.get("kind")),
        resource=resource,
    )


def otlp_id(value: Any, size: int) -> str:
    """An OTLP id as padded lowercase hex; accepts hex (OTLP JSON) and base64 (plain protobuf JSON)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing or non-text id {_short(value)}")
    if "=" in value or not all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"id {value!r} is neither hex nor base64") from None
        if len(raw) != size:
            raise ValueError(f"id {value!r} has {len(raw)} bytes, expected {size}")
        value = raw.hex()
    return pad_trace_id(value) if size == 16 else pad_span_id(value)


def otlp_attributes(raw: Any) -> dict[str, TagValue]:
    """OTLP ``[{key, value: AnyValue}]`` as a flat dict; arrays and maps become JSON text."""
    attributes: dict[str, TagValue] = {}
    for item in _list(raw, "attributes"):
        entry = _dict(item, "attribute")
        key = entry.get("key")
        if not isinstance(key, str):
            raise ValueError(f"attribute without a key: {_short(entry)}")
        value = _plain_any_value(entry.get("value") or {})
        if value is None:
            continue
        attributes[key] = value if isinstance(value, str | bool | int | float) else json.dumps(value)
    return attributes


def _plain_any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"attribute value is not an AnyValue object: {_short(value)}")
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "bytesValue" in value:
        return str(value["bytesValue"])
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [_plain_any_value(item) for item in items]
    if "kvlistValue" in value:
        pairs = (value["kvlistValue"] or {}).get("values") or []
        return {str(p.get("key")): _plain_any_value(p.get("value") or {}) for p in pairs}
    return None


def v1_traces(data: Any) -> list[Trace]:
    """Traces from the v1 envelope's ``data``: ``[{traceID, spans, processes}]``."""
    traces: list[Trace] = []
    for raw_trace in _list(data, "data"):
        trace = _dict(raw_trace, "trace")
        processes = _dict(trace.get("processes") or {}, "processes")
        spans = [_v1_span(_dict(raw, "span"), processes) for raw in _list(trace.get("spans"), "spans")]
        if spans:
            trace_id = pad_trace_id(str(trace.get("traceID") or spans[0].trace_id))
            traces.append(make_trace(trace_id, spans))
    return traces


def _v1_span(raw: dict[str, Any], processes: dict[str, Any]) -> Span:
    trace_id = pad_trace_id(_text(raw.get("traceID"), "traceID"))
    process = raw.get("process") or processes.get(str(raw.get("processID")))
    if not isinstance(process, dict) or not isinstance(process.get("serviceName"), str):
        raise ValueError(f"span {raw.get('spanID')!r} has no process with a serviceName")
    tags = v1_tags(raw.get("tags"))
    # What OTLP carries as span fields, v1 carries as tags; they become fields here too.
    kind = tags.pop("span.kind", None)
    status = tags.pop("otel.status_code", None)
    error_tag = tags.pop("error", None)
    return Span(
        trace_id=trace_id,
        span_id=pad_span_id(_text(raw.get("spanID"), "spanID")),
        parent_id=_v1_parent(raw, trace_id),
        service=process["serviceName"],
        operation=_text(raw.get("operationName", ""), "operationName", allow_empty=True),
        start=datetime_from_us(_integer(raw.get("startTime"), "startTime")),
        duration_us=_integer(raw.get("duration", 0), "duration"),
        error=error_tag in (True, "true") or (isinstance(status, str) and status.upper() == "ERROR"),
        tags=tags,
        kind=kind.lower() if isinstance(kind, str) and kind else None,
        resource=v1_tags(process.get("tags")),
    )


def _v1_parent(raw: dict[str, Any], trace_id: str) -> str | None:
    """The first CHILD_OF reference in the same trace, else the first FOLLOWS_FROM (Jaeger's own rule)."""
    refs = [_dict(r, "reference") for r in _list(raw.get("references"), "references")]
    same_trace = [r for r in refs if not r.get("traceID") or pad_trace_id(str(r["traceID"])) == trace_id]
    for ref_type in ("CHILD_OF", "FOLLOWS_FROM"):
        for ref in same_trace:
            if str(ref.get("refType", "")).upper() == ref_type and ref.get("spanID"):
                return pad_span_id(str(ref["spanID"]))
    legacy = raw.get("parentSpanID")
    if isinstance(legacy, str) and not is_zero_id(legacy):
        return pad_span_id(legacy)
    return None


def v1_tags(raw: Any) -> dict[str, TagValue]:
    """v1 ``[{key, type, value}]`` as a dict typed by ``type`` (bool, int64, float64, string, binary)."""
    tags: dict[str, TagValue] = {}
    for item in _list(raw, "tags"):
        entry = _dict(item, "tag")
        key = entry.get("key")
        if not isinstance(key, str):
            raise ValueError(f"tag without a key: {_short(entry)}")
        value = entry.get("value")
        kind = str(entry.get("type", "")).lower()
        if kind == "bool":
            tags[key] = value if isinstance(value, bool) else str(value).lower() == "true"
        elif kind == "int64" and isinstance(value, int | float | str):
            tags[key] = int(value)
        elif kind == "float64" and isinstance(value, int | float | str):
            tags[key] = float(value)
        elif isinstance(value, str | bool | int | float):
            tags[key] = value
        elif value is not None:
            tags[key] = json.dumps(value)
    return tags


def dependency_links(data: Any) -> list[DependencyLink]:
    links: list[DependencyLink] = []
    for item in _list(data, "data"):
        entry = _dict(item, "dependency link")
        parent, child, count = entry.get("parent"), entry.get("child"), entry.get("callCount", 0)
        if not isinstance(parent, str) or not isinstance(child, str):
            raise ValueError(f"dependency link without parent/child: {_short(entry)}")
        links.append(DependencyLink(parent=parent, child=child, call_count=_integer(count, "callCount")))
    return links


def _operation_names(raw: Any) -> list[str]:
    names: list[str] = []
    for item in _list(raw, "operations"):
        name = item.get("name") if isinstance(item, dict) else item
        names.append(_text(name, "operation name"))
    return names


def _strings(raw: Any, what: str) -> list[str]:
    return [_text(item, what) for item in _list(raw, what)]


def _list(value: Any, what: str) -> list[Any]:
    """A JSON array; absent and null count as empty (jsonpb omits empty repeated fields)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'{what}' is not a list: {_short(value)}")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object: {_short(value)}")
    return value


def _text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ValueError(f"{what} is not text: {_short(value)}")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is not a number: {_short(value)}")
    return int(value)


def _nanos(value: Any, what: str) -> int:
    """OTLP JSON writes 64-bit integers as strings; plain numbers are accepted too."""
    if isinstance(value, bool):
        raise ValueError(f"{what} is not a timestamp: {_short(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"{what} is not a timestamp: {_short(value)}")


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"

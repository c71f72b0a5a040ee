"""JaegerClient over real HTTP against FakeJaeger (v3 and v1), the trace model, and the fake's subtleties."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from app.backends.errors import BackendError, BackendErrorKind
from app.backends.jaeger import JaegerClient
from app.backends.traces import (
    DependencyLink,
    Span,
    TagValue,
    Trace,
    datetime_from_us,
    make_trace,
    pad_span_id,
    pad_trace_id,
    short_trace_id,
)
from app.config import JaegerSettings
from tests.backends.support import Calls, loopback_settings
from tests.fakes.jaeger import FakeJaeger

T0 = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
TID64 = "0000000000000000a1b2c3d4e5f60718"
ROOT, CART, PAY = "00f067aa0ba902b7", "53995c3f42cd8ad8", "a0b1c2d3e4f50617"


settings = partial(loopback_settings, JaegerSettings)


def checkout(trace_id: str = TID, at: datetime = T0) -> Trace:
    """frontend → cart, frontend → payment (which fails)."""
    ms = timedelta(milliseconds=1)
    shop = {"k8s.namespace.name": "shop"}
    root = Span(trace_id, ROOT, None, "frontend", "GET /checkout", at, 250_000, kind="server", resource=shop)
    root = replace(root, tags={"http.method": "GET", "http.status_code": 500})
    cart = Span(
        trace_id, CART, ROOT, "cart", "getCart", at + ms, 20_000, kind="client", tags={"cached": True}
    )
    pay = Span(trace_id, PAY, ROOT, "payment", "charge", at + 30 * ms, 200_000, error=True, kind="server")
    pay = replace(pay, tags={"amount": 12.5, "attempt": 2})
    return make_trace(trace_id, [root, cart, pay])


def cart_only(trace_id: str, at: datetime, duration_us: int = 1_000) -> Trace:
    return make_trace(
        trace_id, [Span(trace_id, CART, None, "cart", "getCart", at, duration_us, kind="server")]
    )


@pytest.fixture
def jaeger(fake_jaeger: tuple[FakeJaeger, str]) -> FakeJaeger:
    return fake_jaeger[0]


@pytest.fixture
async def client(fake_jaeger: tuple[FakeJaeger, str], calls: Calls) -> AsyncIterator[JaegerClient]:
    jaeger_client = JaegerClient(settings(fake_jaeger[1]), observer=calls)
    yield jaeger_client
    await jaeger_client.aclose()


# --- the trace model -------------------------------------------------------------------------


def test_ids_are_padded_and_lowered() -> None:
    assert pad_trace_id("A1B2C3D4E5F60718") == TID64
    assert pad_trace_id(TID.upper()) == TID
    assert pad_span_id("abc") == "0000000000000abc"
    assert short_trace_id(TID64) == "a1b2c3d4e5f60718"
    assert short_trace_id(TID) == TID
    for bad in ("", "xyz", "1" * 33):
        with pytest.raises(ValueError, match="not a trace id"):
            pad_trace_id(bad)


def test_trace_properties() -> None:
    trace = checkout()
    assert trace.start == T0
    assert trace.end == T0 + timedelta(microseconds=250_000)
    assert trace.duration_us == 250_000
    assert trace.services == ("cart", "frontend", "payment")
    assert trace.root.span_id == ROOT
    assert trace.has_error
    assert [s.span_id for s in trace.spans] == [ROOT, CART, PAY]
    with pytest.raises(ValueError, match="no spans"):
        Trace(TID, ())


def test_root_falls_back_to_the_earliest_orphan() -> None:
    orphan = Span(TID, CART, "ffffffffffffffff", "cart", "getCart", T0, 10)
    later = Span(TID, PAY, CART, "payment", "charge", T0 + timedelta(seconds=1), 10)
    assert make_trace(TID, [later, orphan]).root == orphan


# --- get_trace -------------------------------------------------------------------------------


async def test_get_trace_reads_api_v3(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.add_trace(checkout())

    assert await client.get_trace(TID.upper()) == checkout()
    assert client.api_version == "v3"
    assert [r.path for r in jaeger.requests] == [f"/api/v3/traces/{TID}"]


async def test_get_trace_falls_back_to_v1_and_remembers(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.v1_only = True
    jaeger.add_trace(checkout())

    first = await client.get_trace(TID)
    second = await client.get_trace(TID)

    assert first == second == checkout()
    assert client.api_version == "v1"
    assert [r.path for r in jaeger.requests] == [
        f"/api/v3/traces/{TID}",
        f"/api/traces/{TID}",
        f"/api/traces/{TID}",
    ]


async def test_plain_text_404_from_v3_means_no_v3(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.add_trace(checkout())
    jaeger.set_raw(f"/api/v3/traces/{TID}", "404 page not found\n", status=404)

    assert await client.get_trace(TID) == checkout()
    assert client.api_version == "v1"


@pytest.mark.parametrize("v1_only", [False, True])
async def test_unknown_trace_is_none(client: JaegerClient, jaeger: FakeJaeger, v1_only: bool) -> None:
    jaeger.v1_only = v1_only
    jaeger.add_trace(checkout())
    assert await client.get_trace("f" * 32) is None
    assert client.api_version == ("v1" if v1_only else "v3")


async def test_streamed_v3_answer_with_a_404_inside_is_none(client: JaegerClient, jaeger: FakeJaeger) -> None:
    # grpc-gateway (Jaeger 1.x api_v3) streams: the status line says 200, the error comes in the body.
    error = {
        "error": {"grpcCode": 5, "httpCode": 404, "message": "trace not found", "httpStatus": "Not Found"}
    }
    jaeger.set_raw(f"/api/v3/traces/{TID}", json.dumps(error))
    assert await client.get_trace(TID) is None
    assert client.api_version == "v3"


async def test_64_bit_ids_printed_as_16_hex_are_padded(
    client: JaegerClient, jaeger: FakeJaeger, fake_jaeger: tuple[FakeJaeger, str]
) -> None:
    jaeger.v1_only = True
    jaeger.add_trace(checkout(TID64))
    async with httpx.AsyncClient(base_url=fake_jaeger[1]) as http:
        raw = (await http.get("/api/traces/a1b2c3d4e5f60718")).json()

    trace = await client.get_trace("A1B2C3D4E5F60718")

    assert raw["data"][0]["traceID"] == "a1b2c3d4e5f60718"
    assert raw["data"][0]["spans"][1]["references"][0]["traceID"] == "a1b2c3d4e5f60718"
    assert trace == checkout(TID64)
    assert trace is not None
    assert {s.trace_id for s in trace.spans} == {TID64}


async def test_v1_error_flags_references_and_tags(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.v1_only = True
    start = 1714557600000000
    error_tag = {"key": "error", "type": "bool", "value": True}
    status_tag = {"key": "otel.status_code", "type": "string", "value": "ERROR"}
    kind_tag = {"key": "span.kind", "type": "string", "value": "consumer"}
    http_tag = {"key": "http.status_code", "type": "int64", "value": 200}
    raw_spans = [
        _v1_span("1", "a", start, 10, [], "p1", [error_tag]),
        _v1_span("2", "b", start + 100, 5, [("FOLLOWS_FROM", "1")], "p2", [status_tag, kind_tag]),
        _v1_span("3", "c", start + 200, 1, [("CHILD_OF", "2")], "p2", [http_tag]),
    ]
    processes = {
        "p1": {"serviceName": "api", "tags": [{"key": "hostname", "type": "string", "value": "node-1"}]},
        "p2": {"serviceName": "worker", "tags": []},
    }
    body = {
        "data": [
            {"traceID": "a1b2c3d4e5f60718", "spans": raw_spans, "processes": processes, "warnings": None}
        ]
    }
    jaeger.set_raw(
        f"/api/traces/{TID64}", json.dumps({**body, "total": 0, "limit": 0, "offset": 0, "errors": None})
    )

    trace = await client.get_trace(TID64)

    at, us = datetime_from_us(start), timedelta(microseconds=1)
    one, two, three = pad_span_id("1"), pad_span_id("2"), pad_span_id("3")
    assert trace == make_trace(
        TID64,
        [
            Span(TID64, one, None, "api", "a", at, 10, error=True, resource={"hostname": "node-1"}),
            Span(TID64, two, one, "worker", "b", at + 100 * us, 5, error=True, kind="consumer"),
            Span(TID64, three, two, "worker", "c", at + 200 * us, 1, tags={"http.status_code": 200}),
        ],
    )


def _v1_span(
    span: str, op: str, start: int, duration: int, refs: list[tuple[str, str]], process: str, tags: list[Any]
) -> dict[str, Any]:
    return {
        "traceID": "a1b2c3d4e5f60718",
        "spanID": pad_span_id(span),
        "flags": 1,
        "operationName": op,
        "references": [
            {"refType": t, "traceID": "a1b2c3d4e5f60718", "spanID": pad_span_id(s)} for t, s in refs
        ],
        "startTime": start,
        "duration": duration,
        "tags": tags,
        "logs": [],
        "processID": process,
        "warnings": None,
    }


async def test_v3_answers_in_every_otlp_json_dialect(client: JaegerClient, jaeger: FakeJaeger) -> None:
    """Streamed documents, base64 ids, enum names, int64 as strings, arrays, status messages."""

    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    frontend = {
        "traceId": b64(TID),
        "spanId": b64(ROOT),
        "parentSpanId": "",
        "name": "GET /",
        "kind": "SPAN_KIND_SERVER",
        "startTimeUnixNano": "1714557600000000500",
        "endTimeUnixNano": "1714557600250001499",
        "attributes": [
            {"key": "http.status_code", "value": {"intValue": "500"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "ids", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}}},
        ],
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
    }
    cart = {
        "traceId": TID, "spanId": CART, "parentSpanId": ROOT, "name": "getCart", "kind": 3,
        "startTimeUnixNano": "1714557600001000000", "endTimeUnixNano": "1714557600021000000", "status": {},
    }  # fmt: skip
    documents = [_otlp_document("frontend", frontend), _otlp_document("cart", cart)]
    jaeger.set_raw(f"/api/v3/traces/{TID}", "\n".join(json.dumps(d) for d in documents))

    trace = await client.get_trace(TID)

    at = datetime_from_us(1714557600000000)
    tags: dict[str, TagValue] = {
        "http.status_code": 500,
        "ratio": 0.5,
        "ids": '["a", 2]',
        "otel.status_description": "boom",
    }
    assert trace == make_trace(
        TID,
        [
            Span(TID, ROOT, None, "frontend", "GET /", at, 250_000, error=True, tags=tags, kind="server"),
            Span(TID, CART, ROOT, "cart", "getCart", at + timedelta(milliseconds=1), 20_000, kind="client"),
        ],
    )


def _otlp_document(service: str, span: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {
        "result": {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": [span]}]}]}
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "trace answer is not JSON"),
        ('{"result": {"resourceSpans": {}}}', "unexpected v3 trace answer: 'resourceSpans' is not a list"),
        (
            '{"result": {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "01"}]}]}]}}',
            "missing or non-text id",
        ),
        ('{"something": "else"}', "no 'result' object"),
    ],
)
async def test_unexpected_v3_answers_are_bad_responses(
    client: JaegerClient, jaeger: FakeJaeger, body: str, message: str
) -> None:
    jaeger.set_raw(f"/api/v3/traces/{TID}", body)
    with pytest.raises(BackendError) as caught:
        await client.get_trace(TID)
    assert caught.value.kind is BackendErrorKind.BAD_RESPONSE
    assert message in caught.value.message


# --- search ----------------------------------------------------------------------------------


def _store_search_corpus(jaeger: FakeJaeger) -> tuple[str, str, str]:
    recent, old, outside = "1" * 32, "2" * 32, "3" * 32
    jaeger.add_trace(checkout())
    jaeger.add_trace(cart_only(recent, T0 + timedelta(minutes=5), duration_us=90_000))
    jaeger.add_trace(cart_only(old, T0 - timedelta(minutes=5)))
    jaeger.add_trace(cart_only(outside, T0 - timedelta(days=2)))
    return recent, old, outside


async def test_search_v3_sends_both_spellings_and_groups_traces(
    client: JaegerClient, jaeger: FakeJaeger
) -> None:
    recent, old, _ = _store_search_corpus(jaeger)

    everything = await client.search_traces("cart", start=START, end=END)
    slow = await client.search_traces(
        "cart", operation="getCart", min_duration_us=50_000, max_duration_us=100_000, start=START, end=END
    )
    top = await client.search_traces("cart", limit=1, start=START, end=END)

    assert [t.trace_id for t in everything] == [recent, TID, old]
    assert everything[1] == checkout()
    assert [t.trace_id for t in slow] == [recent]
    assert [t.trace_id for t in top] == [recent]
    params = dict(jaeger.requests_to("/api/v3/traces")[1].params)
    assert params["query.serviceName"] == params["query.service_name"] == "cart"
    assert params["query.startTimeMin"] == params["query.start_time_min"] == "2024-05-01T09:00:00.123456Z"
    assert params["query.durationMin"] == params["query.duration_min"] == "50000us"
    assert params["query.searchDepth"] == params["query.search_depth"] == params["query.num_traces"] == "20"


def _store_tag_corpus(jaeger: FakeJaeger) -> str:
    """Three newer cart traces without the tag, and an older one with it."""
    for n in range(3):
        jaeger.add_trace(cart_only(f"{n + 1}" * 32, T0 + timedelta(minutes=n)))
    tagged = "f" * 32
    old = Span(tagged, CART, None, "cart", "getCart", T0 - timedelta(minutes=9), 1_000, tags={"cached": True})
    jaeger.add_trace(make_trace(tagged, [old]))
    return tagged


@pytest.mark.parametrize("version", ["v1.60.0", "v2.5.0", "v2.18.0", None])
async def test_tag_search_asks_v1_where_v3_ignores_tags_and_caps(
    client: JaegerClient, jaeger: FakeJaeger, version: str | None
) -> None:
    """Jaeger 1.53-2.18 ignore query.attributes in v3 search but cap at num_traces: the tagged trace
    would fall beyond the cap. Below 2.19, or when the version is unknown, v1 (filtered by the
    server in every release) is asked instead."""
    jaeger.version = version
    tagged = _store_tag_corpus(jaeger)
    assert jaeger.ignores_attributes is (version is not None)

    found = await client.search_traces("cart", tags={"cached": True}, start=START, end=END, limit=2)

    assert [t.trace_id for t in found] == [tagged]
    [v1] = jaeger.requests_to("/api/traces")
    assert ("tags", '{"cached":"true"}') in v1.params
    assert client.api_version == "v3"


async def test_tag_search_falls_back_to_v3_where_v1_search_is_gone(
    client: JaegerClient, jaeger: FakeJaeger
) -> None:
    """A release without the v1 search (Go's plain 404): v3 with the tags re-checked here."""
    jaeger.version = None
    tagged = _store_tag_corpus(jaeger)
    jaeger.set_raw("/api/traces", "404 page not found\n", status=404)

    found = await client.search_traces("cart", tags={"cached": True}, start=START, end=END)

    assert [t.trace_id for t in found] == [tagged]
    assert len(jaeger.requests_to("/api/traces")) == 1


async def test_tag_search_stays_on_v3_from_2_19(client: JaegerClient, jaeger: FakeJaeger) -> None:
    """Jaeger 2.19 and newer filter v3 searches by query.attributes on the server."""
    jaeger.version = "v2.19.0"
    tagged = _store_tag_corpus(jaeger)

    found = await client.search_traces("cart", tags={"cached": True}, start=START, end=END, limit=2)

    assert [t.trace_id for t in found] == [tagged]
    assert [r.path for r in jaeger.requests_to("/api/traces")] == []
    assert dict(jaeger.requests_to("/api/v3/traces")[-1].params)["query.attributes"] == '{"cached":"true"}'


async def test_jaeger_1_52_plain_not_found_and_empty_search_mean_nothing(
    client: JaegerClient, jaeger: FakeJaeger, fake_jaeger: tuple[FakeJaeger, str]
) -> None:
    """Jaeger ≤ 1.52: an unknown id is a plain-text 404, an empty search an empty 200 body, ids are
    base64. None of it means "no API v3"."""
    jaeger.version = "v1.52.0"
    jaeger.add_trace(checkout())
    async with httpx.AsyncClient(base_url=fake_jaeger[1]) as raw:
        plain = await raw.get("/api/v3/traces/" + "9" * 32)
        written = (await raw.get(f"/api/v3/traces/{TID}")).json()
    assert (plain.status_code, plain.text) == (404, "trace not found\n")
    first_span = written["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert base64.b64decode(first_span["traceId"]).hex() == TID

    missing = await client.get_trace("9" * 32)
    empty = await client.search_traces("nobody", start=START, end=END)
    found = await client.get_trace(TID)

    assert missing is None
    assert empty == []
    assert found == checkout()
    assert client.api_version == "v3"
    assert jaeger.requests_to("/api/traces/") == []


@pytest.mark.parametrize("version", ["v1.60.0", "v2.1.0"])
async def test_empty_v3_search_answered_200_before_1_65_and_2_2(
    client: JaegerClient, jaeger: FakeJaeger, version: str
) -> None:
    jaeger.version = version
    assert not jaeger.empty_search_404

    assert await client.search_traces("nobody", start=START, end=END) == []
    assert client.api_version == "v3"


async def test_a_span_without_start_time_does_not_fail_the_trace(
    client: JaegerClient, jaeger: FakeJaeger
) -> None:
    """OTLP JSON omits zero values: a span with a zero start has no startTimeUnixNano at all."""
    undated = Span(TID, "77" * 8, ROOT, "cart", "lost clock", datetime(1970, 1, 1, tzinfo=UTC), 0)
    jaeger.add_trace(make_trace(TID, [*checkout().spans, undated]))

    trace = await client.get_trace(TID)

    assert trace is not None
    assert len(trace.spans) == 4
    assert trace.start == T0
    assert next(s for s in trace.spans if s.span_id == "77" * 8).start == T0


async def test_empty_v3_search_is_an_empty_list(client: JaegerClient, jaeger: FakeJaeger) -> None:
    assert await client.search_traces("nobody", start=T0, end=T0 + timedelta(hours=1)) == []
    assert client.api_version == "v3"


async def test_search_falls_back_to_v1(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.v1_only = True
    recent, _, _ = _store_search_corpus(jaeger)

    found = await client.search_traces(
        "cart",
        tags={"cached": True},
        start=T0 - timedelta(hours=1),
        end=T0 + timedelta(hours=1),
        min_duration_us=1,
    )

    assert found == [checkout()]
    params = dict(jaeger.requests_to("/api/traces")[0].params)
    assert params == {
        "service": "cart",
        "start": str(1714554000123456),
        "end": str(1714561200123456),
        "limit": "20",
        "minDuration": "1us",
        "tags": '{"cached":"true"}',
    }
    assert recent not in [t.trace_id for t in found]


async def test_v3_search_errors_carry_jaegers_message(
    client: JaegerClient, jaeger: FakeJaeger, calls: Calls
) -> None:
    error = {"error": {"httpCode": 400, "message": "malformed parameter query.num_traces: invalid syntax"}}
    jaeger.set_raw("/api/v3/traces", json.dumps(error) + "\n", status=400)
    with pytest.raises(BackendError) as caught:
        await client.search_traces("cart", start=T0, end=T0 + timedelta(hours=1))
    assert caught.value.kind is BackendErrorKind.BAD_QUERY
    assert caught.value.message == "HTTP 400: malformed parameter query.num_traces: invalid syntax"
    assert calls.outcomes == ["bad_query"]


# --- services, operations, dependencies, version ---------------------------------------------


@pytest.mark.parametrize("v1_only", [False, True])
async def test_services_and_operations(client: JaegerClient, jaeger: FakeJaeger, v1_only: bool) -> None:
    jaeger.v1_only = v1_only
    jaeger.add_trace(checkout())
    jaeger.add_trace(
        make_trace("9" * 32, [Span("9" * 32, ROOT, None, "cart", "putCart", T0, 5, kind="server")])
    )

    assert await client.services() == ["cart", "frontend", "payment"]
    assert await client.operations("cart") == ["getCart", "putCart"]
    assert await client.operations("nobody") == []
    assert client.api_version == ("v1" if v1_only else "v3")


async def test_empty_lists_are_omitted_by_v3_and_read_as_empty(
    client: JaegerClient, fake_jaeger: tuple[FakeJaeger, str]
) -> None:
    async with httpx.AsyncClient(base_url=fake_jaeger[1]) as http:
        raw = await http.get("/api/v3/services")
    assert (raw.text, raw.headers["content-type"]) == ("{}", "text/plain; charset=utf-8")
    assert await client.services() == []


async def test_dependencies(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.add_trace(checkout())
    jaeger.add_trace(checkout("8" * 32, at=T0 - timedelta(days=3)))  # outside the window
    jaeger.extra_dependencies.append(DependencyLink("gateway", "frontend", 7))

    links = await client.dependencies(end=T0 + timedelta(hours=1), lookback=timedelta(hours=2))

    assert links == [
        DependencyLink("frontend", "cart", 1),
        DependencyLink("frontend", "payment", 1),
        DependencyLink("gateway", "frontend", 7),
    ]
    sent = jaeger.requests_to("/api/dependencies")[0].params
    assert sent == [("endTs", "1714561200123"), ("lookback", "7200000")]


async def test_version_from_the_ui_page(client: JaegerClient, jaeger: FakeJaeger) -> None:
    assert await client.version() == "v2.5.0"
    jaeger.version = None  # no injection: the placeholder stays
    assert await client.version() is None
    jaeger.set_raw("/", "404 page not found\n", status=404)
    assert await client.version() is None


# --- failures, retries, probe ------------------------------------------------------------------


async def test_server_error_carries_jaegers_message_and_is_not_retried(
    client: JaegerClient, jaeger: FakeJaeger, calls: Calls
) -> None:
    jaeger.fail_with(500)
    with pytest.raises(BackendError) as caught:
        await client.get_trace(TID)
    assert (caught.value.kind, caught.value.status) == (BackendErrorKind.BAD_RESPONSE, 500)
    assert caught.value.message == "HTTP 500: simulated failure 500"
    assert calls.outcomes == ["bad_response"]


async def test_v1_error_envelope_message(client: JaegerClient, jaeger: FakeJaeger) -> None:
    jaeger.v1_only = True
    jaeger.fail_with(500, times=None)
    with pytest.raises(BackendError) as caught:
        await client.services()
    assert caught.value.message == "HTTP 500: simulated failure 500"


async def test_transient_503_is_retried(client: JaegerClient, jaeger: FakeJaeger, calls: Calls) -> None:
    jaeger.add_trace(checkout())
    jaeger.fail_with(503, times=2)
    assert await client.get_trace(TID) == checkout()
    assert calls.outcomes == ["bad_response", "bad_response", "ok"]
    assert len(jaeger.requests) == 3


async def test_hanging_jaeger_is_a_timeout(fake_jaeger: tuple[FakeJaeger, str]) -> None:
    jaeger, url = fake_jaeger
    jaeger.hang(10)
    calls = Calls()
    jaeger_client = JaegerClient(settings(url, timeout_s=0.3, retries=1), observer=calls)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as caught:
            await jaeger_client.services()
    finally:
        await jaeger_client.aclose()
    assert caught.value.kind is BackendErrorKind.TIMEOUT
    assert calls.outcomes == ["timeout", "timeout"]
    assert len(jaeger.requests) == 2
    assert time.monotonic() - started < 8


async def test_down_is_unreachable(client: JaegerClient, jaeger: FakeJaeger, calls: Calls) -> None:
    jaeger.stop()
    with pytest.raises(BackendError) as caught:
        await client.get_trace(TID)
    assert caught.value.kind is BackendErrorKind.UNREACHABLE
    assert calls.outcomes == ["unreachable"] * 3


@pytest.mark.parametrize("v1_only", [False, True])
async def test_probe(client: JaegerClient, jaeger: FakeJaeger, v1_only: bool) -> None:
    jaeger.v1_only = v1_only
    jaeger.version = "v1.57.0" if v1_only else "v2.5.0"
    status = await client.probe(timeout_s=2.0)
    assert (status.name, status.ok, status.version, status.error) == ("jaeger", True, jaeger.version, None)
    jaeger.stop()
    down = await client.probe(timeout_s=2.0)
    assert not down.ok
    assert down.error is not None
    assert "cannot reach" in down.error


def test_constructor_needs_a_url() -> None:
    with pytest.raises(BackendError) as caught:
        JaegerClient(JaegerSettings())
    assert caught.value.kind is BackendErrorKind.NOT_CONFIGURED


# --- the fake's own behaviour ----------------------------------------------------------------


async def test_fake_speaks_like_jaeger(fake_jaeger: tuple[FakeJaeger, str]) -> None:
    jaeger, url = fake_jaeger
    jaeger.add_trace(checkout())
    camel_only = {
        "query.serviceName": "cart",
        "query.startTimeMin": "2024-05-01T09:00:00Z",
        "query.startTimeMax": "2024-05-01T11:00:00Z",
    }
    async with httpx.AsyncClient(base_url=url) as http:
        v3 = (await http.get(f"/api/v3/traces/{TID}")).json()
        missing = await http.get(f"/api/v3/traces/{'f' * 32}")
        newest = await http.get("/api/v3/traces", params=camel_only)
        jaeger.v3_params = "snake"
        older = await http.get("/api/v3/traces", params=camel_only)
        unknown_api = await http.get("/api/nope")
        jaeger.v1_only = True
        spa = await http.get(f"/api/v3/traces/{TID}")
        v1_missing = await http.get(f"/api/traces/{'f' * 32}")

    span = v3["result"]["resourceSpans"][2]["scopeSpans"][0]["spans"][0]
    assert span["startTimeUnixNano"] == "1714557600153456000"
    assert (span["kind"], span["status"], span["parentSpanId"]) == (2, {"code": 2}, ROOT)
    assert {"key": "attempt", "value": {"intValue": "2"}} in span["attributes"]
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "text/plain; charset=utf-8"
    assert missing.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
    assert newest.status_code == 200
    assert older.status_code == 400
    assert older.json()["error"]["message"] == "query.start_time_min and query.start_time_max are required"
    assert (unknown_api.status_code, unknown_api.text) == (404, "404 page not found\n")
    assert spa.status_code == 200
    assert spa.headers["content-type"].startswith("text/html")
    assert '"gitVersion": "v2.5.0"' in spa.text
    assert v1_missing.status_code == 404
    assert v1_missing.json()["errors"] == [{"code": 404, "msg": "trace not found"}]

"""GET /api/v1/traces/{id}: the trace from Jaeger and its log lines from Elasticsearch, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.correlation.support import (
    at,
    backend,
    cri_line,
    ecs_line,
    index_of,
    json_line,
    span,
    store_logs,
    store_trace,
)
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "9e107d9d372bb6826bd81d3542a419d6"
SHORT = "0af7651916cd43dd"  # a 64-bit trace id, written with its leading zero
SHORT_PADDED = "0" * 16 + SHORT
S_FRONT, S_CHECKOUT, S_APP, S_PAY = "a1" * 8, "b2" * 8, "c3" * 8, "d4" * 8
AUTH = bearer(VIEWER_TOKEN)


@dataclass
class World:
    es: FakeElasticsearch
    jaeger: FakeJaeger
    es_url: str
    jaeger_url: str
    start: datetime
    line_ids: dict[str, str]

    def settings(self, **correlation: Any) -> dict[str, Any]:
        return {
            "elasticsearch": backend(self.es_url),
            "jaeger": backend(self.jaeger_url),
            "correlation": correlation,
        }


@pytest.fixture
def world(fake_elasticsearch: tuple[FakeElasticsearch, str], fake_jaeger: tuple[FakeJaeger, str]) -> World:
    """A checkout trace through Istio sidecars and an instrumented app, and its logs written every way."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    store_trace(
        jaeger,
        span(TRACE, S_FRONT, None, "frontend.shop", "checkout.shop.svc.cluster.local:80/*", t0, 120),
        span(
            TRACE,
            S_CHECKOUT,
            S_FRONT,
            "checkout.shop",
            "checkout.shop.svc.cluster.local:80/*",
            at(t0, 10),
            100,
        ),
        span(TRACE, S_APP, S_CHECKOUT, "checkout", "POST /orders", at(t0, 12), 90, kind="internal"),
        span(
            TRACE,
            S_PAY,
            S_APP,
            "payments.shop",
            "payments.shop.svc.cluster.local:80/*",
            at(t0, 20),
            60,
            error=True,
        ),
    )
    store_trace(jaeger, span(OTHER, "e5" * 8, None, "frontend.shop", "GET /", t0, 5))
    end = at(t0, 120)
    lines = {
        "ecs": ecs_line(at(t0, 15), "checkout", "order received", trace_id=TRACE, span_id=S_APP),
        "json": json_line(
            at(t0, 30),
            "payments",
            {"level": "ERROR", "msg": "card declined", "trace_id": TRACE, "span_id": S_PAY},
        ),
        "text_only": cri_line(
            at(t0, 121),
            f'[access] "POST /checkout HTTP/1.1" 200 - 118ms traceparent=00-{TRACE}-{S_FRONT}-01',
            "frontend",
            container="istio-proxy",
        ),
        "upper": ecs_line(at(t0, 40), "payments", "retrying", trace_id=TRACE.upper()),
        "upper_json": json_line(at(t0, 45), "payments", {"level": "warn", "traceId": TRACE.upper()}),
        "before": json_line(t0 - timedelta(seconds=3), "checkout", {"level": "info", "trace_id": TRACE}),
        "after": cri_line(end + timedelta(seconds=4), f"trace_id={TRACE} cleanup done", "checkout"),
        "too_late": cri_line(end + timedelta(seconds=30), f"trace_id={TRACE} late job", "checkout"),
        "other_trace": json_line(at(t0, 50), "frontend", {"level": "info", "trace_id": OTHER}),
        "no_trace": cri_line(at(t0, 60), "GET /healthz 200", "frontend"),
    }
    # ECS index templates map ids as keyword: exact, case-sensitive values
    ecs_ids = {"properties": {"id": {"type": "keyword"}}}
    es.create_index(index_of(at(t0, 40)), {"properties": {"trace": ecs_ids, "span": ecs_ids}})
    ids = store_logs(es, *lines.values())
    return World(es, jaeger, es_url, jaeger_url, t0, dict(zip(lines, ids, strict=True)))


@pytest.fixture
async def client(app_factory: AppFactory, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(**world.settings()) as (_app, http):
        yield http


def _ids(body: dict[str, Any], world: World) -> list[str]:
    names = {doc_id: name for name, doc_id in world.line_ids.items()}
    return [names[log["id"]] for log in body["logs"]]


async def test_trace_comes_with_every_line_that_carries_its_id(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["partial"] == {"logs": None, "trace": None}
    trace = body["trace"]
    assert trace["trace_id"] == TRACE
    assert trace["services"] == ["checkout", "checkout.shop", "frontend.shop", "payments.shop"]
    assert trace["duration_ms"] == 120
    assert [s["span_id"] for s in trace["spans"]] == [S_FRONT, S_CHECKOUT, S_APP, S_PAY]
    assert trace["spans"][3]["error"] is True
    assert trace["spans"][0]["parent_id"] is None
    # sorted by time; ECS trace.id, JSON trace_id, id only in the text, upper-case id, a few seconds out
    assert _ids(body, world) == ["before", "ecs", "json", "upper", "upper_json", "text_only", "after"]
    assert all(log["trace_id"] == TRACE for log in body["logs"])
    assert all(log["trace_url"] == f"/api/v1/traces/{TRACE}" for log in body["logs"])
    assert body["logs_truncated"] is False


async def test_lines_are_attached_to_their_spans_and_services_named_as_the_trace_names_them(
    client: httpx.AsyncClient, world: World
) -> None:
    body = (await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)).json()
    by_name = dict(zip(_ids(body, world), body["logs"], strict=True))

    assert by_name["ecs"]["span_id"] == S_APP
    assert by_name["json"]["span_id"] == S_PAY
    assert by_name["text_only"]["span_id"] == S_FRONT  # from the traceparent in the text
    assert by_name["upper"]["span_id"] is None
    assert by_name["json"]["service"] == "payments.shop"  # label app=payments in namespace shop
    assert by_name["text_only"]["service"] == "frontend.shop"
    assert by_name["text_only"]["container"] == "istio-proxy"
    assert by_name["json"]["level"] == "error"
    assert by_name["upper_json"]["level"] == "warning"
    assert (
        by_name["json"]["message"] == "level=ERROR msg=card declined trace_id=" + TRACE + " span_id=" + S_PAY
    )
    assert by_name["json"]["index"] == index_of(world.start)
    assert by_name["json"]["pod"] == "payments-7d9f8b-x2x4z"
    assert by_name["json"]["namespace"] == "shop"


async def test_the_skew_is_configurable(app_factory: AppFactory, world: World) -> None:
    async with app_factory(**world.settings(skew="1s")) as (_app, client):
        body = (await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)).json()
    assert _ids(body, world) == ["ecs", "json", "upper", "upper_json", "text_only"]
    window = body["logs_window"]
    assert window["from"] == (world.start - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "pasted",
    [
        TRACE.upper(),
        f"0x{TRACE}",
        f"00-{TRACE}-{S_FRONT}-01",
        f"{TRACE}:{S_FRONT}:0:1",
        f"{TRACE}-{S_FRONT}-1",
    ],
)
async def test_any_pasted_form_finds_the_same_trace(
    client: httpx.AsyncClient, world: World, pasted: str
) -> None:
    answer = await client.get(f"/api/v1/traces/{pasted}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["trace"]["trace_id"] == TRACE
    assert len(answer.json()["logs"]) == 7


async def test_an_unreadable_id_is_a_400_listing_the_accepted_forms(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/traces/order-1234", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    message = answer.json()["message"]
    assert message.startswith("trace_id: 'order-1234' is not a trace id")
    assert "traceparent" in message
    assert "uber-trace-id" in message
    assert "b3" in message


async def test_a_64_bit_trace_finds_lines_with_the_16_hex_and_unpadded_forms(
    client: httpx.AsyncClient, world: World
) -> None:
    t0 = world.start + timedelta(seconds=20)
    store_trace(
        world.jaeger,
        span(SHORT_PADDED, "f6" * 8, None, "cart.shop", "GET /cart", t0, 30),
        span(SHORT_PADDED, "a7" * 8, "f6" * 8, "cart", "load", at(t0, 5), 20, kind="internal"),
    )
    names = ["sixteen", "unpadded", "padded_text"]
    ids = store_logs(
        world.es,
        json_line(at(t0, 6), "cart", {"level": "info", "trace_id": SHORT, "msg": "loading"}),
        cri_line(at(t0, 7), f"uber-trace-id: {SHORT.lstrip('0')}:{'a7' * 8}:{'f6' * 8}:1 cache miss", "cart"),
        cri_line(at(t0, 8), f"done trace={SHORT_PADDED}", "cart"),
    )
    wanted = dict(zip(ids, names, strict=True))

    answer = await client.get(f"/api/v1/traces/{SHORT.upper()}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace"]["trace_id"] == SHORT_PADDED
    assert [wanted[log["id"]] for log in body["logs"]] == names
    assert body["logs"][1]["span_id"] == "a7" * 8
    assert world.jaeger.requests_to(f"/api/v3/traces/{SHORT_PADDED}")


async def test_a_trace_across_utc_midnight_reads_both_days_indices(
    app_factory: AppFactory, world: World
) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
    t0 = midnight - timedelta(milliseconds=1500)
    trace_id = "5" * 32
    store_trace(
        world.jaeger,
        span(trace_id, "11" * 8, None, "batch.shop", "nightly", t0, 3000),
        span(trace_id, "22" * 8, "11" * 8, "ledger.shop", "close-day", at(t0, 1000), 1800),
    )
    names = ["before_midnight", "after_midnight", "skewed_next_day", "far_next_day"]
    ids = store_logs(
        world.es,
        json_line(at(t0, 100), "batch", {"level": "info", "trace_id": trace_id}),
        json_line(at(t0, 2000), "ledger", {"level": "info", "trace_id": trace_id}),
        json_line(at(t0, 3000 + 4000), "ledger", {"level": "info", "trace_id": trace_id}),
        json_line(midnight + timedelta(hours=2), "ledger", {"level": "info", "trace_id": trace_id}),
    )
    wanted = dict(zip(ids, names, strict=True))
    async with app_factory(**world.settings()) as (_app, client):
        answer = await client.get(f"/api/v1/traces/{trace_id}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    assert [wanted[log["id"]] for log in answer.json()["logs"]] == names[:3]
    assert {log["index"] for log in answer.json()["logs"]} == {index_of(t0), index_of(midnight)}
    precise = [r for r in world.es.requests if r.path.endswith("/_search") and index_of(t0) in r.path]
    assert [r.path for r in precise] == [f"/{index_of(t0)},{index_of(midnight)}/_search"]


async def test_missing_daily_indices_are_ignored(app_factory: AppFactory, world: World) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=20)
    trace_id = "6" * 32
    store_trace(
        world.jaeger,
        span(trace_id, "33" * 8, None, "batch.shop", "early", midnight + timedelta(seconds=2), 5),
    )
    [doc_id] = store_logs(
        world.es, json_line(midnight + timedelta(seconds=2), "batch", {"trace_id": trace_id})
    )
    async with app_factory(**world.settings()) as (_app, client):
        answer = await client.get(f"/api/v1/traces/{trace_id}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    assert [log["id"] for log in answer.json()["logs"]] == [doc_id]
    assert index_of(midnight - timedelta(days=1)) not in world.es.indices  # the skew reached into that day


async def test_elasticsearch_down_gives_the_trace_and_says_why_logs_are_missing(
    client: httpx.AsyncClient, world: World
) -> None:
    world.es.stop()
    answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace"]["trace_id"] == TRACE
    assert body["logs"] == []
    assert body["partial"]["trace"] is None
    assert body["partial"]["logs"].startswith("elasticsearch: cannot reach")


async def test_jaeger_down_gives_the_logs_and_says_why_the_trace_is_missing(
    client: httpx.AsyncClient, world: World
) -> None:
    world.jaeger.fail_with(500)
    answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace"] is None
    assert body["partial"]["logs"] is None
    assert body["partial"]["trace"].startswith("jaeger: HTTP 500")
    # without the trace's window, every line of the lookback carrying the id is shown
    assert _ids(body, world) == [
        "before",
        "ecs",
        "json",
        "upper",
        "upper_json",
        "text_only",
        "after",
        "too_late",
    ]
    assert [log["service"] for log in body["logs"]][:3] == ["checkout", "checkout", "payments"]


async def test_both_backends_down_is_an_error_naming_both(client: httpx.AsyncClient, world: World) -> None:
    world.es.stop()
    world.jaeger.stop()
    answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 503
    body = answer.json()
    assert body["error"] == "backends_failed"
    assert set(body["backends"]) == {"jaeger", "elasticsearch"}
    assert "jaeger: cannot reach" in body["message"]
    assert "elasticsearch: cannot reach" in body["message"]


async def test_jaeger_down_and_no_line_is_the_jaeger_error(client: httpx.AsyncClient, world: World) -> None:
    world.jaeger.fail_with(502)
    answer = await client.get(f"/api/v1/traces/{'7' * 32}", headers=AUTH)

    assert answer.status_code == 502
    assert answer.json()["backend"] == "jaeger"
    assert "no log line in elasticsearch carries trace" in answer.json()["message"]


async def test_a_trace_only_in_the_logs_is_shown_with_a_note(client: httpx.AsyncClient, world: World) -> None:
    not_sampled = "8" * 32
    [doc_id] = store_logs(world.es, json_line(world.start, "checkout", {"trace_id": not_sampled}))
    answer = await client.get(f"/api/v1/traces/{not_sampled}", headers=AUTH)

    assert answer.status_code == 200
    assert answer.json()["trace"] is None
    assert "jaeger has no trace" in answer.json()["partial"]["trace"]
    assert [log["id"] for log in answer.json()["logs"]] == [doc_id]


async def test_unknown_everywhere_is_a_404(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/api/v1/traces/{'9' * 32}", headers=AUTH)

    assert answer.status_code == 404
    assert answer.json()["error"] == "trace_not_found"
    assert "jaeger has no trace" in answer.json()["message"]
    assert "no log line in elasticsearch carries it" in answer.json()["message"]


async def test_from_and_to_say_where_to_look_when_jaeger_cannot_tell(
    client: httpx.AsyncClient, world: World
) -> None:
    old = world.start - timedelta(days=30)
    trace_id = "a" * 32
    [doc_id] = store_logs(world.es, json_line(old, "checkout", {"trace_id": trace_id}))

    default = await client.get(f"/api/v1/traces/{trace_id}", headers=AUTH)
    hinted = await client.get(
        f"/api/v1/traces/{trace_id}",
        params={"from": (old - timedelta(hours=1)).isoformat(), "to": (old + timedelta(hours=1)).isoformat()},
        headers=AUTH,
    )

    assert default.status_code == 404
    assert hinted.status_code == 200
    assert [log["id"] for log in hinted.json()["logs"]] == [doc_id]


async def test_jaeger_1_without_api_v3_is_asked_on_api_v1(client: httpx.AsyncClient, world: World) -> None:
    world.jaeger.v1_only = True
    t0 = world.start + timedelta(minutes=1)
    store_trace(world.jaeger, span(SHORT_PADDED, "11" * 8, None, "cart.shop", "GET /cart", t0, 10))

    answer = await client.get(f"/api/v1/traces/{SHORT}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    assert answer.json()["trace"]["trace_id"] == SHORT_PADDED
    assert world.jaeger.requests_to(f"/api/traces/{SHORT_PADDED}")


# --- ids the standard analyzer glues to their neighbours (Elasticsearch 8.x, Lucene 9 StandardTokenizer) ---

GLUED = "abf92f3577b34da6a3ce929d0e0e473e"  # starts and ends with a letter: glued by ':' on both sides
GLUED_NEAR = "abf92f3577b34da6a3ce929d0e0e473f"  # one digit off: its lines must not be found
SPAN_LETTER = "af067aa0ba902b7c"


def glued_lines(t0: datetime) -> dict[str, dict[str, Any]]:
    """The id written every joined way the default patterns find; each is one token of a longer word."""
    return {
        "key_colon": cri_line(at(t0, 1), f"trace_id:{GLUED} order placed", "checkout"),
        "camel_key": cri_line(at(t0, 2), f"traceId:{GLUED.upper()} charged", "payments"),
        "ecs_key": cri_line(at(t0, 3), f"trace.id:{GLUED} shipped", "shipping"),
        "uber_value": cri_line(at(t0, 4), f"uber-trace-id={GLUED}:{SPAN_LETTER}:0:1 in", "checkout"),
        "uber_key": cri_line(at(t0, 5), f"uber-trace-id:{GLUED}:{SPAN_LETTER}:0:1 out", "checkout"),
        "near_miss": cri_line(at(t0, 6), f"trace_id:{GLUED_NEAR} someone else", "checkout"),
    }


def sleuth_lines(t0: datetime) -> dict[str, dict[str, Any]]:
    """Spring Cloud Sleuth's ``[app,trace,span,exportable]``: digits on both sides of ',' join; and
    ``0x`` before an id makes one word with it."""
    return {
        "sleuth": cri_line(at(t0, 7), f"INFO [checkout,{TRACE},00f067aa0ba902b7,true] paid", "checkout"),
        "decimal": cri_line(at(t0, 8), f"trace {TRACE}.5 retried", "checkout"),
        "zero_x": cri_line(at(t0, 9), f"trace_id=0x{TRACE} done", "checkout"),
    }


async def test_ids_glued_to_their_neighbours_are_found(app_factory: AppFactory, world: World) -> None:
    from tests.fakes.elasticsearch.analysis import analyze

    t0 = world.start
    store_trace(world.jaeger, span(GLUED, SPAN_LETTER, None, "checkout.shop", "POST /orders", t0, 30))
    glued, sleuth = glued_lines(t0), sleuth_lines(t0)
    for doc in [*glued.values(), *sleuth.values()]:  # the fake tokenizes as Elasticsearch does
        assert GLUED not in analyze(doc["log"])
        assert TRACE not in analyze(doc["log"])
    names = {**dict(zip(store_logs(world.es, *glued.values()), glued, strict=True))}
    names.update(zip(store_logs(world.es, *sleuth.values()), sleuth, strict=True))

    async with app_factory(**world.settings()) as (_app, client):
        answer = await client.get(f"/api/v1/traces/{GLUED}", headers=AUTH)
        sleuth_answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    found = [names[log["id"]] for log in answer.json()["logs"]]
    assert found == ["key_colon", "camel_key", "ecs_key", "uber_value", "uber_key"]
    assert all(log["trace_id"] == GLUED for log in answer.json()["logs"])
    sleuth_found = [names[log["id"]] for log in sleuth_answer.json()["logs"] if log["id"] in names]
    assert sleuth_found == ["sleuth", "decimal", "zero_x"]


async def test_failing_shards_keep_the_other_days_lines_and_say_so(
    app_factory: AppFactory, world: World
) -> None:
    """Elasticsearch answers 200 with `_shards.failed` when some shards fail: what the other shards found
    is shown, and `partial.logs` says lines are missing."""
    world.es.add_document("logstash-1999.01.01", {"@timestamp": "1999-01-01T00:00:00Z", "log": "x"})
    world.es.fail_shards("logstash-1999.*", reason="failed to create query: field [log] is not searchable")

    async with app_factory(**world.settings()) as (_app, client):
        answer = await client.get(
            f"/api/v1/traces/{TRACE}", params={"from": "1999-01-01T00:00:00Z"}, headers=AUTH
        )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "json" in _ids(body, world)
    note = body["partial"]["logs"]
    assert note.startswith("elasticsearch: partial answer: 1 of ")
    assert "shards failed (index logstash-1999.01.01: query_shard_exception:" in note
    assert "field [log] is not searchable" in note


async def test_a_timed_out_search_says_lines_may_be_missing(client: httpx.AsyncClient, world: World) -> None:
    world.es.time_out_shards(index_of(world.start))

    answer = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace"]["trace_id"] == TRACE
    assert body["partial"]["logs"] == (
        "elasticsearch: partial answer: the search timed out (matching lines there are missing)"
    )


async def test_a_cluster_refusing_prefix_queries_still_gives_whole_word_ids(
    app_factory: AppFactory, world: World
) -> None:
    """`search.allow_expensive_queries: false` (Elasticsearch 8.x) refuses `prefix` on text fields: the
    lines carrying the id as a word of its own are still found, the answer says glued ones were not
    looked for, and the next search does not try `prefix` again."""
    world.es.allow_expensive_queries = False
    glued = cri_line(at(world.start, 70), f"INFO [checkout,{TRACE},00f067aa0ba902b7,true] paid", "checkout")
    store_logs(world.es, glued)

    async with app_factory(**world.settings()) as (_app, client):
        first = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)
        searches_before = len(world.es.requests)
        second = await client.get(f"/api/v1/traces/{TRACE}", headers=AUTH)

    assert first.status_code == 200, first.text
    body = first.json()
    assert _ids(body, world) == ["before", "ecs", "json", "upper", "upper_json", "text_only", "after"]
    assert body["partial"]["logs"].startswith("elasticsearch: search.allow_expensive_queries is false")
    assert second.json()["logs"] == body["logs"]
    es_calls = [r for r in world.es.requests[searches_before:] if r.path.endswith("/_search")]
    assert len(es_calls) == 1
    assert "prefix" not in str(es_calls[0].body)

"""ElasticsearchClient over real HTTP against FakeElasticsearch, and the fake's own subtle behaviours."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from app.backends.elasticsearch import ClusterInfo, ElasticsearchClient, Hit, SearchPage
from app.backends.errors import BackendError, BackendErrorKind
from app.config import ElasticsearchSettings
from tests.backends.support import Calls, loopback_settings
from tests.fakes.elasticsearch import LONG_MAX, FakeElasticsearch
from tests.fakes.server import serve

DAY1 = "logstash-2024.05.01"
DAY2 = "logstash-2024.05.02"
DAY3 = "logstash-2024.05.03"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


settings = partial(loopback_settings, ElasticsearchSettings)


@pytest.fixture
def es(fake_elasticsearch: tuple[FakeElasticsearch, str]) -> FakeElasticsearch:
    return fake_elasticsearch[0]


@pytest.fixture
async def client(
    fake_elasticsearch: tuple[FakeElasticsearch, str], calls: Calls
) -> AsyncIterator[ElasticsearchClient]:
    es_client = ElasticsearchClient(settings(fake_elasticsearch[1]), observer=calls)
    yield es_client
    await es_client.aclose()


def log(day: str, hour: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "@timestamp": f"{day[-10:].replace('.', '-')}T{hour:02d}:00:00.000Z",
        "message": message,
        "kubernetes": {"namespace_name": extra.pop("namespace", "shop"), "pod_name": "cart-7d9f"},
        **extra,
    }


# --- success paths -------------------------------------------------------------------------


async def test_info_reports_version_and_cluster_name(client: ElasticsearchClient, calls: Calls) -> None:
    assert await client.info() == ClusterInfo(version="8.15.3", cluster_name="panorama-test")
    assert calls.outcomes == ["ok"]
    assert calls.seen[0][0] == "elasticsearch"


async def test_search_returns_typed_hits_in_sort_order(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.add_document(DAY1, log(DAY1, 9, "payment failed", trace={"id": TRACE}), "a")
    es.add_document(DAY1, log(DAY1, 10, "payment retried", trace={"id": TRACE}), "b")
    es.add_document(DAY1, log(DAY1, 11, "unrelated"), "c")

    page = await client.search(
        "logstash-*", query={"term": {"trace.id": TRACE}}, sort=[{"@timestamp": "desc"}], size=10
    )

    assert page == SearchPage(
        hits=[
            Hit(DAY1, "b", log(DAY1, 10, "payment retried", trace={"id": TRACE}), [1714557600000]),
            Hit(DAY1, "a", log(DAY1, 9, "payment failed", trace={"id": TRACE}), [1714554000000]),
        ],
        total=2,
        took_ms=page.took_ms,
        total_exact=True,
    )


async def test_search_always_tolerates_missing_indices(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.add_document(DAY1, log(DAY1, 1, "first day"), "d1")
    es.add_document(DAY3, log(DAY3, 1, "third day"), "d3")

    page = await client.search(f"{DAY1},{DAY2},{DAY3}", query={"match_all": {}}, sort=["@timestamp"])
    empty = await client.search("nothing-*", query={"match_all": {}})

    assert [(h.index, h.id) for h in page.hits] == [(DAY1, "d1"), (DAY3, "d3")]
    assert (empty.hits, empty.total) == ([], 0)
    sent = es.requests_to(f"/{DAY1},{DAY2},{DAY3}/_search")[0]
    assert sent.params == {"ignore_unavailable": "true", "allow_no_indices": "true"}


async def test_search_source_filter_and_total_tracking(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.add_documents(DAY1, [log(DAY1, h, f"line {h}") for h in range(3)], ids=["x", "y", "z"])

    untracked = await client.search(DAY1, query={"match_all": {}}, source=["message"], track_total_hits=False)
    bounded = await client.search(DAY1, query={"match_all": {}}, size=1, track_total_hits=2)

    assert untracked.total is None
    assert [h.source for h in untracked.hits] == [
        {"message": "line 0"},
        {"message": "line 1"},
        {"message": "line 2"},
    ]
    assert (bounded.total, bounded.total_exact, len(bounded.hits)) == (2, False, 1)


async def test_auth_from_settings(fake_elasticsearch: tuple[FakeElasticsearch, str]) -> None:
    es, url = fake_elasticsearch
    variants = [
        (
            {"username": "panorama", "password": "s3cret"},
            "Basic " + base64.b64encode(b"panorama:s3cret").decode(),
        ),
        ({"api_key": "aWQ6a2V5"}, "ApiKey aWQ6a2V5"),
        ({"api_key": "id:key"}, "ApiKey " + base64.b64encode(b"id:key").decode()),
        ({"bearer_token": "tok"}, "Bearer tok"),
    ]
    for overrides, expected in variants:
        es_client = ElasticsearchClient(settings(url, **overrides))
        try:
            await es_client.info()
        finally:
            await es_client.aclose()
        assert es.requests[-1].headers["authorization"] == expected


async def test_constructor_does_no_io_and_needs_a_url(
    es: FakeElasticsearch, fake_elasticsearch: tuple[Any, str]
) -> None:
    es_client = ElasticsearchClient(settings(fake_elasticsearch[1]))
    await es_client.aclose()
    assert es.requests == []
    with pytest.raises(BackendError) as caught:
        ElasticsearchClient(ElasticsearchSettings())
    assert caught.value.kind is BackendErrorKind.NOT_CONFIGURED


async def test_probe_reports_version(client: ElasticsearchClient, es: FakeElasticsearch) -> None:
    status = await client.probe(timeout_s=2.0)
    assert (status.name, status.ok, status.version, status.error) == ("elasticsearch", True, "8.15.3", None)
    es.stop()
    down = await client.probe(timeout_s=2.0)
    assert (down.ok, down.version) == (False, None)
    assert down.error is not None
    assert "cannot reach" in down.error


# --- point in time ---------------------------------------------------------------------------


async def test_pit_search_and_close(client: ElasticsearchClient, es: FakeElasticsearch) -> None:
    es.add_documents(DAY1, [{"@timestamp": 1, "n": 1}], ids=["one"])
    pit = await client.open_pit(DAY1, keep_alive="30s")
    es.add_documents(DAY1, [{"@timestamp": 2, "n": 2}], ids=["two"])

    page = await client.search_pit(pit, query={"match_all": {}}, sort=["@timestamp"], size=10)
    await client.close_pit(pit)
    await client.close_pit(pit)

    assert [h.id for h in page.hits] == ["one"]  # a PIT is a snapshot
    assert page.pit_id == pit
    assert page.hits[0].sort == [1, 0]
    assert es.requests_to(f"/{DAY1}/_pit")[0].params == {"keep_alive": "30s", "ignore_unavailable": "true"}
    assert es.open_pits == 0


async def test_expired_pit_is_reported_with_elasticsearchs_reason(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.add_documents(DAY1, [{"@timestamp": 1}])
    pit = await client.open_pit(DAY1, keep_alive="50ms")
    await asyncio.sleep(0.2)

    with pytest.raises(BackendError) as caught:
        await client.search_pit(pit, query={"match_all": {}}, sort=["@timestamp"], size=1)

    assert (caught.value.kind, caught.value.status) == (BackendErrorKind.BAD_RESPONSE, 404)
    assert "search_context_missing_exception: No search context found" in caught.value.message


# --- errors, retries, observer -----------------------------------------------------------------


async def test_bad_query_carries_elasticsearch_reason(
    client: ElasticsearchClient, es: FakeElasticsearch, calls: Calls
) -> None:
    es.add_document(DAY1, log(DAY1, 1, "x"))

    with pytest.raises(BackendError) as unknown:
        await client.search(DAY1, query={"nope": {}})
    with pytest.raises(BackendError) as text_sort:
        await client.search(DAY1, query={"match_all": {}}, sort=["message"])

    assert unknown.value.kind is BackendErrorKind.BAD_QUERY
    assert unknown.value.status == 400
    assert unknown.value.message == "parsing_exception: unknown query [nope]"
    assert text_sort.value.kind is BackendErrorKind.BAD_QUERY
    assert text_sort.value.message.startswith("illegal_argument_exception: Text fields are not optimised")
    assert calls.outcomes == ["bad_query", "bad_query"]  # never retried


async def test_result_window_is_a_bad_query(client: ElasticsearchClient) -> None:
    with pytest.raises(BackendError) as caught:
        await client.search("logstash-*", query={"match_all": {}}, size=10_001)
    assert caught.value.kind is BackendErrorKind.BAD_QUERY
    assert "Result window is too large" in caught.value.message


async def test_down_is_unreachable_after_bounded_retries(
    client: ElasticsearchClient, es: FakeElasticsearch, calls: Calls
) -> None:
    es.stop()
    with pytest.raises(BackendError) as caught:
        await client.info()
    assert caught.value.kind is BackendErrorKind.UNREACHABLE
    assert caught.value.retryable
    assert calls.outcomes == ["unreachable"] * 3


async def test_hanging_server_is_a_timeout(fake_elasticsearch: tuple[FakeElasticsearch, str]) -> None:
    es, url = fake_elasticsearch
    es.hang(10)
    calls = Calls()
    es_client = ElasticsearchClient(settings(url, timeout_s=0.3, retries=1), observer=calls)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as caught:
            await es_client.info()
    finally:
        await es_client.aclose()
    assert caught.value.kind is BackendErrorKind.TIMEOUT
    assert len(es.requests_to("/")) == 2
    assert calls.outcomes == ["timeout", "timeout"]
    assert all(seconds >= 0.25 for _, _, seconds in calls.seen)
    assert time.monotonic() - started < 8


async def test_answer_without_product_header_is_not_elasticsearch(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.product_header = False
    with pytest.raises(BackendError) as caught:
        await client.info()
    assert caught.value.kind is BackendErrorKind.BAD_RESPONSE
    assert "not Elasticsearch" in caught.value.message


async def test_transient_503_is_retried_until_success(
    client: ElasticsearchClient, es: FakeElasticsearch, calls: Calls
) -> None:
    es.fail_with(503, times=2)
    assert (await client.info()).version == "8.15.3"
    assert len(es.requests_to("/")) == 3
    assert calls.outcomes == ["bad_response", "bad_response", "ok"]


async def test_persistent_503_gives_up_after_the_configured_retries(
    client: ElasticsearchClient, es: FakeElasticsearch, calls: Calls
) -> None:
    es.fail_with(503)
    with pytest.raises(BackendError) as caught:
        await client.search(DAY1, query={"match_all": {}})
    assert caught.value.kind is BackendErrorKind.BAD_RESPONSE
    assert caught.value.status == 503
    assert "cluster_block_exception" in caught.value.message
    assert len(es.requests) == 3
    assert calls.outcomes == ["bad_response"] * 3


async def test_rejected_credentials_are_unauthorized(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.fail_with(
        401, error_type="security_exception", reason="missing authentication credentials for REST request [/]"
    )
    with pytest.raises(BackendError) as caught:
        await client.info()
    assert caught.value.kind is BackendErrorKind.UNAUTHORIZED
    assert "missing authentication credentials" in caught.value.message
    assert len(es.requests) == 1


# --- the fake's own behaviour ----------------------------------------------------------------

CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "d1",
        DAY1,
        log(DAY1, 1, "Payment FAILED for order 42", level="error", latency_ms=120, trace={"id": TRACE}),
    ),
    ("d2", DAY1, log(DAY1, 2, "payment succeeded", level="info", latency_ms=80)),
    (
        "d3",
        DAY2,
        log(DAY2, 3, "order 42 shipped to warehouse", level="info", latency_ms=5, namespace="logistics"),
    ),
    ("d4", DAY2, log(DAY2, 4, "user login failed", level="warn", tags=["auth", "login"])),
    (
        "d5",
        DAY2,
        {
            "@timestamp": "2024-05-02T05:00:00+02:00",
            "log": "GET /api/v1/orders 500",
            "kubernetes.namespace_name": "shop",
        },
    ),
]


@pytest.fixture(scope="module")
def corpus_url() -> Iterator[str]:
    fake = FakeElasticsearch()
    for doc_id, index, source in CORPUS:
        fake.add_document(index, source, doc_id)
    fake.add_document(DAY1, {"message": "x" * 300}, "long")
    with serve(fake) as server:
        yield server.url
    fake.close()


async def ids(url: str, query: dict[str, Any], **search: Any) -> list[str]:
    es_client = ElasticsearchClient(settings(url))
    try:
        page = await es_client.search("logstash-*", query=query, sort=[{"_doc": "asc"}], size=100, **search)
    finally:
        await es_client.aclose()
    return sorted(hit.id for hit in page.hits)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"term": {"message": "failed"}}, ["d1", "d4"]),  # text: analysed tokens
        ({"term": {"message": "FAILED"}}, []),  # term is not analysed
        ({"term": {"message.keyword": "payment succeeded"}}, ["d2"]),
        ({"term": {"kubernetes.namespace_name.keyword": "shop"}}, ["d1", "d2", "d4", "d5"]),  # dotted key too
        ({"terms": {"level.keyword": ["warn", "error"]}}, ["d1", "d4"]),
        ({"match": {"message": "ORDER shipped"}}, ["d1", "d3"]),
        ({"match": {"message": {"query": "order shipped", "operator": "and"}}}, ["d3"]),
        ({"match_phrase": {"message": "order 42"}}, ["d1", "d3"]),
        ({"match_phrase": {"message": "42 order"}}, []),
        ({"multi_match": {"query": "orders 500", "type": "phrase", "fields": ["message", "log"]}}, ["d5"]),
        # default_operator OR: "payment OR NOT failed", which also matches documents without the field
        (
            {"simple_query_string": {"query": "payment -failed", "fields": ["message"]}},
            ["d1", "d2", "d3", "d5", "long"],
        ),
        ({"simple_query_string": {"query": "payment + -failed", "fields": ["message"]}}, ["d2"]),
        ({"simple_query_string": {"query": '"order 42" | login', "fields": ["message"]}}, ["d1", "d3", "d4"]),
        ({"simple_query_string": {"query": "pay*", "fields": ["message"]}}, ["d1", "d2"]),
        ({"simple_query_string": {"query": '((( "unbalanced', "fields": ["message"]}}, []),
        ({"simple_query_string": {"query": TRACE}}, ["d1"]),  # default fields: all of them
        (
            {"range": {"@timestamp": {"gte": "2024-05-01T02:00:00Z", "lt": "2024-05-02T04:00:00Z"}}},
            ["d2", "d3", "d5"],
        ),
        (
            {"range": {"@timestamp": {"gte": 1714528800000, "lte": 1714532400000, "format": "epoch_millis"}}},
            ["d2"],
        ),
        (
            {"range": {"@timestamp": {"gte": "2024-05-02", "lt": "2024-05-02||+1d", "format": "yyyy-MM-dd"}}},
            ["d3", "d4", "d5"],
        ),
        ({"range": {"@timestamp": {"gt": "2024-05-01T01:00:00Z||/h"}}}, ["d2", "d3", "d4", "d5"]),
        ({"range": {"latency_ms": {"gt": 10, "lte": 120}}}, ["d1", "d2"]),
        ({"exists": {"field": "trace.id"}}, ["d1"]),
        ({"exists": {"field": "trace"}}, ["d1"]),
        ({"exists": {"field": "message.keyword"}}, ["d1", "d2", "d3", "d4"]),  # ignore_above 256
        (
            {
                "bool": {
                    "filter": [{"term": {"kubernetes.namespace_name.keyword": "shop"}}],
                    "should": [{"match": {"message": "failed"}}, {"match": {"log": "500"}}],
                    "minimum_should_match": 1,
                    "must_not": [{"term": {"level.keyword": "warn"}}],
                }
            },
            ["d1", "d5"],
        ),
        (
            {
                "bool": {
                    "should": [{"term": {"tags.keyword": "auth"}}, {"term": {"level.keyword": "info"}}],
                    "minimum_should_match": "100%",
                }
            },
            [],
        ),
        (
            {
                "bool": {
                    "should": [{"term": {"tags.keyword": "auth"}}, {"term": {"tags.keyword": "login"}}],
                    "minimum_should_match": 2,
                }
            },
            ["d4"],
        ),
    ],
)
async def test_fake_query_dsl(corpus_url: str, query: dict[str, Any], expected: list[str]) -> None:
    assert await ids(corpus_url, query) == expected


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (
            {"wildcard": {"message": "pay*"}},
            "parsing_exception: the [wildcard] query is not implemented by FakeElasticsearch",
        ),
        (
            {"match": {"message": {"query": "x", "fuzziness": 1}}},
            "parsing_exception: [match] query does not support [fuzziness]",
        ),
        (
            {"term": {"a": 1, "b": 2}},
            "parsing_exception: [term] query doesn't support multiple fields, found [a] and [b]",
        ),
        (
            {"range": {"latency_ms": {"gte": "fast"}}},
            'query_shard_exception: failed to create query: For input string: "fast"',
        ),
        (
            {"range": {"@timestamp": {"gte": "yesterday"}}},
            "parse_exception: failed to parse date field [yesterday]",
        ),
    ],
)
async def test_fake_refuses_what_it_does_not_implement(
    corpus_url: str, query: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BackendError) as caught:
        await ids(corpus_url, query)
    assert caught.value.kind is BackendErrorKind.BAD_QUERY
    assert caught.value.message.startswith(reason)


async def test_fake_sort_puts_missing_values_last_with_sentinels(corpus_url: str) -> None:
    es_client = ElasticsearchClient(settings(corpus_url))
    try:
        page = await es_client.search(
            "logstash-*", query={"match_all": {}}, sort=[{"latency_ms": "desc"}, "_doc"], size=3, source=False
        )
        following = await es_client.search(
            "logstash-*",
            query={"match_all": {}},
            sort=[{"latency_ms": "desc"}, "_doc"],
            size=10,
            search_after=page.hits[-1].sort,
            source=False,
        )
    finally:
        await es_client.aclose()
    assert [(h.id, h.sort) for h in page.hits] == [("d1", [120, 0]), ("d2", [80, 1]), ("d3", [5, 0])]
    assert [h.id for h in following.hits] == ["d4", "long", "d5"]
    assert following.hits[0].sort[0] == -LONG_MAX - 1
    assert following.hits[0].source == {}


async def test_fake_http_details(fake_elasticsearch: tuple[FakeElasticsearch, str]) -> None:
    es, url = fake_elasticsearch
    compat = {"accept": "application/vnd.elasticsearch+json; compatible-with=8"}
    async with httpx.AsyncClient(base_url=url) as http:
        root = await http.get("/", headers=compat)
        plain = await http.get("/")
        missing = await http.post(f"/{DAY2}/_search", json={})
        window = await http.post("/_search", json={"from": 9_995, "size": 10})
        bulk = await http.post(
            "/_bulk",
            content=f'{{"index":{{"_index":"{DAY1}","_id":"1"}}}}\n{{"message":"hi"}}\n'
            f'{{"create":{{"_index":"{DAY1}","_id":"1"}}}}\n{{"message":"again"}}\n',
            headers={"content-type": "application/x-ndjson"},
        )
        unknown_param = await http.get("/_search?q=foo")
        cat = await http.get("/_cat/indices?format=json")
    assert root.headers["content-type"] == "application/vnd.elasticsearch+json;compatible-with=8"
    assert root.headers["x-elastic-product"] == "Elasticsearch"
    assert plain.headers["content-type"] == "application/json"
    assert missing.status_code == 404
    assert missing.json()["error"]["root_cause"][0]["type"] == "index_not_found_exception"
    assert window.status_code == 400
    assert window.json()["error"]["type"] == "search_phase_execution_exception"
    assert [next(iter(i.values()))["status"] for i in bulk.json()["items"]] == [201, 409]
    assert bulk.json()["errors"] is True
    assert (
        unknown_param.json()["error"]["reason"] == "request [/_search] contains unrecognized parameter: [q]"
    )
    assert [(row["index"], row["docs.count"]) for row in cat.json()] == [(DAY1, "1")]
    assert es.count(DAY1) == 1


# --- fidelity: what Elasticsearch 8.x (Lucene 9's StandardTokenizer, UAX #29) does -------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("trace_id:abf92f35 ok", ["trace_id:abf92f35", "ok"]),  # letters around ':' join
        ("trace_id:4bf92f35 ok", ["trace_id", "4bf92f35", "ok"]),  # a digit after ':' does not
        ("uber-trace-id=ab473e:af067aa0:0:1", ["uber", "trace", "id", "ab473e:af067aa0", "0", "1"]),
        ("[svc,ab4736,00f067,true]", ["svc", "ab4736,00f067", "true"]),  # digits around ',' join
        ("v1.2.3 foo.bar it's", ["v1.2.3", "foo.bar", "it's"]),
        ("traceparent=00-4BF9-00F0-01", ["traceparent", "00", "4bf9", "00f0", "01"]),
        ('{"trace_id":"abf9"} _ 中文', ["trace_id", "abf9", "中", "文"]),
    ],
)
def test_the_fake_tokenizes_like_the_standard_analyzer(text: str, tokens: list[str]) -> None:
    from tests.fakes.elasticsearch.analysis import analyze

    assert analyze(text) == tokens


async def test_prefix_matches_the_start_of_a_glued_token(
    client: ElasticsearchClient, es: FakeElasticsearch
) -> None:
    es.add_document(DAY1, log(DAY1, 9, f"uber-trace-id={TRACE[:-1]}e:af067aa0ba902b7c:0:1"), "glued")
    es.add_document(DAY1, log(DAY1, 10, f"trace {TRACE[:-1]}e"), "alone")

    phrase = await client.search(DAY1, query={"match_phrase": {"message": TRACE[:-1] + "e"}})
    prefix = await client.search(DAY1, query={"prefix": {"message": TRACE[:-1] + "e"}}, sort=["@timestamp"])

    assert [h.id for h in phrase.hits] == ["alone"]
    assert [h.id for h in prefix.hits] == ["glued", "alone"]


async def test_failed_shards_make_a_partial_200(client: ElasticsearchClient, es: FakeElasticsearch) -> None:
    """Elasticsearch 8 (allow_partial_search_results defaults to true): some shards failing is still a 200."""
    es.add_document(DAY1, log(DAY1, 9, "one"), "one")
    es.add_document(DAY2, log(DAY2, 9, "two"), "two")
    es.fail_shards(DAY2, reason="failed to create query: boom")

    page = await client.search("logstash-*", query={"match_all": {}})

    assert [h.id for h in page.hits] == ["one"]
    assert page.partial == (
        f"partial answer: 1 of 2 shards failed (index {DAY2}: query_shard_exception: failed to create "
        "query: boom) (matching lines there are missing)"
    )
    es.fail_shards(DAY1)
    with pytest.raises(BackendError) as every_shard:  # all shards failed: an error, not a 200
        await client.search("logstash-*", query={"match_all": {}})
    assert every_shard.value.kind is BackendErrorKind.BAD_QUERY


async def test_a_timed_out_search_is_partial(client: ElasticsearchClient, es: FakeElasticsearch) -> None:
    es.add_document(DAY1, log(DAY1, 9, "one"), "one")
    es.time_out_shards(DAY1)

    page = await client.search(DAY1, query={"match_all": {}})

    assert page.hits == []
    assert page.partial == "partial answer: the search timed out (matching lines there are missing)"

"""GET /api/v1/logs: filters, plain-text search, trace ids found in lines, and cursor paging past 10,000."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.correlation.cursor import decode_cursor
from tests.correlation.support import (
    at,
    backend,
    cri_line,
    ecs_line,
    index_of,
    iso,
    json_line,
    kubernetes,
    store_logs,
)
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

AUTH = bearer(VIEWER_TOKEN)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.fixture
def es(fake_elasticsearch: tuple[FakeElasticsearch, str]) -> FakeElasticsearch:
    return fake_elasticsearch[0]


@pytest.fixture
async def client(
    app_factory: AppFactory, fake_elasticsearch: tuple[FakeElasticsearch, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(elasticsearch=backend(fake_elasticsearch[1])) as (_app, http):
        yield http


@pytest.fixture
def t0() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
def lines(es: FakeElasticsearch, t0: datetime) -> dict[str, str]:
    docs = {
        "checkout_error": json_line(
            at(t0, 0), "checkout", {"level": "ERROR", "msg": "card payment failed (code: 5) for order 17"}
        ),
        "checkout_info": cri_line(
            at(t0, 1000), f"order 17 stored traceparent=00-{TRACE}-{SPAN}-01", "checkout"
        ),
        "payments_warn": json_line(
            at(t0, 2000), "payments", {"level": "WARN", "msg": "retrying", "trace_id": TRACE}
        ),
        "payments_warning": json_line(at(t0, 3000), "payments", {"level": "warning", "msg": "slow bank"}),
        "frontend_ecs": ecs_line(
            at(t0, 4000), "frontend", "payment ok", trace_id=TRACE.upper(), span_id=SPAN
        ),
        "staging": {
            "@timestamp": iso(at(t0, 5000)),
            "log": "card payment failed for order 18",
            "kubernetes": kubernetes("checkout", namespace="staging"),
        },
        "old": json_line(
            t0 - timedelta(hours=3), "checkout", {"level": "ERROR", "msg": "card payment failed"}
        ),
    }
    return dict(zip(store_logs(es, *docs.values()), docs, strict=True))


async def _search(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/api/v1/logs", params=params, headers=AUTH)


def _names(answer: httpx.Response, lines: dict[str, str]) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [lines[log["id"]] for log in answer.json()["logs"]]


async def test_newest_first_within_the_window(client: httpx.AsyncClient, lines: dict[str, str]) -> None:
    answer = await _search(client)  # the last correlation.default_window (15m)
    assert _names(answer, lines) == [
        "staging",
        "frontend_ecs",
        "payments_warning",
        "payments_warn",
        "checkout_info",
        "checkout_error",
    ]
    assert answer.json()["next_cursor"] is None
    assert answer.json()["partial"] is None  # every shard answered: nothing to say, in words or as data
    assert answer.json()["gaps"] == []


async def test_filters(client: httpx.AsyncClient, lines: dict[str, str], t0: datetime) -> None:
    assert _names(await _search(client, service="checkout"), lines) == [
        "staging",
        "checkout_info",
        "checkout_error",
    ]
    assert _names(await _search(client, service="checkout.shop"), lines) == [
        "checkout_info",
        "checkout_error",
    ]
    assert _names(await _search(client, service="checkout.shop.svc.cluster.local"), lines) == [
        "checkout_info",
        "checkout_error",
    ]
    assert _names(await _search(client, service="checkout", namespace="staging"), lines) == ["staging"]
    assert _names(await _search(client, pod="payments-7d9f8b-x2x4z"), lines) == [
        "payments_warning",
        "payments_warn",
    ]
    assert _names(await _search(client, level="warning"), lines) == ["payments_warning", "payments_warn"]
    assert _names(await _search(client, level="Error,WARN"), lines) == [
        "payments_warning",
        "payments_warn",
        "checkout_error",
    ]
    older = {"from": iso(t0 - timedelta(hours=4)), "to": iso(t0 - timedelta(hours=2))}
    assert _names(await _search(client, **older), lines) == ["old"]


async def test_levels_in_any_spelling_and_numeric_levels_of_json_loggers(
    client: httpx.AsyncClient, es: FakeElasticsearch, lines: dict[str, str], t0: datetime
) -> None:
    # pino/bunyan write numeric levels; an index whose first line was theirs maps `level` as a number
    day = t0 - timedelta(days=2)
    es.create_index(index_of(day), {"properties": {"level": {"type": "long"}}})
    [pino] = store_logs(es, json_line(day, "cart", {"level": 50, "msg": "cart lost"}))
    lines[pino] = "pino"
    window = {"from": iso(day - timedelta(minutes=1)), "to": iso(t0 + timedelta(minutes=1))}

    answer = await _search(client, level="error", **window)

    assert _names(answer, lines) == ["checkout_error", "old", "pino"]
    assert answer.json()["logs"][2]["level"] == "error"


async def test_plain_text_search_has_no_syntax_to_get_wrong(
    client: httpx.AsyncClient, es: FakeElasticsearch, lines: dict[str, str]
) -> None:
    assert _names(await _search(client, q="payment failed"), lines) == ["staging", "checkout_error"]
    assert _names(await _search(client, q="FAILED Payment"), lines) == ["staging", "checkout_error"]
    for text in [
        'payment "failed (code: 5*',
        "card AND NOT /fail.*/",
        "payment~ f?iled [a TO z]",
        "\\",
        "+-&&||!",
    ]:
        answer = await _search(client, q=text)
        assert answer.status_code == 200, (text, answer.text)
    assert _names(await _search(client, q="failed (code: 5)"), lines) == ["checkout_error"]
    assert _names(await _search(client, q="fail*"), lines) == []  # no wildcard: a literal word
    sent = str([r.body for r in es.requests if r.path == "/_search"])
    assert "match" in sent
    assert not any(kind in sent for kind in ("query_string", "regexp", "wildcard", "prefix", "fuzzy"))


async def test_each_line_carries_its_trace_id_and_link(
    client: httpx.AsyncClient, lines: dict[str, str]
) -> None:
    answer = await _search(client)
    by_name = {lines[log["id"]]: log for log in answer.json()["logs"]}

    assert by_name["checkout_info"]["trace_id"] == TRACE  # from the traceparent in the text
    assert by_name["checkout_info"]["span_id"] == SPAN
    assert by_name["payments_warn"]["trace_id"] == TRACE  # from the JSON field
    assert by_name["frontend_ecs"]["trace_id"] == TRACE  # ECS trace.id, upper-case
    assert by_name["frontend_ecs"]["trace_url"] == f"/api/v1/traces/{TRACE}"
    assert by_name["checkout_error"]["trace_id"] is None
    assert by_name["checkout_error"]["trace_url"] is None
    assert by_name["payments_warn"]["level"] == "warning"
    assert by_name["checkout_error"]["level"] == "error"


async def test_search_by_trace_id_in_any_form(client: httpx.AsyncClient, lines: dict[str, str]) -> None:
    expected = ["frontend_ecs", "payments_warn", "checkout_info"]
    assert _names(await _search(client, trace_id=TRACE), lines) == expected
    assert _names(await _search(client, trace_id=f"00-{TRACE.upper()}-{SPAN}-01"), lines) == expected
    bad = await _search(client, trace_id="nope")
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("trace_id: 'nope' is not a trace id")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "query parameter 'from': 'yesterday' is not a time"),
        ({"to": "now-1x"}, "query parameter 'to': 'now-1x': cannot read '-1x' after now"),
        ({"from": "now-1h", "to": "now-2h"}, "is not before to"),
        ({"limit": "0"}, "query parameter 'limit'"),
        ({"limit": "5000"}, "query parameter 'limit': must be between 1 and 1000"),
        ({"cursor": "garbage!"}, "query parameter 'cursor'"),
    ],
)
async def test_bad_parameters_are_400s_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    answer = await _search(client, **params)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


async def test_times_in_epoch_and_relative_forms(
    client: httpx.AsyncClient, lines: dict[str, str], t0: datetime
) -> None:
    epoch_ms = str(int((t0 - timedelta(seconds=1)).timestamp() * 1000))
    epoch_s = str(int((t0 + timedelta(seconds=2.5)).timestamp()))
    assert _names(await _search(client, **{"from": epoch_ms, "to": epoch_s}), lines) == [
        "payments_warn",
        "checkout_info",
        "checkout_error",
    ]
    assert _names(await _search(client, **{"from": "now-4h", "to": "now-2h"}), lines) == ["old"]


async def test_elasticsearch_down_is_a_503_naming_it(
    client: httpx.AsyncClient, es: FakeElasticsearch
) -> None:
    es.stop()
    answer = await _search(client)
    assert answer.status_code == 503
    assert answer.json()["backend"] == "elasticsearch"


async def test_without_elasticsearch_configured_the_answer_says_so(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        answer = await _search(client)
    assert answer.status_code == 503
    assert answer.json()["error"] == "backend_not_configured"
    assert "elasticsearch.url" in answer.json()["message"]


# --- paging -----------------------------------------------------------------------------------------


DEEP = 10_050
PAGE = 4000


def _ticks(es: FakeElasticsearch, count: int) -> datetime:
    """``count`` bare lines, one per 100 ms, in their daily index (two, near midnight)."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first = end - timedelta(milliseconds=100 * (count - 1))
    docs = [
        {"@timestamp": iso(at(first, 100 * k)), "log": f"tick {k}", "app": "ticker"} for k in range(count)
    ]
    for day in sorted({index_of(first), index_of(end)}):
        es.add_documents(day, [d for d in docs if index_of(datetime.fromisoformat(d["@timestamp"])) == day])
    return first


@pytest.fixture
def few(es: FakeElasticsearch) -> datetime:
    store_logs(
        es,
        *(cri_line(datetime.now(UTC) - timedelta(seconds=30 - k), f"tick {k}", "ticker") for k in range(30)),
    )
    return datetime.now(UTC)


async def test_the_cursor_pages_past_10000_lines_without_gaps_or_repeats(
    app_factory: AppFactory, fake_elasticsearch: tuple[FakeElasticsearch, str]
) -> None:
    es, url = fake_elasticsearch
    first = _ticks(es, DEEP)
    seen: list[str] = []
    params: dict[str, Any] = {"from": iso(first - timedelta(seconds=1)), "limit": PAGE}
    pages = 0
    async with app_factory(elasticsearch=backend(url), correlation={"max_log_limit": PAGE}) as (_app, client):
        while True:
            answer = await _search(client, **params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            seen.extend(log["message"] for log in body["logs"])
            pages += 1
            if pages == 1:  # a line written now is not in the snapshot the pages are read from
                store_logs(es, cri_line(datetime.now(UTC) - timedelta(seconds=5), "tick late", "ticker"))
            if body["next_cursor"] is None:
                break
            params = {"cursor": body["next_cursor"], "limit": PAGE}

    assert pages == 3  # the third page starts at line 8,000 and ends past 10,000: beyond from + size
    assert len(seen) == DEEP
    assert seen == [f"tick {k}" for k in reversed(range(DEEP))]  # newest first, none twice, none missing
    assert es.open_pits == 0  # the last page closed its point in time


async def test_a_cursor_continues_only_its_own_search(client: httpx.AsyncClient, few: datetime) -> None:
    first = await _search(client, service="ticker", limit=10)
    cursor = first.json()["next_cursor"]

    same = await _search(client, service="ticker", limit=10, cursor=cursor)
    alone = await _search(client, cursor=cursor, limit=15)
    other = await _search(client, service="checkout", limit=10, cursor=cursor)

    assert same.status_code == 200
    assert alone.status_code == 200
    assert [log["message"] for log in same.json()["logs"]] == [f"tick {k}" for k in range(19, 9, -1)]
    assert [log["message"] for log in alone.json()["logs"]] == [f"tick {k}" for k in range(19, 4, -1)]
    assert other.status_code == 400
    assert "continues another search (service differ)" in other.json()["message"]


async def test_each_cursor_carries_the_point_in_time_id_of_its_answer(
    client: httpx.AsyncClient, es: FakeElasticsearch, few: datetime
) -> None:
    """Elasticsearch may hand out a new point-in-time id with any answer: the next page must use it."""
    es.rotate_pit_ids = True
    seen: list[str] = []
    params: dict[str, Any] = {"service": "ticker", "limit": 12}
    while True:
        body = (await _search(client, **params)).json()
        seen.extend(log["message"] for log in body["logs"])
        if body["next_cursor"] is None:
            break
        params = {"cursor": body["next_cursor"], "limit": 12}

    assert seen == [f"tick {k}" for k in range(29, -1, -1)]
    searches = es.requests_to("/_search", "POST")
    used = [r.body["pit"]["id"] for r in searches]
    assert len(set(used)) == len(used) == 3  # each page asked with the id the page before returned
    assert es.open_pits == 0


async def test_an_expired_cursor_is_a_410(
    client: httpx.AsyncClient, fake_elasticsearch: tuple[FakeElasticsearch, str], few: datetime
) -> None:
    cursor = (await _search(client, service="ticker", limit=10)).json()["next_cursor"]
    pit_id = decode_cursor(cursor).pit_id
    async with httpx.AsyncClient() as raw:  # the point in time expires (here: closed behind Panorama's back)
        closed = await raw.request("DELETE", f"{fake_elasticsearch[1]}/_pit", json={"id": pit_id})
    assert closed.status_code == 200

    answer = await _search(client, cursor=cursor)

    assert answer.status_code == 410
    assert answer.json()["error"] == "cursor_expired"
    assert "start the search again" in answer.json()["message"]


async def test_search_by_trace_id_finds_it_glued_to_its_neighbours(
    client: httpx.AsyncClient, es: FakeElasticsearch, t0: datetime
) -> None:
    """The standard analyzer (Elasticsearch 8.x) keeps `trace_id:abf…`, `…473e:af06…` and `…4736,00f0…`
    as single tokens; the search still finds the id in each, and not an id one digit off."""
    glued = "abf92f3577b34da6a3ce929d0e0e473e"
    docs = {
        "key": cri_line(at(t0, 0), f"trace_id:{glued} placed", "checkout"),
        "uber": cri_line(at(t0, 1000), f"uber-trace-id={glued}:af067aa0ba902b7c:0:1", "checkout"),
        "near": cri_line(at(t0, 2000), f"trace_id:{glued[:-1]}f other", "checkout"),
    }
    names = dict(zip(store_logs(es, *docs.values()), docs, strict=True))
    sleuth = cri_line(at(t0, 3000), f"[checkout,{TRACE},{SPAN},true] paid", "checkout")
    names[store_logs(es, sleuth)[0]] = "sleuth"

    glued_answer = await _search(client, trace_id=glued)
    sleuth_answer = await _search(client, trace_id=TRACE)

    assert [names[log["id"]] for log in glued_answer.json()["logs"]] == ["uber", "key"]
    assert [names[log["id"]] for log in sleuth_answer.json()["logs"]] == ["sleuth"]
    assert len(es.requests_to("/_search", "POST")) == 2  # one search each, as before


async def test_failing_shards_give_the_other_lines_and_a_partial_note(
    client: httpx.AsyncClient, es: FakeElasticsearch, lines: dict[str, str], t0: datetime
) -> None:
    # Two days back: no line of ``lines`` is in that day's index (the "old" one, three hours before
    # t0, is in yesterday's between 00:00 and 03:00 UTC, when failing yesterday's dropped it too).
    failing = t0 - timedelta(days=2)
    es.add_document(index_of(failing), {"@timestamp": iso(failing), "log": "x"})
    es.fail_shards(index_of(failing))

    answer = await _search(client, **{"from": iso(failing - timedelta(minutes=1))})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["logs"]) == len(lines)
    total = len(es.indices)  # one shard per index, each within the window
    reason = "query_shard_exception: failed to create query: simulated shard failure"
    assert body["partial"] == (
        f"elasticsearch: partial answer: 1 of {total} shards failed (index {index_of(failing)}: {reason}) "
        "(matching lines there are missing)"
    )
    assert body["gaps"] == [
        {
            "part": "logs",
            "backend": "elasticsearch",
            "code": "shards_failed",
            "values": {"failed": 1, "total": total, "index": index_of(failing), "reason": reason},
        }
    ]
    assert total >= 2


async def test_a_timed_out_shard_gives_the_other_lines_and_says_so_in_words_and_as_data(
    client: httpx.AsyncClient, es: FakeElasticsearch, lines: dict[str, str], t0: datetime
) -> None:
    """Elasticsearch answering 200 with `timed_out: true` (the shard two days back ran out of time):
    the other days' lines, `partial` in English and the same in `gaps`; on a cluster that also refuses
    `prefix` queries, a trace-id search lacks both, in that order."""
    slow = t0 - timedelta(days=2)
    es.add_document(index_of(slow), {"@timestamp": iso(slow), "log": "x"})
    es.time_out_shards(index_of(slow))
    since = iso(slow - timedelta(minutes=1))

    plain = await _search(client, **{"from": since})
    es.allow_expensive_queries = False
    by_id = await _search(client, trace_id=TRACE, **{"from": since})

    assert len(plain.json()["logs"]) == len(lines)
    assert plain.json()["partial"] == (
        "elasticsearch: partial answer: the search timed out (matching lines there are missing)"
    )
    assert plain.json()["gaps"] == [
        {"part": "logs", "backend": "elasticsearch", "code": "search_timed_out", "values": {}}
    ]
    assert _names(by_id, lines) == ["frontend_ecs", "payments_warn", "checkout_info"]
    assert by_id.json()["partial"] == (
        "elasticsearch: partial answer: the search timed out (matching lines there are missing); "
        "search.allow_expensive_queries is false on this cluster, so ids glued to a neighbouring word "
        "in the text (trace_id:<id>, <trace>:<span>) were not looked for"
    )
    assert by_id.json()["gaps"] == [
        {"part": "logs", "backend": "elasticsearch", "code": "search_timed_out", "values": {}},
        {"part": "logs", "backend": "elasticsearch", "code": "glued_ids_not_searched", "values": {}},
    ]


async def test_a_cluster_refusing_prefix_queries_searches_ids_as_whole_words(
    client: httpx.AsyncClient, es: FakeElasticsearch, lines: dict[str, str]
) -> None:
    """With `search.allow_expensive_queries: false` the trace-id search runs without `prefix` and says so;
    searches without a trace id are untouched."""
    es.allow_expensive_queries = False

    by_id = await _search(client, trace_id=TRACE)
    plain = await _search(client, service="checkout")

    assert _names(by_id, lines) == ["frontend_ecs", "payments_warn", "checkout_info"]
    assert by_id.json()["partial"] == (
        "elasticsearch: search.allow_expensive_queries is false on this cluster, so ids glued to a "
        "neighbouring word in the text (trace_id:<id>, <trace>:<span>) were not looked for"
    )
    assert by_id.json()["gaps"] == [
        {"part": "logs", "backend": "elasticsearch", "code": "glued_ids_not_searched", "values": {}}
    ]
    assert plain.json()["partial"] is None  # no trace id: no glued ids to miss
    assert plain.json()["gaps"] == []

"""What a page says when a part answered only in part, or its backend failed while the other's
answered: in the page's language (zh-CN, or en), while the API's `partial` keeps its English and
carries the same as `errors` (a backend's failure) and `gaps` (what a part that answered lacks).

Elasticsearch and Jaeger are the faithful fakes (shards that fail or time out in a 200 answer, a
cluster refusing `prefix` queries, an error answer); Prometheus is the real one, empty."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape

import httpx

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.correlation.support import backend, cri_line, store_logs
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import incident_of
from tests.harness.prometheus import RunningPrometheus
from tests.pages.support import TRACE, store_checkout_trace

VIEWER = bearer(VIEWER_TOKEN)
OLD_INDEX = "logstash-1999.01.01"
SHARD_REASON = "failed to create query: field [log] is not searchable"


def _notes(page: httpx.Response) -> dict[str, str]:
    """Each partial note the page shows: part → its text (tags dropped, entities read)."""
    found = re.findall(r'<p class="alert[^"]*"[^>]*data-partial="(\w+)"[^>]*>(.*?)</p>', page.text, re.S)
    return {part: unescape(re.sub(r"<[^>]+>", "", text)) for part, text in found}


async def test_a_trace_whose_logs_came_in_part_says_which_shards_failed_in_the_pages_language(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """An older day's index fails its shard (Elasticsearch answers 200 with `_shards.failed`): the
    trace page shows the lines the other shards found and says, in its language, how many shards
    failed, where and why (Elasticsearch's own words kept as they came)."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    es.add_document(OLD_INDEX, {"@timestamp": "1999-01-01T00:00:00Z", "log": "x"})
    es.fail_shards("logstash-1999.*", reason=SHARD_REASON)
    since = {"from": "1999-01-01T00:00:00Z"}
    async with app_factory(elasticsearch=backend(es_url), jaeger=backend(jaeger_url)) as (_app, client):
        chinese = await client.get(f"/traces/{TRACE}", params={**since, "lang": "zh-CN"}, headers=VIEWER)
        english = await client.get(f"/traces/{TRACE}", params={**since, "lang": "en"}, headers=VIEWER)
        api = await client.get(f"/api/v1/traces/{TRACE}", params=since, headers=VIEWER)

    assert chinese.status_code == english.status_code == api.status_code == 200, chinese.text
    body = api.json()
    total = body["gaps"][0]["values"]["total"]
    said_zh, said_en = _notes(chinese), _notes(english)
    assert list(said_zh) == list(said_en) == ["logs"]
    assert said_zh["logs"] == (
        f"Elasticsearch — 日志可能不全：Elasticsearch 只给出了部分结果：{total} 个分片中有 1 个失败"
        f"（索引 {OLD_INDEX}：query_shard_exception: {SHARD_REASON}），那里匹配的日志缺失"
    )
    assert said_en["logs"] == (
        f"Elasticsearch — lines may be missing: Elasticsearch answered in part: 1 of {total} shards failed "
        f"(index {OLD_INDEX}: query_shard_exception: {SHARD_REASON}); matching lines there are missing"
    )
    assert "partial answer" not in chinese.text  # the API's English stays in the API
    assert "card processor timed out after 300ms" in chinese.text  # the other shards' lines are shown
    assert "日志后端不可用" not in chinese.text  # Elasticsearch answered: it is not "unavailable"
    # the API: its English note as before, and the same as data
    assert body["partial"] == {
        "logs": f"elasticsearch: partial answer: 1 of {total} shards failed (index {OLD_INDEX}: "
        f"query_shard_exception: {SHARD_REASON}) (matching lines there are missing)",
        "trace": None,
    }
    assert body["errors"] == {"logs": None, "trace": None}
    assert body["gaps"] == [
        {
            "part": "logs",
            "backend": "elasticsearch",
            "code": "shards_failed",
            "values": {
                "failed": 1,
                "total": total,
                "index": OLD_INDEX,
                "reason": f"query_shard_exception: {SHARD_REASON}",
            },
        }
    ]
    assert total >= 2


async def test_a_trace_whose_search_timed_out_on_a_cluster_without_prefix_queries_says_both(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Today's shard runs out of time, and the cluster refuses `prefix` queries
    (`search.allow_expensive_queries: false`): the trace is shown, and the note says both, one
    after the other, in the page's language."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    es.allow_expensive_queries = False
    es.time_out_shards("logstash-*")
    async with app_factory(elasticsearch=backend(es_url), jaeger=backend(jaeger_url)) as (_app, client):
        chinese = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=VIEWER)
        english = await client.get(f"/traces/{TRACE}?lang=en", headers=VIEWER)
        api = await client.get(f"/api/v1/traces/{TRACE}", headers=VIEWER)

    assert chinese.status_code == english.status_code == api.status_code == 200, chinese.text
    assert _notes(chinese) == {
        "logs": "Elasticsearch — 日志可能不全：Elasticsearch 的查询超时，匹配的日志可能不全；"
        "这个 Elasticsearch 集群的 search.allow_expensive_queries 为 false，"
        "因此没有查找与相邻文字连在一起的 id（trace_id:<id>、<trace>:<span>）"
    }
    assert _notes(english) == {
        "logs": "Elasticsearch — lines may be missing: Elasticsearch's search timed out; matching lines "
        "may be missing; search.allow_expensive_queries is false on this Elasticsearch cluster, so ids "
        "glued to a neighbouring word in the text (trace_id:<id>, <trace>:<span>) were not looked for"
    }
    assert "没有日志带有这个链路 ID。" in chinese.text  # none found, and the note above says why there may be
    body = api.json()
    assert body["partial"]["logs"] == (
        "elasticsearch: partial answer: the search timed out (matching lines there are missing); "
        "search.allow_expensive_queries is false on this cluster, so ids glued to a neighbouring word "
        "in the text (trace_id:<id>, <trace>:<span>) were not looked for"
    )
    assert [g["code"] for g in body["gaps"]] == ["search_timed_out", "glued_ids_not_searched"]
    assert body["trace"]["trace_id"] == TRACE


async def test_a_trace_jaeger_fails_or_does_not_know_is_said_in_the_pages_language(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Jaeger answering 503 is its failure said as every page says one (the kind and the backend
    translated, its own words in brackets); a Jaeger without the trace (not sampled) says so. Either
    way the lines Elasticsearch found are shown."""
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, FakeJaeger())  # the lines only: this Jaeger never saw the trace
    async with app_factory(elasticsearch=backend(es_url), jaeger=backend(jaeger_url)) as (_app, client):
        unknown_zh = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=VIEWER)
        unknown_en = await client.get(f"/traces/{TRACE}?lang=en", headers=VIEWER)
        unknown_api = await client.get(f"/api/v1/traces/{TRACE}", headers=VIEWER)
        jaeger.fail_with(503)
        failed_zh = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=VIEWER)
        failed_en = await client.get(f"/traces/{TRACE}?lang=en", headers=VIEWER)
        failed_api = await client.get(f"/api/v1/traces/{TRACE}", headers=VIEWER)

    for page in (unknown_zh, unknown_en, failed_zh, failed_en):
        assert page.status_code == 200, page.text
        assert "card processor timed out after 300ms" in page.text
    assert _notes(unknown_zh) == {
        "trace": f"Jaeger — 没有链路数据：Jaeger 中没有 trace {TRACE}（未被采样，或已超出 Jaeger 的保留期）"
    }
    assert _notes(unknown_en) == {
        "trace": f"Jaeger — no trace: Jaeger has no trace {TRACE} (not sampled, or past Jaeger's retention)"
    }
    assert unknown_api.json()["partial"]["trace"] == (
        f"jaeger has no trace {TRACE} (not sampled, or past Jaeger's retention)"
    )
    assert unknown_api.json()["gaps"] == [
        {"part": "trace", "backend": "jaeger", "code": "trace_not_found", "values": {"trace_id": TRACE}}
    ]
    failure = failed_api.json()["errors"]["trace"]
    assert (failure["backend"], failure["kind"], failure["status"]) == ("jaeger", "bad_response", 503)
    assert failed_api.json()["partial"]["trace"] == f"jaeger: {failure['message']}"  # as before
    assert failed_api.json()["gaps"] == []
    # a real failure, as every page says one: the part temporarily unavailable, and what happened
    assert _notes(failed_zh)["trace"] == f"链路数据暂时无法获取：Jaeger 的应答有误（{failure['message']}）"
    assert _notes(failed_en)["trace"] == (
        f"Trace temporarily unavailable: Jaeger answered badly ({failure['message']})"
    )


async def test_the_service_page_and_an_incidents_context_say_what_their_parts_lack_in_the_pages_language(
    app_factory: AppFactory,
    database_url: str,
    prometheus_factory: Callable[..., RunningPrometheus],
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    """Prometheus answers but has no Istio requests to the service, Elasticsearch's search times out:
    the service page and the incident's context say both in the page's language; the overview's
    `partial` keeps its English, and `gaps` carries the same."""
    es, es_url = fake_elasticsearch
    _jaeger, jaeger_url = fake_jaeger
    store_logs(es, cri_line(datetime.now(UTC) - timedelta(minutes=1), "ERROR charge failed", "payments"))
    es.time_out_shards("logstash-*")  # today's index: its lines are missing from the answer
    sections = {
        "prometheus": backend(prometheus_factory().url),
        "elasticsearch": backend(es_url),
        "jaeger": backend(jaeger_url),
    }
    async with app_factory(database_url=database_url, **alerting_config(), **sections) as (_app, client):
        body = payload(
            "PaymentsDown", [alert("PaymentsDown", started=None, service="payments", namespace="shop")]
        )
        incident = await incident_of(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        pages = {
            lang: (
                await client.get(f"/services/payments.shop?lang={lang}", headers=VIEWER),
                await client.get(f"/incidents/{incident}/context?lang={lang}", headers=VIEWER),
            )
            for lang in ("zh-CN", "en")
        }
        api = await client.get("/api/v1/services/payments.shop/overview", headers=VIEWER)
        context_api = await client.get(f"/api/v1/incidents/{incident}/context", headers=VIEWER)

    expected = {
        "zh-CN": {
            "red": "指标缺失：Prometheus 中这段时间内没有发往命名空间 shop 中服务 payments 的 Istio 请求",
            "error_logs": "日志缺失：Elasticsearch 的查询超时，匹配的日志可能不全",
        },
        "en": {
            "red": "Figures missing: Prometheus has no Istio requests to service payments in namespace shop "
            "in the window",
            "error_logs": "Logs missing: Elasticsearch's search timed out; matching lines may be missing",
        },
    }
    for lang, (service, context) in pages.items():
        assert service.status_code == context.status_code == 200, service.text
        assert _notes(service) == expected[lang], lang
        assert _notes(context) == expected[lang], lang
        assert "partial answer" not in service.text + context.text
        assert "no Istio requests" not in service.text + context.text or lang == "en"
    assert api.status_code == 200, api.text
    overview = api.json()
    assert overview["partial"] == {
        "red": "prometheus: no Istio requests to service payments in namespace shop in the window",
        "error_logs": "elasticsearch: partial answer: the search timed out "
        "(matching lines there are missing)",
        "traces": None,
        "incidents": None,
    }
    assert overview["errors"] == {"red": None, "error_logs": None, "traces": None, "incidents": None}
    assert overview["gaps"] == [
        {
            "part": "red",
            "backend": "prometheus",
            "code": "no_requests",
            "values": {"service": "payments", "namespace": "shop"},
        },
        {"part": "error_logs", "backend": "elasticsearch", "code": "search_timed_out", "values": {}},
    ]
    assert context_api.json()["services"][0]["gaps"] == overview["gaps"]


async def test_a_trace_without_elasticsearch_configured_says_so_plainly_not_as_a_failure(
    app_factory: AppFactory, fake_jaeger: tuple[FakeJaeger, str]
) -> None:
    """Jaeger answers, Elasticsearch is simply not configured: the page says the logs are not shown
    because Elasticsearch is not configured, and how to configure it; nothing "failed", nothing is
    "temporarily unavailable" (that is for a backend that failed)."""
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(FakeElasticsearch(), jaeger)  # the trace only: no Elasticsearch to hold lines
    async with app_factory(jaeger=backend(jaeger_url)) as (_app, client):
        chinese = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=VIEWER)
        english = await client.get(f"/traces/{TRACE}?lang=en", headers=VIEWER)
    assert chinese.status_code == english.status_code == 200, chinese.text
    assert _notes(chinese) == {
        "logs": "日志：未配置 Elasticsearch（请设置 elasticsearch.url 或环境变量 PANORAMA_ELASTICSEARCH_URL）"
    }
    assert _notes(english) == {
        "logs": "Logs: Elasticsearch is not configured (set elasticsearch.url or PANORAMA_ELASTICSEARCH_URL)"
    }
    assert 'data-kind="not_configured"' in chinese.text
    assert "没有日志：原因见页首。" in chinese.text
    assert "No log lines: the note at the top says why." in english.text
    assert "card processor timed out" not in english.text  # no line is made up
    for said in ("暂时", "不可用"):
        assert said not in chinese.text, said
    for said in ("temporarily", "unavailable"):
        assert said not in english.text, said

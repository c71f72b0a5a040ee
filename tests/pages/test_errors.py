"""What goes wrong, as the pages say it: bad input keeps the page and its form (400, the problem
beside it), unknown things and failing backends are error pages, all in the reader's language
(zh-CN by default, en when chosen) while the JSON API keeps its English, machine-stable message."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.backends.errors import BackendError, BackendErrorKind
from app.correlation.errors import BackendsFailed
from app.pages.service import ContextPage
from app.web import shell
from app.web.i18n import Locale, Translator
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied

SAME_SITE = {"Sec-Fetch-Site": "same-origin"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _text(answer: httpx.Response) -> str:
    return html.unescape(answer.text)


def _problems(answer: httpx.Response) -> list[tuple[str, str]]:
    """The form's problems as the page shows them: (the parameter each marks, its text)."""
    box = re.search(
        r'<div class="[^"]*form-problem" role="alert" id="form-problem">(.*?)</div>', answer.text, re.S
    )
    assert box is not None, answer.text
    found = re.findall(r'<(?:span|li) data-problem="([^"]*)">(.*?)</(?:span|li)>', box.group(1), re.S)
    return [(name, html.unescape(text)) for name, text in found]


def _problem(answer: httpx.Response) -> tuple[str, str]:
    """The one problem of the form."""
    [found] = _problems(answer)
    return found


def _title(answer: httpx.Response) -> str:
    found = re.search(r'id="form-problem"><strong>([^<]+)</strong>', answer.text)
    assert found is not None
    return found.group(1)


def _invalid_fields(answer: httpx.Response) -> list[str]:
    """The ids of the fields marked invalid."""
    return re.findall(r'id="([^"]+)"[^>]*aria-invalid="true"', answer.text)


# (query, the field marked, words of zh-CN, words of en, the API's English message)
BAD_FILTERS = [
    (
        {"service": "shop/checkout"},
        "f-service",
        "参数“service”：“shop/checkout”：命名空间中的服务写作“checkout.shop”（name.namespace）",
        "Parameter 'service': 'shop/checkout': write a service in a namespace as 'checkout.shop'",
        "query parameter 'service': 'shop/checkout': write a service in a namespace as 'checkout.shop'",
    ),
    (
        {"status": "open"},
        "f-status",
        "参数“status”：“open”不是可选的状态；可选 triggered（未确认）、acknowledged（已确认）",
        "Parameter 'status': 'open' is not a status; use triggered, acknowledged or resolved",
        "query parameter 'status': Input should be 'triggered', 'acknowledged' or 'resolved'",
    ),
    (
        {"from": "yesterday"},
        "f-from",
        "参数“from”：“yesterday”不是时间；可写 RFC 3339 时间",
        "Parameter 'from': 'yesterday' is not a time; use an RFC 3339 time",
        "query parameter 'from': 'yesterday' is not a time; use an RFC 3339 time",
    ),
    (
        {"from": "now-7x"},
        "f-from",
        "参数“from”：“now-7x”：无法读懂 now 之后的“-7x”（步长写作 -7d、+5m、/d）",
        "Parameter 'from': 'now-7x': cannot read '-7x' after now (steps are like -7d, +5m, /d)",
        "query parameter 'from': 'now-7x': cannot read '-7x' after now",
    ),
    (
        {"before": "2026-12-01~x", "service": "payments"},
        None,
        "参数“before”：不是这个列表的翻页位置",
        "Parameter 'before': not a page cursor of this list",
        None,  # the cursor is the page's own (the API pages otherwise)
    ),
]


@pytest.mark.parametrize(("query", "field", "chinese", "english", "api"), BAD_FILTERS)
async def test_a_bad_filter_keeps_the_incidents_page_and_its_form_and_says_what_is_accepted(
    app_factory: AppFactory,
    query: dict[str, str],
    field: str | None,
    chinese: str,
    english: str,
    api: str | None,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        body = payload("PaymentsDown", [alert("PaymentsDown", started=None, service="payments")])
        await applied(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        zh = await client.get("/incidents", params=query, headers=bearer(VIEWER_TOKEN))
        en = await client.get("/incidents", params={**query, "lang": "en"}, headers=bearer(VIEWER_TOKEN))
        json_answer = await client.get("/api/v1/incidents", params=query, headers=bearer(VIEWER_TOKEN))
    assert zh.status_code == en.status_code == 400
    for answer in (zh, en):
        assert 'class="topbar"' in answer.text
        assert 'class="foot"' in answer.text
        assert '<form method="get" action="/incidents" class="filters" role="search">' in answer.text
        assert "PaymentsDown" not in answer.text  # nothing listed under a filter that cannot be read
        assert _invalid_fields(answer) == ([field] if field else [])
    # the values typed are kept in the form
    if "service" in query:
        assert f'name="service" value="{query["service"]}"' in zh.text
    if "status" in query:
        assert f'<option value="{query["status"]}" selected>' in zh.text
    if "from" in query:
        assert f'<option value="{query["from"]}" selected>' in zh.text
    marked, said = _problem(zh)
    assert marked == next(iter(query))
    assert _title(zh) == "输入有误"
    assert _title(en) == "The form has a problem"
    assert chinese in said
    assert english in _problem(en)[1]
    assert "清除筛选" in zh.text
    assert "Clear the filter" in en.text
    assert '<html lang="zh-CN"' in zh.text
    assert '<html lang="en"' in en.text
    if api is not None:  # the JSON API says it in its own English, unchanged
        assert json_answer.status_code == 400
        assert api in json_answer.json()["message"]


async def test_every_bad_filter_is_said_at_once_and_each_field_marked(app_factory: AppFactory) -> None:
    query = {"status": "open", "from": "yesterday", "service": "check out", "before": "x"}
    async with app_factory(**alerting_config()) as (_app, client):
        page = await client.get("/incidents", params={**query, "lang": "en"}, headers=bearer(VIEWER_TOKEN))
    assert page.status_code == 400
    problems = _problems(page)
    assert [name for name, _ in problems] == ["status", "from", "service", "before"]
    assert "'check out' holds a space or a control character" in problems[2][1]
    assert _invalid_fields(page) == ["f-status", "f-from", "f-service"]


async def test_a_good_filter_shows_no_problem(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        page = await client.get("/incidents?service=checkout.shop&from=now-7d", headers=bearer(VIEWER_TOKEN))
    assert page.status_code == 200
    assert "form-problem" not in page.text
    assert "aria-invalid" not in page.text
    assert "没有符合条件的事件" in page.text


async def test_a_swap_form_that_cannot_be_done_comes_back_filled_in_with_its_problem(
    app_factory: AppFactory,
) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    start = (datetime.now(UTC) + timedelta(hours=2)).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    earlier = (datetime.now(UTC) + timedelta(hours=1)).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    headers = {**bearer(OPERATOR_TOKEN), **SAME_SITE}
    form = {"user": "bob", "start": start, "end": "tomorrow", "taken_by": "alice", "note": "dentist"}
    async with app_factory(**alerting_config()) as (_app, client):
        not_a_time = await client.post("/oncall/sre/swaps", data=form, headers=headers)
        backwards = await client.post(
            "/oncall/sre/swaps?lang=en", data={**form, "end": earlier}, headers=headers
        )
        backwards_zh = await client.post(
            "/oncall/sre/swaps?lang=zh-CN", data={**form, "end": earlier}, headers=headers
        )
        no_such_swap = await client.post("/oncall/sre/swaps/x/take", data={"user": "bob"}, headers=headers)
        unknown_schedule = await client.post("/oncall/nope/swaps", data=form, headers=headers)
        api = await client.post(
            "/api/v1/schedules/sre/swaps",
            json={"user": "bob", "start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"},
            headers=bearer(OPERATOR_TOKEN),
        )
    assert not_a_time.status_code == backwards.status_code == backwards_zh.status_code == 400
    marked, said = _problem(not_a_time)
    assert marked == "end"
    assert "参数“end”：“tomorrow”不是时间" in said
    assert _invalid_fields(not_a_time) == ["o-end-sre"]
    # what was typed is still there (a datetime-local field keeps a value of its own form)
    assert f'name="start" type="datetime-local" value="{start}"' in not_a_time.text
    assert 'name="note" maxlength="500" value="dentist"' in not_a_time.text
    assert "<option selected>bob</option>" in not_a_time.text
    assert 'href="/oncall?schedule=sre&amp;lang=en"' in not_a_time.text  # its language switch: the page
    assert re.search(r'name="taken_by".*?<option selected>alice</option>', not_a_time.text, re.S)
    assert _problem(backwards) == (
        "end",
        "Parameter 'end': the end must be after the start",
    )
    assert "结束时间须晚于开始时间" in _problem(backwards_zh)[1]
    assert no_such_swap.status_code == 400
    assert "值班表“sre”没有编号为 x 的换班。" in _text(no_such_swap)
    assert unknown_schedule.status_code == 404
    assert "没有名为“nope”的值班表（已配置：sre）。" in _text(unknown_schedule)
    assert api.status_code == 400
    assert "end must be after start" in api.json()["message"]  # the API's words, as before


async def test_unknown_things_are_404_pages_in_the_readers_language(app_factory: AppFactory) -> None:
    """Each says what was not found, and leads back to the list of such things: an incident to the
    incidents, a schedule (or a swap of one) to the on-call schedules."""
    async with app_factory(**alerting_config()) as (_app, client):
        incident_zh = await client.get("/incidents/42", headers=bearer(VIEWER_TOKEN))
        incident_en = await client.get("/incidents/42?lang=en", headers=bearer(VIEWER_TOKEN))
        schedule_zh = await client.get("/oncall?schedule=nope&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        schedule_en = await client.get("/oncall?schedule=nope&lang=en", headers=bearer(VIEWER_TOKEN))
        swap = await client.post(
            "/oncall/nope/swaps/1/take?lang=en",
            data={"user": "bob"},
            headers={**bearer(OPERATOR_TOKEN), **SAME_SITE},
        )
        api = await client.get("/api/v1/incidents/42", headers=bearer(VIEWER_TOKEN))
    assert incident_zh.status_code == incident_en.status_code == 404
    assert '<a href="/incidents" id="back">返回事件列表</a>' in incident_zh.text
    assert '<a href="/incidents" id="back">Back to the incidents</a>' in incident_en.text
    assert '<a href="/oncall" id="back">返回值班表</a>' in schedule_zh.text
    assert '<a href="/oncall" id="back">Back to the on-call schedules</a>' in schedule_en.text
    assert swap.status_code == 404, swap.text
    assert '<a href="/oncall" id="back">Back to the on-call schedules</a>' in swap.text
    for page in (schedule_zh, schedule_en, swap):
        assert 'href="/incidents" id="back"' not in page.text
    assert "<h1>找不到</h1>" in incident_zh.text
    assert "没有编号为 42 的事件。" in incident_zh.text
    assert "There is no incident 42." in incident_en.text
    assert schedule_zh.status_code == schedule_en.status_code == 404
    assert "没有名为“nope”的值班表（已配置：sre）。" in _text(schedule_zh)
    assert "There is no schedule 'nope' (configured: sre)." in _text(schedule_en)
    assert api.status_code == 404
    assert api.json()["message"] == "no incident 42"


async def test_a_schedule_named_before_any_is_configured_says_where_to_add_them(
    app_factory: AppFactory,
) -> None:
    """A first `make run` has no schedules: naming one (a hand-over link, a typed URL, the API)
    says where they are configured, in the page's language and in the API's English."""
    async with app_factory() as (_app, client):
        page_zh = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        page_en = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
        api = await client.get("/api/v1/schedules/sre/oncall", headers=bearer(VIEWER_TOKEN))
    assert page_zh.status_code == page_en.status_code == api.status_code == 404
    assert "没有名为“sre”的值班表（还没有配置任何值班表：在配置文件的 schedules 中添加）。" in _text(page_zh)
    assert (
        "There is no schedule 'sre' (none is configured: add one under schedules in the configuration file)."
        in _text(page_en)
    )
    assert api.json()["message"] == (
        "no schedule 'sre' (none is configured: add one under 'schedules' in the configuration file)"
    )


async def test_a_malformed_trace_id_or_time_is_said_in_the_pages_language(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        malformed = await client.get("/traces/not-a-trace-id", headers=bearer(VIEWER_TOKEN))
        malformed_en = await client.get("/traces/not-a-trace-id?lang=en", headers=bearer(VIEWER_TOKEN))
        bad_from = await client.get(
            f"/traces/{TRACE}?from=last+week&lang=zh-CN", headers=bearer(VIEWER_TOKEN)
        )
        backwards = await client.get(
            f"/traces/{TRACE}?from=now-1h&to=now-2h&lang=en", headers=bearer(VIEWER_TOKEN)
        )
        api = await client.get("/api/v1/traces/not-a-trace-id", headers=bearer(VIEWER_TOKEN))
    assert malformed.status_code == malformed_en.status_code == bad_from.status_code == 400
    assert "<h1>请求有误</h1>" in malformed.text
    assert "“not-a-trace-id”不是 trace id；可写 1 到 32 位十六进制数字" in _text(malformed)
    assert "'not-a-trace-id' is not a trace id; use 1 to 32 hex digits" in _text(malformed_en)
    assert "参数“from”：“last week”不是时间；可写 RFC 3339 时间" in _text(bad_from)
    assert backwards.status_code == 400
    assert "is not before 'to'" in _text(backwards)
    assert "give 'from' earlier than 'to'" in _text(backwards)
    assert api.status_code == 400
    assert "accepted forms" in api.json()["message"]


async def test_failing_backends_are_named_on_5xx_pages_in_the_readers_language(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    async with app_factory() as (_app, client):
        none_zh = await client.get(f"/traces/{TRACE}", headers=bearer(VIEWER_TOKEN))
        none_en = await client.get(f"/traces/{TRACE}?lang=en", headers=bearer(VIEWER_TOKEN))
    assert none_zh.status_code == none_en.status_code == 503
    # nothing configured is no failure: said plainly (a real failure below is "failed")
    assert "<h1>后端未配置</h1>" in none_zh.text
    assert "<h1>Not configured</h1>" in none_en.text
    assert "出错" not in none_zh.text
    assert "failed" not in none_en.text
    assert (
        "所需的后端都没有配置：未配置 Jaeger：请设置 jaeger.url 或环境变量 PANORAMA_JAEGER_URL"
        in none_zh.text
    )
    assert "未配置 Elasticsearch：请设置 elasticsearch.url" in none_zh.text
    assert "。、" not in none_zh.text  # the failures listed read as one list, no full stop inside it
    assert "Jaeger is not configured: set jaeger.url or PANORAMA_JAEGER_URL" in none_en.text

    backends = {"elasticsearch": backend(es_url), "jaeger": {**backend(jaeger_url), "timeout_s": 0.5}}
    async with app_factory(**backends) as (_app, client):
        jaeger.hang(5)
        slow_zh = await client.get(f"/traces/{TRACE}", headers=bearer(VIEWER_TOKEN))
        slow_en = await client.get(f"/traces/{TRACE}?lang=en", headers=bearer(VIEWER_TOKEN))
        jaeger.clear_faults()
        jaeger.stop()
        gone_zh = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        gone_en = await client.get(f"/traces/{TRACE}?lang=en", headers=bearer(VIEWER_TOKEN))
        es.stop()
        both = await client.get(f"/traces/{TRACE}?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        api = await client.get(f"/api/v1/traces/{TRACE}", headers=bearer(VIEWER_TOKEN))
    assert slow_zh.status_code == slow_en.status_code == 504
    assert "<h1>后端服务出错</h1>" in slow_zh.text
    assert "Jaeger 未在时限内应答（" in slow_zh.text
    assert "Jaeger did not answer in time (" in slow_en.text
    assert gone_zh.status_code == gone_en.status_code == 503
    assert "无法连接 Jaeger（" in gone_zh.text
    assert "Jaeger is unreachable (" in gone_en.text
    assert both.status_code == 503
    assert "所需的后端都出错了：无法连接 Jaeger（" in both.text
    assert "、无法连接 Elasticsearch（" in both.text
    assert api.status_code == 503
    assert api.json()["error"] == "backends_failed"
    assert api.json()["message"].startswith(f"trace {TRACE}: jaeger: ")


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("zh-CN", "暂时无法获取： 所需的后端都出错了：无法连接 Prometheus（cannot reach http://prom:9090"),
        ("en", "Not available: Every backend this needs failed: Prometheus is unreachable (cannot reach"),
    ],
)
def test_an_incidents_context_names_the_backends_that_failed_in_the_pages_language(
    locale: str, words: str
) -> None:
    failures = {
        "prometheus": BackendError(
            "prometheus", BackendErrorKind.UNREACHABLE, "cannot reach http://prom:9090: refused"
        ),
        "elasticsearch": BackendError("elasticsearch", BackendErrorKind.TIMEOUT, "no answer within 5s"),
    }
    found = ContextPage(None, BackendsFailed(failures, "context of incident 7: "))
    view = shell.PageView(Translator(cast(Locale, locale), ZoneInfo("UTC")), datetime.now(UTC), "/", {})
    said = html.unescape(shell.render("pages/context_fragment.html", view, found=found, incident_id=7))
    assert words in said
    assert (
        "Elasticsearch 未在时限内应答（no answer within 5s）"
        if locale == "zh-CN"
        else "Elasticsearch did not answer in time (no answer within 5s)"
    ) in said


async def test_refused_actions_and_unreadable_paths_are_said_in_the_pages_language(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        body = payload("PaymentsDown", [alert("PaymentsDown", started=None, service="payments")])
        await applied(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))
        as_viewer = await client.post("/incidents/1/ack", headers={**bearer(VIEWER_TOKEN), **SAME_SITE})
        cross_site = await client.post(
            "/incidents/1/ack", headers={**bearer(OPERATOR_TOKEN), "Sec-Fetch-Site": "cross-site"}
        )
        bad_snooze = await client.post(
            "/incidents/1/snooze", data={"minutes": "7"}, headers={**bearer(OPERATOR_TOKEN), **SAME_SITE}
        )
        not_a_number = await client.get("/incidents/abc", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/incidents/abc?lang=en", headers=bearer(VIEWER_TOKEN))
    assert as_viewer.status_code == cross_site.status_code == 403
    assert "操作事件需要 operator 角色；令牌“viewer-test”的角色是 viewer。" in _text(as_viewer)
    assert "这个表单是从其他网站提交的，已拒绝。" in _text(cross_site)
    assert bad_snooze.status_code == 400
    assert "参数“minutes”：可选 15, 30, 60, 120, 240, 480 分钟" in _text(bad_snooze)
    assert not_a_number.status_code == english.status_code == 400
    assert "参数“incident_id”：取值无效（" in _text(not_a_number)
    assert "Parameter 'incident_id': invalid value (" in _text(english)

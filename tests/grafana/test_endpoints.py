"""The datasource's other endpoints, its auth, and every error in the form Grafana shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.grafana.entities import MAX_SERIES
from app.main import BODY_TIME_FORMS
from app.rollups import repository
from app.rollups.compute import FamilyValue
from tests.grafana.frames import variable_options
from tests.grafana.support import (
    CHECKOUT,
    FIRST,
    PAYMENTS,
    SEARCH,
    SLO,
    builder_target,
    grafana_range,
    query_body,
    regex,
    store_days,
)
from tests.harness.app import ADMIN_TOKEN, VIEWER_TOKEN, AppFactory, bearer

VIEW = bearer(VIEWER_TOKEN)
FIGURES = {
    "service": [
        "requests", "errors", "error_rate", "availability", "qps_avg", "qps_peak",
        "latency_avg_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    ],
    "namespace": ["cpu_cores_avg", "cpu_cores_peak", "memory_bytes_avg", "memory_bytes_peak"],
    "cluster": [
        "cpu_utilization_avg", "cpu_utilization_peak", "memory_utilization_avg", "memory_utilization_peak",
    ],
    "platform": [
        "requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    ],
    **{
        kind: [
            "incidents", "incidents_critical", "incidents_warning", "incidents_info", "incidents_other",
            "pages_sent", "pages_delivered", "delivered_ratio", "acks", "ack_mean_s",
            "ack_p50_s", "ack_p95_s", "resolves", "resolve_mean_s", "resolve_p50_s", "resolve_p95_s",
        ]
        for kind in ("oncall", "oncall_service", "oncall_schedule")
    },
    "oncall_person": ["pages", "night_pages", "incidents", "acks", "ack_mean_s"],
    "slo": ["availability", "error_budget_remaining", "error_budget_remaining_minutes"],
}  # fmt: skip
TAG_KEYS = ["namespace", "oncall_person", "oncall_schedule", "oncall_service", "service"]
ALL_METRICS = [f"{kind}.{figure}" for kind, figures in FIGURES.items() for figure in figures]


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(timezone="UTC", slo=SLO) as (app, http):
        async with app.state.context.sessions.begin() as session:
            await store_days(session)
        yield http


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    return await client.post(f"/grafana/{path}", json=body, headers=VIEW)


async def test_health_check_needs_the_token_grafana_sends(client: httpx.AsyncClient) -> None:
    for path in ("/grafana/", "/grafana"):  # Grafana's proxy asks for the URL without the slash
        answer = await client.get(path, headers=VIEW)
        assert answer.status_code == 200, path
        assert answer.json() | {"version": "x"} == {
            "status": "ok",
            "service": "panorama",
            "version": "x",
            "timezone": "UTC",
            "metrics": len(ALL_METRICS),
        }
        missing = await client.get(path)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {"message": "missing bearer token: send `Authorization: Bearer <token>`"}
        wrong = await client.get(path, headers=bearer("not-a-token-of-this-panorama"))
        assert wrong.json() == {"message": "invalid token"}
    assert (await client.get("/grafana/", headers=bearer(ADMIN_TOKEN))).status_code == 200


async def test_every_route_answers_401_without_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/grafana/metrics"),
        ("POST", "/grafana/metric-payload-options"),
        ("POST", "/grafana/query"),
        ("POST", "/grafana/variable"),
        ("POST", "/grafana/tag-keys"),
        ("POST", "/grafana/tag-values"),
        ("GET", "/grafana/elsewhere"),
        ("GET", "/api/v1/rollups"),
    ]:
        answer = await client.request(method, path, json={})
        assert answer.status_code == 401, (method, path)


async def test_metrics_list_every_figure_with_its_payloads(client: httpx.AsyncClient) -> None:
    for body in ({}, {"metric": "service.requests", "payload": {"granularity": "day"}}):
        answer = await post(client, "metrics", body)
        assert answer.status_code == 200
    metrics = {m["value"]: m for m in answer.json()}
    assert list(metrics) == [*ALL_METRICS, "incidents", "partial_days"]
    assert [p["name"] for p in metrics["partial_days"]["payloads"]] == ["service", "namespace", "lang"]
    p99 = metrics["service.latency_p99_ms"]
    assert p99["label"] == "service · latency_p99_ms (ms)"
    assert [p["name"] for p in p99["payloads"]] == ["entity", "granularity", "format"]
    entity, granularity, table = p99["payloads"]
    assert (entity["type"], "options" in entity) == ("select", False)  # from /metric-payload-options
    assert [o["value"] for o in granularity["options"]] == ["day", "week", "month", "year"]
    assert [o["value"] for o in table["options"]] == ["time_series", "table"]
    assert [p["name"] for p in metrics["cluster.cpu_utilization_avg"]["payloads"]] == [
        "granularity",
        "format",
    ]
    budget = [p["name"] for p in metrics["slo.error_budget_remaining"]["payloads"]]
    assert budget == ["entity", "granularity", "objective", "format"]
    availability = [p["name"] for p in metrics["slo.availability"]["payloads"]]
    assert availability == ["entity", "granularity", "format"]  # its one objective is availability


async def test_every_offered_granularity_is_one_a_query_accepts(client: httpx.AsyncClient) -> None:
    metrics = {m["value"]: m for m in (await post(client, "metrics", {})).json()}
    [granularity] = [p for p in metrics["service.requests"]["payloads"] if p["name"] == "granularity"]
    offered = [o["value"] for o in granularity["options"]]
    assert "year" in offered
    for value in offered:
        target = builder_target("A", "service.requests", entity=regex(CHECKOUT), granularity=value)
        answer = await post(client, "query", query_body([target], max_data_points=1000))
        assert answer.status_code == 200, (value, answer.text)
        [series] = answer.json()
        assert series["tags"]["granularity"] == value
        assert series["datapoints"], value


async def test_payload_options(client: httpx.AsyncClient) -> None:
    async def options(metric: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        answer = await post(
            client, "metric-payload-options", {"metric": metric, "payload": payload or {}, "name": name}
        )
        assert answer.status_code == 200, answer.text
        return [o["value"] for o in answer.json()]

    assert await options("service.latency_p99_ms", "entity", {"granularity": "day"}) == [
        "$__all",
        CHECKOUT,
        PAYMENTS,
        SEARCH,
    ]
    assert await options("namespace.cpu_cores_peak", "entity") == ["$__all", "catalog", "shop"]
    assert await options("slo.availability", "entity") == ["$__all", CHECKOUT, PAYMENTS]
    assert await options("service.requests", "granularity") == ["day", "week", "month", "year"]
    assert await options("service.requests", "format") == ["time_series", "table"]
    assert await options("slo.error_budget_remaining", "objective") == ["availability", "latency_p99_ms"]
    assert await options("incidents", "service") == ["$__all", CHECKOUT, PAYMENTS, SEARCH]
    assert await options("partial_days", "lang") == ["zh-CN", "en"]
    assert await options("partial_days", "service") == ["$__all", CHECKOUT, PAYMENTS, SEARCH]
    assert await options("partial_days", "entity") == ["$__all", CHECKOUT, PAYMENTS, SEARCH]
    assert await options("partial_days", "namespace") == ["$__all", "catalog", "shop"]
    no_schedule = await post(client, "metric-payload-options", {"metric": "partial_days", "name": "schedule"})
    assert no_schedule.json() == {
        "message": "metric partial_days has no payload 'schedule' (it has: service, namespace, lang)"
    }
    nothing = await post(
        client, "metric-payload-options", {"metric": "cluster.cpu_utilization_avg", "name": "entity"}
    )
    assert nothing.status_code == 400
    assert nothing.json() == {
        "message": "metric cluster.cpu_utilization_avg has no payload 'entity' (it has: granularity, format)"
    }


async def test_a_missing_payload_field_is_never_listed_among_those_the_metric_has(
    client: httpx.AsyncClient,
) -> None:
    metrics = {m["value"]: m for m in (await post(client, "metrics", {})).json()}
    body = {"metric": "slo.availability", "name": "objective"}
    answer = await post(client, "metric-payload-options", body)
    assert answer.status_code == 400
    assert answer.json() == {
        "message": "metric slo.availability has no payload 'objective' (it has: entity, granularity, format)"
    }
    for metric, name in (("slo.availability", "objective"), ("service.requests", "objective")):
        answer = await post(client, "metric-payload-options", {"metric": metric, "name": name})
        listed = answer.json()["message"].split("(it has: ")[1].rstrip(")").split(", ")
        assert name not in listed
        assert listed == [p["name"] for p in metrics[metric]["payloads"]]  # what the builder shows
    variable = await post(client, "metric-payload-options", {"metric": "$figure", "name": "entity"})
    assert variable.status_code == 400
    assert variable.json()["message"].startswith("metric '$figure' is a Grafana variable")  # its own field


async def test_variables(client: httpx.AsyncClient) -> None:
    async def values(payload: Any, **extra: Any) -> list[str]:
        answer = await post(client, "variable", {"payload": payload, **extra})
        assert answer.status_code == 200, answer.text
        options = variable_options(answer.json())
        assert all(o["text"] == o["value"] for o in options)
        return [o["value"] for o in options]

    assert await values({"target": "services"}) == [CHECKOUT, PAYMENTS, SEARCH]
    assert await values({"target": "namespaces"}) == ["catalog", "shop"]
    assert await values({"target": "figures"}) == ALL_METRICS
    assert await values({"target": "schedules"}) == []  # on-call schedules arrive with alerting
    assert await values({"target": "entities(namespace)"}) == ["catalog", "shop"]
    assert await values({"target": "figures(cluster)"}) == [f"cluster.{f}" for f in FIGURES["cluster"]]
    assert await values({"target": "entities(slo)"}) == [CHECKOUT, PAYMENTS]
    assert await values("services") == [CHECKOUT, PAYMENTS, SEARCH]  # raw JSON mode: a JSON string
    in_range = grafana_range("2025-01-01T00:00:00.000Z", "2025-01-02T00:00:00.000Z", ("now-1d", "now"))
    assert await values({"target": "services"}, range=in_range, rangeRaw=in_range["raw"]) == [
        CHECKOUT,
        PAYMENTS,
        SEARCH,
    ]
    empty = grafana_range("2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z")
    assert await values({"target": "services"}, range=empty) == []
    older = await client.post("/grafana/variable", json={"target": "namespaces"}, headers=VIEW)
    assert [o["__value"] for o in older.json()] == ["catalog", "shop"]
    for bad in ({"target": "pods"}, {"target": ""}, {"target": "entities(queue)"}):
        answer = await post(client, "variable", {"payload": bad})
        assert answer.status_code == 400
        assert list(answer.json()) == ["message"]


async def test_ad_hoc_tag_keys_and_values(client: httpx.AsyncClient) -> None:
    keys = await post(client, "tag-keys", {"filters": [], "timeRange": grafana_range("now-1d", "now")})
    assert keys.json() == [{"type": "string", "text": key} for key in TAG_KEYS]
    assert (await client.post("/grafana/tag-keys", headers=VIEW)).status_code == 200  # no body at all
    services = await post(client, "tag-values", {"key": "service", "filters": []})
    assert services.json() == [{"text": CHECKOUT}, {"text": PAYMENTS}, {"text": SEARCH}]
    namespaces = await post(client, "tag-values", {"key": "namespace"})
    assert namespaces.json() == [{"text": "catalog"}, {"text": "shop"}]
    unknown = await post(client, "tag-values", {"key": "pod"})
    assert unknown.status_code == 400
    assert unknown.json() == {"message": f"tag key 'pod' is not one of {', '.join(TAG_KEYS)}"}


def p99(**payload: Any) -> dict[str, Any]:
    return builder_target("A", "service.latency_p99_ms", **payload)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (query_body([p99(entity=regex(CHECKOUT)) | {"target": "service.latency_p98_ms"}]), 404,
         "unknown metric 'service.latency_p98_ms': metrics are <kind>.<figure>, e.g. service.latency_p99_ms "
         "(POST /grafana/metrics lists them); did you mean service.latency_p99_ms, service.latency_p95_ms, "
         "service.latency_p50_ms?"),
        (query_body([p99(entity=regex(CHECKOUT))], start="2025-03-01T00:00:00Z", end="2025-02-01T00:00:00Z"),
         400,
         "range: 'to' (2025-02-01T00:00:00+00:00) is before 'from' (2025-03-01T00:00:00+00:00)"),
        (query_body([p99(entity=regex(CHECKOUT), granularity="hour")]), 400,
         "payload.granularity 'hour' is not one of day, week, month, year"),
        (query_body([p99(entity=regex(CHECKOUT), format="graph")]), 400,
         "payload.format 'graph' is not one of time_series, table"),
        (query_body([p99()]), 400,
         "payload.entity is required for service.latency_p99_ms: a service name, a list, (a|b) or $__all "
         '(in code mode write a multi-value variable unquoted: {"entity": $var})'),
        (query_body([p99(entity="$service")]), 400,
         "payload.entity '$service' is a Grafana variable that was not interpolated: define it on the "
         "dashboard, or give a value"),
        (query_body([p99(entity="nope.default.svc.cluster.local")]), 404,
         "no service 'nope.default.svc.cluster.local' has any rollup"),
        (query_body([p99(entity=regex(CHECKOUT)) | {"payload": "{not json"}]), 400,
         "target A: payload is not JSON: '{not json'"),
        (query_body([p99(entity="$__all")], filters=[{"key": "pod", "operator": "=", "value": "x"}]), 400,
         "filters[0]: key 'pod' is not one of " + ", ".join(TAG_KEYS)),
        (query_body([builder_target("A", "slo.availability", entity=regex(SEARCH))]), 400,
         f"no SLO objective is configured for '{SEARCH}'"),
        (query_body([p99(entity=regex(CHECKOUT))]) | {"range": {"from": "yesterday"}}, 400,
         f"body 'range.from': 'yesterday' is not a time; {BODY_TIME_FORMS}; body range.to: Field required"),
        ({"targets": []}, 400, "body range: Field required"),
    ],
)  # fmt: skip
async def test_query_errors_come_as_grafana_shows_them(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    answer = await post(client, "query", body)
    assert answer.status_code == status
    assert answer.json() == {"message": message}


async def test_too_many_series_is_refused_with_a_way_out(app_factory: AppFactory) -> None:
    async with app_factory(timezone="UTC") as (app, client):
        async with app.state.context.sessions.begin() as session:
            await repository.replace_day(
                session,
                FIRST,
                [
                    FamilyValue("service", f"s{i:03d}.x.svc.cluster.local", "requests", total=1.0)
                    for i in range(201)
                ],
            )
        many = await post(
            client, "query", query_body([builder_target("A", "service.requests", entity="$__all")])
        )
        table = await post(
            client, "query", query_body([builder_target("A", "service.requests", format="table")])
        )
    assert many.status_code == 400
    assert many.json()["message"] == (
        f"service.requests: 201 services selected; a query answers at most {MAX_SERIES} series: narrow the "
        "selection or an ad hoc filter, or use format table"
    )
    assert table.status_code == 200
    assert len(table.json()[0]["rows"]) == 201


async def test_other_errors_under_grafana_keep_grafanas_form(client: httpx.AsyncClient) -> None:
    not_json = await client.post(
        "/grafana/query", content=b"{", headers={**VIEW, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert list(not_json.json()) == ["message"]
    assert not_json.json()["message"].startswith("request body: not valid JSON (")
    unknown = await client.post("/grafana/search", json={}, headers=VIEW)  # the pre-0.6 endpoint
    assert unknown.status_code == 404
    assert unknown.json()["message"].startswith("/grafana/search is not a JSON-datasource endpoint")
    wrong = await client.get("/grafana/query", headers=VIEW)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert wrong.json() == {"message": "GET /grafana/query: use POST"}
    elsewhere = await client.get("/api/v1/reports/services", params={"from": "2025-13-01"}, headers=VIEW)
    assert elsewhere.status_code == 400
    assert set(elsewhere.json()) >= {"error", "message"}  # the rest of the API keeps its own form


async def test_a_failing_database_is_a_503_grafana_can_show(app_factory: AppFactory) -> None:
    async with app_factory(migrate=False) as (_app, client):  # no tables: every query fails
        answer = await post(client, "query", query_body([p99(entity=regex(CHECKOUT))]))
        variable = await post(client, "variable", {"payload": {"target": "services"}})
    assert answer.status_code == 503
    assert answer.json() == {"message": "the database is not migrated: run `panorama migrate`"}
    assert variable.status_code == 503
    assert list(variable.json()) == ["message"]

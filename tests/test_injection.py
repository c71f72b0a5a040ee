"""Hostile values on every parameter that reaches PromQL, Elasticsearch, Jaeger or SQL: a clear
4xx or a correctly escaped query, never a 5xx, never a changed meaning."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of
from tests.harness.prometheus import RunningPrometheus

HOSTILE = [
    "a'b\"c",  # quotes
    '"} or vector(1) {a="',  # a PromQL label matcher breaking out
    "{{.*}}|(a+)+$^[",  # braces and regex metacharacters
    "x AND status:500 OR *:* \\ / ~ ? ! ( ) [ ] ^",  # Lucene syntax
    "%_%\\%",  # SQL LIKE wildcards
    "../../../etc/passwd",  # path traversal
    "é€字\x7f\u202e",  # non-ASCII, a control character, a bidi override
    "a" * 5000,  # very long
]
# Parameters whose values are not free text (times, numbers, enums): covered by their own
# validation tests; a hostile value there must still be a 4xx, which this test checks too.
SAMPLE_PATH = {"incident_id": "1", "override_id": "1", "window_id": "1"}


def _operations(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    found = []
    for path, operations in document["paths"].items():
        get = operations.get("get")
        if get is None or path in ("/healthz", "/readyz", "/metrics"):
            continue
        found.append((path, get.get("parameters", [])))
    return found


def _url(path: str, name: str, value: str, parameters: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    query = {}
    filled = path
    for parameter in parameters:
        if parameter["in"] == "path":
            sample = value if parameter["name"] == name else SAMPLE_PATH.get(parameter["name"], "checkout")
            filled = filled.replace("{" + parameter["name"] + "}", quote(sample, safe=""))
        elif parameter["in"] == "query" and parameter["name"] == name:
            query[name] = value
    return filled, query


async def test_hostile_values_on_every_parameter_are_never_a_server_error(
    app_factory: AppFactory,
    prometheus: RunningPrometheus,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> None:
    backends = {
        "prometheus": backend(prometheus.url),
        "elasticsearch": backend(fake_elasticsearch[1]),
        "jaeger": backend(fake_jaeger[1]),
        "server": {"rate_limit": {"per_token_per_min": None}},
    }
    failures = []
    tried = 0
    async with app_factory(**backends, **alerting_config()) as (_app, client):
        document = (await client.get("/openapi.json")).json()
        for path, parameters in _operations(document):
            for parameter in parameters:
                if parameter["in"] not in ("query", "path"):
                    continue
                for value in HOSTILE:
                    url, query = _url(path, parameter["name"], value, parameters)
                    answer = await client.get(url, params=query, headers=bearer(VIEWER_TOKEN))
                    tried += 1
                    if answer.status_code >= 500:
                        failures.append(
                            (path, parameter["name"], value[:40], answer.status_code, answer.text[:200])
                        )
    assert tried > 100
    assert failures == []


async def test_the_incident_service_filter_takes_like_wildcards_literally(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        for n, name in enumerate(("pay_ments", "payXments", "a%b", "a\\b")):
            group = f"Group{n}"
            answer = await client.post(
                WEBHOOK, json=payload(group, [alert(group, service=name)]), headers=bearer_webhook()
            )
            await applied(client, answer)
            await incident_of(client, answer)

        async def found(service: str) -> list[list[str]]:
            answer = await client.get(
                "/api/v1/incidents", params={"service": service}, headers=bearer(VIEWER_TOKEN)
            )
            assert answer.status_code == 200
            return [i["services"] for i in answer.json()["incidents"]]

        underscore = await found("pay_ments")
        percent = await found("%")
        wildcard_in_name = await found("a%b")
        backslash = await found("a\\b")
        single = await found("_")
    assert underscore == [["pay_ments"]]
    assert percent == []
    assert wildcard_in_name == [["a%b"]]
    assert backslash == [["a\\b"]]
    assert single == []

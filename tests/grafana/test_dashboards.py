"""dashboards/: provisioning that loads unattended, and dashboards whose every query works.

Every panel's datasource must be provisioned; every Panorama query, interpolated as
Grafana would with the values Panorama's own variables offer, must be answered; every
PromQL expression must run on the real test Prometheus and return data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.backends.prometheus import PrometheusClient
from app.grafana.catalogue import INCIDENTS, PARTIAL_DAYS, metrics_of
from app.rollups import repository
from app.rollups.repository import RunStatus
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import SLO, query_body, regex, store_days, store_oncall_days
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer, settings_for
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import dataset_of

ROOT = Path(__file__).resolve().parents[2] / "dashboards"
DATASOURCES = ROOT / "provisioning" / "datasources" / "panorama.yaml"
PROVIDERS = ROOT / "provisioning" / "dashboards" / "panorama.yaml"
DASHBOARDS = sorted((ROOT / "json").glob("*.json"))
ENV = {
    "PANORAMA_URL": "http://panorama.from-env:8000",
    "PANORAMA_GRAFANA_TOKEN": "viewer-token-from-a-secret",
    "PROMETHEUS_URL": "http://prometheus.from-env:9090",
    "ELASTICSEARCH_URL": "https://es.from-env:9200",
    "ELASTICSEARCH_USERNAME": "es-user-from-env",
    "ELASTICSEARCH_PASSWORD": "es-password-from-a-secret",
    "JAEGER_URL": "http://jaeger.from-env:16686",
}
EXPECTED = {
    "panorama-overview": "平台总览 Platform overview (live)",
    "panorama-service-history": "服务历史 Service history",
    "panorama-capacity": "容量 Capacity",
    "panorama-slo": "SLO 与错误预算 SLOs & error budgets",
    "panorama-oncall": "值班与事件 On-call & incidents",
    "panorama-oncall-health": "值班健康 On-call health",
}
CUT = date(2025, 2, 3)
"""A partial day inside the stored days (its run says so): its annotation, in UTC, starts at its midnight."""
CUT_MS = int(datetime(2025, 2, 3, tzinfo=UTC).timestamp() * 1000)
# What Grafana substitutes for its own interval variables (a 1m scrape interval, a 6h range).
GRAFANA_VARIABLES = {"$__rate_interval": "4m", "$__interval": "1m", "$__range": "6h"}
_ENV_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def grafana_expand(value: Any, env: dict[str, str]) -> Any:
    """Grafana's provisioning interpolation: ``$VAR``/``${VAR}`` from the environment, ``$$`` a ``$``."""
    if isinstance(value, dict):
        return {k: grafana_expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [grafana_expand(v, env) for v in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")
    return "$".join(_ENV_REF.sub(lambda m: env.get(m[1] or m[2], ""), part) for part in parts)


def provisioned() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(DATASOURCES.read_text())
    return {source["uid"]: source for source in document["datasources"]}


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(datasource, target) of every panel query and annotation query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield target.get("datasource") or panel["datasource"], target
    for annotation in dashboard["annotations"]["list"]:
        yield annotation["datasource"], annotation["target"]


def test_datasources_are_provisioned_from_the_environment() -> None:
    document = yaml.safe_load(DATASOURCES.read_text())
    assert document["apiVersion"] == 1
    sources = provisioned()
    assert {uid: s["type"] for uid, s in sources.items()} == {
        "panorama": "simpod-json-datasource",
        "prometheus": "prometheus",
        "elasticsearch": "elasticsearch",
        "jaeger": "jaeger",
    }
    for source in sources.values():
        assert source["access"] == "proxy"  # custom headers are set by Grafana's server-side proxy
        assert re.fullmatch(r"\$\{[A-Z_]+\}(/grafana)?", source["url"]), source["url"]
        for secret in source.get("secureJsonData", {}).values():
            assert re.fullmatch(r"(Bearer )?\$\{[A-Z_]+\}", secret), "secrets come from the environment"
    expanded = {uid: grafana_expand(s, ENV) for uid, s in sources.items()}
    panorama = expanded["panorama"]
    assert panorama["url"] == "http://panorama.from-env:8000/grafana"
    assert panorama["jsonData"]["httpHeaderName1"] == "Authorization"
    assert panorama["secureJsonData"]["httpHeaderValue1"] == "Bearer viewer-token-from-a-secret"
    elasticsearch = expanded["elasticsearch"]
    assert elasticsearch["secureJsonData"]["basicAuthPassword"] == ENV["ELASTICSEARCH_PASSWORD"]
    assert {link["url"] for link in elasticsearch["jsonData"]["dataLinks"]} == {"${__value.raw}"}
    assert {link["datasourceUid"] for link in elasticsearch["jsonData"]["dataLinks"]} <= set(sources)
    traces_to_logs = expanded["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert traces_to_logs["datasourceUid"] in sources
    assert '"${__trace.traceId}"' in traces_to_logs["query"]


def test_the_file_provider_loads_dashboards_json() -> None:
    document = yaml.safe_load(PROVIDERS.read_text())
    [provider] = document["providers"]
    assert (provider["type"], provider["folderUid"]) == ("file", "panorama")
    assert provider["options"]["path"] in (ROOT / "README.md").read_text()  # the README says where to mount


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_have_fixed_uids_and_only_provisioned_datasources(path: Path) -> None:
    text = path.read_text()
    dashboard = load(path)
    assert "${DS_" not in text
    assert not {"__inputs", "__requires"} & set(dashboard)
    assert dashboard.get("id") is None
    assert EXPECTED[dashboard["uid"]] == dashboard["title"]
    sources = provisioned()
    checked = 0
    for panel in panels(dashboard):
        if panel["type"] in ("row", "text"):
            continue
        source = panel["datasource"]
        assert sources[source["uid"]]["type"] == source["type"], panel["title"]
        assert panel["targets"], panel["title"]
        checked += 1
    for source, _ in targets(dashboard):
        assert sources[source["uid"]]["type"] == source["type"]
    for variable in dashboard["templating"]["list"]:
        if "datasource" in variable:
            assert sources[variable["datasource"]["uid"]]["type"] == variable["datasource"]["type"]
    assert checked >= 4
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_the_six_dashboards_are_there() -> None:
    assert sorted(load(path)["uid"] for path in DASHBOARDS) == sorted(EXPECTED)


def test_panorama_targets_name_real_metrics() -> None:
    known = {metric.name for metric in metrics_of(settings_for("sqlite+aiosqlite:///unused.db"))}
    named = 0
    for path in DASHBOARDS:
        dashboard = load(path)
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        for source, target in targets(dashboard):
            if source["uid"] != "panorama":
                continue
            assert target["target"] in known | {INCIDENTS, PARTIAL_DAYS}, (path.name, target)
            for value in target.get("payload", {}).values():
                for name in re.findall(r"\$(\w+)", str(value)):
                    assert name in variables | {"__all"}, (path.name, value)
            named += 1
    assert named >= 25


def test_the_dashboards_of_daily_prometheus_figures_mark_partial_days() -> None:
    """Where a daily series of Prometheus's figures may dip because its retention cut a day, the
    dashboard shows the partial days as annotations (the on-call history is not Prometheus's), of
    the services or namespaces its variable chooses."""
    marked = {}
    for path in DASHBOARDS:
        dashboard = load(path)
        for annotation in dashboard["annotations"]["list"]:
            if annotation["target"]["target"] == PARTIAL_DAYS:
                assert annotation["enable"]
                assert annotation["datasource"]["uid"] == "panorama"
                assert annotation["target"]["refId"] == "Anno"
                marked[dashboard["uid"]] = annotation["target"]["payload"]
    assert marked == {
        "panorama-service-history": {"service": "$service"},
        "panorama-capacity": {"namespace": "$namespace"},
        "panorama-slo": {"service": "$service"},
    }


def interpolate_regex(value: Any, chosen: dict[str, list[str]]) -> Any:
    """Grafana's regex-format interpolation of a builder-mode payload value."""
    if not isinstance(value, str):
        return value
    return re.sub(r"\$(\w+)", lambda m: regex(*chosen[m[1]]) if m[1] in chosen else m[0], value)


async def test_every_panorama_query_of_the_dashboards_is_answered(app_factory: AppFactory) -> None:
    """Each query as Grafana sends it, with values Panorama's variables offer (two of each)."""
    async with app_factory(timezone="UTC", slo=SLO) as (app, client):
        async with app.state.context.sessions.begin() as session:
            await store_days(session)
            await store_oncall_days(session)
            run_id = await repository.claim_day(
                session, CUT, trigger="test", worker="test", now=datetime.now(UTC), lease=timedelta(0)
            )
            assert run_id is not None
            await repository.finish_run(session, run_id, status=RunStatus.PARTIAL, duration_ms=1.0)
        for path in DASHBOARDS:
            dashboard = load(path)
            chosen: dict[str, list[str]] = {}
            for variable in dashboard["templating"]["list"]:
                if variable["type"] == "custom":
                    chosen[variable["name"]] = [variable["current"]["value"]]
                elif variable["datasource"]["uid"] == "panorama":
                    answer = await client.post(
                        "/grafana/variable",
                        json={"payload": {"target": variable["query"]["query"]}},
                        headers=bearer(VIEWER_TOKEN),
                    )
                    assert answer.status_code == 200, answer.text
                    values = [o["__value"] for o in answer.json()][:2]
                    chosen[variable["name"]] = values if variable["multi"] else values[:1]
            for source, target in targets(dashboard):
                if source["uid"] != "panorama":
                    continue
                sent = {
                    **target,
                    "payload": {k: interpolate_regex(v, chosen) for k, v in target["payload"].items()},
                }
                answer = await client.post(
                    "/grafana/query", json=query_body([sent]), headers=bearer(VIEWER_TOKEN)
                )
                assert answer.status_code == 200, (path.name, target, answer.text)
                frames = [to_data_frame(item) for item in answer.json()]
                assert frames, (path.name, target)
                if target["target"] == PARTIAL_DAYS:
                    assert [e["time"] for e in annotation_events(frames[0])] == [CUT_MS], path.name


def prometheus_queries() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = load(path)
        for source, target in targets(dashboard):
            if source["type"] == "prometheus":
                yield path.stem, target["expr"]


async def test_promql_of_the_dashboards_runs_on_the_real_prometheus(prometheus: RunningPrometheus) -> None:
    """No query errors and data on the generated history: the names and labels are the platform's."""
    dataset = dataset_of(prometheus)
    client = PrometheusClient(prometheus.settings(timeout_s=60))
    end = dataset.end
    start = end - timedelta(hours=6).total_seconds()
    try:
        namespaces: list[str] = []
        for path in DASHBOARDS:
            for variable in load(path)["templating"]["list"]:
                if variable.get("datasource", {}).get("type") != "prometheus":
                    continue
                match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"])
                assert match, variable["query"]
                found = await client.series([match[1]], start=start, end=end)
                namespaces = sorted({labels[match[2]] for labels in found})
                assert namespaces == ["shop"]
        queries = list(prometheus_queries())
        assert len(queries) >= 12
        for name, expr in queries:
            for value in (regex(*namespaces), ".*"):  # one namespace, and All
                promql = expr.replace("$namespace", value)
                for variable, substitute in GRAFANA_VARIABLES.items():
                    promql = promql.replace(variable, substitute)
                assert "$" not in promql, promql
                result = await client.query_range(promql, start=start, end=end, step=60)
                assert result.series, (name, promql)
                assert any(points for s in result.series for points in s.points), (name, promql)
                assert not result.warnings, (name, promql, result.warnings)
    finally:
        await client.aclose()


def test_no_secret_or_environment_specific_value_is_committed() -> None:
    for path in [DATASOURCES, PROVIDERS, *DASHBOARDS]:
        text = path.read_text()
        for value in ENV.values():
            assert value not in text
        assert os.environ.get("PANORAMA_GRAFANA_TOKEN", "\0") not in text

"""The wall screen's page and data over HTTP: who may read what, one set of backend queries for
any number of screens, panels that say what failed, and /metrics counting it all."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.backends.errors import BackendErrorKind
from app.errors import Phrase
from app.screen.schemas import ScreenData
from app.web.catalogue import LOCALES, MESSAGES
from app.web.i18n import Translator
from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.harness.app import (
    OPERATOR_TOKEN,
    SCREEN_TOKEN,
    VIEWER_TOKEN,
    AppFactory,
    bearer,
    configured_tokens,
)
from tests.harness.intake import applied, incident_of
from tests.harness.processes import free_port
from tests.harness.prometheus import RunningPrometheus
from tests.harness.proxy import SwitchableProxy
from tests.test_observability import sample

SCREEN = bearer(SCREEN_TOKEN)
PANELS = ("health", "traffic", "services", "incidents", "oncall", "graph", "trends")
PROMETHEUS_PANELS = ("health", "traffic", "services", "graph")


async def test_the_page_is_a_shell_anyone_may_load_and_the_data_needs_a_token(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        stored = await client.post(
            WEBHOOK, json=payload("SecretOutage", [alert("SecretOutage")]), headers=bearer(WEBHOOK_TOKEN)
        )
        await applied(client, stored)
        await incident_of(client, stored)
        page = await client.get("/screen")
        english = await client.get("/screen", params={"lang": "en"})
        refused = await client.get("/api/v1/screen")
        wrong = await client.get("/api/v1/screen", headers=bearer("not-a-configured-token-at-all"))
        as_screen = await client.get("/api/v1/screen", headers=SCREEN)
        as_viewer = await client.get("/api/v1/screen", headers=bearer(VIEWER_TOKEN))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert '<html lang="zh-CN" data-theme="dark" class="wall">' in page.text
    assert "<title>平台运行监控 · Panorama</title>" in page.text
    assert "SecretOutage" not in page.text  # no data in the shell: that needs the token
    assert re.search(r'<script src="/static/screen/screen\.js\?v=[0-9a-f]{12}" defer>', page.text)
    assert "<script>" not in page.text  # nothing inline
    assert " style=" not in page.text
    assert "Platform health" in english.text
    assert refused.status_code == 401
    assert wrong.status_code == 401
    assert as_screen.status_code == as_viewer.status_code == 200
    incidents = as_screen.json()["panels"]["incidents"]["data"]
    assert [i["title"] for i in incidents["open"]] == ["SecretOutage"]
    assert incidents["critical_unacknowledged"][0]["on_call"] in (["alice"], ["bob"])


async def test_a_screen_token_reads_the_wall_and_nothing_else(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        api = await client.get("/api/v1/incidents", headers=SCREEN)
        whoami = await client.get("/api/v1/whoami", headers=SCREEN)
        grafana = await client.get("/grafana/", headers=SCREEN)
        page = await client.get("/incidents", headers=SCREEN)
        signed_in = await client.post(
            "/login",
            data={"token": SCREEN_TOKEN, "next": "/incidents"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "https://panorama.test"},
        )
        cookie = signed_in.headers["set-cookie"].split(";")[0]
        with_session = await client.get("/incidents/1", headers={"Cookie": cookie})
    assert (api.status_code, whoami.status_code, grafana.status_code) == (403, 403, 403)
    assert "needs the viewer role" in api.json()["message"]
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "属于大屏角色（screen），只能打开监控大屏" in page.text  # said in the page's language (zh-CN)
    assert with_session.status_code == 403  # a session made from a screen token is no better


async def test_panels_without_prometheus_say_so_and_the_others_still_show(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        answer = await client.get("/api/v1/screen", headers=SCREEN)
    assert answer.status_code == 200
    assert ScreenData.model_validate_json(answer.content).panels.health.error is not None
    body = answer.json()
    assert body["refresh_seconds"] == 10
    for name in PROMETHEUS_PANELS:
        panel = body["panels"][name]
        assert (panel["status"], panel["data"], panel["fetched_at"]) == ("error", None, None)
        assert panel["error"]["backend"] == "prometheus"
        assert "not configured" in panel["error"]["message"]
        assert panel["error"]["phrase"] == {
            "key": "problem.backend.not_configured",
            "values": {
                "backend": "Prometheus",
                "setting": "prometheus.url",
                "env": "PANORAMA_PROMETHEUS_URL",
            },
        }
    for name in ("incidents", "oncall", "trends"):
        assert body["panels"][name]["status"] == "ok"
        assert body["panels"][name]["error"] is None
    assert body["panels"]["oncall"]["data"]["schedules"][0]["schedule"] == "sre"
    assert body["panels"]["trends"]["data"]["platform"] is None  # nothing rolled up yet
    assert len(body["panels"]["trends"]["data"]["days"]) == 30


async def test_the_on_call_panel_names_no_end_for_a_shift_that_runs_past_the_two_weeks(
    app_factory: AppFactory,
) -> None:
    """One person on call for good: the wall says who, and no "until" at the end of what it looked at."""
    config = alerting_config()
    config["schedules"][0]["rotations"][0]["users"] = ["alice"]
    async with app_factory(**config) as (_app, client):
        endless = (await client.get("/api/v1/screen", headers=SCREEN)).json()["panels"]["oncall"]["data"]
    async with app_factory(**alerting_config()) as (_app, client):
        weekly = (await client.get("/api/v1/screen", headers=SCREEN)).json()["panels"]["oncall"]["data"]
    [row] = endless["schedules"]
    assert (row["user"], row["until"], row["next_user"]) == ("alice", None, None)
    [row] = weekly["schedules"]  # a weekly rotation hands over within the week, to the other
    assert row["until"] is not None
    assert {row["user"], row["next_user"]} == {"alice", "bob"}
    assert row["next_at"] == row["until"]


async def test_absent_series_are_no_data_not_zero(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    """The session's Prometheus holds only history: nothing is current, so every figure is absent."""
    async with app_factory(prometheus={"url": prometheus.url}) as (_app, client):
        body = (await client.get("/api/v1/screen", headers=SCREEN)).json()
    health = body["panels"]["health"]
    assert health["status"] == "ok"
    assert {f["key"]: f["value"] for f in health["data"]["figures"]} == dict.fromkeys(
        ("nodes", "nodes_ready", "pods", "pods_not_ready", "cpu_utilization", "memory_utilization")
    )
    assert {f["source"] for f in health["data"]["figures"]} == {"kube-state-metrics", "node_exporter"}
    traffic = body["panels"]["traffic"]["data"]
    assert traffic["present"] is False
    assert {f["value"] for f in traffic["figures"]} == {None}
    assert body["panels"]["services"]["data"]["total"] == 0
    assert body["panels"]["graph"]["data"]["nodes"] == []


def _costs(metrics: str) -> dict[tuple[str, str], float]:
    found = {}
    for line in metrics.splitlines():
        match = re.match(
            r'panorama_screen_backend_queries_total\{backend="(\w+)",panel="(\w+)"\} (\S+)', line
        )
        if match:
            found[(match.group(2), match.group(1))] = float(match.group(3))
    return found


async def _prometheus_queries(prometheus: RunningPrometheus) -> float:
    """What Prometheus itself counted: queries and range queries it answered."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{prometheus.url}/metrics")).text
    return sum(
        sample(text, "prometheus_http_requests_total", code="200", handler=handler) or 0.0
        for handler in ("/api/v1/query", "/api/v1/query_range")
    )


WALLS = [f"wall-{n:03d}-screen-token-for-tests" for n in range(200)]
"""One token per wall, as an ops room with many walls would have (each has its own request budget)."""


async def test_two_hundred_screens_at_once_cost_one_set_of_backend_queries(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    tokens = configured_tokens()
    sections: dict[str, Any] = {
        **alerting_config(),
        "prometheus": {"url": prometheus.url, "retries": 0},
        "screen": {"refresh_seconds": 60},
        "auth": {
            "tokens": tokens
            + [{"name": f"wall-{n}", "role": "screen", "token": t} for n, t in enumerate(WALLS)]
        },
    }
    async with app_factory(**sections) as (_app, client):
        before = await _prometheus_queries(prometheus)
        assert (await client.get("/api/v1/screen", headers=SCREEN)).status_code == 200
        one_screen = _costs((await client.get("/metrics")).text)
        one_prometheus = await _prometheus_queries(prometheus) - before
    assert {panel for panel, _ in one_screen} == set(PANELS)
    assert one_prometheus == sum(n for (_, backend), n in one_screen.items() if backend == "prometheus") > 0

    async with app_factory(**sections) as (_app, client):
        before = await _prometheus_queries(prometheus)
        answers = await asyncio.gather(*(client.get("/api/v1/screen", headers=bearer(t)) for t in WALLS))
        metrics = (await client.get("/metrics")).text
        many_prometheus = await _prometheus_queries(prometheus) - before
    assert {a.status_code for a in answers} == {200}
    for answer in answers[:3]:  # the bytes written per panel are the documented answer
        assert ScreenData.model_validate_json(answer.content).panels.health.status == "ok"
        assert answer.headers["content-type"] == "application/json"
    assert {a.json()["panels"]["health"]["fetched_at"] for a in answers} != {None}
    assert len({a.json()["panels"]["health"]["fetched_at"] for a in answers}) == 1  # one refresh served all
    assert _costs(metrics) == one_screen
    assert many_prometheus == one_prometheus
    assert sample(metrics, "panorama_screen_requests_total") == 200
    for panel in PANELS:
        assert sample(metrics, "panorama_screen_cache_hits_total", panel=panel) == 199
        assert sample(metrics, "panorama_screen_refreshes_total", outcome="ok", panel=panel) == 1


async def test_when_prometheus_goes_away_its_panels_keep_the_last_numbers_marked_stale(
    app_factory: AppFactory, prometheus_factory: Callable[..., RunningPrometheus]
) -> None:
    running = prometheus_factory()
    sections = {"prometheus": {"url": running.url, "retries": 0}, "screen": {"refresh_seconds": 1}}
    async with app_factory(**sections) as (_app, client):
        good = (await client.get("/api/v1/screen", headers=SCREEN)).json()["panels"]
        running.process.stop()
        await asyncio.sleep(1.1)
        answers = await asyncio.gather(*(client.get("/api/v1/screen", headers=SCREEN) for _ in range(50)))
        metrics = (await client.get("/metrics")).text
    for answer in answers:
        assert answer.status_code == 200  # a broken backend is the panel's problem, not the answer's
        panels = answer.json()["panels"]
        for name in PROMETHEUS_PANELS:
            panel = panels[name]
            assert panel["status"] == "stale"
            assert (panel["data"], panel["fetched_at"]) == (good[name]["data"], good[name]["fetched_at"])
            assert panel["age_s"] >= 1
            assert panel["error"]["backend"] == "prometheus"
            assert panel["error"]["message"].startswith("cannot reach")
            assert panel["error"]["phrase"] == {
                "key": "problem.backend.unreachable",
                "values": {"backend": "Prometheus", "detail": panel["error"]["message"]},
            }
        assert panels["incidents"]["status"] == "ok"
    for name in PROMETHEUS_PANELS:  # one failed attempt for fifty screens
        assert sample(metrics, "panorama_screen_refreshes_total", outcome="failed", panel=name) == 1


async def test_a_panel_that_never_had_data_is_an_error_naming_the_backend(app_factory: AppFactory) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_factory(prometheus={"url": closed, "retries": 0}) as (_app, client):
        body = (await client.get("/api/v1/screen", headers=SCREEN)).json()
    health = body["panels"]["health"]
    assert (health["status"], health["data"], health["error"]["backend"]) == ("error", None, "prometheus")
    message = health["error"]["message"]
    assert message.startswith("cannot reach")
    phrase = health["error"]["phrase"]
    assert phrase == {
        "key": "problem.backend.unreachable",
        "values": {"backend": "Prometheus", "detail": message},
    }
    said = Translator("zh-CN", ZoneInfo("UTC")).say(Phrase(phrase["key"], **phrase["values"]))
    assert said == f"无法连接 Prometheus（{message}）"


async def test_a_panel_whose_backend_does_not_answer_in_time_says_how_long_it_waited(
    app_factory: AppFactory,
) -> None:
    held = SwitchableProxy(free_port(), mode="hang")  # accepts Panorama's connection, never answers
    try:
        sections = {
            "prometheus": {"url": held.url, "retries": 0, "timeout_s": 30},
            "screen": {"timeout": "500ms"},
        }
        async with app_factory(**sections) as (_app, client):
            body = (await client.get("/api/v1/screen", headers=SCREEN)).json()
    finally:
        held.close()
    for name in PROMETHEUS_PANELS:
        error = body["panels"][name]["error"]
        assert (error["backend"], error["message"]) == ("prometheus", "no answer within 0.5 s")
        assert error["phrase"] == {
            "key": "problem.no_answer_within",
            "values": {"backend": "Prometheus", "seconds": "0.5"},
        }
    assert body["panels"]["incidents"]["error"] is None


async def test_panels_whose_database_fails_say_so_without_its_exception(app_factory: AppFactory) -> None:
    async with app_factory(migrate=False, **alerting_config()) as (_app, client):  # no tables: reads fail
        body = (await client.get("/api/v1/screen", headers=SCREEN)).json()
    for name in ("incidents", "oncall", "trends"):
        panel = body["panels"][name]
        assert (panel["status"], panel["data"]) == ("error", None)
        assert panel["error"]["backend"] == "database"
        assert panel["error"]["message"].startswith("the database failed (")
        assert panel["error"]["phrase"] == {"key": "problem.database", "values": {}}


async def test_the_page_gives_its_script_the_texts_of_every_phrase_a_panel_may_carry(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as (_app, client):
        pages = {lang: await client.get("/screen", params={"lang": lang}) for lang in ("zh-CN", "en")}
    for lang, page in pages.items():
        block = re.search(
            r'<script type="application/json" id="screen-config">(.*?)</script>', page.text, re.S
        )
        assert block is not None
        phrases = json.loads(block.group(1))["phrases"]
        backend = sorted(key for key in MESSAGES if key.startswith("problem.backend."))
        assert len(backend) == len(BackendErrorKind)
        wanted = {*backend, "problem.database", "problem.no_answer_within"}
        wanted |= {"problem.database_no_answer_within", "error.internal"}
        assert set(phrases) == wanted  # those, and no other words
        assert phrases == {key: MESSAGES[key][LOCALES.index(lang)] for key in wanted}  # unfilled


async def test_the_daily_reload_is_the_next_quiet_hour_in_the_configured_zone(
    app_factory: AppFactory,
) -> None:
    async with app_factory(timezone="Asia/Shanghai", screen={"reload_at": "03:30"}) as (_app, client):
        body = (await client.get("/api/v1/screen", headers=bearer(OPERATOR_TOKEN))).json()
    reload_at = body["reload_at"]
    assert reload_at.endswith(("19:30:00Z", "19:30:00+00:00"))  # 03:30 in Shanghai is 19:30 UTC
    assert body["timezone"] == "Asia/Shanghai"

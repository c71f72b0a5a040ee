"""Error answers: JSON everywhere, 4xx naming the bad parameter, backends named on 502/503/504.

A small route is mounted on a real Panorama app for these tests; it uses the real
dependencies and real clients against real (down, hanging or broken) servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query

from app.deps import PrometheusDep, Viewer
from tests.fakes.server import serve
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.processes import free_port


def add_probe_routes(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/test/prometheus")
    async def query_prometheus(_: Viewer, prometheus: PrometheusDep, q: str = "up") -> dict[str, Any]:
        result = await prometheus.query(q)
        return {"type": result.result_type}

    @router.get("/test/dates")
    async def dates(
        _: Viewer,
        start: Annotated[dt.date, Query(alias="from")],
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        return {"from": start.isoformat(), "limit": limit}

    @router.get("/test/crash")
    async def crash(_: Viewer) -> None:
        raise RuntimeError("secret internal detail")

    app.include_router(router)


async def test_a_bad_parameter_is_a_400_naming_it(app_factory: AppFactory) -> None:
    async with app_factory() as (app, client):
        add_probe_routes(app)
        answer = await client.get("/test/dates?from=2026-13-45&limit=0", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert any(p.startswith("query parameter 'from': ") for p in body["problems"])
    assert any(
        p.startswith("query parameter 'limit': Input should be greater than or equal to 1")
        for p in body["problems"]
    )
    assert "query parameter 'from'" in body["message"]


async def test_a_body_that_is_not_json_or_a_relative_time_in_a_body_is_a_400_saying_what_to_send(
    app_factory: AppFactory,
) -> None:
    window = {"matchers": ['alertname="X"'], "start": "now", "end": "2026-12-07T10:00:00Z"}
    async with app_factory() as (_app, client):
        relative = await client.post("/api/v1/maintenance", json=window, headers=bearer(OPERATOR_TOKEN))
        garbled = await client.post(
            "/api/v1/rollups/run",
            content=b"date=2026-11-20",
            headers={**bearer(OPERATOR_TOKEN), "Content-Type": "application/json"},
        )
    assert relative.status_code == 400
    [problem] = relative.json()["problems"]
    assert problem.startswith("body 'start': 'now' is not a time; a request body takes an RFC 3339 time")
    assert "relative times such as now-1h are read in query parameters only" in problem
    assert garbled.status_code == 400
    [problem] = garbled.json()["problems"]
    assert problem.startswith("request body: not valid JSON (")
    assert "body [0]" not in problem


async def test_unknown_routes_and_methods_answer_json(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        missing = await client.get("/nope", headers=bearer(VIEWER_TOKEN))
        wrong_method = await client.delete("/healthz")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "Not Found"}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


async def test_an_unexpected_error_is_a_json_500_without_details(app_factory: AppFactory) -> None:
    async with app_factory() as (app, client):
        add_probe_routes(app)
        answer = await client.get("/test/crash", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert "secret internal detail" not in answer.text


async def test_an_unconfigured_backend_is_a_503_naming_it_once(app_factory: AppFactory) -> None:
    async with app_factory() as (app, client):
        add_probe_routes(app)
        answer = await client.get("/test/prometheus", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "backend_not_configured",
        "backend": "prometheus",
        "message": "prometheus: not configured (set prometheus.url or PANORAMA_PROMETHEUS_URL)",
    }
    assert answer.json()["message"].count("prometheus:") == 1


async def test_an_unreachable_backend_is_a_503_naming_it(app_factory: AppFactory) -> None:
    async with app_factory(prometheus={"url": f"http://127.0.0.1:{free_port()}", "retries": 1}) as (
        app,
        client,
    ):
        add_probe_routes(app)
        answer = await client.get("/test/prometheus", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 503
    assert answer.json()["error"] == "backend_unreachable"
    assert answer.json()["backend"] == "prometheus"


async def test_a_bad_query_is_a_502_with_the_backends_own_words(
    app_factory: AppFactory, prometheus: Any
) -> None:
    async with app_factory(prometheus={"url": prometheus.url}) as (app, client):
        add_probe_routes(app)
        answer = await client.get("/test/prometheus", params={"q": "sum(("}, headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 502
    body = answer.json()
    assert body["error"] == "backend_bad_query"
    assert body["backend"] == "prometheus"
    assert "parse error" in body["message"]


async def test_a_slow_backend_is_a_504_naming_it(app_factory: AppFactory) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(2)

    with serve(slow) as server:
        async with app_factory(prometheus={"url": server.url, "timeout_s": 0.3, "retries": 0}) as (
            app,
            client,
        ):
            add_probe_routes(app)
            answer = await client.get("/test/prometheus", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 504
    assert answer.json()["error"] == "backend_timeout"
    assert answer.json()["backend"] == "prometheus"


async def test_a_garbled_answer_is_a_502_naming_the_backend(app_factory: AppFactory) -> None:
    async def garbled(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
            )
            await send({"type": "http.response.body", "body": b"<html>login page</html>"})

    with serve(garbled) as server:
        async with app_factory(prometheus={"url": server.url, "retries": 0}) as (app, client):
            add_probe_routes(app)
            answer = await client.get("/test/prometheus", headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 502
    assert answer.json()["error"] == "backend_bad_response"
    assert answer.json()["backend"] == "prometheus"

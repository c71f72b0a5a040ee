"""The rollup and report endpoints, as a user calls them, over the real session Prometheus."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.backends.prometheus import PrometheusClient
from app.rollups.days import Granularity, period_start
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.datasets import DST_ZONE, dst_days
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import (
    CHECKOUT,
    NAMESPACE,
    PAYMENTS,
    PROBE_ROLLUPS,
    dataset_of,
    history_from_noon,
    utc_days,
)

VIEW = bearer(VIEWER_TOKEN)
OPERATE = bearer(OPERATOR_TOKEN)
SLO = [
    {"service": CHECKOUT, "availability": 0.999, "latency_p99_ms": 300, "window_days": 3},
    {"service": PAYMENTS, "availability": 0.9, "window_days": 2},
]


def app_with(
    app_factory: AppFactory, prometheus: RunningPrometheus, **sections: Any
) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    return app_factory(prometheus={"url": prometheus.url}, timezone="UTC", slo=SLO, **sections)


async def roll_up(client: httpx.AsyncClient, prometheus: RunningPrometheus) -> list[str]:
    days = [d.isoformat() for d in utc_days(dataset_of(prometheus))]
    answer = await client.post(
        "/api/v1/rollups/run", json={"from": days[0], "to": days[-1], "wait": True}, headers=OPERATE
    )
    assert answer.status_code == 200, answer.text
    assert [(r["day"], r["status"]) for r in answer.json()["runs"]] == [(d, "ok") for d in days]
    return days


async def test_run_then_report_services(
    app_factory: AppFactory, prometheus: RunningPrometheus, database_url: str
) -> None:
    async with app_with(app_factory, prometheus, database_url=database_url) as (_app, client):
        days = await roll_up(client, prometheus)
        answer = await client.get(
            "/api/v1/reports/services", params={"from": days[0], "to": days[-1]}, headers=VIEW
        )
        daily = [
            (await client.get("/api/v1/reports/services", params={"from": d, "to": d}, headers=VIEW)).json()
            for d in days
        ]
    assert answer.status_code == 200
    body = answer.json()
    assert (body["from"], body["to"], body["timezone"]) == (days[0], days[-1], "UTC")
    services = {row["service"]: row for row in body["services"]}
    assert set(services) == {CHECKOUT, PAYMENTS}
    checkout = services[CHECKOUT]
    assert list(checkout) == [
        "service", "days", "requests", "errors", "error_rate", "availability", "qps_avg", "qps_peak",
        "latency_avg_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    ]  # fmt: skip
    assert checkout["days"] == 3
    per_day = [next(r for r in d["services"] if r["service"] == CHECKOUT) for d in daily]
    assert checkout["requests"] == pytest.approx(sum(r["requests"] for r in per_day))
    assert checkout["errors"] == pytest.approx(sum(r["errors"] for r in per_day))
    assert checkout["error_rate"] == pytest.approx(checkout["errors"] / checkout["requests"])
    assert checkout["availability"] == pytest.approx(1 - checkout["error_rate"])
    assert checkout["qps_avg"] == pytest.approx(checkout["requests"] / (3 * 86400))
    assert checkout["qps_peak"] == max(r["qps_peak"] for r in per_day)
    assert 20 < checkout["latency_p50_ms"] < checkout["latency_p95_ms"] < checkout["latency_p99_ms"] < 1000


async def test_daily_weekly_monthly_and_csv(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    async with app_with(app_factory, prometheus) as (_app, client):
        days = await roll_up(client, prometheus)
        path = f"/api/v1/reports/services/{PAYMENTS}/daily"
        period = {"from": days[0], "to": days[-1]}
        by_day = (await client.get(path, params=period, headers=VIEW)).json()
        by_week = (await client.get(path, params={**period, "granularity": "week"}, headers=VIEW)).json()
        by_month = (await client.get(path, params={**period, "granularity": "month"}, headers=VIEW)).json()
        as_csv = await client.get(path, params={**period, "format": "csv"}, headers=VIEW)
        total = (await client.get("/api/v1/reports/services", params=period, headers=VIEW)).json()
    assert by_day["service"] == PAYMENTS
    assert [d["date"] for d in by_day["days"]] == days
    assert all(d["days"] == 1 for d in by_day["days"])
    incident_day = by_day["days"][1]  # 30% errors for one hour on the second day
    assert incident_day["error_rate"] > by_day["days"][0]["error_rate"] + 0.01
    payments = next(r for r in total["services"] if r["service"] == PAYMENTS)
    assert sum(w["requests"] for w in by_week["days"]) == pytest.approx(payments["requests"])
    assert sum(w["days"] for w in by_week["days"]) == 3
    assert len(by_month["days"]) in (1, 2)
    assert by_month["days"][0]["period"] == days[0][:7]
    if len(by_month["days"]) == 1:
        assert by_month["days"][0]["latency_p99_ms"] == pytest.approx(payments["latency_p99_ms"])

    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["date"] for r in rows] == days
    assert float(rows[1]["requests"]) == pytest.approx(by_day["days"][1]["requests"])
    header = as_csv.text.splitlines()[0]
    assert header.startswith("date,period,days,requests,errors,error_rate")  # the columns of old
    assert header.endswith(",latency_p99_ms,partial_days")  # the partial days last
    assert [r["partial_days"] for r in rows] == ["0"] * len(days)


async def test_namespace_and_cluster_reports(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    async with app_with(app_factory, prometheus) as (_app, client):
        days = await roll_up(client, prometheus)
        period = {"from": days[0], "to": days[-1]}
        namespaces = (await client.get("/api/v1/reports/namespaces", params=period, headers=VIEW)).json()
        cluster = (await client.get("/api/v1/reports/cluster", params=period, headers=VIEW)).json()
        cluster_csv = await client.get(
            "/api/v1/reports/cluster", params={**period, "format": "csv"}, headers=VIEW
        )
    [shop] = namespaces["namespaces"]
    assert shop["namespace"] == NAMESPACE
    assert shop["cpu_cores_avg"] == pytest.approx(1.15, rel=0.02)
    assert shop["cpu_cores_peak"] > shop["cpu_cores_avg"]
    assert 1e9 < shop["memory_bytes_avg"] < shop["memory_bytes_peak"] < 2e9
    figures = cluster["cluster"]
    assert figures["days"] == 3
    assert 0 < figures["cpu_utilization_avg"] < figures["cpu_utilization_peak"] < 1
    assert 0 < figures["memory_utilization_avg"] < figures["memory_utilization_peak"] < 1
    assert len(cluster_csv.text.strip().splitlines()) == 2


async def test_slo_report(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    async with app_with(app_factory, prometheus) as (_app, client):
        days = await roll_up(client, prometheus)
        slo = (await client.get("/api/v1/reports/slo", params={"at": days[-1]}, headers=VIEW)).json()
        checkout = (
            await client.get(
                "/api/v1/reports/services", params={"from": days[0], "to": days[-1]}, headers=VIEW
            )
        ).json()["services"]
    figures = next(r for r in checkout if r["service"] == CHECKOUT)
    objectives = {(o["service"], o["objective"]): o for o in slo["objectives"]}
    availability = objectives[(CHECKOUT, "availability")]
    assert availability["achieved"] == pytest.approx(figures["availability"])
    assert availability["met"] is False  # 1% errors against a 99.9% objective
    assert availability["error_budget_remaining"] == pytest.approx(1 - figures["error_rate"] / 0.001)
    assert availability["error_budget_remaining"] < -5
    assert availability["error_budget_remaining_minutes"] == pytest.approx(
        availability["error_budget_remaining"] * 0.001 * 3 * 1440
    )
    assert (availability["from"], availability["to"], availability["data_days"]) == (days[0], days[-1], 3)
    latency = objectives[(CHECKOUT, "latency_p99_ms")]
    assert latency["achieved"] == pytest.approx(figures["latency_p99_ms"])
    assert latency["met"] is True
    assert 0 < latency["error_budget_remaining"] <= 1
    payments = objectives[(PAYMENTS, "availability")]
    assert payments["met"] is True
    assert payments["from"] == days[1]
    assert (PAYMENTS, "latency_p99_ms") not in objectives


async def test_a_range_runs_in_the_background(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    days = [d.isoformat() for d in utc_days(dataset_of(prometheus))]
    async with app_with(app_factory, prometheus) as (_app, client):
        answer = await client.post(
            "/api/v1/rollups/run", json={"from": days[0], "to": days[-1]}, headers=OPERATE
        )
        assert answer.status_code == 202
        assert answer.json()["queued"] == days
        for _ in range(200):
            runs = (await client.get("/api/v1/rollups/runs", headers=VIEW)).json()["runs"]
            if len(runs) == 3 and all(r["status"] == "ok" for r in runs):
                break
            await asyncio.sleep(0.05)
    assert sorted(r["day"] for r in runs) == days
    assert {r["trigger"] for r in runs} == {"api"}
    assert all(r["entities"] == 5 and r["duration_ms"] > 0 and r["error"] is None for r in runs)


async def test_bad_requests_name_the_problem(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    async with app_with(app_factory, prometheus) as (_app, client):
        await roll_up(client, prometheus)

        async def get(path: str, **params: str) -> httpx.Response:
            return await client.get(path, params=params, headers=VIEW)

        reversed_ = await get("/api/v1/reports/services", **{"from": "2026-05-02", "to": "2026-05-01"})
        too_long = await get("/api/v1/reports/services", **{"from": "2020-01-01", "to": "2026-01-01"})
        malformed = await get("/api/v1/reports/services", **{"from": "2026-02-30"})
        bad_granularity = await get(f"/api/v1/reports/services/{CHECKOUT}/daily", granularity="hour")
        unknown = await get("/api/v1/reports/services/nope.default.svc.cluster.local/daily")
        unknown_kind = await get("/api/v1/reports/kinds/queues")
        future = await client.post("/api/v1/rollups/run", json={"date": "2999-01-01"}, headers=OPERATE)
        both = await client.post(
            "/api/v1/rollups/run", json={"date": "2026-01-01", "from": "2026-01-01"}, headers=OPERATE
        )
        viewer = await client.post("/api/v1/rollups/run", json={"date": "2026-01-01"}, headers=VIEW)
    assert reversed_.status_code == 400
    assert reversed_.json()["message"] == "'from' (2026-05-02) is after 'to' (2026-05-01)"
    assert too_long.status_code == 400
    assert "longer than 1096 days" in too_long.json()["message"]
    assert malformed.status_code == 400
    assert malformed.json()["message"].startswith("query parameter 'from': ")
    assert bad_granularity.status_code == 400
    assert "query parameter 'granularity'" in bad_granularity.json()["message"]
    assert unknown.status_code == 404
    assert "nope.default.svc.cluster.local" in unknown.json()["message"]
    assert unknown_kind.status_code == 404
    assert (
        "known: cluster, namespace, oncall, oncall_person, oncall_schedule, oncall_service, platform, service"
        in unknown_kind.json()["message"]
    )
    assert future.status_code == 400
    assert "2999-01-01 has not ended yet" in future.json()["message"]
    assert both.status_code == 400
    assert "either date, or from and to" in both.json()["message"]
    assert viewer.status_code == 403


async def test_running_without_prometheus_records_the_on_call_history_only(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        answer = await client.post("/api/v1/rollups/run", json={"date": "2026-01-01"}, headers=OPERATE)
        kinds = await client.get(
            "/api/v1/reports/kinds/service", params={"from": "2026-01-01", "to": "2026-01-01"}, headers=VIEW
        )
    assert answer.status_code == 200, answer.text
    [run] = answer.json()["runs"]
    assert (run["status"], run["entities"], run["error"]) == ("ok", 0, None)  # no incident that day
    assert kinds.json()["services"] == []  # nothing was asked of Prometheus


async def test_an_impossible_run_is_refused_before_anything_is_asked_of_a_backend(
    app_factory: AppFactory,
) -> None:
    """Without Prometheus configured, a body that can never run is still a 400 naming the problem
    (not a 503 about Prometheus), and nothing is run or queued."""
    async with app_factory() as (_app, client):
        reversed_ = await client.post(
            "/api/v1/rollups/run", json={"from": "2026-05-02", "to": "2026-05-01"}, headers=OPERATE
        )
        future = await client.post(
            "/api/v1/rollups/run", json={"from": "2026-01-01", "to": "2999-01-01"}, headers=OPERATE
        )
        runs = (await client.get("/api/v1/rollups/runs", headers=VIEW)).json()["runs"]
    assert (reversed_.status_code, reversed_.json()["parameter"]) == (400, "from")
    assert reversed_.json()["message"] == "body 'from' (2026-05-02) is after 'to' (2026-05-01)"
    assert future.status_code == 400
    assert "longer than 1096 days" in future.json()["message"]
    assert runs == []


async def test_reports_read_relative_times_and_times_without_a_zone(app_factory: AppFactory) -> None:
    """Reports took only plain dates before the one time grammar: ``from=now-7d`` was a 400."""
    async with app_factory(timezone="Asia/Shanghai") as (_app, client):

        async def period(**params: str) -> httpx.Response:
            return await client.get("/api/v1/reports/kinds/service", params=params, headers=VIEW)

        week = await period(**{"from": "now-7d", "to": "now"})
        rounded = await period(**{"from": "now-7d/d", "to": "now-1d/d"})
        naive = await period(**{"from": "2026-01-01T00:00:00", "to": "2026-01-03T00:00:00"})
        spelled = await period(**{"from": "2025-12-31T16:00:00Z", "to": "1767369600000"})
        slo = await client.get("/api/v1/reports/slo", params={"at": "now-2d"}, headers=VIEW)
    assert week.status_code == 200, week.text
    first, last = date.fromisoformat(week.json()["from"]), date.fromisoformat(week.json()["to"])
    assert last - first == timedelta(days=6)  # `to=now` stops at yesterday: today is not rolled up
    assert (rounded.json()["from"], rounded.json()["to"]) == (week.json()["from"], week.json()["to"])
    # a time ending the range closes the local day before it
    assert (naive.json()["from"], naive.json()["to"]) == ("2026-01-01", "2026-01-02")
    # 2025-12-31T16:00Z is Shanghai's 2026-01-01 00:00; 1767369600000 ms is 2026-01-03 00:00 there
    assert (spelled.json()["from"], spelled.json()["to"]) == ("2026-01-01", "2026-01-02")
    assert slo.status_code == 200, slo.text
    assert date.fromisoformat(slo.json()["at"]) == last - timedelta(days=1)


async def test_quantiles_of_the_whole_range_come_from_summed_buckets(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    """Against Prometheus's own histogram_quantile over the three days (within extrapolation)."""
    dataset = dataset_of(prometheus)
    days = utc_days(dataset)
    async with app_with(app_factory, prometheus) as (_app, client):
        await roll_up(client, prometheus)
        body = (
            await client.get(
                "/api/v1/reports/services",
                params={"from": days[0].isoformat(), "to": days[-1].isoformat()},
                headers=VIEW,
            )
        ).json()
    prom = PrometheusClient(prometheus.settings())
    window = f"{int((dataset.end - dataset.start) * 1000) - 1}ms"
    result = await prom.query(
        "histogram_quantile(0.99, sum by (le, destination_service) "
        f'(increase(istio_request_duration_milliseconds_bucket{{reporter="destination"}}[{window}])))',
        at=dataset.end,
    )
    await prom.aclose()
    theirs = {s.labels["destination_service"]: s.value for s in result.samples}
    for row in body["services"]:
        assert row["latency_p99_ms"] == pytest.approx(theirs[row["service"]], rel=1e-2)


async def test_reports_of_a_user_defined_kind(app_factory: AppFactory, prometheus: RunningPrometheus) -> None:
    """The DST probe rolled up in Europe/Berlin: its 25-hour day counts 1,500 ticks."""
    fall = dst_days(dataset_of(prometheus).end)["fall"].isoformat()
    async with app_factory(
        prometheus={"url": prometheus.url}, timezone=DST_ZONE, rollups={"enabled": False, **PROBE_ROLLUPS}
    ) as (_app, client):
        run = await client.post("/api/v1/rollups/run", json={"date": fall}, headers=OPERATE)
        report = await client.get(
            "/api/v1/reports/kinds/probe", params={"from": fall, "to": fall}, headers=VIEW
        )
        daily = await client.get(
            "/api/v1/reports/kinds/probe/fall/daily", params={"from": fall, "to": fall}, headers=VIEW
        )
    assert run.json()["runs"][0]["status"] == "ok"
    [fall_probe] = report.json()["probe"]
    assert fall_probe["probe"] == "fall"
    assert fall_probe["ticks"] == pytest.approx(1500, rel=1e-4)
    assert fall_probe["ticks_per_s"] == pytest.approx(1500 / 90000, rel=1e-4)
    assert daily.json()["days"][0]["tick_rate_peak"] == pytest.approx(1 / 60)


async def test_a_period_without_rows_answers_the_same_in_json_and_csv(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    """Nothing stored for the period: CSV still starts with its header, and the cluster's one row
    says ``days: 0`` in CSV as in JSON."""
    before = (utc_days(dataset_of(prometheus))[0] - timedelta(days=20)).isoformat()
    period = {"from": before, "to": before}
    as_csv = {**period, "format": "csv"}
    async with app_with(app_factory, prometheus) as (_app, client):
        await roll_up(client, prometheus)
        cluster = (await client.get("/api/v1/reports/cluster", params=period, headers=VIEW)).json()
        cluster_csv = (await client.get("/api/v1/reports/cluster", params=as_csv, headers=VIEW)).text
        services_csv = (await client.get("/api/v1/reports/services", params=as_csv, headers=VIEW)).text
        path = f"/api/v1/reports/services/{PAYMENTS}/daily"
        series = (await client.get(path, params=period, headers=VIEW)).json()
        series_csv = (await client.get(path, params=as_csv, headers=VIEW)).text
        slo_csv = (
            await client.get("/api/v1/reports/slo", params={"at": before, "format": "csv"}, headers=VIEW)
        ).text
    assert cluster["cluster"] == {
        "cluster": "cluster",
        "days": 0,
        "cpu_utilization_avg": None,
        "cpu_utilization_peak": None,
        "memory_utilization_avg": None,
        "memory_utilization_peak": None,
    }
    rows = list(csv.DictReader(io.StringIO(cluster_csv)))
    as_text = {key: "" if value is None else str(value) for key, value in cluster["cluster"].items()}
    assert rows == [{**as_text, "partial_days": "0"}]
    assert services_csv.splitlines()[0].startswith("service,days,requests,errors,")
    assert services_csv.splitlines()[0].endswith(",partial_days")
    assert services_csv.count("\n") == 1
    assert series["days"] == []
    assert series_csv.splitlines()[0].startswith("date,period,days,requests,")
    assert series_csv.splitlines()[0].endswith(",partial_days")
    assert series_csv.count("\n") == 1
    assert slo_csv.splitlines()[0].startswith("service,objective,target,achieved,met,")
    assert slo_csv.splitlines()[0].endswith(",window_days,data_days,partial_days")


async def test_a_partial_day_is_named_in_runs_and_reports(
    app_factory: AppFactory,
    prometheus_factory: Callable[..., RunningPrometheus],
    tmp_path: Path,
    database_url: str,
) -> None:
    """JSON names the partial days at its top; CSV, which has no top, counts them in every row's
    last column: a day or a week its own, a report over the range (streamed or not) the range's, an
    SLO its window's; the flat array for Grafana's Infinity counts them in every row too."""
    dataset, cut, full = history_from_noon(tmp_path / "data")
    own = prometheus_factory(dataset.files)
    period = {"from": cut.isoformat(), "to": full.isoformat()}
    as_csv = {**period, "format": "csv"}
    # the checkout objective's 3-day window holds the cut day, the payments one's 2-day window not
    slo_at = (cut + timedelta(days=2)).isoformat()
    async with app_with(app_factory, own, database_url=database_url) as (_app, client):
        ran = await client.post("/api/v1/rollups/run", json={**period, "wait": True}, headers=OPERATE)
        runs = (await client.get("/api/v1/rollups/runs", headers=VIEW)).json()["runs"]
        services = (await client.get("/api/v1/reports/services", params=period, headers=VIEW)).json()
        path = f"/api/v1/reports/services/{CHECKOUT}/daily"
        daily = (await client.get(path, params=period, headers=VIEW)).json()
        later = (
            await client.get("/api/v1/reports/services", params={"from": full.isoformat()}, headers=VIEW)
        ).json()
        csv_answers = {
            name: (await client.get(url, params=params, headers=VIEW)).text
            for name, url, params in (
                ("daily", path, as_csv),
                ("weekly", path, {**as_csv, "granularity": "week"}),
                (
                    "monthly",
                    f"/api/v1/reports/kinds/service/{CHECKOUT}/daily",
                    {**as_csv, "granularity": "month"},
                ),
                ("services", "/api/v1/reports/services", as_csv),
                ("kinds", "/api/v1/reports/kinds/service", as_csv),
                ("cluster", "/api/v1/reports/cluster", as_csv),
                ("later", "/api/v1/reports/services", {"from": full.isoformat(), "format": "csv"}),
                ("slo", "/api/v1/reports/slo", {"at": slo_at, "format": "csv"}),
            )
        }
        slo = (await client.get("/api/v1/reports/slo", params={"at": slo_at}, headers=VIEW)).json()
        after_slo = (cut + timedelta(days=3)).isoformat()  # no window holds the cut day
        slo_later = (await client.get("/api/v1/reports/slo", params={"at": after_slo}, headers=VIEW)).json()
        flat = {
            unit: (
                await client.get(
                    "/api/v1/rollups",
                    params={"figure": "service.requests", "granularity": unit, **period},
                    headers=VIEW,
                )
            ).json()
            for unit in ("day", "week")
        }
        daily_again = (await client.get(path, params=period, headers=VIEW)).content  # the stored rows
    assert ran.status_code == 200, ran.text
    assert [(r["day"], r["status"]) for r in ran.json()["runs"]] == [
        (cut.isoformat(), "partial"),
        (full.isoformat(), "ok"),
    ]
    assert {r["day"]: r["status"] for r in runs} == {cut.isoformat(): "partial", full.isoformat(): "ok"}
    assert services["partial_days"] == [cut.isoformat()]
    assert daily["partial_days"] == [cut.isoformat()]
    assert [d["days"] for d in daily["days"]] == [1, 1]
    assert later["partial_days"] == []
    assert all("partial_days" not in row for row in [*daily["days"], *services["services"]])  # JSON as before
    assert json.loads(daily_again) == daily

    def read(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(csv_answers[name])))

    assert [(r["date"], r["partial_days"]) for r in read("daily")] == [
        (cut.isoformat(), "1"),
        (full.isoformat(), "0"),
    ]
    for name in ("weekly", "monthly"):  # the cut day counts in its own period only
        unit = "week" if name == "weekly" else "month"
        starts = [period_start(day, Granularity(unit)).isoformat() for day in (cut, full)]
        expected = {start: starts[:1].count(start) for start in starts}
        assert {r["date"]: int(r["partial_days"]) for r in read(name)} == expected, name
    for name in ("services", "kinds"):
        found = read(name)
        assert {r["service"] for r in found} == {CHECKOUT, PAYMENTS}
        assert {r["partial_days"] for r in found} == {"1"}, name  # the range holds one partial day
    [cluster] = read("cluster")
    assert (cluster["days"], cluster["partial_days"]) == ("0", "1")  # no node figures in this history
    assert {r["partial_days"] for r in read("later")} == {"0"}
    for name, answer in csv_answers.items():  # the last column, after every column of old
        assert answer.splitlines()[0].endswith(",partial_days"), name
    assert csv_answers["services"].splitlines()[0].startswith("service,days,requests,")
    assert slo["partial_days"] == [cut.isoformat()]  # within the windows (the earliest starts on it)
    assert all("partial_days" not in row for row in slo["objectives"])
    assert {(r["service"], r["objective"], r["partial_days"]) for r in read("slo")} == {
        (CHECKOUT, "availability", "1"),
        (CHECKOUT, "latency_p99_ms", "1"),
        (PAYMENTS, "availability", "0"),
    }
    assert slo_later["partial_days"] == []
    by_day = {(r["entity"], r["time"][:10]): r["partial_days"] for r in flat["day"]}
    assert by_day == {
        (service, day.isoformat()): int(day == cut) for service in (CHECKOUT, PAYMENTS) for day in (cut, full)
    }
    assert list(flat["day"][0]) == ["time", "entity", "figure", "value", "partial_days"]
    weeks = {r["time"][:10]: r["partial_days"] for r in flat["week"]}
    week_of = [period_start(day, Granularity.WEEK).isoformat() for day in (cut, full)]
    assert weeks == {start: week_of[:1].count(start) for start in week_of}


async def test_a_service_report_answers_to_every_spelling_of_its_name(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    short, dotted = CHECKOUT.split(".")[0], ".".join(CHECKOUT.split(".")[:2])
    async with app_with(app_factory, prometheus) as (_app, client):
        days = await roll_up(client, prometheus)
        period = {"from": days[0], "to": days[-1]}
        answers = {
            name: await client.get(f"/api/v1/reports/services/{name}/daily", params=period, headers=VIEW)
            for name in (CHECKOUT, dotted, short, f"{short}.other", "check_ut")
        }
    full = answers[CHECKOUT].json()["days"]
    assert [d["requests"] for d in full] == [d["requests"] for d in answers[dotted].json()["days"]]
    assert [d["requests"] for d in full] == [d["requests"] for d in answers[short].json()["days"]]
    assert answers[f"{short}.other"].status_code == 404
    assert answers["check_ut"].status_code == 404

"""POST /grafana/query with the bodies Grafana sends, over stored days; answers read as Grafana reads them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.rollups import repository
from app.rollups.compute import FamilyValue
from app.rollups.days import days_between
from app.rollups.repository import RunStatus
from tests.grafana.frames import Frame, annotation_events, to_data_frame
from tests.grafana.support import (
    CHECKOUT,
    FIRST,
    GAP,
    LAST,
    PAYMENTS,
    SEARCH,
    SLO,
    builder_target,
    code_target,
    grafana_range,
    multi_var,
    query_body,
    regex,
    service_day,
    store_days,
)
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

VIEW = bearer(VIEWER_TOKEN)
UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory(timezone="UTC", slo=SLO) as (app, http):
        async with app.state.context.sessions.begin() as session:
            await store_days(session)
        yield http


async def query(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Frame]:
    answer = await client.post("/grafana/query", json=body, headers=VIEW)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return [to_data_frame(item) for item in answer.json()]


def ms(day: date, zone: ZoneInfo = UTC_ZONE) -> int:
    return int(datetime.combine(day, time(0), zone).timestamp() * 1000)


def points(frame: Frame) -> dict[int, Any]:
    return dict(zip(frame.fields[0].values, frame.fields[1].values, strict=True))


async def report(client: httpx.AsyncClient, service: str, granularity: str) -> dict[int, dict[str, Any]]:
    """The reports API's periods (the exact re-aggregation the datasource must agree with)."""
    answer = await client.get(
        f"/api/v1/reports/services/{service}/daily",
        params={"from": FIRST.isoformat(), "to": LAST.isoformat(), "granularity": granularity},
        headers=VIEW,
    )
    assert answer.status_code == 200, answer.text
    return {ms(date.fromisoformat(row["date"])): row for row in answer.json()["days"]}


async def test_a_multi_value_variable_in_builder_mode_gives_a_series_per_service(
    client: httpx.AsyncClient,
) -> None:
    body = query_body(
        [builder_target("A", "service.latency_p99_ms", entity=regex(CHECKOUT, PAYMENTS), granularity="day")],
        scoped_vars={"service": multi_var(CHECKOUT, PAYMENTS)},
    )
    checkout, payments = await query(client, body)
    assert (checkout.name, payments.name) == (CHECKOUT, PAYMENTS)
    assert checkout.ref_id == payments.ref_id == "A"
    assert checkout.display_name() == CHECKOUT
    value = checkout.fields[1]
    assert value.config["unit"] == "ms"
    assert value.labels == {"service": CHECKOUT, "figure": "service.latency_p99_ms", "granularity": "day"}
    assert checkout.fields[0].values == [ms(day) for day in days_between(FIRST, LAST)]
    truth = await report(client, CHECKOUT, "day")
    assert points(checkout) == {stamp: row["latency_p99_ms"] for stamp, row in truth.items()}
    assert len(set(points(checkout).values())) == 2  # fast odd days, slow even days
    gap = points(payments)
    assert gap[ms(GAP[1])] is None  # a day without rollup is a gap, not a missing point
    assert len(gap) == 90
    assert sum(v is None for v in gap.values()) == 1


async def test_code_mode_lists_all_and_single_values(client: httpx.AsyncClient) -> None:
    listed = query_body(
        [code_target("B", "service.requests", {"entity": [CHECKOUT, SEARCH], "granularity": "week"})]
    )
    every = query_body([builder_target("C", "service.requests", entity="$__all", granularity="week")])
    one = query_body([builder_target("D", "service.requests", entity=regex(SEARCH), granularity="week")])
    old = query_body([code_target("E", "service.requests", {"entity": SEARCH})], grafana=10)
    frames = await query(client, listed)
    assert [f.name for f in frames] == [CHECKOUT, SEARCH]
    weekly = await report(client, SEARCH, "week")
    assert points(frames[1]) == {stamp: row["requests"] for stamp, row in weekly.items()}
    assert all(datetime.fromtimestamp(t / 1000).weekday() == 0 for t in frames[1].fields[0].values)
    assert [f.name for f in await query(client, every)] == [CHECKOUT, PAYMENTS, SEARCH]
    assert [f.name for f in await query(client, one)] == [SEARCH]
    [daily] = await query(client, old)
    assert len(daily.fields[0].values) == 90


async def test_max_data_points_coarsens_instead_of_truncating(client: httpx.AsyncClient) -> None:
    async def at(max_points: int, granularity: str = "day") -> Frame:
        target = builder_target(
            "A", "service.latency_p99_ms", entity=regex(CHECKOUT), granularity=granularity
        )
        [frame] = await query(client, query_body([target], max_data_points=max_points))
        return frame

    daily, weekly, monthly, yearly = await at(90), await at(89), await at(13), await at(2)
    assert [f.fields[1].labels["granularity"] for f in (daily, weekly, monthly, yearly)] == [  # type: ignore[index]
        "day",
        "week",
        "month",
        "year",
    ]
    assert (daily.length, weekly.length, monthly.length, yearly.length) == (90, 14, 3, 1)
    assert points(weekly) == {
        t: row["latency_p99_ms"] for t, row in (await report(client, CHECKOUT, "week")).items()
    }
    assert points(monthly) == {
        t: row["latency_p99_ms"] for t, row in (await report(client, CHECKOUT, "month")).items()
    }
    assert points(yearly) == {
        t: row["latency_p99_ms"] for t, row in (await report(client, CHECKOUT, "year")).items()
    }
    assert list(points(monthly)) == [ms(date(2025, m, 1)) for m in (1, 2, 3)]
    assert (await at(1000, "month")).length == 3  # coarser than asked is never made finer


async def test_a_range_is_widened_to_whole_periods_and_stops_at_yesterday(client: httpx.AsyncClient) -> None:
    target = builder_target("A", "service.requests", entity=regex(CHECKOUT), granularity="month")
    [frame] = await query(
        client, query_body([target], start="2025-02-10T08:00:00Z", end="2025-02-20T08:00:00Z")
    )
    [february] = frame.fields[1].values
    assert frame.fields[0].values == [ms(date(2025, 2, 1))]
    assert february == sum(
        service_day(CHECKOUT, d)[0].total or 0 for d in days_between(date(2025, 2, 1), date(2025, 2, 28))
    )
    later = query_body([target], start="2099-01-01T00:00:00Z", end="2099-02-01T00:00:00Z")
    assert await query(client, later) == []
    today = datetime.now(UTC_ZONE).replace(microsecond=0)
    assert await query(client, query_body([target], start=today.isoformat(), end=today.isoformat())) == []


async def test_local_midnights_in_the_configured_zone_across_dst(app_factory: AppFactory) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    first, last = date(2025, 3, 28), date(2025, 4, 1)
    async with app_factory(timezone="Europe/Berlin") as (app, client):
        async with app.state.context.sessions.begin() as session:
            for day in days_between(first, last):
                await repository.replace_day(session, day, service_day(CHECKOUT, day))
        body = query_body(
            [builder_target("A", "service.requests", entity=regex(CHECKOUT), granularity="day"),
             builder_target("B", "service.requests", entity=regex(CHECKOUT), granularity="week")],
            start="2025-03-27T23:00:00.000Z",
            end="2025-04-01T22:00:00.000Z",
        )  # fmt: skip
        answer = await client.post("/grafana/query", json=body, headers=VIEW)
    daily, weekly = (to_data_frame(item) for item in answer.json())
    assert daily.fields[0].values == [ms(day, berlin) for day in days_between(first, last)]
    assert daily.fields[0].values[3] - daily.fields[0].values[2] == 23 * 3600 * 1000  # 30 March: 23 hours
    assert weekly.fields[0].values == [ms(date(2025, 3, 24), berlin), ms(date(2025, 3, 31), berlin)]


async def test_ad_hoc_filters_narrow_services(client: httpx.AsyncClient) -> None:
    every = builder_target("A", "service.requests", entity="$__all", granularity="month")
    cluster = builder_target("B", "cluster.cpu_utilization_avg", granularity="month")

    async def names(filters: list[dict[str, Any]], grafana: int = 11) -> list[str | None]:
        body = query_body([every, cluster], filters=filters, grafana=grafana)
        return [frame.name for frame in await query(client, body)]

    in_shop = [{"key": "namespace", "operator": "=", "value": "shop"}]
    assert await names(in_shop) == [f"{CHECKOUT} requests", f"{PAYMENTS} requests", "cpu_utilization_avg"]
    assert await names(in_shop, grafana=10) == await names(in_shop)  # only adhocFilters
    assert (await names([{"key": "service", "operator": "=~", "value": "pay.*"}]))[:-1] == [
        f"{PAYMENTS} requests"
    ]
    assert (await names([{"key": "service", "operator": "!=", "value": CHECKOUT}]))[:-1] == [
        f"{PAYMENTS} requests",
        f"{SEARCH} requests",
    ]
    assert (await names([{"key": "namespace", "operator": "=|", "value": "", "values": ["catalog"]}]))[
        :-1
    ] == [f"{SEARCH} requests"]
    explicit = builder_target("A", "service.requests", entity=regex(CHECKOUT, SEARCH))
    body = query_body([explicit], filters=[{"key": "namespace", "operator": "!=", "value": "shop"}])
    assert [f.name for f in await query(client, body)] == [SEARCH]


async def test_ad_hoc_service_filters_match_any_spelling_of_the_stored_service(
    client: httpx.AsyncClient,
) -> None:
    """Figures are stored under Istio's FQDN; an ad hoc ``service`` filter names the service in any
    spelling, a bare name in every namespace; a regex sees ``name.namespace``; a malformed value is
    a 400 naming the filter and the form to write."""
    every = builder_target("A", "service.requests", entity="$__all", granularity="month")

    async def names(operator: str, value: str) -> list[str | None]:
        body = query_body([every], filters=[{"key": "service", "operator": operator, "value": value}])
        return [frame.name for frame in await query(client, body)]

    assert await names("=", "checkout.shop") == [CHECKOUT]
    assert await names("=", "checkout") == [CHECKOUT]
    assert await names("=", "checkout.catalog") == []
    assert await names("!=", "payments.shop") == [CHECKOUT, SEARCH]
    assert await names("=~", "(checkout|search)\\.(shop|catalog)") == [CHECKOUT, SEARCH]
    bad = query_body([every], filters=[{"key": "service", "operator": "=", "value": "shop/checkout"}])
    answer = await client.post("/grafana/query", json=bad, headers=VIEW)
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "filters[0]: 'shop/checkout': write a service in a namespace as 'checkout.shop' (name.namespace)"
    )


async def test_namespaces_and_the_cluster(client: httpx.AsyncClient) -> None:
    body = query_body(
        [
            builder_target(
                "A", "namespace.cpu_cores_peak", entity=regex("catalog", "shop"), granularity="week"
            ),
            builder_target("B", "cluster.cpu_utilization_avg", granularity="month"),
        ]
    )
    catalog, shop, cluster = await query(client, body)
    assert (catalog.name, shop.name, cluster.name) == (
        "catalog cpu_cores_peak",
        "shop cpu_cores_peak",
        "cpu_utilization_avg",
    )
    assert set(points(catalog).values()) == {0.8}
    assert max(points(shop).values()) == pytest.approx(3.0 * 1.6)
    assert cluster.fields[1].config["unit"] == "percentunit"
    assert cluster.fields[1].labels == {
        "cluster": "cluster",
        "figure": "cluster.cpu_utilization_avg",
        "granularity": "month",
    }
    assert len(cluster.fields[0].values) == 3


async def test_several_metrics_through_a_figure_variable(client: httpx.AsyncClient) -> None:
    target = builder_target(
        "A", regex("service.requests", "service.errors"), entity=regex(CHECKOUT), granularity="month"
    )
    requests, errors = await query(client, query_body([target]))
    assert (requests.name, errors.name) == (f"{CHECKOUT} requests", f"{CHECKOUT} errors")
    assert sum(points(errors).values()) == sum(
        (service_day(CHECKOUT, d)[1].total or 0) for d in days_between(FIRST, LAST)
    )


async def test_table_targets_answer_the_report_for_the_range(client: httpx.AsyncClient) -> None:
    body = query_body(
        [
            builder_target("A", "service.requests", entity="$__all", format="table"),
            code_target("B", "service.latency_p99_ms", {"entity": [PAYMENTS], "format": "table"}),
            builder_target("C", "slo.error_budget_remaining", format="table"),
            builder_target("D", "cluster.cpu_utilization_peak", format="table"),
        ],
        start="2025-03-01T00:00:00Z",
        end="2025-04-01T00:00:00Z",
    )
    every, payments, slo, cluster = await query(client, body)
    truth = (
        await client.get(
            "/api/v1/reports/services", params={"from": "2025-03-01", "to": "2025-03-31"}, headers=VIEW
        )
    ).json()["services"]
    assert [f.name for f in every.fields] == [
        "service",
        "days",
        *[k for k in truth[0] if k not in ("service", "days")],
        "partial_days",  # last, as in CSV
    ]
    assert set(every.field("partial_days").values) == {0}  # no day of the range is partial
    assert [f.type for f in every.fields[:3]] == ["string", "number", "number"]
    assert every.field("latency_p99_ms").config == {"unit": "ms"}
    assert every.field("service").values == [row["service"] for row in truth]
    for name in ("requests", "error_rate", "latency_p99_ms", "qps_peak"):
        assert every.field(name).values == [row[name] for row in truth]
    assert payments.field("service").values == [PAYMENTS]
    objectives = (await client.get("/api/v1/reports/slo", params={"at": "2025-03-31"}, headers=VIEW)).json()
    assert slo.field("service").values == [o["service"] for o in objectives["objectives"]]
    assert slo.field("objective").values == ["availability", "latency_p99_ms", "availability"]
    assert slo.field("met").type == "boolean"
    assert slo.field("error_budget_remaining").values == [
        o["error_budget_remaining"] for o in objectives["objectives"]
    ]
    assert cluster.field("cluster").values == ["cluster"]
    assert cluster.field("cpu_utilization_peak").values == [0.9]


async def test_a_table_counts_the_partial_days_of_its_range_as_the_csv_report_does(
    app_factory: AppFactory, database_url: str
) -> None:
    """One partial day in the range but outside the SLO windows, one inside them: a report table
    counts both on every row, an SLO table the one of each window, as the CSV reports do."""
    first, last = date(2025, 3, 1), date(2025, 3, 31)
    async with app_factory(database_url=database_url, timezone="UTC", slo=SLO) as (app, client):
        async with app.state.context.sessions.begin() as session:
            await store_days(session, first, last)
            for day in (date(2025, 3, 10), date(2025, 3, 27)):  # the windows: 25 to 31 March
                run_id = await repository.claim_day(
                    session, day, trigger="test", worker="test", now=datetime.now(UTC), lease=timedelta(0)
                )
                assert run_id is not None
                await repository.finish_run(session, run_id, status=RunStatus.PARTIAL, duration_ms=1.0)
        body = query_body(
            [
                builder_target("A", "service.requests", entity="$__all", format="table"),
                builder_target("B", "slo.availability", entity="$__all", format="table"),
            ],
            start="2025-03-01T00:00:00Z",
            end="2025-04-01T00:00:00Z",
        )
        services, slo = await query(client, body)
        period = {"from": first.isoformat(), "to": last.isoformat(), "format": "csv"}
        services_csv = (await client.get("/api/v1/reports/services", params=period, headers=VIEW)).text
        slo_csv = (
            await client.get(
                "/api/v1/reports/slo", params={"at": last.isoformat(), "format": "csv"}, headers=VIEW
            )
        ).text
    assert services.fields[-1].name == slo.fields[-1].name == "partial_days"
    assert services.field("partial_days").values == [2, 2, 2]
    assert slo.field("partial_days").values == [1, 1, 1]  # each objective's window holds one
    by_service = {r["service"]: int(r["partial_days"]) for r in csv.DictReader(io.StringIO(services_csv))}
    assert (
        dict(zip(services.field("service").values, services.field("partial_days").values, strict=True))
        == by_service
    )
    slo_rows = list(csv.DictReader(io.StringIO(slo_csv)))
    assert [(r["service"], r["objective"]) for r in slo_rows] == list(
        zip(slo.field("service").values, slo.field("objective").values, strict=True)
    )
    assert [int(r["partial_days"]) for r in slo_rows] == slo.field("partial_days").values


async def test_slo_figures_per_day_window(client: httpx.AsyncClient) -> None:
    body = query_body(
        [
            builder_target("A", "slo.availability", entity="$__all", granularity="day"),
            builder_target(
                "B", "slo.error_budget_remaining_minutes", entity=regex(CHECKOUT), objective="latency_p99_ms"
            ),
        ],
        start="2025-03-01T00:00:00Z",
        end="2025-03-11T00:00:00Z",
    )
    checkout, payments, latency = await query(client, body)
    assert (checkout.name, payments.name) == (
        f"{CHECKOUT} availability",
        f"{PAYMENTS} availability",
    )
    assert latency.name == f"{CHECKOUT} latency_p99_ms error_budget_remaining_minutes"
    assert latency.fields[1].config["unit"] == "m"
    for day in (date(2025, 3, 1), date(2025, 3, 10)):
        slo = (await client.get("/api/v1/reports/slo", params={"at": day.isoformat()}, headers=VIEW)).json()
        by = {(o["service"], o["objective"]): o for o in slo["objectives"]}
        assert points(checkout)[ms(day)] == by[(CHECKOUT, "availability")]["achieved"]
        assert points(payments)[ms(day)] == by[(PAYMENTS, "availability")]["achieved"]
        assert points(latency)[ms(day)] == pytest.approx(
            by[(CHECKOUT, "latency_p99_ms")]["error_budget_remaining_minutes"]
        )
    assert len(checkout.fields[0].values) == 10


async def test_annotation_queries_answer_an_incident_frame(client: httpx.AsyncClient) -> None:
    """Grafana runs an annotation through /query with refId Anno (no incidents in this app)."""
    annotation = {"refId": "Anno", "target": "incidents", "payload": {"service": regex(CHECKOUT)}}
    by_kind = builder_target("X", "incidents", kind="incidents")
    body = query_body([annotation])
    body["requestId"] = "AQ3"
    [frame] = await query(client, body)
    assert frame.ref_id == "Anno"
    assert [(f.name, f.type) for f in frame.fields] == [
        ("time", "time"), ("timeEnd", "time"), ("title", "string"), ("text", "string"), ("tags", "other"),
    ]  # fmt: skip
    assert annotation_events(frame) == []
    [other] = await query(client, query_body([by_kind]))
    assert (other.ref_id, annotation_events(other)) == ("X", [])


async def test_hidden_and_empty_targets_are_skipped(client: httpx.AsyncClient) -> None:
    hidden = {**builder_target("A", "service.requests", entity=regex(CHECKOUT)), "hide": True}
    placeholder = {"refId": "B", "datasource": {"type": "simpod-json-datasource", "uid": "panorama"}}
    shown = builder_target("C", "service.errors", entity=regex(CHECKOUT), granularity="month")
    frames = await query(client, query_body([hidden, placeholder, shown]))
    assert [f.ref_id for f in frames] == ["C"]
    assert await query(client, query_body([hidden])) == []


async def test_both_databases_answer_alike(app_factory: AppFactory, database_url: str) -> None:
    body = query_body(
        [
            builder_target(
                "A", "service.latency_p95_ms", entity=regex(CHECKOUT, PAYMENTS), granularity="month"
            ),
            code_target("B", "service.error_rate", {"entity": [SEARCH], "granularity": "day"}),
            builder_target("C", "namespace.memory_bytes_avg", entity="$__all", format="table"),
            builder_target("D", "service.requests", entity="$__all", granularity="month"),
        ],
        filters=[{"key": "namespace", "operator": "=~", "value": "shop|catalog"}],
    )
    in_february = {"target": "services"}, grafana_range("2025-02-10T00:00:00Z", "2025-02-11T00:00:00Z")
    async with app_factory(database_url=database_url, timezone="UTC") as (app, client):
        async with app.state.context.sessions.begin() as session:
            await store_days(session)
            gone = FamilyValue("service", "gone.shop.svc.cluster.local", "requests", total=1.0)
            await repository.replace_day(session, date(2024, 6, 1), [gone])
        frames = await query(client, body)
        truth = await report(client, PAYMENTS, "month")
        variables = [
            await client.post("/grafana/variable", json={"payload": payload, "range": window}, headers=VIEW)
            for payload, window in [in_february, ({"target": "services"}, None)]
        ]
    checkout, payments, search, table, *every = frames
    assert [f.name for f in every] == [f"{name} requests" for name in (CHECKOUT, PAYMENTS, SEARCH)]
    assert [o["__value"] for o in variables[0].json()] == [CHECKOUT, SEARCH]  # payments: a gap that day
    assert [o["__value"] for o in variables[1].json()] == [CHECKOUT, gone.entity, PAYMENTS, SEARCH]
    assert [f.name for f in frames[:3]] == [
        f"{CHECKOUT} latency_p95_ms",
        f"{PAYMENTS} latency_p95_ms",
        f"{SEARCH} error_rate",
    ]
    assert points(payments) == {t: row["latency_p95_ms"] for t, row in truth.items()}
    assert (len(points(search)), checkout.length) == (90, 3)
    assert table.field("namespace").values == ["catalog", "shop"]
    assert table.field("memory_bytes_avg").values == [2e8, 1e9]
    assert table.field("memory_bytes_avg").config == {"unit": "bytes"}

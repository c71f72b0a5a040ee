"""Ad hoc filters as a Grafana user tries them: every value ``/tag-values`` offers, picked back as an
``=`` filter, keeps its own series and incidents; a regex keeps the same services on series and on
incident annotations; a filter that cannot work is a 400 saying what to write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from app import servicenames
from app.grafana.entities import namespace_of
from app.rollups import repository
from app.rollups.compute import FamilyValue
from app.rollups.days import days_between
from tests.alerts.support import alert, alerting_config, bearer_webhook, payload
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import builder_target, query_body, regex, store_oncall_days
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import incident_of

VIEW = bearer(VIEWER_TOKEN)
FIRST, LAST = date(2025, 1, 1), date(2025, 1, 3)
START, END = "2025-01-01T00:00:00.000Z", "2025-01-04T00:00:00.000Z"  # the stored days

CHECKOUT = "checkout.shop.svc.cluster.local"  # Istio's destination_service
REVIEWS = "reviews.bookinfo.svc.cluster.local"
INCIDENT_OF = {  # each stored service, the alert that names it, and how
    CHECKOUT: ("CheckoutDown", {"service": "checkout", "namespace": "shop"}),
    REVIEWS: ("ReviewsSlow", {"service": REVIEWS}),  # the FQDN as a label carries it
    "cart.shop": ("CartErrors", {"service": "cart.shop"}),
    "legacy": ("LegacyDown", {"service": "legacy"}),
    "api.Example.com": ("ExternalSlow", {"service": "api.Example.com"}),  # a ServiceEntry's host
    "ledger..svc.cluster.local": ("LedgerDown", {"service": "ledger"}),  # an empty namespace label
    "frontend/api": ("FrontendApi", {"service": "frontend/api"}),
    "My App": ("MyAppDown", {"service": "My App"}),
}
SERVICES = sorted(INCIDENT_OF)
ELSEWHERE = ("CheckoutOther", {"service": "checkout", "namespace": "other"})  # no figures
NAMESPACES = ("monitoring", "shop")  # the namespace kind's own figures (CPU, memory)
SHOP = ["CartErrors", "CheckoutDown"]  # checkout.shop (its FQDN, its alert's label) and cart.shop
ONCALL = {"oncall_service": "checkout", "oncall_schedule": "sre", "oncall_person": "alice"}
IN_NAMESPACE = {"bookinfo": ["ReviewsSlow"], "monitoring": [], "shop": SHOP}  # incidents, by their alerts


def requests_of(service: str, day: date) -> list[FamilyValue]:
    return [
        FamilyValue("service", service, "requests", total=100.0 + day.day),
        FamilyValue("service", service, "errors", total=1.0),
    ]


def namespace_day(namespace: str) -> list[FamilyValue]:
    return [FamilyValue("namespace", namespace, "cpu_cores", total=288.0, samples=288, peak=2.0)]


@dataclass
class Dashboard:
    client: httpx.AsyncClient
    incident_start: str
    incident_end: str

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(f"/grafana/{path}", json=body, headers=VIEW)

    async def offered(self, key: str) -> list[str]:
        answer = await self.post("tag-values", {"key": key, "filters": []})
        assert answer.status_code == 200, answer.text
        return [item["text"] for item in answer.json()]

    async def series(self, metric: str, filters: list[dict[str, Any]]) -> list[str]:
        """The entities of ``metric`` a panel of every entity shows under ``filters``."""
        target = builder_target("A", metric, entity="$__all", granularity="day")
        answer = await self.post("query", query_body([target], filters=filters, start=START, end=END))
        assert answer.status_code == 200, answer.text
        key = "service" if metric.startswith("service.") else metric.split(".")[0]
        return [str(series["tags"][key]) for series in answer.json()]

    async def incidents(self, filters: list[dict[str, Any]], service: str = "$__all") -> list[str]:
        """The alert names of the incidents of ``service`` (every one) annotated under ``filters``."""
        target = {"refId": "Anno", "target": "incidents", "payload": {"service": service}}
        body = query_body([target], filters=filters, start=self.incident_start, end=self.incident_end)
        answer = await self.post("query", body)
        assert answer.status_code == 200, answer.text
        [frame] = answer.json()
        return sorted(str(e["title"]).split()[1] for e in annotation_events(to_data_frame(frame)))


@pytest.fixture
async def dashboard(app_factory: AppFactory, database_url: str) -> AsyncIterator[Dashboard]:
    now = datetime.now(UTC)
    started = (now - timedelta(hours=1)).replace(microsecond=0)
    async with app_factory(database_url=database_url, timezone="UTC", **alerting_config()) as (app, client):
        async with app.state.context.sessions.begin() as session:
            for day in days_between(FIRST, LAST):
                values = [v for service in SERVICES for v in requests_of(service, day)]
                values += [v for namespace in NAMESPACES for v in namespace_day(namespace)]
                await repository.replace_day(session, day, values, kinds=["service", "namespace"])
            await store_oncall_days(session, FIRST, LAST)
        for name, labels in [*INCIDENT_OF.values(), ELSEWHERE]:
            sent = payload(name, [alert(name, started=started, **labels)])
            await incident_of(
                client, await client.post("/api/v1/alerts/alertmanager", json=sent, headers=bearer_webhook())
            )
        yield Dashboard(
            client, (now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()
        )


def equal(key: str, value: str) -> list[dict[str, str]]:
    return [{"key": key, "operator": "=", "value": value}]


async def test_every_offered_service_picked_back_keeps_its_series_and_its_incidents(
    dashboard: Dashboard,
) -> None:
    """Stored names of every spelling (the FQDN, ``name.namespace``, a short name, an external
    host with capitals, an empty namespace, a slash, a space) are offered sorted, each once, and
    each picked back as ``=`` is accepted and keeps its series and the incidents of its service
    (not ``checkout`` of another namespace); ``!=`` leaves them out."""
    offered = await dashboard.offered("service")
    assert offered == SERVICES
    for value in offered:
        series = await dashboard.series("service.requests", equal("service", value))
        assert value in series
        assert all(servicenames.matches(value, shown) for shown in series), (value, series)
        incidents = await dashboard.incidents(equal("service", value))
        assert incidents == [INCIDENT_OF[value][0]], value
        others = await dashboard.series(
            "service.requests", [{"key": "service", "operator": "!=", "value": value}]
        )
        assert value not in others
        assert INCIDENT_OF[value][0] not in await dashboard.incidents(
            [{"key": "service", "operator": "!=", "value": value}]
        )
    both = await dashboard.series(
        "service.requests", [{"key": "service", "operator": "=|", "value": "", "values": offered[:2]}]
    )
    assert both == offered[:2]


async def test_every_service_a_variable_offers_chooses_its_incidents(dashboard: Dashboard) -> None:
    """A dashboard's ``$service`` (``/variable`` ``services``), interpolated into the incidents
    annotation's ``payload.service``, is accepted in every spelling it offers, alone or with others."""
    answer = await dashboard.post("variable", {"payload": {"target": "services"}})
    offered = [option["__value"] for option in answer.json()]
    assert offered == SERVICES
    for value in offered:
        assert await dashboard.incidents([], service=regex(value)) == [INCIDENT_OF[value][0]]
    everything = await dashboard.incidents([], service=regex(*offered))
    assert everything == sorted(name for name, _ in INCIDENT_OF.values())


async def test_every_offered_value_of_the_other_keys_keeps_its_data(dashboard: Dashboard) -> None:
    """A namespace keeps its own figures, the services whose names say it and the incidents of
    services in it; each on-call kind's value keeps its series."""
    namespaces = await dashboard.offered("namespace")
    assert namespaces == ["bookinfo", "monitoring", "shop"]  # shop: its figures and checkout's name
    for namespace in namespaces:
        services = await dashboard.series("service.requests", equal("namespace", namespace))
        own = await dashboard.series("namespace.cpu_cores_peak", equal("namespace", namespace))
        assert services or own, namespace
        assert all(namespace_of(service) == namespace for service in services)
        assert own == ([namespace] if namespace in NAMESPACES else [])
        assert await dashboard.incidents(equal("namespace", namespace)) == IN_NAMESPACE[namespace]
    for key, value in ONCALL.items():
        assert await dashboard.offered(key) == [value]
        figure = "pages" if key == "oncall_person" else "incidents"
        assert await dashboard.series(f"{key}.{figure}", equal(key, value)) == [value]
        assert await dashboard.series(f"{key}.{figure}", equal(key, value + "x")) == []


@pytest.mark.parametrize(
    ("operator", "pattern", "kept"),
    [
        ("=~", r"checkout\.shop", ["CheckoutDown"]),
        ("=~", r".*\.shop", SHOP),
        ("=~", r"reviews\.bookinfo", ["ReviewsSlow"]),
        ("=~", r"legacy|ledger", ["LedgerDown", "LegacyDown"]),
        ("=~", r"api\.Example", ["ExternalSlow"]),
        ("=~", r"My App|frontend/api", ["FrontendApi", "MyAppDown"]),
        ("!~", r".*\.shop", sorted(name for name, _ in INCIDENT_OF.values() if name not in SHOP)),
    ],
)  # fmt: skip
async def test_a_regex_keeps_the_same_services_on_series_and_annotations(
    dashboard: Dashboard, operator: str, pattern: str, kept: list[str]
) -> None:
    """A regex sees ``name.namespace`` on both: a rollup's FQDN ``checkout.shop.svc.cluster.local``
    and an alert's ``service=checkout`` with ``namespace=shop`` are both ``checkout.shop``."""
    filters = [{"key": "service", "operator": operator, "value": pattern}]
    series = await dashboard.series("service.requests", filters)
    incidents = await dashboard.incidents(filters)
    assert sorted(INCIDENT_OF[s][0] for s in series) == kept
    assert [name for name in incidents if name != ELSEWHERE[0]] == kept
    assert (ELSEWHERE[0] in incidents) == (operator == "!~")  # checkout.other: no .shop


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"operator": "=~", "value": r"reviews\.bookinfo\.svc\.cluster\.local"},
         r"filters[0]: 'reviews\.bookinfo\.svc\.cluster\.local': a service regex matches name.namespace "
         r"(reviews.bookinfo), not the FQDN (reviews.bookinfo.svc.cluster.local): write 'reviews\.bookinfo'"),
        ({"operator": "!~", "value": r".*\.svc\.cluster\.local"},
         r"filters[0]: '.*\.svc\.cluster\.local': a service regex matches name.namespace (reviews.bookinfo), "
         r"not the FQDN (reviews.bookinfo.svc.cluster.local): write '.*'"),
        ({"operator": "=", "value": "shop/checkout"},
         "filters[0]: 'shop/checkout': write a service in a namespace as 'checkout.shop' (name.namespace)"),
        ({"operator": "=", "value": "ledger..svc"},
         "filters[0]: 'ledger..svc' has an empty part around a dot: write 'name' or 'name.namespace'"),
        ({"operator": "=|", "values": ["legacy", "api.Other.com"]},
         "filters[0]: 'api.Other.com': namespace 'Other' is not a Kubernetes name (lowercase letters, digits "
         "and '-', at most 63)"),
    ],
)  # fmt: skip
async def test_a_filter_that_cannot_work_is_a_400_naming_the_form_to_write(
    dashboard: Dashboard, item: dict[str, Any], message: str
) -> None:
    """Typed values that are not stored names are still read strictly, on series and annotations."""
    filters = [{"key": "service", **item}]
    for target in (
        builder_target("A", "service.requests", entity="$__all"),
        {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}},
    ):
        answer = await dashboard.post("query", query_body([target], filters=filters, start=START, end=END))
        assert answer.status_code == 400
        assert answer.json() == {"message": message}


IN_MESH = [CHECKOUT, REVIEWS]  # the stored services a series' namespace is read from (FQDNs)


@pytest.mark.parametrize(
    ("operator", "value", "kept", "kept_series"),
    [
        ("=", "shop", SHOP, [CHECKOUT]),
        ("=|", "", ["CheckoutDown", "CheckoutOther", "CartErrors"], [CHECKOUT]),
        ("!=", "shop", sorted(n for n, _ in [*INCIDENT_OF.values(), ELSEWHERE] if n not in SHOP), [REVIEWS]),
        ("=~", "shop|bookinfo", [*SHOP, "ReviewsSlow"], IN_MESH),
        ("=~", "other", ["CheckoutOther"], []),
        ("!~", "shop|bookinfo", ["CheckoutOther", "ExternalSlow", "FrontendApi", "LedgerDown", "LegacyDown",
                                 "MyAppDown"], []),
    ],
)  # fmt: skip
async def test_a_namespace_filter_keeps_the_incidents_of_services_in_it_as_it_keeps_their_series(
    dashboard: Dashboard, operator: str, value: str, kept: list[str], kept_series: list[str]
) -> None:
    """An incident is in the namespaces its alerts name (``service=checkout, namespace=shop``; an FQDN
    label) and passes ``=``/``=~`` when one of its services is in a matching one, ``!=``/``!~`` when
    none is; a service of no known namespace (``service=legacy``) fails ``=`` and passes ``!=``, as a
    series does. Where a series' namespace is known (an FQDN), its incident goes with it."""
    item: dict[str, Any] = {"key": "namespace", "operator": operator, "value": value}
    if operator == "=|":
        item["values"] = ["shop", "other"]
    incidents = await dashboard.incidents([item])
    series = await dashboard.series("service.requests", [item])
    assert incidents == sorted(kept)
    assert [s for s in series if s in IN_MESH] == kept_series
    for service in IN_MESH:
        assert (INCIDENT_OF[service][0] in incidents) == (service in series), service
    unknown = [name for service, (name, labels) in INCIDENT_OF.items() if namespace_of(service) is None
               and "namespace" not in labels and "." not in labels["service"]]  # fmt: skip
    assert all((name in incidents) == (operator in ("!=", "!~")) for name in unknown), unknown


async def test_a_namespace_filter_and_a_service_regex_agree_on_incidents(dashboard: Dashboard) -> None:
    """``namespace = shop`` keeps the incidents ``service =~ .*\\.shop`` keeps, on annotations and
    on series alike (the services' namespaces, read from their alerts)."""
    by_namespace = await dashboard.incidents(equal("namespace", "shop"))
    by_regex = await dashboard.incidents([{"key": "service", "operator": "=~", "value": r".*\.shop"}])
    series = await dashboard.series(
        "service.requests", [{"key": "service", "operator": "=~", "value": r".*\.shop"}]
    )
    assert by_namespace == by_regex == sorted(INCIDENT_OF[s][0] for s in series) == SHOP


@pytest.mark.parametrize(
    ("item", "kept"),
    [
        ({"operator": "=", "value": "checkout"}, ["checkout"]),
        ({"operator": "=", "value": "checkout.shop"}, ["checkout"]),
        ({"operator": "=", "value": CHECKOUT}, ["checkout"]),
        ({"operator": "=|", "values": ["cart", "checkout.shop"]}, ["checkout"]),
        ({"operator": "!=", "value": "checkout.shop"}, []),
        ({"operator": "=", "value": "cart.shop"}, []),
        ({"operator": "=~", "value": r"checkout"}, ["checkout"]),
        ({"operator": "!~", "value": r"check.*"}, []),
    ],
)  # fmt: skip
async def test_an_oncall_service_filter_reads_service_names_as_the_service_key_does(
    dashboard: Dashboard, item: dict[str, Any], kept: list[str]
) -> None:
    """The on-call history's services are the services incidents name (``checkout``): a filter in any
    spelling (``checkout.shop``, the FQDN) keeps them, as a ``service`` filter keeps a series."""
    filters = [{"key": "oncall_service", "value": "", **item}]
    assert await dashboard.series("oncall_service.incidents", filters) == kept


async def test_an_oncall_service_filter_that_cannot_work_is_a_400(dashboard: Dashboard) -> None:
    target = builder_target("A", "oncall_service.incidents", entity="$__all", granularity="day")
    for item, message in [
        ({"operator": "=", "value": "shop/checkout"},
         "filters[0]: 'shop/checkout': write a service in a namespace as 'checkout.shop' (name.namespace)"),
        ({"operator": "=~", "value": r"checkout\.shop\.svc\.cluster\.local"},
         r"filters[0]: 'checkout\.shop\.svc\.cluster\.local': a service regex matches name.namespace "
         r"(reviews.bookinfo), not the FQDN (reviews.bookinfo.svc.cluster.local): write 'checkout\.shop'"),
    ]:  # fmt: skip
        filters = [{"key": "oncall_service", **item}]
        answer = await dashboard.post("query", query_body([target], filters=filters, start=START, end=END))
        assert answer.status_code == 400
        assert answer.json() == {"message": message}

"""``GET /api/v1/incidents?service=``: every spelling of a service finds its incidents (short name,
``name.namespace``, FQDN), and a filter's ``%`` and ``_`` are letters, not patterns."""

from __future__ import annotations

import html

import httpx
import pytest

from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, fingerprint, payload
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of

SERVICES = {
    "checkout-short": {"service": "checkout", "namespace": "shop"},
    "checkout-other": {"service": "checkout.other.svc.cluster.local"},
    "checkout-fqdn": {"destination_service_name": "checkout.shop.svc.cluster.local"},
    "checkout-anywhere": {"service": "checkout"},  # no namespace label: any namespace
    "cart": {"service": "cart"},
    "underscore": {"service": "pay_ments"},
    "letter": {"service": "payXments"},
    "percent": {"service": "100%"},
    "digits": {"service": "1000"},
}


async def _open_incidents(client: httpx.AsyncClient) -> dict[str, int]:
    opened = {}
    for group, labels in SERVICES.items():
        body = payload(group, [{**alert(group), "labels": {"alertname": group, **labels}}])
        answer = await client.post(WEBHOOK, json=body, headers=bearer_webhook())
        await applied(client, answer)
        opened[group] = await incident_of(client, answer)
    return opened


async def _found(client: httpx.AsyncClient, service: str, opened: dict[str, int]) -> set[str]:
    answer = await client.get("/api/v1/incidents", params={"service": service}, headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 200, answer.text
    groups = {incident_id: group for group, incident_id in opened.items()}
    return {groups[i["id"]] for i in answer.json()["incidents"]}


async def test_short_name_namespace_and_fqdn_find_the_same_incidents(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(database_url=database_url, **alerting_config()) as (_, client):
        opened = await _open_incidents(client)
        short = await _found(client, "checkout", opened)
        dotted = await _found(client, "checkout.shop", opened)
        fqdn = await _found(client, "checkout.shop.svc.cluster.local", opened)
        other = await _found(client, "checkout.other", opened)
    assert short == {"checkout-short", "checkout-other", "checkout-fqdn", "checkout-anywhere"}
    assert dotted == fqdn == {"checkout-short", "checkout-fqdn", "checkout-anywhere"}
    assert other == {
        "checkout-other",
        "checkout-anywhere",
    }  # `checkout` of the alerts' namespace `shop` is not in `other`


async def test_percent_and_underscore_in_a_filter_are_taken_literally(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(database_url=database_url, **alerting_config()) as (_, client):
        opened = await _open_incidents(client)
        found = {
            wanted: await _found(client, wanted, opened)
            for wanted in ("pay_ments", "payXments", "pay%", "%", "_", "100%", "100_", "10%")
        }
        blank = await _found(client, "", opened)
    assert found == {
        "pay_ments": {"underscore"},
        "payXments": {"letter"},
        "pay%": set(),
        "%": set(),
        "_": set(),
        "100%": {"percent"},
        "100_": set(),
        "10%": set(),
    }
    assert blank == set(SERVICES)  # `?service=` alone filters nothing


async def _open(client: httpx.AsyncClient, group: str, *labels: dict[str, str]) -> int:
    alerts = []
    for found in labels:
        named = {"alertname": group, **found}
        alerts.append({**alert(group), "labels": named, "fingerprint": fingerprint(named)})
    body = payload(group, alerts)
    return await incident_of(client, await client.post(WEBHOOK, json=body, headers=bearer_webhook()))


async def _ids(client: httpx.AsyncClient, service: str) -> set[int]:
    answer = await client.get("/api/v1/incidents", params={"service": service}, headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 200, answer.text
    return {i["id"] for i in answer.json()["incidents"]}


async def test_a_group_across_namespaces_is_found_in_each_alerts_own_namespace(
    app_factory: AppFactory, database_url: str
) -> None:
    """Without a namespace common to the group, each service is in the namespace of the alerts that
    name it; an alert joining later counts too; a label after the one that names the service does not."""
    async with app_factory(database_url=database_url, **alerting_config()) as (_, client):
        spread = await _open(
            client,
            "Cascade",
            {"service": "checkout", "namespace": "shop"},
            {"service": "cart", "namespace": "web"},
            {"service": "search", "job": "checkout", "namespace": "other"},  # its service is search
        )
        joined = await _open(client, "Joined", {"service": "checkout", "namespace": "shop"})
        await _open(
            client,
            "Joined",
            {"service": "checkout", "namespace": "shop"},
            {"service": "checkout", "namespace": "staging", "pod": "p2"},
        )
        bare = await _open(client, "Bare", {"app": "checkout"})  # no namespace label: any
        found = {
            wanted: await _ids(client, wanted)
            for wanted in (
                "checkout",
                "checkout.shop",
                "checkout.web",
                "checkout.other",
                "checkout.staging",
                "cart.web.svc.cluster.local",
                "cart.shop",
                "search.other",
            )
        }
    assert found == {
        "checkout": {spread, joined, bare},  # a bare name: every namespace, as before
        "checkout.shop": {spread, joined, bare},
        "checkout.web": {bare},  # cart's namespace is not checkout's
        "checkout.other": {bare},  # `job=checkout` does not name the service when `service` does
        "checkout.staging": {joined, bare},  # the alert that joined later
        "cart.web.svc.cluster.local": {spread},
        "cart.shop": set(),
        "search.other": {spread},
    }


@pytest.mark.parametrize(
    ("wanted", "words", "chinese"),
    [
        (
            ".shop",
            "query parameter 'service': '.shop' has an empty part around a dot",
            "“.shop”的点号两侧有空的部分",
        ),
        ("checkout.", "has an empty part around a dot", "“checkout.”的点号两侧有空的部分"),
        (
            "shop/checkout",
            "write a service in a namespace as 'checkout.shop' (name.namespace)",
            "命名空间中的服务写作“checkout.shop”",
        ),
        (
            "checkout.Shop",
            "namespace 'Shop' is not a Kubernetes name",
            "命名空间“Shop”不是合法的 Kubernetes 名称",
        ),
        ("check out", "holds a space or a control character", "“check out”含有空格或控制字符"),
    ],
)
async def test_a_malformed_service_filter_is_a_clear_400(
    app_factory: AppFactory, wanted: str, words: str, chinese: str
) -> None:
    """The API says it in its stable English; the page says the same in the reader's language."""
    async with app_factory(**alerting_config()) as (_, client):
        answer = await client.get(
            "/api/v1/incidents", params={"service": wanted}, headers=bearer(VIEWER_TOKEN)
        )
        page = await client.get("/incidents", params={"service": wanted}, headers=bearer(VIEWER_TOKEN))
        english = await client.get(
            "/incidents", params={"service": wanted, "lang": "en"}, headers=bearer(VIEWER_TOKEN)
        )
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["message"]
    assert page.status_code == english.status_code == 400
    assert chinese in html.unescape(page.text)
    assert "参数“service”" in html.unescape(page.text)
    assert words.removeprefix("query parameter 'service': ") in html.unescape(english.text)
    assert "Parameter 'service'" in html.unescape(english.text)

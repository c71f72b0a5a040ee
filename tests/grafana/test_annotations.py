"""Incidents from Alertmanager and partial days of the rollups as Grafana annotations, and schedules
as a variable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.alerts import heartbeats
from app.grafana.annotations import MAX_ANNOTATIONS
from app.rollups import repository
from app.rollups.repository import RunStatus
from tests.alerts.support import alert, alerting_config, bearer_webhook, incidents, payload
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import (
    CHECKOUT,
    PAYMENTS,
    SEARCH,
    other_day,
    query_body,
    regex,
    service_day,
)
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.datasets import DST_ZONE, dst_days
from tests.harness.intake import applied, incident_of
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import history_from_noon

VIEW = bearer(VIEWER_TOKEN)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_incidents_are_annotations_of_their_services(app_factory: AppFactory) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()
    started = (now - timedelta(hours=1)).replace(microsecond=0)  # an hour before the webhook
    async with app_factory(**alerting_config()) as (_app, client):
        checkout = payload("CheckoutErrors", [alert("CheckoutErrors", service="checkout", started=started)])
        cart = payload("CartDown", [alert("CartDown", service="cart", started=started)])
        first = await incident_of(
            client, await client.post("/api/v1/alerts/alertmanager", json=checkout, headers=bearer_webhook())
        )
        await incident_of(
            client, await client.post("/api/v1/alerts/alertmanager", json=cart, headers=bearer_webhook())
        )

        async def events(
            service_payload: str, filters: list[dict[str, str]] | None = None
        ) -> list[dict[str, object]]:
            target = {"refId": "Anno", "target": "incidents", "payload": {"service": service_payload}}
            answer = await client.post(
                "/grafana/query",
                json=query_body([target], filters=filters, start=start, end=end),
                headers=VIEW,
            )
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return annotation_events(to_data_frame(frame))

        only_checkout = await events(regex(CHECKOUT))
        everything = await events("$__all")
        filtered = await events("$__all", [{"key": "service", "operator": "=", "value": "cart"}])
        none = await events(regex(PAYMENTS))
        schedules = await client.post(
            "/grafana/variable", json={"payload": {"target": "schedules"}}, headers=VIEW
        )
    [event] = only_checkout
    assert event["title"] == f"#{first} CheckoutErrors"
    assert "triggered" in str(event["text"])
    assert event["tags"] == ["service:checkout", "triggered", "critical"]
    assert event["time"] == event["timeEnd"]  # still open
    assert event["time"] == ms(started)  # when the alert started, not when the webhook came
    assert len(everything) == 2
    assert [e["tags"][0] for e in filtered] == ["service:cart"]  # type: ignore[index]
    assert none == []
    assert schedules.json() == [{"__text": "sre", "__value": "sre"}]


async def test_an_annotation_spans_the_alerts_from_starts_at_to_ends_at(
    app_factory: AppFactory, database_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first_start, second_start = now - timedelta(hours=3), now - timedelta(hours=2)
    first_end, second_end = now - timedelta(minutes=50), now - timedelta(minutes=40)

    def resolved(found: dict[str, object], ended: datetime) -> dict[str, object]:
        return found | {"status": "resolved", "endsAt": ended.isoformat()}

    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        a = alert("PaymentsSlow", service="payments", instance="a", started=first_start)
        b = alert("PaymentsSlow", service="payments", instance="b", started=second_start)

        async def send(alerts: list[dict[str, object]]) -> None:
            answer = await client.post(
                "/api/v1/alerts/alertmanager", json=payload("PaymentsSlow", alerts), headers=bearer_webhook()
            )
            await applied(client, answer)
            await incident_of(client, answer)

        async def events(start: datetime, end: datetime) -> list[dict[str, object]]:
            target = {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}}
            body = query_body([target], start=start.isoformat(), end=end.isoformat())
            answer = await client.post("/grafana/query", json=body, headers=VIEW)
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return annotation_events(to_data_frame(frame))

        await send([a, b])
        while_firing = await events(now - timedelta(hours=4), now + timedelta(hours=1))
        await send([resolved(a, first_end), resolved(b, second_end)])
        after = await events(now - timedelta(hours=4), now + timedelta(hours=1))
        # a dashboard that ends before the webhook came still shows the incident that had begun
        before_webhook = await events(now - timedelta(hours=4), now - timedelta(hours=1))
        after_it_ended = await events(now - timedelta(minutes=30), now + timedelta(hours=1))
    [firing] = while_firing
    assert (firing["time"], firing["timeEnd"]) == (ms(first_start), ms(first_start))
    [event] = after
    assert (event["time"], event["timeEnd"]) == (ms(first_start), ms(second_end))
    assert "resolved" in event["tags"]  # type: ignore[operator]
    assert [e["time"] for e in before_webhook] == [ms(first_start)]
    assert after_it_ended == []


async def test_an_incident_without_alerts_is_placed_when_it_was_opened(app_factory: AppFactory) -> None:
    """A missing heartbeat has no alert of its own: its annotation starts when Panorama opened it."""
    async with app_factory(**alerting_config()) as (app, client):
        context = app.state.context
        key = await context.alerts.signing_key()
        watchdog = payload("Watchdog", [alert("Watchdog", severity="none")])
        await applied(
            client, await client.post("/api/v1/alerts/alertmanager", json=watchdog, headers=bearer_webhook())
        )
        overdue = datetime.now(UTC) + timedelta(minutes=6)
        async with context.sessions.begin() as session:
            assert await heartbeats.check(session, context.settings, overdue, key) == 1
        [missing] = await incidents(context.sessions)
        target = {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}}
        body = query_body(
            [target],
            start=(overdue - timedelta(hours=1)).isoformat(),
            end=(overdue + timedelta(hours=1)).isoformat(),
        )
        answer = await client.post("/grafana/query", json=body, headers=VIEW)
    assert answer.status_code == 200, answer.text
    [event] = annotation_events(to_data_frame(answer.json()[0]))
    assert event["title"] == f"#{missing.id} {missing.title}"
    assert event["time"] == event["timeEnd"] == ms(missing.created_at)


async def test_an_incident_named_name_namespace_is_an_annotation_of_its_service_only(
    app_factory: AppFactory,
) -> None:
    """Alerts name a service in any spelling; ``checkout.shop`` is the chosen FQDN's service and
    ``checkout.other`` (same name, another namespace) is not."""
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()
    async with app_factory(**alerting_config()) as (_app, client):
        for name, service in (("ShopCheckout", "checkout.shop"), ("OtherCheckout", "checkout.other")):
            sent = payload(name, [alert(name, service=service)])
            answer = await client.post("/api/v1/alerts/alertmanager", json=sent, headers=bearer_webhook())
            await applied(client, answer)
            await incident_of(client, answer)
        target = {"refId": "Anno", "target": "incidents", "payload": {"service": regex(CHECKOUT)}}
        answer = await client.post(
            "/grafana/query", json=query_body([target], start=start, end=end), headers=VIEW
        )
    assert answer.status_code == 200, answer.text
    [frame] = answer.json()
    [event] = annotation_events(to_data_frame(frame))
    assert str(event["title"]).endswith("ShopCheckout")


async def test_a_day_cut_by_prometheus_retention_is_a_partial_day_annotation(
    app_factory: AppFactory,
    prometheus_factory: Callable[..., RunningPrometheus],
    tmp_path: Path,
    database_url: str,
) -> None:
    """History that starts at noon, rolled up from the real Prometheus: the cut day is a region
    from its midnight to the next, in the team's language unless the payload says, tagged
    ``partial``; the whole day after it is not; a range without it has none."""
    dataset, cut, full = history_from_noon(tmp_path / "data")
    own = prometheus_factory(dataset.files)
    midnight = datetime.combine(cut, time(0), tzinfo=UTC)
    start, end = (midnight - timedelta(days=1)).isoformat(), (midnight + timedelta(days=2)).isoformat()
    sections = {"prometheus": {"url": own.url}, "timezone": "UTC", "database_url": database_url}
    async with app_factory(**sections) as (_app, client):
        ran = await client.post(
            "/api/v1/rollups/run",
            json={"from": cut.isoformat(), "to": full.isoformat(), "wait": True},
            headers=bearer(OPERATOR_TOKEN),
        )
        assert [r["status"] for r in ran.json()["runs"]] == ["partial", "ok"], ran.text

        async def events(target: dict[str, object], **body: Any) -> list[dict[str, object]]:
            answer = await client.post(
                "/grafana/query",
                json=query_body([target], **{"start": start, "end": end, **body}),
                headers=VIEW,
            )
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return annotation_events(to_data_frame(frame))

        chinese = await events({"refId": "Anno", "target": "partial_days"})
        english = await events({"refId": "Anno", "target": "partial_days", "payload": {"lang": "en"}})
        by_kind = await events(
            {"refId": "A", "target": "days", "payload": {"kind": "partial_days", "lang": "en"}}
        )
        after = await events(
            {"refId": "Anno", "target": "partial_days"}, start=(midnight + timedelta(days=1)).isoformat()
        )
        incidents_still = await events({"refId": "Anno", "target": "incidents"})
        unknown_lang = await client.post(
            "/grafana/query",
            json=query_body([{"refId": "Anno", "target": "partial_days", "payload": {"lang": "fr"}}]),
            headers=VIEW,
        )
    [event] = chinese
    assert (event["time"], event["timeEnd"]) == (ms(midnight), ms(midnight + timedelta(days=1)))
    assert event["title"] == "数据不全的一天"
    assert event["tags"] == ["partial"]
    assert str(event["text"]).startswith(f"{cut.isoformat()} · Prometheus 的保留期")
    [in_english] = english
    assert in_english["title"] == "Partial day"
    assert "Prometheus's retention covered only part of this day" in str(in_english["text"])
    assert by_kind == english
    assert after == []  # the range starts with the whole day
    assert incidents_still == []
    assert unknown_lang.status_code == 400
    assert unknown_lang.json() == {"message": "payload.lang 'fr' is not one of zh-CN, en"}


async def test_a_partial_day_of_a_dst_change_spans_its_local_day(app_factory: AppFactory) -> None:
    """In a zone with DST a partial day's region is its local day, 23 or 25 hours long."""
    tz = ZoneInfo(DST_ZONE)
    days = dst_days(datetime.now(UTC).timestamp())
    async with app_factory(timezone=DST_ZONE, alerts={"locale": "en"}) as (app, client):
        async with app.state.context.sessions.begin() as session:
            for day in days.values():
                run_id = await repository.claim_day(
                    session, day, trigger="test", worker="test", now=datetime.now(UTC), lease=timedelta(0)
                )
                assert run_id is not None
                await repository.finish_run(session, run_id, status=RunStatus.PARTIAL, duration_ms=1.0)
        first, last = min(days.values()), max(days.values())
        answer = await client.post(
            "/grafana/query",
            json=query_body(
                [{"refId": "Anno", "target": "partial_days"}],
                start=(first - timedelta(days=1)).isoformat() + "T00:00:00Z",
                end=(last + timedelta(days=2)).isoformat() + "T00:00:00Z",
            ),
            headers=VIEW,
        )
    assert answer.status_code == 200, answer.text
    events = annotation_events(to_data_frame(answer.json()[0]))
    expected = [
        (
            ms(datetime.combine(day, time(0), tzinfo=tz)),
            ms(datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)),
        )
        for day in sorted(days.values())
    ]
    assert [(e["time"], e["timeEnd"]) for e in events] == expected
    assert sorted(int(e["timeEnd"]) - int(e["time"]) for e in events) == [23 * 3_600_000, 25 * 3_600_000]
    assert {e["title"] for e in events} == {"Partial day"}  # the team's language (alerts.locale)


async def test_a_dashboard_filtered_to_services_or_namespaces_shows_their_partial_days(
    app_factory: AppFactory, database_url: str
) -> None:
    """Four partial days, each with figures of other entities: the payload's services (any
    spelling) and namespaces, and ad hoc ``service``/``namespace`` filters, leave the partial days
    the chosen entities have figures on; no choice (or ``$__all``) leaves all of them. A filter it
    cannot apply is a 400 naming it."""
    checkout_day, payments_day, catalog_day, cluster_day = (date(2025, 1, d) for d in (6, 7, 8, 9))
    whole_day = date(2025, 1, 10)  # everything has figures, but its run was ok: never shown
    stored = {
        checkout_day: [*service_day(CHECKOUT, checkout_day), *other_day(checkout_day)[:2]],  # + shop
        payments_day: service_day(PAYMENTS, payments_day),
        catalog_day: [*service_day(SEARCH, catalog_day), *other_day(catalog_day)[2:4]],  # + catalog
        cluster_day: other_day(cluster_day)[4:],
        whole_day: [*service_day(CHECKOUT, whole_day), *other_day(whole_day)],
    }
    async with app_factory(database_url=database_url, timezone="UTC") as (app, client):
        async with app.state.context.sessions.begin() as session:
            for day, values in stored.items():
                await repository.replace_day(session, day, values)
                run_id = await repository.claim_day(
                    session, day, trigger="test", worker="test", now=datetime.now(UTC), lease=timedelta(0)
                )
                assert run_id is not None
                status = RunStatus.OK if day == whole_day else RunStatus.PARTIAL
                await repository.finish_run(session, run_id, status=status, duration_ms=1.0)

        async def ask(payload: dict[str, Any], filters: list[dict[str, str]] | None = None) -> httpx.Response:
            target = {"refId": "Anno", "target": "partial_days", "payload": payload}
            body = query_body(
                [target], start="2025-01-05T00:00:00Z", end="2025-01-12T00:00:00Z", filters=filters
            )
            return await client.post("/grafana/query", json=body, headers=VIEW)

        async def days(payload: dict[str, Any], filters: list[dict[str, str]] | None = None) -> list[date]:
            answer = await ask(payload, filters)
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            events = annotation_events(to_data_frame(frame))
            return [datetime.fromtimestamp(int(e["time"]) / 1000, UTC).date() for e in events]

        def where(key: str, operator: str, value: str) -> list[dict[str, str]]:
            return [{"key": key, "operator": operator, "value": value}]

        shown = {
            "everything": await days({}),
            "all": await days({"service": "$__all", "namespace": "$__all"}),
            "checkout": await days({"service": regex(CHECKOUT)}),
            "short name": await days({"service": "checkout"}),
            "two": await days({"service": regex(CHECKOUT, PAYMENTS)}),
            "code mode": await days({"entity": [PAYMENTS, SEARCH]}),
            "shop": await days({"namespace": "shop"}),
            "catalog": await days({"namespace": "catalog"}),
            "checkout in catalog": await days({"service": regex(CHECKOUT), "namespace": "catalog"}),
            "no such service": await days({"service": "nope.shop.svc.cluster.local"}),
            "ad hoc service": await days({}, where("service", "=", PAYMENTS)),
            "ad hoc regex": await days({"service": "$__all"}, where("service", "=~", "(pay|search).*")),
            "ad hoc not shop": await days({}, where("namespace", "!=", "shop")),
            "ad hoc other kind": await days({}, where("oncall_schedule", "=", "sre")),  # ignored
        }
        unknown_field = await ask({"schedule": "sre"})
        not_interpolated = await ask({"namespace": "$namespace"})
        not_a_name = await ask({"service": {"name": CHECKOUT}})
        bad_key = await ask({}, where("pod", "=", "checkout-1"))
        bad_pattern = await ask({}, where("service", "=~", "(a+)+"))
    every = [checkout_day, payments_day, catalog_day, cluster_day]
    assert shown == {
        "everything": every,
        "all": every,
        "checkout": [checkout_day],
        "short name": [checkout_day],
        "two": [checkout_day, payments_day],
        "code mode": [payments_day, catalog_day],
        "shop": [checkout_day, payments_day],  # its services' days, and its own CPU and memory
        "catalog": [catalog_day],
        "checkout in catalog": [],
        "no such service": [],
        "ad hoc service": [payments_day],
        "ad hoc regex": [payments_day, catalog_day],
        "ad hoc not shop": [catalog_day],  # search and the catalog namespace
        "ad hoc other kind": every,
    }
    assert unknown_field.status_code == 400
    assert unknown_field.json() == {
        "message": "metric partial_days has no payload 'schedule' (it has: service, namespace, lang)"
    }
    assert not_interpolated.status_code == 400
    assert "payload.namespace '$namespace' is a Grafana variable that was not interpolated" in str(
        not_interpolated.json()["message"]
    )
    assert not_a_name.status_code == 400
    assert not_a_name.json() == {"message": "payload.service must be a string or a list of strings, got dict"}
    assert bad_key.status_code == 400
    assert str(bad_key.json()["message"]).startswith("filters[0]: key 'pod' is not one of ")
    assert bad_pattern.status_code == 400
    assert "exponential time" in str(bad_pattern.json()["message"])


async def test_a_dashboards_service_annotates_its_incidents_in_its_namespace_only(
    app_factory: AppFactory, database_url: str
) -> None:
    """``payments`` of namespace ``other`` is another service than the dashboard's
    ``payments.shop.svc.cluster.local``: its incident is not annotated there; one whose alert says no
    namespace is (it may be any); a malformed choice is a 400 naming it."""
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()
    started = (now - timedelta(hours=1)).replace(microsecond=0)
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        opened = {}
        for group, labels in (
            ("PaymentsShop", {"service": "payments", "namespace": "shop"}),
            ("PaymentsOther", {"service": "payments", "namespace": "other"}),
            ("PaymentsAnywhere", {"service": "payments"}),
        ):
            body = payload(group, [alert(group, started=started, **labels)])
            answer = await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
            opened[await incident_of(client, answer)] = group

        async def titles(service: str) -> list[str]:
            target = {"refId": "Anno", "target": "incidents", "payload": {"service": service}}
            answer = await client.post(
                "/grafana/query", json=query_body([target], start=start, end=end), headers=VIEW
            )
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return sorted(str(e["title"]).split()[1] for e in annotation_events(to_data_frame(frame)))

        shop = await titles(regex(PAYMENTS))
        other = await titles("payments.other")
        bare = await titles("payments")
        target = {"refId": "Anno", "target": "incidents", "payload": {"service": "payments..shop"}}
        malformed = await client.post(
            "/grafana/query", json=query_body([target], start=start, end=end), headers=VIEW
        )
    assert len(opened) == 3
    assert shop == ["PaymentsAnywhere", "PaymentsShop"]
    assert other == ["PaymentsAnywhere", "PaymentsOther"]
    assert bare == ["PaymentsAnywhere", "PaymentsOther", "PaymentsShop"]
    assert malformed.status_code == 400
    assert "payload.service" in malformed.json()["message"]
    assert "empty part around a dot" in malformed.json()["message"]


async def test_ad_hoc_service_filters_annotate_incidents_as_the_incident_filter_does(
    app_factory: AppFactory, database_url: str
) -> None:
    """An ad hoc ``service`` filter finds incidents as the incident list's ``?service=`` does:
    ``payments.shop`` is ``payments`` in ``shop`` (or an alert without a namespace), a bare name is
    in every namespace, ``!=`` leaves the incidents of none of them; a regex sees the canonical key of
    the services as the alerts name them; a malformed value is a 400 naming the filter."""
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()
    started = (now - timedelta(hours=1)).replace(microsecond=0)
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        for group, labels in (
            ("PaymentsShop", {"service": "payments", "namespace": "shop"}),
            ("PaymentsOther", {"service": "payments", "namespace": "other"}),
            ("PaymentsAnywhere", {"service": "payments"}),
            ("CartShop", {"service": "cart.shop"}),
        ):
            body = payload(group, [alert(group, started=started, **labels)])
            answer = await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
            await incident_of(client, answer)

        async def ask(operator: str, value: str) -> httpx.Response:
            target = {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}}
            filters = [{"key": "service", "operator": operator, "value": value}]
            body = query_body([target], filters=filters, start=start, end=end)
            return await client.post("/grafana/query", json=body, headers=VIEW)

        async def titles(operator: str, value: str) -> list[str]:
            answer = await ask(operator, value)
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return sorted(str(e["title"]).split()[1] for e in annotation_events(to_data_frame(frame)))

        shop = await titles("=", PAYMENTS)
        other = await titles("=", "payments.other")
        bare = await titles("=", "payments")
        not_shop = await titles("!=", "payments.shop")
        cart_key = await titles("=~", "cart\\.shop")
        not_payments = await titles("!~", "pay.*")
        malformed = await ask("=", "payments..shop")
    assert shop == ["PaymentsAnywhere", "PaymentsShop"]
    assert other == ["PaymentsAnywhere", "PaymentsOther"]
    assert bare == ["PaymentsAnywhere", "PaymentsOther", "PaymentsShop"]
    assert not_shop == ["CartShop", "PaymentsOther"]
    assert cart_key == ["CartShop"]
    assert not_payments == ["CartShop"]
    assert malformed.status_code == 400
    assert malformed.json()["message"] == (
        "filters[0]: 'payments..shop' has an empty part around a dot: write 'name' or 'name.namespace'"
    )


@pytest.mark.timeout(240)
async def test_a_namespaces_incidents_are_annotated_behind_a_thousand_newer_ones_of_others(
    app_factory: AppFactory, database_url: str
) -> None:
    """A panel shows at most the thousand newest incidents. A namespace filter (or a service regex),
    which the alerts' labels decide, is applied to every incident of the range, not only to the
    thousand newest of all: ``payments`` of ``shop``, older than a thousand incidents of another
    namespace, is still annotated on a dashboard filtered to ``shop``."""
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=3)).isoformat(), (now + timedelta(hours=1)).isoformat()
    older = (now - timedelta(hours=2)).replace(microsecond=0)
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        body = payload(
            "PaymentsShop", [alert("PaymentsShop", started=older, service="payments", namespace="shop")]
        )
        await incident_of(
            client, await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
        )
        noise = [
            payload(
                f"Noise{i}",
                [
                    alert(
                        f"Noise{i}",
                        started=older + timedelta(minutes=1, seconds=i),
                        service=f"svc{i % 7}",
                        namespace="other",
                    )
                ],
            )
            for i in range(MAX_ANNOTATIONS)
        ]
        answers: list[httpx.Response] = []
        for at in range(0, len(noise), 50):
            answers += await asyncio.gather(
                *(
                    client.post("/api/v1/alerts/alertmanager", json=one, headers=bearer_webhook())
                    for one in noise[at : at + 50]
                )
            )
        await incident_of(client, answers[-1], timeout_s=120)

        async def titles(filters: list[dict[str, str]]) -> list[str]:
            target = {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}}
            answer = await client.post(
                "/grafana/query",
                json=query_body([target], filters=filters, start=start, end=end),
                headers=VIEW,
            )
            assert answer.status_code == 200, answer.text
            [frame] = answer.json()
            return [str(e["title"]).split()[1] for e in annotation_events(to_data_frame(frame))]

        unfiltered = await titles([])
        in_shop = await titles([{"key": "namespace", "operator": "=", "value": "shop"}])
        by_regex = await titles([{"key": "service", "operator": "=~", "value": "payments\\.shop"}])
        outside_shop = await titles([{"key": "namespace", "operator": "!=", "value": "shop"}])
    assert all(a.status_code == 202 for a in answers)
    assert len(unfiltered) == MAX_ANNOTATIONS  # the thousand newest: every noise incident
    assert "PaymentsShop" not in unfiltered
    assert in_shop == ["PaymentsShop"]
    assert by_regex == ["PaymentsShop"]
    assert len(outside_shop) == MAX_ANNOTATIONS
    assert "PaymentsShop" not in outside_shop

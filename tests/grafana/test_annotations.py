"""Incidents from Alertmanager as Grafana annotations, and schedules as a variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.alerts import heartbeats
from tests.alerts.support import alert, alerting_config, bearer_webhook, incidents, payload
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import CHECKOUT, PAYMENTS, query_body, regex
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of

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

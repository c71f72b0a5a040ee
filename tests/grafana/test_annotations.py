"""Incidents from Alertmanager as Grafana annotations, and schedules as a variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.alerts.support import alert, alerting_config, bearer_webhook, payload
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import CHECKOUT, PAYMENTS, query_body, regex
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer

VIEW = bearer(VIEWER_TOKEN)


async def test_incidents_are_annotations_of_their_services(app_factory: AppFactory) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    async with app_factory(**alerting_config()) as (_app, client):
        checkout = payload("CheckoutErrors", [alert("CheckoutErrors", service="checkout")])
        cart = payload("CartDown", [alert("CartDown", service="cart")])
        first = (
            await client.post("/api/v1/alerts/alertmanager", json=checkout, headers=bearer_webhook())
        ).json()
        await client.post("/api/v1/alerts/alertmanager", json=cart, headers=bearer_webhook())

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
    assert event["title"] == f"#{first['incident_id']} CheckoutErrors"
    assert "triggered" in str(event["text"])
    assert event["tags"] == ["service:checkout", "triggered", "critical"]
    assert event["time"] == event["timeEnd"]  # still open
    assert abs(int(str(event["time"])) / 1000 - now.timestamp()) < 60
    assert len(everything) == 2
    assert [e["tags"][0] for e in filtered] == ["service:cart"]  # type: ignore[index]
    assert none == []
    assert schedules.json() == [{"__text": "sre", "__value": "sre"}]

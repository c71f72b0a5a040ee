"""End to end: the session Prometheus history rolled up, then read through the Grafana datasource."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.grafana.frames import to_data_frame
from tests.grafana.support import builder_target, query_body, regex
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import CHECKOUT, NAMESPACE, PAYMENTS, dataset_of, utc_days

VIEW = bearer(VIEWER_TOKEN)


async def test_rolled_up_days_read_through_grafana(
    app_factory: AppFactory, prometheus: RunningPrometheus
) -> None:
    days = [d.isoformat() for d in utc_days(dataset_of(prometheus))]
    async with app_factory(prometheus={"url": prometheus.url}, timezone="UTC") as (_app, client):
        run = await client.post(
            "/api/v1/rollups/run",
            json={"from": days[0], "to": days[-1], "wait": True},
            headers=bearer(OPERATOR_TOKEN),
        )
        assert run.status_code == 200, run.text
        services = await client.post(
            "/grafana/variable", json={"payload": {"target": "services"}}, headers=VIEW
        )
        body = query_body(
            [
                builder_target(
                    "A", "service.error_rate", entity=regex(CHECKOUT, PAYMENTS), granularity="day"
                ),
                builder_target("B", "namespace.cpu_cores_avg", entity=regex(NAMESPACE), granularity="day"),
            ],
            start=f"{days[0]}T00:00:00.000Z",
            end=f"{days[-1]}T23:59:59.999Z",
        )
        answer = await client.post("/grafana/query", json=body, headers=VIEW)
        report = await client.get(
            f"/api/v1/reports/services/{PAYMENTS}/daily",
            params={"from": days[0], "to": days[-1]},
            headers=VIEW,
        )
    assert [o["__value"] for o in services.json()] == [CHECKOUT, PAYMENTS]
    assert answer.status_code == 200, answer.text
    checkout, payments, shop = (to_data_frame(item) for item in answer.json())
    assert [f.name for f in (checkout, payments, shop)] == [
        f"{CHECKOUT} error_rate",
        f"{PAYMENTS} error_rate",
        f"{NAMESPACE} cpu_cores_avg",
    ]
    stamps = [
        int(datetime.fromisoformat(f"{d}T00:00:00+00:00").astimezone(UTC).timestamp() * 1000) for d in days
    ]
    assert payments.fields[0].values == stamps
    assert payments.fields[1].values == [row["error_rate"] for row in report.json()["days"]]
    assert payments.fields[1].values[1] > payments.fields[1].values[0] + 0.01  # the incident on day two
    assert all(0.9 < value < 1.5 for value in shop.fields[1].values)

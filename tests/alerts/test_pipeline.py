"""From Alertmanager's webhook to incidents, routes, escalations and the outbox (no channel sends here:
the worker is off, so what the outbox holds is exactly what the pipeline wrote)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import escalation, heartbeats
from tests.alerts.support import (
    WEBHOOK,
    alert,
    alerting_config,
    bearer_webhook,
    chains,
    incidents,
    mentions,
    outbox,
    payload,
)
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of
from tests.test_observability import sample

Sessions = async_sessionmaker[AsyncSession]


def on_call_now(minutes: float = 0) -> str:
    """The issue's rotation, computed independently: alice and bob weekly from Monday 2026-01-05 09:00;
    who holds it ``minutes`` from now (a step :func:`advance` runs as if later pages who is on call
    then: near Monday 09:00 in Shanghai that is the other one)."""
    local = (datetime.now(UTC) + timedelta(minutes=minutes)).astimezone(ZoneInfo("Asia/Shanghai"))
    local = local.replace(tzinfo=None)
    weeks = (local - datetime(2026, 1, 5, 9, 0)) // timedelta(weeks=1)
    return ["alice", "bob"][weeks % 2]


def sessions_of(app: FastAPI) -> Sessions:
    sessions: Sessions = app.state.context.sessions
    return sessions


async def post(client: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    """Posts the webhook and waits until it is applied (what the tests then read follows from it)."""
    answer = await client.post(WEBHOOK, json=body, headers=bearer_webhook())
    if answer.status_code == 202:
        await applied(client, answer)
    return answer


async def advance(app: FastAPI, minutes: float) -> int:
    """Runs the escalation worker's step as if ``minutes`` had passed."""
    context = app.state.context
    now = datetime.now(UTC) + timedelta(minutes=minutes)
    async with context.sessions.begin() as session:
        return await escalation.run_due(session, context.settings, now, await context.alerts.signing_key())


async def test_a_firing_group_opens_an_incident_and_pages_who_is_on_call(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        body = payload(
            "HighErrorRate",
            [alert("HighErrorRate", service="payments"), alert("HighErrorRate", service="cart")],
        )
        answer = await post(client, body)
        again = await post(client, body)  # Alertmanager repeats the group: no second page
        opened = await applied(client, answer)
        detail = (await client.get(f"/api/v1/incidents/{opened}", headers=bearer(VIEWER_TOKEN))).json()
        repeated = await applied(client, again)
        status = (await client.get(answer.json()["url"], headers=bearer(VIEWER_TOKEN))).json()
        stored = await outbox(sessions_of(app))
    assert answer.status_code == 202
    assert answer.json() == {
        "status": "accepted",
        "id": answer.json()["id"],
        "alerts": 2,
        "url": f"/api/v1/alerts/intake/{answer.json()['id']}",
    }
    assert again.json()["id"] > answer.json()["id"]
    assert status["status"] == "applied"
    assert status["incident_url"] == f"/api/v1/incidents/{detail['id']}"
    assert status["alerts"] == 2
    assert repeated == detail["id"]
    assert detail["status"] == "triggered"
    assert detail["title"] == "HighErrorRate"
    assert detail["severity"] == "critical"
    assert detail["services"] == ["payments", "cart"]
    assert detail["firing"] == 2
    assert len(detail["alerts"]) == 2
    assert [e["kind"] for e in detail["timeline"]] == ["received", "routed", "escalated"]
    assert detail["timeline"][2]["detail"]["mentions"] == [on_call_now()]
    assert [(d.channel, d.kind, d.status) for d in stored] == [("ops-robot", "trigger", "pending")]
    assert mentions(stored[0]) == [on_call_now()]
    notification = json.loads(stored[0].payload)
    assert notification["ack_url"].startswith("https://panorama.example.com/ack/")
    # the incident's page, with a view link that opens it read-only (tests/pages check it opens)
    assert notification["incident_url"].startswith(
        f"https://panorama.example.com/incidents/{detail['id']}?view="
    )
    assert notification["timezone"] == "Asia/Shanghai"
    assert notification["locale"] == "zh-CN"


async def test_updates_and_resolution_reach_those_paged(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        first = alert("DiskFull", instance="node-1")
        second = alert("DiskFull", instance="node-2")
        incident_id = await applied(client, await post(client, payload("DiskFull", [first])))
        await post(client, payload("DiskFull", [first, second]))  # a new alert joins the group
        await post(client, payload("DiskFull", [first, second]))  # nothing new
        resolved = [{**a, "status": "resolved"} for a in (first, second)]
        await post(client, payload("DiskFull", resolved))
        detail = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))).json()
        stored = await outbox(sessions_of(app))
        reopened = await applied(client, await post(client, payload("DiskFull", [first])))
    assert [(d.kind, d.channel) for d in stored] == [
        ("trigger", "ops-robot"),
        ("update", "ops-robot"),
        ("resolve", "ops-robot"),
    ]
    assert all(mentions(d) == [on_call_now()] for d in stored)
    assert json.loads(stored[2].payload)["ack_url"] is None
    assert detail["status"] == "resolved"
    assert detail["resolved_by"] == "alertmanager"
    assert detail["firing"] == 0
    assert [e["kind"] for e in detail["timeline"]] == [
        "received",
        "routed",
        "escalated",
        "updated",
        "resolved",
    ]
    assert reopened != incident_id  # the group fires again: a new incident


async def test_routes_first_match_continue_and_no_escalation(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        both = await incident_of(
            client, await post(client, payload("PayLatency", [alert("PayLatency", team="payments")]))
        )
        info = await incident_of(
            client, await post(client, payload("Deploy", [alert("Deploy", severity="info")]))
        )
        nowhere = await incident_of(
            client, await post(client, payload("Odd", [alert("Odd", severity="debug")]))
        )
        stored = await outbox(sessions_of(app))
        found = {i.id: i for i in await incidents(sessions_of(app))}
    assert sorted((d.incident_id, d.channel) for d in stored) == [
        (both, "audit"),
        (both, "ops-robot"),
    ]
    assert found[both].muted is None
    assert found[info].muted == "no route pages anybody"
    assert found[nowhere].muted == "no route pages anybody"


async def test_escalation_waits_then_repeats_and_ack_stops_it(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        incident_id = await applied(client, await post(client, payload("Down", [alert("Down")])))
        assert await advance(app, 4) == 0  # the 5-minute wait is not over
        assert await advance(app, 6) == 1
        after_wait = await outbox(sessions_of(app))
        assert [(d.channel, d.kind, mentions(d)) for d in after_wait[1:3]] == [
            ("ops-robot", "escalate", ["bob"]),
            ("ops-mail", "escalate", ["bob"]),
        ]
        # The second round (repeat: 1) starts at once with the schedule's step, then waits again.
        assert [(d.channel, mentions(d)) for d in after_wait[3:]] == [("ops-robot", [on_call_now(6)])]
        [chain] = await chains(sessions_of(app))
        assert (chain.step, chain.round) == (2, 1)
        ack = await client.post(f"/api/v1/incidents/{incident_id}/ack", headers=bearer(OPERATOR_TOKEN))
        assert await advance(app, 60) == 0
        final = await outbox(sessions_of(app))
    assert ack.status_code == 200
    assert ack.json()["status"] == "acknowledged"
    assert ack.json()["acknowledged_by"] == "operator-test"
    assert len(final) == len(after_wait) == 4


async def test_the_chain_ends_after_its_repeats(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        await post(client, payload("Down", [alert("Down")]))
        for minutes in (6, 12, 18, 24, 30):
            await advance(app, minutes)
        [chain] = await chains(sessions_of(app))
        sent = await outbox(sessions_of(app))
    assert chain.due_at is None
    assert [d.kind for d in sent] == ["trigger", "escalate", "escalate", "escalate", "escalate", "escalate"]


async def test_snooze_pauses_the_escalation(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        incident_id = await applied(client, await post(client, payload("Down", [alert("Down")])))
        snoozed = await client.post(
            f"/api/v1/incidents/{incident_id}/snooze", json={"minutes": 30}, headers=bearer(OPERATOR_TOKEN)
        )
        assert await advance(app, 10) == 0
        assert await advance(app, 31) == 1
        bad = await client.post(
            f"/api/v1/incidents/{incident_id}/snooze", json={"minutes": 0}, headers=bearer(OPERATOR_TOKEN)
        )
    assert snoozed.status_code == 200
    assert snoozed.json()["snoozed_until"] is not None
    assert bad.status_code == 400


async def test_maintenance_records_but_pages_nobody(app_factory: AppFactory) -> None:
    now = datetime.now(UTC)
    async with app_factory(**alerting_config()) as (app, client):
        window = await client.post(
            "/api/v1/maintenance",
            json={
                "matchers": ['service=~"pay.*"'],
                "start": (now - timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(hours=1)).isoformat(),
                "comment": "database upgrade",
            },
            headers=bearer(OPERATOR_TOKEN),
        )
        muted = await incident_of(
            client, await post(client, payload("Err", [alert("Err", service="payments")]))
        )
        paged = await incident_of(
            client, await post(client, payload("Err2", [alert("Err2", service="cart")]))
        )
        listed = (await client.get("/api/v1/maintenance", headers=bearer(VIEWER_TOKEN))).json()
        stored = await outbox(sessions_of(app))
        found = {i.id: i for i in await incidents(sessions_of(app))}
        deleted = await client.delete(
            f"/api/v1/maintenance/{window.json()['id']}", headers=bearer(OPERATOR_TOKEN)
        )
    assert window.status_code == 201
    assert found[muted].muted is not None
    assert "database upgrade" in (found[muted].muted or "")
    assert [d.incident_id for d in stored] == [paged]
    assert listed["maintenance"][0]["matchers"] == ['service=~"pay.*"']
    assert deleted.status_code == 204


async def test_mute_time_intervals(app_factory: AppFactory) -> None:
    config = alerting_config()
    config["time_intervals"] = [
        {"name": "always", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]}
    ]
    config["routes"][3]["mute_time_intervals"] = ["always"]
    async with app_factory(**config) as (app, client):
        answer = await incident_of(client, await post(client, payload("Down", [alert("Down")])))
        found = await incidents(sessions_of(app))
        stored = await outbox(sessions_of(app))
    assert stored == []
    assert found[0].id == answer
    assert found[0].muted == "mute time interval always"


async def test_heartbeat_pages_when_the_watchdog_stops(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (app, client):
        context = app.state.context
        key = await context.alerts.signing_key()
        watchdog = payload("Watchdog", [alert("Watchdog", severity="none")])
        assert (await applied(client, await post(client, watchdog))) is None
        now = datetime.now(UTC)
        async with context.sessions.begin() as session:
            assert await heartbeats.check(session, context.settings, now + timedelta(minutes=4), key) == 0
        async with context.sessions.begin() as session:
            assert await heartbeats.check(session, context.settings, now + timedelta(minutes=6), key) == 1
        async with context.sessions.begin() as session:
            assert await heartbeats.check(session, context.settings, now + timedelta(minutes=9), key) == 0
        [missing] = await incidents(context.sessions)
        paged = await outbox(context.sessions)
        await post(client, watchdog)  # it is back
        [back] = await incidents(context.sessions)
    assert missing.title == '心跳丢失：alertname="Watchdog"'  # alerts.locale: zh-CN by default
    assert missing.severity == "critical"
    assert [(d.channel, d.kind) for d in paged] == [("ops-robot", "heartbeat")]
    assert back.status == "resolved"
    assert back.resolved_by == "heartbeat"


async def test_acknowledge_link(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config(locale="en")) as (app, client):
        await post(client, payload("Down", [alert("Down")]))
        [delivery] = await outbox(sessions_of(app))
        link = json.loads(delivery.payload)["ack_url"]
        path = link.removeprefix("https://panorama.example.com")
        page = await client.get(path)
        confirm = await client.post(path)
        twice = await client.post(path)
        forged = await client.get(path[:-3] + "abc")
        junk = await client.get("/ack/not-a-token")
        [incident] = await incidents(sessions_of(app))
    assert page.status_code == 200
    assert "Acknowledge this incident" in page.text
    assert '<form method="post">' in page.text
    assert confirm.status_code == 200
    assert "Acknowledged" in confirm.text
    assert "There is nothing to acknowledge" in twice.text
    assert incident.status == "acknowledged"
    assert incident.acknowledged_by == "ack link"
    assert forged.status_code == 401
    assert junk.status_code == 401


async def test_an_ack_link_cannot_be_replayed_against_another_incident(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config(locale="en")) as (app, client):
        first = await applied(client, await post(client, payload("Down", [alert("Down")])))
        second = await applied(client, await post(client, payload("Slow", [alert("Slow")])))
        links = {
            json.loads(d.payload)["incident_id"]: json.loads(d.payload)["ack_url"]
            for d in await outbox(sessions_of(app))
        }
        token = links[first].rsplit("/", 1)[1]
        _, expires, signature = token.split(".")
        replayed = await client.post(f"/ack/{second}.{expires}.{signature}")
        extended = await client.post(f"/ack/{first}.{int(expires) + 86400}.{signature}")
        tampered = await client.post(f"/ack/{first}.{expires}.{signature[:-2]}xx")
        states = {i.id: i.status for i in await incidents(sessions_of(app))}
        own = await client.post(f"/ack/{token}")
        after = {i.id: i.status for i in await incidents(sessions_of(app))}
    assert [replayed.status_code, extended.status_code, tampered.status_code] == [401, 401, 401]
    assert states == {first: "triggered", second: "triggered"}
    assert own.status_code == 200
    assert after == {first: "acknowledged", second: "triggered"}


async def test_an_expired_link_says_so(app_factory: AppFactory) -> None:
    from app.alerts import ack

    async with app_factory(**alerting_config()) as (app, client):
        key = await app.state.context.alerts.signing_key()
        token = ack.sign(key, 1, datetime.now(UTC) - timedelta(seconds=1))
        answer = await client.get(f"/ack/{token}")
    assert answer.status_code == 410
    assert "链接已过期" in answer.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-value-xx"}, 401),
        ({"Authorization": f"Bearer {VIEWER_TOKEN}"}, 401),
        ({"Authorization": f"Bearer {OPERATOR_TOKEN}"}, 202),
        (
            {"Authorization": "Basic YWxlcnRtYW5hZ2VyOnMzY3JldC1wYXNzd29yZA=="},
            202,
        ),  # alertmanager:s3cret-password
        ({"Authorization": "Basic YWxlcnRtYW5hZ2VyOndyb25n"}, 401),
        (None, 202),
    ],
)
async def test_webhook_auth(app_factory: AppFactory, headers: dict[str, str] | None, status: int) -> None:
    config = alerting_config(webhook_basic_auth={"username": "alertmanager", "password": "s3cret-password"})
    async with app_factory(**config) as (_app, client):
        body = payload("Down", [alert("Down")])
        answer = await client.post(
            WEBHOOK, json=body, headers=bearer_webhook() if headers is None else headers
        )
    assert answer.status_code == status
    if status == 401:
        assert "alerts.webhook_token" in answer.json()["message"]


async def chunks() -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked), larger than the limit."""
    for _ in range(2):
        yield b"x" * 3000


async def test_payloads_that_can_never_succeed_are_4xx(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config(max_body_bytes=4096)) as (app, client):
        not_json = await client.post(WEBHOOK, content=b"{oops", headers=bearer_webhook())
        version = await post(client, {**payload("Down", [alert("Down")]), "version": "3"})
        no_key = await post(
            client, {k: v for k, v in payload("Down", [alert("Down")]).items() if k != "groupKey"}
        )
        bad_alert = await post(client, payload("Down", [{**alert("Down"), "status": "exploded"}]))
        big = await post(client, payload("Big", [alert("Big", n=str(i), pad="x" * 200) for i in range(40)]))
        chunked = await client.post(
            WEBHOOK,
            content=chunks(),
            headers={**bearer_webhook(), "Content-Type": "application/json"},
        )
        stored = await incidents(sessions_of(app))
    assert not_json.status_code == 400
    assert "not JSON" in not_json.json()["message"]
    assert version.status_code == 400
    assert "version '3'" in version.json()["message"]
    assert no_key.status_code == 400
    assert "groupKey" in no_key.json()["message"]
    assert bad_alert.status_code == 400
    assert "alerts[0].status" in bad_alert.json()["message"]
    assert big.status_code == 413
    assert chunked.status_code == 413
    assert stored == []  # nothing stored half-way


async def test_the_webhook_answers_like_every_route_though_the_http_stack_calls_it_directly(
    app_factory: AppFactory,
) -> None:
    """The webhook skips FastAPI's routing (app.http_stack): its answers still carry the security
    headers and the Bearer challenge, are counted under its route template, and say what they stored."""
    async with app_factory(**alerting_config()) as (_app, client):
        stored = await post(client, payload("Down", [alert("Down"), alert("Down", instance="b:1")]))
        refused = await client.post(WEBHOOK, json=payload("Down", [alert("Down")]))
        wrong_method = await client.get(WEBHOOK, headers=bearer_webhook())
        exposition = (await client.get("/metrics")).text
        incident = await applied(client, stored)
        after = (await client.get("/metrics")).text
        unknown = await client.get("/api/v1/alerts/intake/999999", headers=bearer(VIEWER_TOKEN))
        anonymous = await client.get(stored.json()["url"])
    assert unknown.status_code == 404
    assert "no journaled webhook 999999" in unknown.json()["message"]
    assert anonymous.status_code == 401
    assert stored.headers["content-type"] == "application/json"
    assert stored.status_code == 202
    assert stored.json() == {
        "status": "accepted",
        "id": stored.json()["id"],
        "alerts": 2,
        "url": f"/api/v1/alerts/intake/{stored.json()['id']}",
    }
    assert isinstance(incident, int)
    assert stored.headers["x-content-type-options"] == "nosniff"
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"] == "unauthorized"
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert wrong_method.status_code == 405  # other methods still go through FastAPI's router
    assert sample(exposition, "panorama_http_requests_total", route=WEBHOOK, method="POST", status="202") == 1
    assert sample(after, "panorama_alert_journal_apply_lag_seconds_count") == 1
    assert sample(after, "panorama_alert_journal_backlog") == 0
    assert sample(after, "panorama_alert_journal_failed_total") == 0
    assert sample(exposition, "panorama_http_requests_total", route=WEBHOOK, method="POST", status="401") == 1

"""The schedule endpoints: who is on call, the shifts for a calendar, overrides."""

from __future__ import annotations

import httpx

from tests.alerts.support import alerting_config
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer

VIEW, OPERATE = bearer(VIEWER_TOKEN), bearer(OPERATOR_TOKEN)
SRE = "/api/v1/schedules/sre"


async def get(client: httpx.AsyncClient, path: str, **params: str) -> httpx.Response:
    return await client.get(path, params=params, headers=VIEW)


async def test_on_call_and_shifts(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        first_week = await get(client, f"{SRE}/oncall", at="2026-01-06T12:00:00+08:00")
        second_week = await get(client, f"{SRE}/oncall", at="2026-01-12T09:00:00+08:00")
        before_handoff = await get(client, f"{SRE}/oncall", at="2026-01-12T08:59:59+08:00")
        before_start = await get(client, f"{SRE}/oncall", at="2025-12-31T12:00:00+08:00")
        month = await get(
            client,
            f"{SRE}/shifts",
            **{"from": "2026-01-05T00:00:00+08:00", "to": "2026-02-02T00:00:00+08:00"},
        )
    assert first_week.json()["user"] == "alice"
    assert first_week.json()["source"] == "rotation"
    assert second_week.json()["user"] == "bob"
    assert before_handoff.json()["user"] == "alice"
    assert before_start.json()["user"] is None
    body = month.json()
    assert body["timezone"] == "Asia/Shanghai"
    assert [s["user"] for s in body["shifts"]] == ["alice", "bob", "alice", "bob"]  # nobody before the start
    assert body["shifts"][0]["start"].startswith("2026-01-05T09:00:00")
    assert body["shifts"][1]["start"].startswith("2026-01-12T09:00:00")


async def test_an_override_wins_and_can_be_removed(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        created = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-07T18:00:00+08:00", "end": "2026-01-08T09:00:00+08:00"},
            headers=OPERATE,
        )
        during = await get(client, f"{SRE}/oncall", at="2026-01-07T23:00:00+08:00")
        after = await get(client, f"{SRE}/oncall", at="2026-01-08T10:00:00+08:00")
        day = await get(
            client,
            f"{SRE}/shifts",
            **{"from": "2026-01-07T00:00:00+08:00", "to": "2026-01-09T00:00:00+08:00"},
        )
        listed = (await get(client, f"{SRE}/overrides")).json()
        removed = await client.delete(f"{SRE}/overrides/{created.json()['id']}", headers=OPERATE)
        again = await get(client, f"{SRE}/oncall", at="2026-01-07T23:00:00+08:00")
        missing = await client.delete(f"{SRE}/overrides/{created.json()['id']}", headers=OPERATE)
    assert created.status_code == 201
    assert created.json()["created_by"] == "operator-test"
    assert (during.json()["user"], during.json()["source"]) == ("bob", "override")
    assert after.json()["user"] == "alice"
    assert [(s["user"], s["source"]) for s in day.json()["shifts"]] == [
        ("alice", "rotation"),
        ("bob", "override"),
        ("alice", "rotation"),
    ]
    assert [o["user"] for o in listed] == ["bob"]
    assert removed.status_code == 204
    assert again.json()["user"] == "alice"
    assert missing.status_code == 404


async def test_bad_schedule_requests(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        unknown = await get(client, "/api/v1/schedules/nope/oncall")
        naive = await get(client, f"{SRE}/oncall", at="2026-01-06T12:00:00")
        reversed_ = await get(
            client, f"{SRE}/shifts", **{"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        )
        too_long = await get(
            client, f"{SRE}/shifts", **{"from": "2026-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z"}
        )
        stranger = await client.post(
            f"{SRE}/overrides",
            json={
                "user": "mallory",
                "start": "2026-01-07T18:00:00+08:00",
                "end": "2026-01-08T09:00:00+08:00",
            },
            headers=OPERATE,
        )
        backwards = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-08T18:00:00+08:00", "end": "2026-01-08T09:00:00+08:00"},
            headers=OPERATE,
        )
        viewer = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-07T18:00:00+08:00", "end": "2026-01-08T09:00:00+08:00"},
            headers=VIEW,
        )
    assert unknown.status_code == 404
    assert "known: sre" in unknown.json()["message"]
    assert naive.status_code == 400
    assert "time zone offset" in naive.json()["message"]
    assert reversed_.status_code == 400
    assert too_long.status_code == 400
    assert stranger.status_code == 400
    assert "unknown user 'mallory'" in stranger.json()["message"]
    assert backwards.status_code == 400
    assert "end must be after start" in backwards.json()["message"]
    assert viewer.status_code == 403

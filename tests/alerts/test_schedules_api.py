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


async def test_shifts_from_mid_shift_start_with_the_one_under_way_at_its_real_start(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        window = {"from": "2026-01-07T12:00:00+08:00", "to": "2026-01-14T12:00:00+08:00"}
        week = await get(client, f"{SRE}/shifts", **window)
    assert week.status_code == 200, week.text
    assert [(s["user"], s["start"], s["end"]) for s in week.json()["shifts"]] == [
        ("alice", "2026-01-05T09:00:00+08:00", "2026-01-12T09:00:00+08:00"),  # from Monday, not `from`
        ("bob", "2026-01-12T09:00:00+08:00", "2026-01-14T12:00:00+08:00"),  # the range's end still cuts
    ]


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
        bad_time = await get(client, f"{SRE}/oncall", at="tomorrow")
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
    assert bad_time.status_code == 400
    assert bad_time.json()["parameter"] == "at"
    assert bad_time.json()["message"].startswith("query parameter 'at': 'tomorrow' is not a time; use ")
    assert reversed_.status_code == 400
    assert too_long.status_code == 400
    assert stranger.status_code == 400
    assert "unknown user 'mallory'" in stranger.json()["message"]
    assert backwards.status_code == 400
    assert "end must be after start" in backwards.json()["message"]
    assert viewer.status_code == 403


async def test_times_without_an_offset_are_the_schedule_s_wall_times(app_factory: AppFactory) -> None:
    """Before the one time grammar, every schedule time needed an offset and `to` was required."""
    async with app_factory(**alerting_config()) as (_app, client):
        naive = await get(client, f"{SRE}/oncall", at="2026-01-12T08:59:59")
        handed_off = await get(client, f"{SRE}/oncall", at="2026-01-12T09:00")
        days = await get(client, f"{SRE}/shifts", **{"from": "2026-01-12", "to": "2026-01-12"})
        with_offsets = await get(
            client,
            f"{SRE}/shifts",
            **{"from": "2026-01-12T00:00:00+08:00", "to": "2026-01-13T00:00:00+08:00"},
        )
        week = await get(client, f"{SRE}/shifts", **{"from": "2026-01-05T09:00"})
        relative = await get(client, f"{SRE}/shifts", **{"from": "now-1d/d", "to": "now+1w"})
        created = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-07T18:00:00", "end": "2026-01-08T09:00:00"},
            headers=OPERATE,
        )
        covered = await get(client, f"{SRE}/oncall", at="2026-01-07T10:30:00Z")  # 18:30 in Shanghai
        naive_backwards = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-08T18:00:00", "end": "2026-01-08T09:00:00"},
            headers=OPERATE,
        )
    assert naive.status_code == 200, naive.text
    assert (naive.json()["user"], handed_off.json()["user"]) == ("alice", "bob")
    assert days.status_code == 200, days.text
    assert days.json()["shifts"] == with_offsets.json()["shifts"]
    assert [s["user"] for s in days.json()["shifts"]] == ["alice", "bob"]
    assert week.status_code == 200, week.text  # `to` defaults to 7 days after `from`
    assert [(s["user"], s["start"][:19], s["end"][:19]) for s in week.json()["shifts"]] == [
        ("alice", "2026-01-05T09:00:00", "2026-01-12T09:00:00")
    ]
    assert relative.status_code == 200, relative.text
    assert created.status_code == 201, created.text
    assert created.json()["start"].startswith("2026-01-07T10:00:00")  # 18:00 Shanghai, in UTC
    assert (covered.json()["user"], covered.json()["source"]) == ("bob", "override")
    assert naive_backwards.status_code == 400
    assert "end must be after start" in naive_backwards.json()["message"]

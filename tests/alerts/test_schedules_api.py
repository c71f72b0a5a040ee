"""The schedule endpoints: who is on call, the shifts for a calendar, overrides."""

from __future__ import annotations

from typing import Any

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
    assert [(s["user"], s["start"], s["end"], s["runs_on"]) for s in week.json()["shifts"]] == [
        ("alice", "2026-01-05T09:00:00+08:00", "2026-01-12T09:00:00+08:00", False),  # from Monday
        ("bob", "2026-01-12T09:00:00+08:00", "2026-01-19T09:00:00+08:00", False),  # to its hand-over
    ]


async def test_the_last_shift_ends_at_its_real_hand_over_and_one_starting_at_to_is_not_listed(
    app_factory: AppFactory, database_url: str
) -> None:
    """[from, to): a shift under way at `to` is listed whole, to the hand-over after `to`; one that
    starts exactly at `to` is not listed. Overrides are read from the database up to where the
    last shift's end is looked for (both dialects)."""
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        created = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-16T18:00:00+08:00", "end": "2026-01-17T09:00:00+08:00"},
            headers=OPERATE,
        )
        up_to = await get(client, f"{SRE}/shifts", **{"from": "2026-01-07T12:00", "to": "2026-01-12T09:00"})
        just_past = await get(
            client, f"{SRE}/shifts", **{"from": "2026-01-07T12:00", "to": "2026-01-12T09:00:01"}
        )
        under_way = await get(
            client, f"{SRE}/shifts", **{"from": "2026-01-14T00:00", "to": "2026-01-16T12:00"}
        )
    assert created.status_code == 201, created.text

    def listed(answer: httpx.Response) -> list[tuple[str, str, str, str, bool]]:
        assert answer.status_code == 200, answer.text
        return [(s["user"], s["source"], s["start"], s["end"], s["runs_on"]) for s in answer.json()["shifts"]]

    alice = ("alice", "rotation", "2026-01-05T09:00:00+08:00", "2026-01-12T09:00:00+08:00", False)
    assert listed(up_to) == [alice]  # bob's shift starts at `to`: not listed
    assert listed(just_past) == [
        alice,
        ("bob", "rotation", "2026-01-12T09:00:00+08:00", "2026-01-16T18:00:00+08:00", False),
    ]
    # the shift under way at `to` ends where an override takes over, past `to`; the override
    # starts after `to`, so it is not listed itself
    assert listed(under_way) == [
        ("bob", "rotation", "2026-01-12T09:00:00+08:00", "2026-01-16T18:00:00+08:00", False)
    ]


async def test_a_cover_beyond_the_look_ahead_runs_on_and_a_shorter_one_ends(
    app_factory: AppFactory, database_url: str
) -> None:
    """A cover that ends within four weeks of `to` ends at its real end; one of three months is
    still under way where its end was looked for (four weeks after `to`): it ends there and says
    `runs_on`. The year's limit is on `from`..`to`, not on the look-ahead past it."""
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        for user, start, end in (
            ("bob", "2026-01-07T18:00:00+08:00", "2026-01-27T18:00:00+08:00"),
            ("alice", "2026-03-02T18:00:00+08:00", "2026-06-01T18:00:00+08:00"),
        ):
            made = await client.post(
                f"{SRE}/overrides", json={"user": user, "start": start, "end": end}, headers=OPERATE
            )
            assert made.status_code == 201, made.text
        shorter = await get(client, f"{SRE}/shifts", **{"from": "2026-01-07T12:00", "to": "2026-01-08T00:00"})
        longer = await get(client, f"{SRE}/shifts", **{"from": "2026-03-03T00:00", "to": "2026-03-04T00:00"})
        year = await get(
            client, f"{SRE}/shifts", **{"from": "2025-03-04T00:00+08:00", "to": "2026-03-04T00:00+08:00"}
        )
    assert [(s["user"], s["source"], s["end"], s["runs_on"]) for s in shorter.json()["shifts"]] == [
        ("alice", "rotation", "2026-01-07T18:00:00+08:00", False),
        ("bob", "override", "2026-01-27T18:00:00+08:00", False),  # its real end, past `to`
    ]
    [cover] = longer.json()["shifts"]
    assert (cover["user"], cover["source"], cover["start"]) == (
        "alice",
        "override",
        "2026-03-02T18:00:00+08:00",
    )
    assert (cover["end"], cover["runs_on"]) == ("2026-04-01T00:00:00+08:00", True)  # `to` + 28 days
    assert year.status_code == 200, year.text  # 365 days: allowed, and looked past
    assert (year.json()["shifts"][-1]["end"], year.json()["shifts"][-1]["runs_on"]) == (
        "2026-04-01T00:00:00+08:00",
        True,
    )


async def test_the_schedules_only_person_runs_on(app_factory: AppFactory) -> None:
    """One person on call for good: one shift from the rotation's start, still under way where
    its end was looked for."""
    config = alerting_config()
    config["schedules"][0]["rotations"][0]["users"] = ["alice"]
    async with app_factory(**config) as (_app, client):
        week = await get(client, f"{SRE}/shifts", **{"from": "2026-01-20", "to": "2026-01-27"})
    assert [(s["user"], s["start"], s["end"], s["runs_on"]) for s in week.json()["shifts"]] == [
        ("alice", "2026-01-05T09:00:00+08:00", "2026-02-25T00:00:00+08:00", True)  # 28 days after `to`
    ]


def berlin(name: str, length: str, start: str) -> dict[str, Any]:
    return {
        "name": name,
        "timezone": "Europe/Berlin",
        "rotations": [{"users": ["alice", "bob"], "length": length, "start": start}],
    }


async def test_the_real_end_past_to_keeps_the_wall_clock_across_a_dst_change(app_factory: AppFactory) -> None:
    """Berlin springs forward on 2027-03-28: the weekly shift under way at `to` ends at 09:00 on
    the Monday after, in summer time (an hour short of a week); a twelve-week rotation's shift
    across the autumn change (an hour longer than twelve weeks) still ends at its hand-over."""
    config = alerting_config()
    config["schedules"] += [
        berlin("eu", "1w", "2027-01-04T09:00:00"),
        berlin("long", "12w", "2026-08-10T09:00:00"),
    ]
    async with app_factory(**config) as (_app, client):
        spring = await get(
            client, "/api/v1/schedules/eu/shifts", **{"from": "2027-03-24", "to": "2027-03-26"}
        )
        autumn = await get(
            client, "/api/v1/schedules/long/shifts", **{"from": "2026-08-10T09:00", "to": "2026-08-10T09:30"}
        )
    [week] = spring.json()["shifts"]
    assert (week["start"], week["end"], week["runs_on"]) == (
        "2027-03-22T09:00:00+01:00",
        "2027-03-29T09:00:00+02:00",
        False,
    )
    [twelve] = autumn.json()["shifts"]
    assert (twelve["start"], twelve["end"], twelve["runs_on"]) == (
        "2026-08-10T09:00:00+02:00",
        "2026-11-02T09:00:00+01:00",
        False,
    )


async def test_the_shift_under_way_at_from_starts_where_it_started_however_long_ago(
    app_factory: AppFactory,
) -> None:
    """The start side, as the end side: a twelve-week rotation's shift under way at `from`, and a
    cover of five months under way then, start at their real starts (not at a midnight 35 days
    back, which would move with every request and give a calendar event a new start each day)."""
    config = alerting_config()
    config["schedules"] += [berlin("long", "12w", "2026-08-10T09:00:00")]
    async with app_factory(**config) as (_app, client):
        made = await client.post(
            f"{SRE}/overrides",
            json={"user": "bob", "start": "2026-01-07T18:00:00+08:00", "end": "2026-06-07T18:00:00+08:00"},
            headers=OPERATE,
        )
        twelve = await get(
            client, "/api/v1/schedules/long/shifts", **{"from": "2026-10-20T00:00", "to": "2026-10-21T00:00"}
        )
        cover = await get(client, f"{SRE}/shifts", **{"from": "2026-04-20T00:00", "to": "2026-04-21T00:00"})
    assert made.status_code == 201, made.text
    assert [(s["user"], s["start"], s["end"]) for s in twelve.json()["shifts"]] == [
        ("alice", "2026-08-10T09:00:00+02:00", "2026-11-02T09:00:00+01:00")  # 71 days before `from`
    ]
    assert [(s["user"], s["source"], s["start"], s["end"], s["runs_on"]) for s in cover.json()["shifts"]] == [
        # its start 103 days before `from`; its end past where it is looked for (`to` + 28 days)
        ("bob", "override", "2026-01-07T18:00:00+08:00", "2026-05-19T00:00:00+08:00", True)
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

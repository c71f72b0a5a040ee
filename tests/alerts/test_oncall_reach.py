"""Schedules people can live with: calendar feeds (RFC 5545, parsed with icalendar, matching the
shifts API across a DST change; signed, revocable URLs), swaps that change who is paged, steps that
know nights and weekends or that nobody is on call, and notices at hand-over."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar
from sqlalchemy import select

from app.alerts import escalation, handovers
from app.alerts import schedules as oncall_schedules
from app.alerts import service as alerts
from app.alerts.models import Delivery, TimelineEntry
from tests.alerts.support import WEBHOOK, alert, bearer_webhook, outbox, payload
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied

PUBLIC = "https://panorama.example.com"
BERLIN = ZoneInfo("Europe/Berlin")


def config(**extra: Any) -> dict[str, Any]:
    return {
        "alerts": {"webhook_token": "alertmanager-webhook-token-1234", "public_url": PUBLIC},
        "users": [{"name": "alice"}, {"name": "bob"}, {"name": "carol"}],
        "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
        "schedules": [
            {
                "name": "sre",
                "timezone": "Europe/Berlin",
                "rotations": [{"users": ["alice", "bob"], "length": "12h", "start": "2026-01-05T09:00:00"}],
                "notices": ["hook"],
            }
        ],
        "escalations": [
            {"name": "default", "steps": [{"notify": {"schedule": "sre", "channels": ["hook"]}}]}
        ],
        "routes": [{"matchers": [], "escalation": "default"}],
        **extra,
    }


async def test_the_calendar_feed_parses_and_matches_the_shifts_across_a_dst_change(
    app_factory: AppFactory,
) -> None:
    # Berlin springs forward on 2027-03-28: the 90 days from 2027-01-10 cross it.
    now = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    async with app_factory(**config()) as (app, _client):
        context = app.state.context
        feed = oncall_schedules.Feed("schedule", "sre")
        async with context.sessions() as session:
            document = await oncall_schedules.calendar(session, context.settings, feed, now)
            expected = await alerts.shifts(
                session, context.settings, "sre", now - timedelta(days=1), now + timedelta(days=90)
            )
    parsed = Calendar.from_ical(document)
    events = sorted(parsed.walk("VEVENT"), key=lambda e: e.decoded("dtstart"))
    got = [(str(e["summary"]), e.decoded("dtstart"), e.decoded("dtend")) for e in events]
    assert [tz["tzid"] for tz in parsed.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert parsed["version"] == "2.0"
    assert len(got) == len(expected.shifts) == 183  # 91 days of two shifts, and the one under way
    # the one under way a day ago (13:00 in Berlin) with its real start, not cut there
    assert got[0][1] == datetime(2027, 1, 9, 9, 0, tzinfo=BERLIN)
    assert expected.shifts[0].start == got[0][1]  # /shifts from a day ago: the same real start
    for (summary, start, end), shift in zip(got[1:], expected.shifts[1:], strict=True):
        assert start == shift.start
        assert end == shift.end
        assert shift.user in summary
        assert str(start.tzinfo) == "Europe/Berlin"
    spring = [(s, e) for _, s, e in got if s.date() == datetime(2027, 3, 27).date()]
    assert [(s.hour, e.hour) for s, e in spring] == [(9, 21), (21, 9)]  # wall clock kept
    lengths = [e.astimezone(UTC) - s.astimezone(UTC) for s, e in spring]
    assert lengths == [timedelta(hours=12), timedelta(hours=11)]  # the night the clocks jump is short
    assert len({e["uid"] for e in events}) == len(events)
    # the last one runs past the 90 days to its real hand-over, not cut there (14:00 in Berlin)
    assert got[-1][1:] == (
        datetime(2027, 4, 10, 9, 0, tzinfo=BERLIN),
        datetime(2027, 4, 10, 21, 0, tzinfo=BERLIN),
    )
    assert not any("description" in e for e in events)


async def test_a_cover_still_on_where_the_feed_looked_for_its_end_says_so(app_factory: AppFactory) -> None:
    """A cover of seven months in a person's feed: its event ends where its end was looked for
    (four weeks past the 90 days), and its description says it runs on, so the end reads as no
    hand-over."""
    now = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    cover = {"user": "carol", "start": "2027-01-10T10:00:00Z", "end": "2027-08-10T10:00:00Z"}
    english = config()
    english["alerts"]["locale"] = "en"
    async with app_factory(**english) as (app, client):
        made = await client.post(
            "/api/v1/schedules/sre/overrides", json=cover, headers=bearer(OPERATOR_TOKEN)
        )
        context = app.state.context
        async with context.sessions() as session:
            feed = oncall_schedules.Feed("user", "carol")
            document = await oncall_schedules.calendar(session, context.settings, feed, now)
    assert made.status_code == 201, made.text
    [event] = Calendar.from_ical(document).walk("VEVENT")
    assert event.decoded("dtstart") == datetime(2027, 1, 10, 11, 0, tzinfo=BERLIN)
    assert event.decoded("dtend") == now + timedelta(days=90 + 28)
    assert str(event["description"]) == "still on after 2027-05-08 14:00 (its end was not looked for further)"


async def test_a_feed_fetched_again_keeps_the_shift_under_way_as_the_same_event(
    app_factory: AppFactory,
) -> None:
    """Calendar apps fetch a feed every few hours: the shift under way a day before each fetch is the
    same event every time (its real start, its UID), not one cut at a "day ago" that moves."""
    fetches = [datetime(2027, 1, 10, 12, 0, tzinfo=UTC), datetime(2027, 1, 10, 15, 37, 12, tzinfo=UTC)]
    events: list[list[tuple[str, datetime]]] = []
    async with app_factory(**config()) as (app, _client):
        context = app.state.context
        for now in fetches:
            async with context.sessions() as session:
                feed = oncall_schedules.Feed("schedule", "sre")
                document = await oncall_schedules.calendar(session, context.settings, feed, now)
            parsed = sorted(Calendar.from_ical(document).walk("VEVENT"), key=lambda e: e.decoded("dtstart"))
            events.append([(str(e["uid"]), e.decoded("dtstart")) for e in parsed])
    first, again = events
    assert first[0] == again[0]
    assert first[0][1] == datetime(2027, 1, 9, 9, 0, tzinfo=BERLIN)  # the 12 h shift's hand-over
    assert first[0][0] == "sre-alice-20270109T080000Z@panorama"
    assert again[: len(first) - 1] == first[: len(first) - 1]  # the later fetch only reaches further


async def test_a_feed_url_works_without_headers_until_it_is_revoked(app_factory: AppFactory) -> None:
    async with app_factory(**config()) as (_app, client):
        link = (await client.get("/api/v1/schedules/sre/calendar", headers=bearer(VIEWER_TOKEN))).json()
        path = link["url"].removeprefix(PUBLIC)
        subscribed = await client.get(path)
        person = (await client.get("/api/v1/users/alice/calendar", headers=bearer(VIEWER_TOKEN))).json()
        alice = await client.get(person["url"].removeprefix(PUBLIC))
        with_bearer = await client.get("/api/v1/schedules/sre/calendar.ics", headers=bearer(VIEWER_TOKEN))
        anonymous = await client.get("/api/v1/schedules/sre/calendar.ics")
        other_feed = await client.get(path.replace("/schedules/sre/", "/users/bob/"))
        # each shift links its on-call page with a view link: it opens on a phone with no token
        event_links = {str(e["url"]) for e in Calendar.from_ical(subscribed.content).walk("VEVENT")}
        opened = [await client.get(url.removeprefix(PUBLIC)) for url in sorted(event_links)[:3]]
        borrowed = urlsplit(sorted(event_links)[0]).query
        elsewhere = await client.get(f"/incidents?{borrowed}")
        revoked = await client.post("/api/v1/schedules/sre/calendar/revoke", headers=bearer(OPERATOR_TOKEN))
        after = await client.get(path)
        fresh = await client.get(revoked.json()["url"].removeprefix(PUBLIC))
    assert link["url"].startswith(f"{PUBLIC}/api/v1/schedules/sre/calendar.ics?token=")
    assert link["webcal_url"].startswith("webcal://panorama.example.com/")
    assert subscribed.status_code == 200
    assert subscribed.headers["content-type"] == "text/calendar; charset=utf-8"
    assert Calendar.from_ical(subscribed.content).walk("VEVENT")
    assert {str(e["summary"]) for e in Calendar.from_ical(alice.content).walk("VEVENT")} == {
        "值班：alice（sre）"
    }
    assert all(urlsplit(url).path == "/oncall" and "schedule=sre" in url for url in event_links)
    assert all("view=" in url for url in event_links)
    assert [page.status_code for page in opened] == [200, 200, 200]
    assert all('class="readonly-bar"' in page.text and 'data-oncall="sre"' in page.text for page in opened)
    assert elsewhere.status_code == 401  # the link opens that schedule's page only
    assert with_bearer.status_code == 200
    assert anonymous.status_code == 401
    assert other_feed.status_code == 401
    assert revoked.status_code == 200
    assert revoked.json()["generation"] == 1
    assert after.status_code == 401
    assert "revoked" in after.json()["message"]
    assert fresh.status_code == 200


async def test_a_swap_becomes_an_override_tells_both_and_changes_who_is_paged(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**config()) as (app, client):
        now = datetime.now(UTC)
        holder = (await client.get("/api/v1/schedules/sre/oncall", headers=bearer(VIEWER_TOKEN))).json()[
            "user"
        ]
        shifts = (
            await client.get(
                "/api/v1/schedules/sre/shifts",
                params={"from": now.isoformat(), "to": (now + timedelta(hours=13)).isoformat()},
                headers=bearer(VIEWER_TOKEN),
            )
        ).json()["shifts"]
        current = shifts[0]
        taker = "carol"
        offer = {"user": holder, "start": now.isoformat(), "end": current["end"], "note": "dentist"}
        not_theirs = await client.post(
            "/api/v1/schedules/sre/swaps",
            json={**offer, "user": "carol"},
            headers=bearer(OPERATOR_TOKEN),
        )
        offered = await client.post("/api/v1/schedules/sre/swaps", json=offer, headers=bearer(OPERATOR_TOKEN))
        swap_id = offered.json()["id"]
        listed = (
            await client.get("/api/v1/schedules/sre/swaps?status=open", headers=bearer(VIEWER_TOKEN))
        ).json()
        taken = await client.post(
            f"/api/v1/schedules/sre/swaps/{swap_id}/take",
            json={"user": taker},
            headers=bearer(OPERATOR_TOKEN),
        )
        again = await client.post(
            f"/api/v1/schedules/sre/swaps/{swap_id}/take",
            json={"user": "bob"},
            headers=bearer(OPERATOR_TOKEN),
        )
        on_call = (await client.get("/api/v1/schedules/sre/oncall", headers=bearer(VIEWER_TOKEN))).json()
        page = await client.get("/oncall", headers=bearer(VIEWER_TOKEN))
        paged = await client.post(WEBHOOK, json=payload("Down", [alert("Down")]), headers=bearer_webhook())
        await applied(client, paged)
        stored = await outbox(app.state.context.sessions)
    assert not_theirs.status_code == 400
    assert "not on call" in not_theirs.json()["message"]
    assert offered.status_code == 201
    assert [s["id"] for s in listed] == [swap_id]
    assert taken.status_code == 200
    assert taken.json()["status"] == "taken"
    assert taken.json()["taken_by"] == taker
    assert again.status_code == 409
    assert on_call["user"] == taker
    assert on_call["source"] == "override"
    assert page.status_code == 200
    assert f'data-oncall="sre">{taker}<' in page.text
    assert paged.status_code == 202
    notices = [json.loads(d.payload) for d in stored if d.kind == "notice"]
    assert [n["kind"] for n in notices] == ["swap_offered", "swap_taken"]
    assert [p["name"] for p in notices[1]["mentions"]] == [holder, taker]  # both are told
    [page_row] = [d for d in stored if d.kind == "trigger"]
    assert [p["name"] for p in json.loads(page_row.payload)["mentions"]] == [taker]


async def test_steps_that_do_not_apply_now_or_reach_nobody_are_skipped_at_once(
    app_factory: AppFactory,
) -> None:
    always = [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]
    settings = config(
        time_intervals=[{"name": "always", "time_intervals": always}],
        schedules=[
            {
                "name": "sre",
                "timezone": "Europe/Berlin",
                "rotations": [{"users": ["alice"], "length": "1w", "start": "2099-01-05T09:00:00"}],
            }
        ],
        escalations=[
            {
                "name": "default",
                "steps": [
                    {"notify": {"schedule": "sre", "channels": ["hook"]}},
                    {"wait": "10m"},
                    {"notify": {"users": ["bob"], "channels": ["hook"]}, "mute_time_intervals": ["always"]},
                    {"wait": "10m"},
                    {
                        "notify": {"users": ["carol"], "channels": ["hook"]},
                        "active_time_intervals": ["always"],
                    },
                ],
            }
        ],
    )
    async with app_factory(**settings) as (app, client):
        posted = await client.post(WEBHOOK, json=payload("Down", [alert("Down")]), headers=bearer_webhook())
        await applied(client, posted)
        async with app.state.context.sessions() as session:
            rows = (await session.scalars(select(TimelineEntry).order_by(TimelineEntry.id))).all()
            pages = (await session.scalars(select(Delivery))).all()
    assert posted.status_code == 202
    kinds = [
        (r.kind, json.loads(r.detail).get("reason")) for r in rows if r.kind in ("step_skipped", "escalated")
    ]
    assert kinds == [
        ("step_skipped", "nobody on call in sre"),
        ("step_skipped", "inside always"),
        ("escalated", None),
    ]
    [page] = pages  # carol, at once: neither wait was waited out
    assert [p["name"] for p in json.loads(page.payload)["mentions"]] == ["carol"]


async def test_a_hand_over_tells_the_incoming_and_the_outgoing_person_once(app_factory: AppFactory) -> None:
    async with app_factory(**config()) as (app, client):
        context = app.state.context
        await applied(
            client,
            await client.post(
                WEBHOOK, json=payload("StillOpen", [alert("StillOpen")]), headers=bearer_webhook()
            ),
        )
        handover = datetime(2026, 12, 7, 21, 0, tzinfo=BERLIN)  # bob hands over to alice... or back
        moment = handover + timedelta(minutes=1)
        counts = []
        key = await context.alerts.signing_key()
        for _ in range(2):
            async with context.sessions.begin() as session:
                counts.append(await handovers.announce_due(session, context.settings, moment, key))
        stored = [json.loads(d.payload) for d in await outbox(context.sessions) if d.kind == "notice"]
        async with context.sessions.begin() as session:
            assert await escalation.run_due(session, context.settings, moment, key) == 0
    assert counts == [1, 0]
    kinds = {n["kind"]: n for n in stored}
    assert set(kinds) == {"shift_start", "shift_end"}
    incoming, outgoing = kinds["shift_start"], kinds["shift_end"]
    assert {incoming["mentions"][0]["name"], outgoing["mentions"][0]["name"]} == {"alice", "bob"}
    assert any("StillOpen" in line for line in incoming["lines"])
    assert incoming["links"][0][1].startswith(f"{PUBLIC}/oncall?schedule=sre&view=")
    assert "2026-12-07 21:00:00" in outgoing["lines"][0]


async def test_hand_over_notices_reach_each_person_on_their_own_ntfy_topic(
    app_factory: AppFactory, serve_sink: Any
) -> None:
    from tests.fakes.reach import NtfyServer
    from tests.fakes.server import LoopbackServer

    ntfy = NtfyServer()
    server = LoopbackServer(ntfy)
    server.start()
    try:
        settings = config(
            users=[
                {"name": "alice", "ntfy_topic": "alice-pages"},
                {"name": "bob", "ntfy_topic": "bob-pages"},
                {"name": "carol"},
            ],
            channels=[
                {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
                {"name": "push", "type": "ntfy", "url": server.url},
            ],
        )
        settings["schedules"][0]["notices"] = ["push"]
        async with app_factory(**settings) as (app, _client):
            context = app.state.context
            moment = datetime(2026, 12, 7, 21, 1, tzinfo=BERLIN)
            async with context.sessions.begin() as session:
                await handovers.announce_due(
                    session, context.settings, moment, await context.alerts.signing_key()
                )
            await context.alerts.run_once(moment)
            stored = await outbox(context.sessions)
    finally:
        server.stop()
    by_topic = {m["topic"]: m for m in ntfy.items}
    assert set(by_topic) == {"alice-pages", "bob-pages"}
    assert all(m["priority"] == 3 and m["tags"] == ["calendar"] for m in by_topic.values())
    assert {d.status for d in stored} == {"delivered"}
    titles = sorted(m["title"] for m in by_topic.values())
    assert any("现在是 sre 的值班人" in t for t in titles)
    assert any("值班已结束" in t for t in titles)

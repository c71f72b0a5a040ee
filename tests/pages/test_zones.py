"""What zone a page's times are in, and that the page says so (the footer, the on-call cards).

The configured ``timezone`` is UTC here (the default); the schedule ``sre`` is in Asia/Shanghai.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.pages.service import offset_changes
from tests.alerts.support import alerting_config
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.pages.support import dst_week_page, next_spring_forward

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def footer(page: httpx.Response) -> str:
    found = re.search(r"<span data-times-in>([^<]+)</span>", page.text)
    assert found is not None, page.text[-800:]
    return html.unescape(found.group(1))


def zone_line(page: httpx.Response, schedule: str = "sre") -> str:
    found = re.search(r'<p class="muted small" data-zone="[^"]+">([^<]+)</p>', _card(page, schedule))
    assert found is not None
    return html.unescape(found.group(1))


def _card(page: httpx.Response, schedule: str) -> str:
    start = page.text.index(f'aria-labelledby="s-{schedule}"')
    end = page.text.find("<section", start)
    return page.text[start : end if end > 0 else None]


async def _shifts(client: httpx.AsyncClient, schedule: str, first: datetime, last: datetime) -> list[Any]:
    window = {"from": first.isoformat(), "to": last.isoformat()}
    answer = await client.get(
        f"/api/v1/schedules/{schedule}/shifts", params=window, headers=bearer(VIEWER_TOKEN)
    )
    assert answer.status_code == 200, answer.text
    shifts: list[Any] = answer.json()["shifts"]
    return shifts


async def _offer(client: httpx.AsyncClient, schedule: str, start: datetime, hours: int) -> None:
    """An open swap (nobody takes it yet) of whoever is on call over ``start`` + ``hours``."""
    holder = (await _shifts(client, schedule, start, start + timedelta(hours=hours)))[0]["user"]
    swap = {"user": holder, "start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}
    made = await client.post(f"/api/v1/schedules/{schedule}/swaps", json=swap, headers=bearer(OPERATOR_TOKEN))
    assert made.status_code == 201, made.text


async def test_the_oncall_pages_footer_names_the_schedules_zone_and_every_other_page_the_configured_one(
    app_factory: AppFactory,
) -> None:
    offered = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    async with app_factory(**alerting_config()) as (_app, client):
        await _offer(client, "sre", offered, 2)
        now = datetime.now(UTC)
        current = (await _shifts(client, "sre", now, now + timedelta(days=8)))[0]
        viewer = bearer(VIEWER_TOKEN)
        oncall = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=viewer)
        oncall_en = await client.get("/oncall?schedule=sre&lang=en", headers=viewer)
        every = await client.get("/oncall?lang=zh-CN", headers=viewer)  # one schedule: the same zone
        browser = {**viewer, "accept": "text/html"}  # a browser's navigation gets the 404 page
        others = {
            path: [await client.get(f"{path}?lang={lang}", headers=browser) for lang in ("zh-CN", "en")]
            for path in ("/incidents", "/login", "/no-such-page")
        }
        missing = await client.get(
            "/oncall?schedule=nope&lang=zh-CN", headers=viewer
        )  # an error page: no schedule's times
    assert footer(oncall) == "时间均为 Asia/Shanghai (UTC+08:00)"
    assert footer(oncall_en) == "Times in Asia/Shanghai (UTC+08:00)"
    assert footer(every) == "时间均为 Asia/Shanghai (UTC+08:00)"
    assert zone_line(oncall) == "时区 Asia/Shanghai (UTC+08:00)"
    assert zone_line(oncall_en) == "Time zone Asia/Shanghai (UTC+08:00)"
    # the page's other times are in that zone too: the swap on offer, the next hand-over, "made at"
    local = offered.astimezone(SHANGHAI)
    swap = f"{local:%Y-%m-%d %H:%M} – {local + timedelta(hours=2):%Y-%m-%d %H:%M}"
    assert swap in oncall.text
    end = datetime.fromisoformat(current["end"]).astimezone(SHANGHAI)
    assert f'<span class="muted small" data-until>至 {end:%Y-%m-%d %H:%M}' in oncall.text
    assert f"until {end:%Y-%m-%d %H:%M}" in oncall_en.text
    assert "时间按 Asia/Shanghai (UTC+08:00) 填写" not in oncall.text  # a viewer gets no form
    assert "+08:00" not in _card(oncall, "sre").replace("UTC+08:00", "")  # one offset: none per row
    for path, (chinese, english) in others.items():
        assert footer(chinese) == "时间均为 UTC", path
        assert footer(english) == "Times in UTC", path
    assert missing.status_code == 404
    assert footer(missing) == "时间均为 UTC"


async def test_the_swap_form_says_its_times_are_read_in_the_schedules_zone(app_factory: AppFactory) -> None:
    async with app_factory(**alerting_config()) as (_app, client):
        page = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(OPERATOR_TOKEN))
        english = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(OPERATOR_TOKEN))
    assert "时间按 Asia/Shanghai (UTC+08:00) 填写。" in page.text
    assert "Times in Asia/Shanghai (UTC+08:00)." in english.text


async def test_schedules_in_different_zones_each_show_their_own_and_the_footer_lists_them(
    app_factory: AppFactory,
) -> None:
    config = alerting_config()
    kolkata = {**config["schedules"][0], "name": "india", "timezone": "Asia/Kolkata"}
    config["schedules"].append(kolkata)
    async with app_factory(**config) as (_app, client):
        now = datetime.now(UTC)
        first = {
            name: (await _shifts(client, name, now, now + timedelta(days=1)))[0] for name in ("sre", "india")
        }
        both = await client.get("/oncall?lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?lang=en", headers=bearer(VIEWER_TOKEN))
        one = await client.get("/oncall?schedule=india&lang=en", headers=bearer(VIEWER_TOKEN))
    assert (
        footer(both)
        == "时间均为 UTC，标明时区的部分除外（Asia/Shanghai (UTC+08:00)、Asia/Kolkata (UTC+05:30)）"
    )
    assert footer(english) == (
        "Times in UTC, except where a part names its own zone"
        " (Asia/Shanghai (UTC+08:00), Asia/Kolkata (UTC+05:30))"
    )
    assert zone_line(both, "sre") == "时区 Asia/Shanghai (UTC+08:00)"
    assert zone_line(both, "india") == "时区 Asia/Kolkata (UTC+05:30)"
    for name, zone in (("sre", SHANGHAI), ("india", ZoneInfo("Asia/Kolkata"))):
        start = datetime.fromisoformat(first[name]["start"]).astimezone(zone)
        assert f"<td>{start:%Y-%m-%d %H:%M}</td>" in _card(both, name), name
    assert footer(one) == "Times in Asia/Kolkata (UTC+05:30)"


def marked(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A time as the on-call card shows it: its offset only where not the zone's offset now."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    shown = f"{local:%Y-%m-%d %H:%M}"
    if offset == now.astimezone(zone).strftime("%z"):
        return shown
    return f'{shown} <span class="muted small offset">{offset[:3]}:{offset[3:]}</span>'


async def test_a_swap_over_the_night_the_clocks_go_forward_shows_the_offset_that_differs_from_now(
    app_factory: AppFactory,
) -> None:
    """Europe/Berlin: an open swap over the night the clocks go forward. A time at another offset
    than the zone's now carries it, and the card says when the offset changes."""
    config = alerting_config()
    config["schedules"][0]["timezone"] = "Europe/Berlin"
    sunday = next_spring_forward(datetime.now(UTC))
    night = datetime(sunday.year, sunday.month, sunday.day, 0, 0, tzinfo=BERLIN).astimezone(UTC)
    async with app_factory(**config) as (_app, client):
        await _offer(client, "sre", night, 6)  # 00:00-07:00 local: six hours, one of them skipped
        now = datetime.now(UTC)
        page = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
    card = _card(page, "sre")
    after = night + timedelta(hours=6)
    assert f"{marked(night, BERLIN, now)} – {marked(after, BERLIN, now)} ·" in card
    assert {marked(night, BERLIN, now), marked(after, BERLIN, now)} & {f"{sunday} 00:00", f"{sunday} 07:00"}
    assert f"{sunday} 03:00 起为 UTC+02:00" in zone_line(page, "sre")
    assert f"UTC+02:00 from {sunday} 03:00" in zone_line(english, "sre")
    offset_now = now.astimezone(BERLIN).strftime("%z")  # +0100 in winter, +0200 in summer
    assert footer(page) == f"时间均为 Europe/Berlin (UTC{offset_now[:3]}:{offset_now[3:]})"


def test_a_shift_table_over_the_change_marks_the_times_after_it_with_their_offset() -> None:
    """The week the clocks go forward, rendered at a fixed moment: the shift under way ends at
    09:00 +02:00, the next one runs at +02:00 throughout; the card says from when."""
    pages = {locale: dst_week_page(locale) for locale in ("zh-CN", "en")}
    plus_two = '<span class="muted small offset">+02:00</span>'
    rows = re.findall(r"<tr><td>(\w+)</td><td>(.*?)</td><td>(.*?)</td></tr>", pages["zh-CN"])
    assert rows == [
        ("alice", "2027-03-22 09:00", f"2027-03-29 09:00 {plus_two}"),
        ("bob", f"2027-03-29 09:00 {plus_two}", f"2027-04-05 09:00 {plus_two}"),
    ]
    assert "时区 Europe/Berlin (UTC+01:00) · 2027-03-28 03:00 起为 UTC+02:00" in pages["zh-CN"]
    assert "Time zone Europe/Berlin (UTC+01:00) · UTC+02:00 from 2027-03-28 03:00" in pages["en"]
    assert "至 2027-03-29 09:00 +02:00 · 之后 bob" in pages["zh-CN"]
    assert "until 2027-03-29 09:00 +02:00 · then bob" in pages["en"]
    assert "<span data-times-in>时间均为 Europe/Berlin (UTC+01:00)</span>" in pages["zh-CN"]


def test_offset_changes_are_found_to_the_minute_both_ways_and_none_where_the_zone_keeps_one() -> None:
    spring = offset_changes(BERLIN, datetime(2027, 3, 20, tzinfo=UTC), datetime(2027, 4, 3, tzinfo=UTC))
    autumn = offset_changes(BERLIN, datetime(2027, 10, 20, tzinfo=UTC), datetime(2027, 11, 3, tzinfo=UTC))
    year = offset_changes(BERLIN, datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    assert spring == [datetime(2027, 3, 28, 1, 0, tzinfo=UTC)]
    assert autumn == [datetime(2027, 10, 31, 1, 0, tzinfo=UTC)]
    assert year == spring + autumn
    assert offset_changes(SHANGHAI, datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)) == []
    # Lord Howe Island moves by half an hour
    howe = offset_changes(
        ZoneInfo("Australia/Lord_Howe"), datetime(2027, 3, 30, tzinfo=UTC), datetime(2027, 4, 10, tzinfo=UTC)
    )
    assert [(m, m.astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset()) for m in howe] == [
        (datetime(2027, 4, 3, 15, 0, tzinfo=UTC), timedelta(hours=10, minutes=30))
    ]


def _rows(page: httpx.Response, schedule: str = "sre") -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = re.findall(
        r"<tr><td>(\w+)[^<]*(?:<span[^>]*>[^<]*</span>)?</td><td>(.*?)</td><td[^>]*>(.*?)</td></tr>",
        _card(page, schedule),
    )
    return [(user, html.unescape(start), html.unescape(end)) for user, start, end in found]


async def test_the_two_weeks_list_each_shift_from_its_real_start_to_its_real_end(
    app_factory: AppFactory,
) -> None:
    """A weekly rotation: the first row started before now, the last runs past the two weeks;
    both show when they really start and end, not where the two weeks cut them."""
    async with app_factory(**alerting_config()) as (_app, client):
        now = datetime.now(UTC)
        every = await _shifts(client, "sre", now, now + timedelta(days=28))
        page = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))

    def local(value: str) -> str:
        return f"{datetime.fromisoformat(value).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"

    cut = now + timedelta(days=14)
    want = [
        (s["user"], local(s["start"]), local(s["end"]))
        for s in every
        if datetime.fromisoformat(s["start"]) < cut
    ]
    assert datetime.fromisoformat(every[0]["start"]) < now  # under way: listed from its real start
    assert datetime.fromisoformat(every[len(want) - 1]["end"]) > cut + timedelta(
        minutes=1
    )  # runs past the cut
    for shown in (page, english):
        assert _rows(shown) == want
        assert f"{cut.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" not in _card(shown, "sre")
        assert "data-runs-on" not in shown.text


async def test_a_shift_of_a_long_rotation_shows_its_real_end_not_the_look_ahead(
    app_factory: AppFactory,
) -> None:
    """A twelve-week rotation: the shift under way ends up to twelve weeks from now, past the
    four weeks looked ahead for a weekly one; its end is looked for far enough to be named."""
    config = alerting_config()
    config["schedules"][0]["rotations"][0]["length"] = "12w"
    async with app_factory(**config) as (_app, client):
        now = datetime.now(UTC)
        page = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
        shifts = await client.get(
            "/api/v1/schedules/sre/shifts",
            params={"from": now.isoformat(), "to": (now + timedelta(weeks=13)).isoformat()},
            headers=bearer(VIEWER_TOKEN),
        )
    assert page.status_code == shifts.status_code == 200
    every = shifts.json()["shifts"]
    end = datetime.fromisoformat(every[0]["end"])
    assert end > now + timedelta(days=28)  # beyond a weekly rotation's look-ahead
    [(user, _start, shown_end)] = _rows(page)[:1]
    assert user == every[0]["user"]
    assert shown_end == f"{end.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"
    assert "data-runs-on" not in page.text
    assert "still on after" not in page.text


async def test_the_schedules_only_person_is_on_call_always_and_no_end_is_named(
    app_factory: AppFactory,
) -> None:
    """One person on call for good: the table says so, and names no end (no date the look-ahead
    happened to stop at)."""
    config = alerting_config()
    config["schedules"][0]["rotations"][0]["users"] = ["alice"]
    async with app_factory(**config) as (_app, client):
        page = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
    [(user, _start, end)] = _rows(page)
    assert user == "alice"
    assert end == "一直在班（排班里只有这一人）"
    assert _rows(english)[0][2] == "always (the schedule's only person)"
    assert 'data-runs-on="alone"' in page.text
    assert "data-until" not in page.text  # no hand-over to name
    assert '<span data-oncall="sre">alice</span>' in page.text


async def test_a_cover_that_runs_on_past_where_its_end_was_looked_for_says_so(
    app_factory: AppFactory,
) -> None:
    """A cover of three months, beyond the look-ahead: its row says it runs on past where its end
    was looked for (four weeks after the listed two), not an end it does not have there."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with app_factory(**alerting_config()) as (_app, client):
        created = await client.post(
            "/api/v1/schedules/sre/overrides",
            json={"user": "bob", "start": start.isoformat(), "end": (start + timedelta(days=90)).isoformat()},
            headers=bearer(OPERATOR_TOKEN),
        )
        before = datetime.now(UTC)
        page = await client.get("/oncall?schedule=sre&lang=zh-CN", headers=bearer(VIEWER_TOKEN))
        english = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
        after = datetime.now(UTC)
    assert created.status_code == 201, created.text
    looked = timedelta(days=14 + 28)  # the two weeks listed, and four weeks past them
    horizons = {f"{(m + looked).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" for m in (before, after)}
    [(user, _start, end)] = _rows(page)
    assert user.startswith("bob")
    assert end in {f"{h} 后仍在值班…" for h in horizons}, end
    assert _rows(english)[0][2] in {f"still on after {h}…" for h in horizons}
    assert 'data-runs-on="alone"' not in page.text


async def test_the_page_and_the_shifts_api_list_the_same_whole_shifts(app_factory: AppFactory) -> None:
    """One mechanism: the page's two weeks are `/shifts` from now to two weeks on, the shift under
    way at the cut to its real end, and a cover still on where its end was looked for is the API's
    `runs_on` shift and the page's `still on after …`."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    async with app_factory(**alerting_config()) as (_app, client):
        before = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
        now = datetime.now(UTC)
        plain = await _shifts(client, "sre", now, now + timedelta(days=14))
        created = await client.post(
            "/api/v1/schedules/sre/overrides",
            json={"user": "bob", "start": start.isoformat(), "end": (start + timedelta(days=90)).isoformat()},
            headers=bearer(OPERATOR_TOKEN),
        )
        covered = await _shifts(client, "sre", now, now + timedelta(days=14))
        after = await client.get("/oncall?schedule=sre&lang=en", headers=bearer(VIEWER_TOKEN))
    assert created.status_code == 201, created.text

    def local(value: str) -> str:
        return f"{datetime.fromisoformat(value).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"

    assert datetime.fromisoformat(plain[-1]["end"]) > now + timedelta(days=14)  # its real end, past the cut
    assert not any(s["runs_on"] for s in plain)
    assert _rows(before) == [(s["user"], local(s["start"]), local(s["end"])) for s in plain]
    *ended, cover = covered
    assert (cover["user"], cover["source"], cover["runs_on"]) == ("bob", "override", True)
    assert not any(s["runs_on"] for s in ended)
    assert _rows(after)[:-1] == [(s["user"], local(s["start"]), local(s["end"])) for s in ended]
    assert _rows(after)[-1][:2] == ("bob", local(cover["start"]))
    assert _rows(after)[-1][2].startswith("still on after ")

"""Who is on call: rotations across DST changes, handoffs, active hours, overrides, and the calendar list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from app.alerts.config import Rotation, Schedule
from app.alerts.oncall import Override, Shift, on_call, parse_window, shifts

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)


def schedule(timezone: str, *rotations: dict[str, object]) -> Schedule:
    return Schedule.model_validate({"name": "sre", "timezone": timezone, "rotations": list(rotations)})


def local(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def length(shift: Shift) -> timedelta:
    """Elapsed time: two datetimes sharing a tzinfo subtract by wall clock, so go through UTC."""
    return shift.end.astimezone(UTC) - shift.start.astimezone(UTC)


def summary(found: Sequence[Shift]) -> list[tuple[str, str, str]]:
    """(user, start, end) with the offsets, so a DST mistake shows in the diff."""
    return [(s.user, s.start.isoformat(), s.end.isoformat()) for s in found]


def assert_consistent(
    plan: Schedule,
    first: datetime,
    last: datetime,
    overrides: Sequence[Override] = (),
    step: timedelta = HOUR,
) -> list[Shift]:
    """shifts() and on_call() agree at every sampled instant, and the shift list is well formed.

    Instants are compared and stepped in UTC: on a zone-aware datetime ``+`` moves the wall clock.
    """
    found = shifts(plan, first, last, overrides)
    zone = ZoneInfo(plan.timezone)
    spans = [(s.start.astimezone(UTC), s.end.astimezone(UTC), s) for s in found]
    for start, end, shift in spans:
        assert start < end
        assert shift.start.tzinfo == zone
        assert shift.end.tzinfo == zone
        assert on_call(plan, start, overrides) == shift.user
        assert on_call(plan, end - timedelta(microseconds=1), overrides) == shift.user
    for (_, end, before), (start, _, after) in pairwise(spans):
        assert end <= start
        if end == start:  # touching shifts differ in origin, or they would be one
            origin = (before.user, before.source, before.layer, before.override_id)
            assert origin != (after.user, after.source, after.layer, after.override_id)
    instant, stop = first.astimezone(UTC), last.astimezone(UTC)
    while instant < stop:
        holder = next((s.user for start, end, s in spans if start <= instant < end), None)
        assert on_call(plan, instant, overrides) == holder, instant.isoformat()
        instant += step
    return found


# The example of the issue: alice and bob hand off weekly, Mondays 09:00 Shanghai time.
ISSUE = schedule("Asia/Shanghai", {"users": ["alice", "bob"], "length": "1w", "start": "2026-01-05T09:00:00"})


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-01-05T08:59:59+08:00", None),  # before the first handoff nobody is on call
        ("2026-01-05T09:00:00+08:00", "alice"),
        ("2026-01-05T01:00:00+00:00", "alice"),  # the same instant written in UTC
        ("2026-01-12T08:59:59.999999+08:00", "alice"),
        ("2026-01-12T09:00:00+08:00", "bob"),  # a handoff belongs to the incoming person
        ("2026-01-18T23:59:00+08:00", "bob"),
        ("2026-01-19T09:00:00+08:00", "alice"),
        ("2026-12-28T09:00:00+08:00", "bob"),  # 51 weeks on
    ],
)
def test_issue_example(at: str, expected: str | None) -> None:
    assert on_call(ISSUE, datetime.fromisoformat(at)) == expected


def test_issue_example_as_a_month_calendar() -> None:
    found = shifts(ISSUE, local("2026-01-01T00:00", SHANGHAI), local("2026-02-01T00:00", SHANGHAI))
    assert found == [
        Shift(
            "alice", local("2026-01-05T09:00", SHANGHAI), local("2026-01-12T09:00", SHANGHAI), "rotation", 0
        ),
        Shift("bob", local("2026-01-12T09:00", SHANGHAI), local("2026-01-19T09:00", SHANGHAI), "rotation", 0),
        Shift(
            "alice", local("2026-01-19T09:00", SHANGHAI), local("2026-01-26T09:00", SHANGHAI), "rotation", 0
        ),
        Shift("bob", local("2026-01-26T09:00", SHANGHAI), local("2026-02-01T00:00", SHANGHAI), "rotation", 0),
    ]
    assert all(s.start.tzinfo == SHANGHAI for s in found)


def test_shifts_are_clipped_to_the_range_asked_for() -> None:
    found = shifts(ISSUE, utc("2026-01-14T00:00"), utc("2026-01-14T06:00"))
    assert summary(found) == [("bob", "2026-01-14T08:00:00+08:00", "2026-01-14T14:00:00+08:00")]
    assert shifts(ISSUE, utc("2026-01-14T00:00"), utc("2026-01-14T00:00")) == []


# Europe/Berlin changes on 2026-03-29 (02:00 CET → 03:00 CEST) and 2026-10-25 (03:00 CEST → 02:00 CET).


@pytest.mark.parametrize(
    ("start", "handoff_utc", "first_shift_hours"),
    [
        pytest.param("2026-03-23T09:00:00", "2026-03-30T07:00", 167, id="spring"),
        pytest.param("2026-10-19T09:00:00", "2026-10-26T08:00", 169, id="fall"),
    ],
)
def test_weekly_handoff_keeps_its_local_time_across_dst_in_berlin(
    start: str, handoff_utc: str, first_shift_hours: int
) -> None:
    plan = schedule("Europe/Berlin", {"users": ["alice", "bob"], "length": "1w", "start": start})
    handoff = utc(handoff_utc)
    assert handoff.astimezone(BERLIN).strftime("%a %H:%M") == "Mon 09:00"
    assert on_call(plan, handoff - timedelta(seconds=1)) == "alice"
    assert on_call(plan, handoff) == "bob"
    found = shifts(plan, local(start, BERLIN), local(start, BERLIN) + timedelta(days=14))
    assert [s.user for s in found] == ["alice", "bob"]
    assert length(found[0]) == timedelta(hours=first_shift_hours)
    assert [s.start.strftime("%a %H:%M") for s in found] == ["Mon 09:00", "Mon 09:00"]


def test_twelve_hour_rotation_keeps_0900_and_2100_and_the_spring_night_is_eleven_hours() -> None:
    plan = schedule(
        "Europe/Berlin", {"users": ["day", "night"], "length": "12h", "start": "2026-03-28T09:00:00"}
    )
    found = shifts(plan, local("2026-03-28T09:00", BERLIN), local("2026-03-30T09:00", BERLIN))
    assert summary(found) == [
        ("day", "2026-03-28T09:00:00+01:00", "2026-03-28T21:00:00+01:00"),
        ("night", "2026-03-28T21:00:00+01:00", "2026-03-29T09:00:00+02:00"),
        ("day", "2026-03-29T09:00:00+02:00", "2026-03-29T21:00:00+02:00"),
        ("night", "2026-03-29T21:00:00+02:00", "2026-03-30T09:00:00+02:00"),
    ]
    assert [length(s) for s in found] == [12 * HOUR, 11 * HOUR, 12 * HOUR, 12 * HOUR]


def test_twelve_hour_rotation_fall_night_is_thirteen_hours() -> None:
    plan = schedule(
        "Europe/Berlin", {"users": ["day", "night"], "length": "12h", "start": "2026-10-24T09:00:00"}
    )
    found = shifts(plan, local("2026-10-24T21:00", BERLIN), local("2026-10-25T21:00", BERLIN))
    assert summary(found) == [
        ("night", "2026-10-24T21:00:00+02:00", "2026-10-25T09:00:00+01:00"),
        ("day", "2026-10-25T09:00:00+01:00", "2026-10-25T21:00:00+01:00"),
    ]
    assert length(found[0]) == 13 * HOUR


def test_handoff_at_a_skipped_time_happens_when_the_clocks_jump() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: that handoff happens at 03:00 CEST (01:00 UTC).
    plan = schedule(
        "Europe/Berlin", {"users": ["alice", "bob"], "length": "1d", "start": "2026-03-27T02:30:00"}
    )
    assert on_call(plan, utc("2026-03-29T00:59:59")) == "bob"
    assert on_call(plan, utc("2026-03-29T01:00:00")) == "alice"
    found = shifts(plan, local("2026-03-28T02:30", BERLIN), local("2026-03-30T02:30", BERLIN))
    assert summary(found) == [
        ("bob", "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00"),
        ("alice", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"),
    ]


def test_handoff_at_a_repeated_time_happens_once_at_its_first_occurrence() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25: at 00:30 UTC (CEST) and at 01:30 UTC (CET).
    plan = schedule(
        "Europe/Berlin", {"users": ["alice", "bob"], "length": "1d", "start": "2026-10-23T02:30:00"}
    )
    assert on_call(plan, local("2026-10-25T02:29:59", BERLIN, fold=0)) == "bob"
    assert on_call(plan, local("2026-10-25T02:30:00", BERLIN, fold=0)) == "alice"
    # The clock reads 02:00-02:30 again after it went back: the handoff has happened all the same.
    assert on_call(plan, local("2026-10-25T02:10:00", BERLIN, fold=1)) == "alice"
    assert on_call(plan, local("2026-10-25T02:30:00", BERLIN, fold=1)) == "alice"
    found = shifts(plan, utc("2026-10-24T00:00"), utc("2026-10-26T12:00"))
    assert [(s.user, s.start.astimezone(UTC).isoformat()) for s in found] == [
        ("alice", "2026-10-24T00:00:00+00:00"),
        ("bob", "2026-10-24T00:30:00+00:00"),
        ("alice", "2026-10-25T00:30:00+00:00"),
        ("bob", "2026-10-26T01:30:00+00:00"),
    ]
    assert length(found[2]) == 25 * HOUR


# America/New_York changes on 2026-03-08 (02:00 EST → 03:00 EDT) and 2026-11-01 (02:00 EDT → 01:00 EST).


@pytest.mark.parametrize(
    ("at_utc", "expected"),
    [
        ("2026-03-07T13:59", "alice"),  # Saturday 08:59 EST
        ("2026-03-07T14:00", "bob"),  # Saturday 09:00 EST
        ("2026-03-08T12:59", "bob"),  # Sunday 08:59 EDT
        ("2026-03-08T13:00", "carol"),  # Sunday 09:00 EDT: one hour earlier in UTC
        ("2026-11-01T12:59", "carol"),  # 07:59 EST: October 31's shift (the 240th) runs on
        ("2026-11-01T13:00", "carol"),  # 09:00 EDT would have been: not a handoff any more
        ("2026-11-01T14:00", "alice"),  # 09:00 EST
    ],
)
def test_daily_handoff_in_new_york(at_utc: str, expected: str) -> None:
    plan = schedule(
        "America/New_York",
        {"users": ["alice", "bob", "carol"], "length": "1d", "start": "2026-03-06T09:00:00"},
    )
    assert on_call(plan, utc(at_utc)) == expected


def test_eight_hour_follow_the_sun_in_new_york_around_fall_back() -> None:
    plan = schedule(
        "America/New_York", {"users": ["ny", "sg", "de"], "length": "8h", "start": "2026-10-31T00:00:00"}
    )
    found = shifts(plan, local("2026-11-01T00:00", NEW_YORK), local("2026-11-02T00:00", NEW_YORK))
    assert [s.start.strftime("%H:%M") for s in found] == ["00:00", "08:00", "16:00"]
    assert [length(s) for s in found] == [9 * HOUR, 8 * HOUR, 8 * HOUR]


def test_handoff_at_a_repeated_time_in_new_york() -> None:
    plan = schedule(
        "America/New_York", {"users": ["alice", "bob"], "length": "1d", "start": "2026-10-30T01:30:00"}
    )
    assert on_call(plan, utc("2026-11-01T05:29")) == "bob"  # 01:29 EDT
    assert on_call(plan, utc("2026-11-01T05:30")) == "alice"  # 01:30 EDT, the first one
    assert on_call(plan, utc("2026-11-01T06:30")) == "alice"  # 01:30 EST, the second one


def test_shifts_shorter_than_the_spring_jump_stay_in_order() -> None:
    # Every 30 minutes: the handoffs due at 02:00 (bob) and 02:30 (carol) fall in the skipped hour and
    # happen at the jump together with alice's 03:00 one: bob and carol get no time, the order is kept.
    plan = schedule(
        "Europe/Berlin", {"users": ["alice", "bob", "carol"], "length": "30m", "start": "2026-03-28T00:00:00"}
    )
    found = assert_consistent(
        plan, utc("2026-03-29T00:00"), utc("2026-03-29T02:00"), step=timedelta(minutes=5)
    )
    assert summary(found) == [
        ("carol", "2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00"),
        ("alice", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"),
        ("bob", "2026-03-29T03:30:00+02:00", "2026-03-29T04:00:00+02:00"),
    ]


def test_shifts_shorter_than_the_fall_jump_cover_the_repeated_hour() -> None:
    plan = schedule(
        "Europe/Berlin", {"users": ["alice", "bob"], "length": "30m", "start": "2026-10-24T00:00:00"}
    )
    found = assert_consistent(
        plan, utc("2026-10-24T23:00"), utc("2026-10-25T03:00"), step=timedelta(minutes=5)
    )
    # 02:00 and 02:30 hand off once, in summer time; the repeated hour then stays with whoever took 02:30.
    assert [(s.user, length(s)) for s in found] == [
        ("alice", timedelta(minutes=30)),  # 01:00 CEST
        ("bob", timedelta(minutes=30)),
        ("alice", timedelta(minutes=30)),  # 02:00 CEST
        ("bob", timedelta(minutes=90)),  # 02:30 CEST to 03:00 CET
        ("alice", timedelta(minutes=30)),
        ("bob", timedelta(minutes=30)),
    ]


# Layers: an all-day weekly rotation, business hours on top, and nights on top of that.
LAYERED = schedule(
    "Europe/Berlin",
    {"users": ["alice", "bob"], "length": "1w", "start": "2026-03-02T09:00:00"},
    {"users": ["carol"], "length": "1d", "start": "2026-03-01T00:00:00", "active": ["09:00-18:00"]},
    {
        "users": ["dave", "erin"],
        "length": "1d",
        "start": "2026-03-01T18:00:00",
        "active": ["22:00-06:00", "12:00-13:00"],
    },
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-03-01T12:30", "carol"),  # layer 2 would cover lunch, but starts at 18:00 that day
        ("2026-03-02T12:30", "dave"),  # ... and does the next day
        ("2026-03-01T11:00", "carol"),  # layer 1 from its start; layer 0 has not started yet
        ("2026-03-01T20:00", None),  # no layer active: layer 0 starts on 2026-03-02 09:00
        ("2026-03-01T23:00", "dave"),
        ("2026-03-03T08:59", "alice"),
        ("2026-03-03T09:00", "carol"),
        ("2026-03-03T12:30", "erin"),  # the top layer wins where two are active
        ("2026-03-03T17:59", "carol"),
        ("2026-03-03T18:00", "alice"),
        ("2026-03-03T21:59", "alice"),
        ("2026-03-03T22:00", "dave"),  # the night belongs to whoever took over at 18:00
        ("2026-03-04T05:59", "dave"),
        ("2026-03-04T06:00", "alice"),
        ("2026-03-04T22:00", "erin"),
        ("2026-03-09T08:00", "alice"),  # bob's week starts at 09:00
        ("2026-03-09T18:30", "bob"),
    ],
)
def test_layers_with_active_hours(at: str, expected: str | None) -> None:
    assert on_call(LAYERED, local(at, BERLIN)) == expected


def test_active_hours_follow_the_wall_clock_through_the_repeated_hour() -> None:
    plan = schedule(
        "Europe/Berlin",
        {"users": ["alice"], "length": "1d", "start": "2026-10-01T00:00:00"},
        {"users": ["nina"], "length": "1d", "start": "2026-10-01T00:00:00", "active": ["02:00-03:00"]},
    )
    found = assert_consistent(
        plan, utc("2026-10-24T22:00"), utc("2026-10-25T04:00"), step=timedelta(minutes=10)
    )
    assert [(s.user, s.start.astimezone(UTC).isoformat(), length(s)) for s in found] == [
        ("alice", "2026-10-24T22:00:00+00:00", 2 * HOUR),
        ("nina", "2026-10-25T00:00:00+00:00", 2 * HOUR),  # the window's hour, twice over
        ("alice", "2026-10-25T02:00:00+00:00", 2 * HOUR),
    ]


def test_active_hours_edge_inside_the_repeated_hour() -> None:
    plan = schedule(
        "Europe/Berlin",
        {"users": ["alice"], "length": "1d", "start": "2026-10-01T00:00:00"},
        {"users": ["nina"], "length": "1d", "start": "2026-10-01T00:00:00", "active": ["02:30-06:00"]},
    )
    found = assert_consistent(
        plan, utc("2026-10-25T00:00"), utc("2026-10-25T06:00"), step=timedelta(minutes=10)
    )
    assert [
        (s.user, s.start.astimezone(UTC).strftime("%H:%M"), s.end.astimezone(UTC).strftime("%H:%M"))
        for s in found
    ] == [
        ("alice", "00:00", "00:30"),
        ("nina", "00:30", "01:00"),  # 02:30-03:00 CEST
        ("alice", "01:00", "01:30"),  # the clocks go back to 02:00: outside the window again
        ("nina", "01:30", "05:00"),  # 02:30 CET to 06:00 CET
        ("alice", "05:00", "06:00"),
    ]


def test_active_hours_in_the_skipped_hour() -> None:
    plan = schedule(
        "Europe/Berlin",
        {"users": ["alice"], "length": "1d", "start": "2026-03-01T00:00:00"},
        {"users": ["nina"], "length": "1d", "start": "2026-03-01T00:00:00", "active": ["02:00-03:00"]},
        {"users": ["omar"], "length": "1d", "start": "2026-03-01T00:00:00", "active": ["02:30-06:00"]},
    )
    found = assert_consistent(
        plan, utc("2026-03-28T00:00"), utc("2026-03-29T06:00"), step=timedelta(minutes=10)
    )
    nina = [(s.start.isoformat(), s.end.isoformat()) for s in found if s.user == "nina"]
    assert nina == [("2026-03-28T02:00:00+01:00", "2026-03-28T02:30:00+01:00")]  # none on the 29th
    omar = [(s.start.isoformat(), s.end.isoformat()) for s in found if s.user == "omar"]
    assert omar == [
        ("2026-03-28T02:30:00+01:00", "2026-03-28T06:00:00+01:00"),
        ("2026-03-29T03:00:00+02:00", "2026-03-29T06:00:00+02:00"),  # from the jump
    ]


def test_neighbours_with_the_same_person_and_layer_are_one_shift() -> None:
    plan = schedule(
        "Europe/Berlin",
        {"users": ["alice"], "length": "1d", "start": "2026-03-01T09:00:00"},
        {"users": ["alice"], "length": "1d", "start": "2026-03-01T09:00:00", "active": ["12:00-13:00"]},
    )
    found = shifts(plan, local("2026-03-02T00:00", BERLIN), local("2026-03-05T00:00", BERLIN))
    assert [(s.user, s.layer, s.start.strftime("%d %H:%M"), s.end.strftime("%d %H:%M")) for s in found] == [
        ("alice", 0, "02 00:00", "02 12:00"),
        ("alice", 1, "02 12:00", "02 13:00"),  # another layer: shown apart, so the calendar can say why
        ("alice", 0, "02 13:00", "03 12:00"),  # the daily handoffs to alice herself are not shown
        ("alice", 1, "03 12:00", "03 13:00"),
        ("alice", 0, "03 13:00", "04 12:00"),
        ("alice", 1, "04 12:00", "04 13:00"),
        ("alice", 0, "04 13:00", "05 00:00"),
    ]


# Overrides.


def test_an_override_wins_over_every_layer_for_its_time_only() -> None:
    cover = Override("bob", local("2026-01-07T10:00", SHANGHAI), local("2026-01-07T12:00", SHANGHAI), id=7)
    assert on_call(ISSUE, local("2026-01-07T09:59", SHANGHAI), [cover]) == "alice"
    assert on_call(ISSUE, local("2026-01-07T10:00", SHANGHAI), [cover]) == "bob"
    assert on_call(ISSUE, local("2026-01-07T12:00", SHANGHAI), [cover]) == "alice"
    found = shifts(ISSUE, local("2026-01-07T00:00", SHANGHAI), local("2026-01-08T00:00", SHANGHAI), [cover])
    assert [(s.user, s.source, s.layer, s.override_id, s.start.hour, s.end.hour) for s in found] == [
        ("alice", "rotation", 0, None, 0, 10),
        ("bob", "override", None, 7, 10, 12),
        ("alice", "rotation", 0, None, 12, 0),
    ]


def test_an_override_covers_time_no_layer_covers() -> None:
    cover = Override("carol", utc("2026-01-01T00:00"), utc("2026-01-06T00:00"), id=1)
    assert on_call(ISSUE, local("2026-01-03T12:00", SHANGHAI), [cover]) == "carol"
    found = shifts(ISSUE, utc("2026-01-05T00:00"), utc("2026-01-06T12:00"), [cover])
    assert [(s.user, s.source, s.start.astimezone(UTC).isoformat()) for s in found] == [
        ("carol", "override", "2026-01-05T00:00:00+00:00"),  # clipped to the range asked for
        ("alice", "rotation", "2026-01-06T00:00:00+00:00"),
    ]


def test_an_override_by_the_person_on_call_is_still_shown_as_an_override() -> None:
    cover = Override("alice", local("2026-01-07T10:00", SHANGHAI), local("2026-01-07T12:00", SHANGHAI), id=3)
    found = shifts(ISSUE, local("2026-01-07T09:00", SHANGHAI), local("2026-01-07T13:00", SHANGHAI), [cover])
    assert [s.source for s in found] == ["rotation", "override", "rotation"]


CREATED = utc("2026-01-01T00:00")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param((1, CREATED), (2, CREATED + HOUR), "dave", id="the most recently created"),
        pytest.param((2, CREATED + HOUR), (1, CREATED), "carol", id="creation time, not position"),
        pytest.param((1, None), (2, CREATED), "dave", id="a known time beats none"),
        pytest.param((5, CREATED), (4, CREATED), "carol", id="same time: the larger id"),
        pytest.param((None, None), (None, None), "dave", id="nothing known: the later one"),
    ],
)
def test_overlapping_overrides(
    first: tuple[int | None, datetime | None], second: tuple[int | None, datetime | None], expected: str
) -> None:
    overrides = [
        Override("carol", local("2026-01-07T10:00", SHANGHAI), local("2026-01-07T14:00", SHANGHAI), *first),
        Override("dave", local("2026-01-07T12:00", SHANGHAI), local("2026-01-07T16:00", SHANGHAI), *second),
    ]
    assert on_call(ISSUE, local("2026-01-07T13:00", SHANGHAI), overrides) == expected
    assert on_call(ISSUE, local("2026-01-07T11:00", SHANGHAI), overrides) == "carol"
    assert on_call(ISSUE, local("2026-01-07T15:00", SHANGHAI), overrides) == "dave"
    assert_consistent(
        ISSUE, local("2026-01-07T00:00", SHANGHAI), local("2026-01-08T00:00", SHANGHAI), overrides
    )


def test_overrides_compare_as_instants_in_the_repeated_hour() -> None:
    # 02:30 CET (second occurrence) is after 02:45 CEST (first occurrence), though the clock reads less.
    plan = schedule("Europe/Berlin", {"users": ["alice"], "length": "1w", "start": "2026-10-01T00:00:00"})
    cover = Override("bob", local("2026-10-25T02:45", BERLIN, fold=0), local("2026-10-25T05:00", BERLIN))
    assert on_call(plan, local("2026-10-25T02:30", BERLIN, fold=1), [cover]) == "bob"
    assert on_call(plan, local("2026-10-25T02:30", BERLIN, fold=0), [cover]) == "alice"


def test_an_override_given_in_local_time_inside_the_repeated_hour() -> None:
    plan = schedule(
        "Europe/Berlin",
        {"users": ["alice"], "length": "1d", "start": "2026-10-01T00:00:00"},
        {"users": ["nina"], "length": "1d", "start": "2026-10-01T00:00:00", "active": ["02:30-06:00"]},
    )
    # From the second 02:30 (CET), where nina's window opens again, to 03:30 CET.
    cover = Override(
        "bob", local("2026-10-25T02:30", BERLIN, fold=1), local("2026-10-25T03:30", BERLIN), id=9
    )
    found = assert_consistent(
        plan, utc("2026-10-25T00:00"), utc("2026-10-25T06:00"), [cover], step=timedelta(minutes=10)
    )
    assert [
        (s.user, s.start.astimezone(UTC).strftime("%H:%M"), s.end.astimezone(UTC).strftime("%H:%M"))
        for s in found
    ] == [
        ("alice", "00:00", "00:30"),
        ("nina", "00:30", "01:00"),
        ("alice", "01:00", "01:30"),
        ("bob", "01:30", "02:30"),
        ("nina", "02:30", "05:00"),
        ("alice", "05:00", "06:00"),
    ]


def test_a_month_calendar_with_layers_overrides_and_a_dst_change() -> None:
    overrides = [
        Override("frank", local("2026-03-10T20:00", BERLIN), local("2026-03-12T08:00", BERLIN), 1, CREATED),
        Override(
            "grace", local("2026-03-11T09:00", BERLIN), local("2026-03-11T10:00", BERLIN), 2, CREATED + HOUR
        ),
        Override("heidi", local("2026-03-29T01:00", BERLIN), local("2026-03-29T04:00", BERLIN), 3, CREATED),
    ]
    found = assert_consistent(
        LAYERED,
        local("2026-03-01T00:00", BERLIN),
        local("2026-04-01T00:00", BERLIN),
        overrides,
        step=timedelta(minutes=20),
    )
    assert {s.user for s in found} == {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
    assert [(s.user, s.override_id) for s in found if s.source == "override"] == [
        ("frank", 1),
        ("grace", 2),  # created later, so it wins where the two overlap
        ("frank", 1),
        ("heidi", 3),
    ]
    heidi = next(s for s in found if s.user == "heidi")
    assert length(heidi) == 2 * HOUR  # 01:00 CET to 04:00 CEST
    # The Monday after the change: nights, business hours, lunch and the weekly handoff, all in CEST.
    day = local("2026-03-30T00:00", BERLIN), local("2026-03-31T00:00", BERLIN)
    monday = [
        (s.user, s.start.strftime("%d %H:%M%z"), s.end.strftime("%d %H:%M"))
        for s in found
        if s.end > day[0] and s.start < day[1]
    ]
    assert monday == [
        ("dave", "29 22:00+0200", "30 06:00"),
        ("bob", "30 06:00+0200", "30 09:00"),
        ("carol", "30 09:00+0200", "30 12:00"),
        ("dave", "30 12:00+0200", "30 13:00"),
        ("carol", "30 13:00+0200", "30 18:00"),
        (
            "alice",
            "30 18:00+0200",
            "30 22:00",
        ),  # the weekly handoff at 09:00 CEST, seen once carol's hours end
        ("erin", "30 22:00+0200", "31 06:00"),
    ]


# Input checks.


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 1, 7, 10, 0)
    with pytest.raises(ValueError, match="no time zone"):
        on_call(ISSUE, naive)
    with pytest.raises(ValueError, match="no time zone"):
        shifts(ISSUE, naive, utc("2026-01-08T00:00"))
    with pytest.raises(ValueError, match="no time zone"):
        shifts(ISSUE, utc("2026-01-08T00:00"), naive)
    with pytest.raises(ValueError, match=r"start .* no time zone"):
        Override("bob", naive, utc("2026-01-08T00:00"))
    with pytest.raises(ValueError, match=r"created_at .* no time zone"):
        Override("bob", utc("2026-01-07T00:00"), utc("2026-01-08T00:00"), created_at=naive)


def test_an_override_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        Override("bob", utc("2026-01-08T00:00"), utc("2026-01-08T00:00"))


def test_a_range_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        shifts(ISSUE, utc("2026-01-08T00:00"), utc("2026-01-07T00:00"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-18:00", (540, 1080)),
        ("9:00-17:30", (540, 1050)),
        ("22:00-06:00", (1320, 360)),
        ("00:00-24:00", (0, 1440)),
    ],
)
def test_parse_window(text: str, expected: tuple[int, int]) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("25:00-26:00", "not a time of day"),
        ("09:60-10:00", "not a time of day"),
        ("09:00-09:00", "empty"),
        ("24:00-06:00", "23:59 at the latest"),
        ("9-17", "write it like 09:00-18:00"),
    ],
)
def test_bad_active_hours_are_rejected_when_the_config_is_read(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Rotation.model_validate(
            {"users": ["alice"], "length": "1d", "start": "2026-01-01T00:00:00", "active": [text]}
        )
    assert caught.value.errors()[0]["loc"] == ("active", 0)

"""Alertmanager time intervals: every field, negative days, ranges that would wrap, locations, YAML traps."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from app.alerts.config import NamedTimeIntervals, TimeInterval, TimeRange
from app.alerts.timeintervals import (
    InclusiveRange,
    in_any,
    in_interval,
    parse_clock,
    parse_day_of_month_range,
    parse_month_range,
    parse_time_range,
    parse_weekday_range,
    parse_year_range,
)

BERLIN = ZoneInfo("Europe/Berlin")


def interval(**fields: object) -> TimeInterval:
    return TimeInterval.model_validate(fields)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rejected(fields: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as caught:
        TimeInterval.model_validate(fields)
    return str(caught.value)


# times


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-01-05T08:59:59", False),
        ("2026-01-05T09:00:00", True),  # start inclusive
        ("2026-01-05T16:59:59", True),
        ("2026-01-05T17:00:00", False),  # end exclusive
    ],
)
def test_times_start_inclusive_end_exclusive(at: str, expected: bool) -> None:
    office = interval(times=[{"start_time": "09:00", "end_time": "17:00"}])
    assert in_interval(office, utc(at)) is expected


def test_times_up_to_2400_cover_the_last_minute_of_the_day() -> None:
    evening = interval(times=[{"start_time": "17:00", "end_time": "24:00"}])
    assert in_interval(evening, utc("2026-01-05T23:59:59"))
    assert not in_interval(evening, utc("2026-01-06T00:00:00"))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-01-05T21:59", False),
        ("2026-01-05T22:00", True),
        ("2026-01-06T05:59", True),
        ("2026-01-06T06:00", False),
    ],
)
def test_a_night_across_midnight_is_two_ranges(at: str, expected: bool) -> None:
    night = interval(
        times=[{"start_time": "22:00", "end_time": "24:00"}, {"start_time": "00:00", "end_time": "06:00"}]
    )
    assert in_interval(night, utc(at)) is expected


def test_a_time_range_that_wraps_midnight_is_rejected_with_the_fix() -> None:
    message = rejected({"times": [{"start_time": "22:00", "end_time": "06:00"}]})
    assert "times.0" in message
    assert "write two: 22:00-24:00 and 00:00-06:00" in message


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("09:00", "09:00", "the range is empty"),
        ("24:00", "24:00", "the range is empty"),
        ("09:00", "24:30", "not a time of day"),
        ("09:60", "10:00", "not a time of day"),
        ("9am", "10:00", "not a time of day"),
        ("09:00:30", "10:00", "not a time of day"),
    ],
)
def test_bad_times_are_rejected(start: str, end: str, message: str) -> None:
    assert message in rejected({"times": [{"start_time": start, "end_time": end}]})


def test_times_are_normalised_and_accept_time_objects() -> None:
    assert TimeRange.model_validate({"start_time": "9:00", "end_time": "24:00"}) == TimeRange(
        start_time="09:00", end_time="24:00"
    )
    built = TimeRange.model_validate({"start_time": time(9, 30), "end_time": time(17)})
    assert (built.start_time, built.end_time) == ("09:30", "17:00")


# weekdays (0 = sunday, as in Alertmanager)


@pytest.mark.parametrize(
    ("weekdays", "day", "expected"),
    [
        (["monday:friday"], "2026-01-05", True),  # Monday
        (["monday:friday"], "2026-01-09", True),  # Friday
        (["monday:friday"], "2026-01-10", False),  # Saturday
        (["monday:friday"], "2026-01-04", False),  # Sunday
        (["saturday", "sunday"], "2026-01-10", True),
        (["saturday", "sunday"], "2026-01-04", True),
        (["saturday", "sunday"], "2026-01-07", False),
        (["Monday:FRIDAY"], "2026-01-07", True),  # any case, as Alertmanager
        (["sunday:saturday"], "2026-01-10", True),  # the whole week
        (["friday:saturday", "sunday:monday"], "2026-01-11", True),  # a long weekend, written as two
        (["friday:saturday", "sunday:monday"], "2026-01-13", False),
    ],
)
def test_weekdays(weekdays: list[str], day: str, expected: bool) -> None:
    assert in_interval(interval(weekdays=weekdays), utc(f"{day}T12:00")) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("saturday:sunday", "write two entries: 'saturday' and 'sunday'"),
        ("friday:monday", "write two entries: 'friday:saturday' and 'sunday:monday'"),
        ("funday", "'funday' is not a weekday"),
        ("1", "'1' is not a weekday"),  # Alertmanager takes names only
        ("monday:tuesday:wednesday", "not a range"),
    ],
)
def test_bad_weekdays_are_rejected(text: str, message: str) -> None:
    assert message in rejected({"weekdays": ["monday", text]})
    with pytest.raises(ValidationError) as caught:
        interval(weekdays=["monday", text])
    assert caught.value.errors()[0]["loc"] == ("weekdays", 1)  # names the offending entry


# days of month


@pytest.mark.parametrize(
    ("days", "day", "expected"),
    [
        ("1:5", "2026-01-01", True),
        ("1:5", "2026-01-05", True),
        ("1:5", "2026-01-06", False),
        ("-1", "2026-01-31", True),  # the last day, whatever the month
        ("-1", "2026-01-30", False),
        ("-1", "2026-02-28", True),
        ("-1", "2028-02-28", False),  # a leap year
        ("-1", "2028-02-29", True),
        ("-3:-1", "2026-02-25", False),
        ("-3:-1", "2026-02-26", True),
        ("-3:-1", "2026-02-28", True),
        ("-3:-1", "2026-04-28", True),
        ("-3:-1", "2026-04-27", False),
        ("25:-1", "2026-04-24", False),
        ("25:-1", "2026-04-30", True),
        ("28:-1", "2026-02-28", True),  # Alertmanager rejects this one; it matches in every month
        ("29:-1", "2026-02-28", False),  # no 29th in February 2026
        ("29:-1", "2026-03-31", True),
        ("1:31", "2026-02-28", True),  # cut to the month
        ("30:31", "2026-02-28", False),  # never in February
        ("30:31", "2026-03-30", True),
        ("31", "2026-04-30", False),  # April has no 31st
        ("-31:-1", "2026-02-01", True),  # further back than the month is long: from its first day
        ("-31", "2026-02-01", False),  # ... but a single day before the month is none
        ("-31", "2026-03-01", True),
    ],
)
def test_days_of_month(days: str, day: str, expected: bool) -> None:
    assert in_interval(interval(days_of_month=[days]), utc(f"{day}T12:00")) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "0 is not a day of the month"),
        ("32", "32 is not a day of the month"),
        ("-32", "-32 is not a day of the month"),
        ("-1:5", "must end so too"),
        ("25:5", "across the month's end write two entries: '25:-1' and '1:5'"),
        ("-1:-3", "never matches"),
        ("28:-5", "never matches"),
        ("first", "'first' is not a day of the month"),
    ],
)
def test_bad_days_of_month_are_rejected(text: str, message: str) -> None:
    assert message in rejected({"days_of_month": [text]})


# months and years


@pytest.mark.parametrize(
    ("months", "day", "expected"),
    [
        ("january:march", "2026-02-15", True),
        ("january:march", "2026-04-01", False),
        ("12", "2026-12-31", True),
        ("12", "2026-11-30", False),
        ("5:august", "2026-08-01", True),
        ("5:august", "2026-09-01", False),
        ("November:December", "2026-11-01", True),
    ],
)
def test_months(months: str, day: str, expected: bool) -> None:
    assert in_interval(interval(months=[months]), utc(f"{day}T12:00")) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("november:february", "write two entries, 'november:december' and 'january:february'"),
        ("december:january", "'december' and 'january'"),
        ("13", "13 is not a month"),
        ("0", "0 is not a month"),
        ("jan", "'jan' is not a month"),
    ],
)
def test_bad_months_are_rejected(text: str, message: str) -> None:
    assert message in rejected({"months": [text]})


@pytest.mark.parametrize(
    ("years", "day", "expected"),
    [
        ("2026:2027", "2026-01-01", True),
        ("2026:2027", "2027-12-31", True),
        ("2026:2027", "2028-01-01", False),
        ("2030", "2030-06-01", True),
        ("2030", "2029-06-01", False),
    ],
)
def test_years(years: str, day: str, expected: bool) -> None:
    assert in_interval(interval(years=[years]), utc(f"{day}T12:00")) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("2027:2026", "runs backwards"), ("0", "0 is not a year"), ("twenty", "'twenty' is not a year")],
)
def test_bad_years_are_rejected(text: str, message: str) -> None:
    assert message in rejected({"years": [text]})


# every field at once, and locations

MAINTENANCE = interval(
    times=[{"start_time": "02:00", "end_time": "04:00"}],
    weekdays=["saturday"],
    days_of_month=["-7:-1"],  # the last Saturday of the month
    months=["january:march"],
    years=["2026"],
    location="Asia/Shanghai",
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-01-30T17:59", False),  # 01:59 in Shanghai on Saturday 31 January
        ("2026-01-30T18:00", True),  # 02:00 there
        ("2026-01-30T19:59", True),
        ("2026-01-30T20:00", False),  # 04:00 there: past the end
        ("2026-01-23T18:30", False),  # Saturday 24 January: not in the last seven days
        ("2026-04-24T18:30", False),  # Saturday 25 April: not in January to March
        ("2027-01-29T18:30", False),  # Saturday 30 January 2027: not in 2026
        ("2026-01-31T18:30", False),  # Sunday 1 February in Shanghai
    ],
)
def test_every_field_must_match(at: str, expected: bool) -> None:
    assert in_interval(MAINTENANCE, utc(at)) is expected


def test_an_empty_interval_matches_always() -> None:
    assert in_interval(interval(), utc("2026-06-15T12:34"))


@pytest.mark.parametrize(
    ("fields", "at", "in_shanghai", "in_utc"),
    [
        pytest.param(
            {"times": [{"start_time": "09:00", "end_time": "10:00"}]},
            "2026-01-01T01:30",
            True,
            False,
            id="times",
        ),
        pytest.param({"weekdays": ["saturday"]}, "2026-01-02T20:00", True, False, id="weekdays"),
        pytest.param({"days_of_month": ["-1"]}, "2026-01-31T20:00", False, True, id="days"),
        pytest.param({"months": ["february"]}, "2026-01-31T20:00", True, False, id="months"),
        pytest.param({"years": ["2027"]}, "2026-12-31T20:00", True, False, id="years"),
    ],
)
def test_every_field_is_read_in_the_location(
    fields: dict[str, object], at: str, in_shanghai: bool, in_utc: bool
) -> None:
    assert in_interval(interval(**fields, location="Asia/Shanghai"), utc(at)) is in_shanghai
    assert in_interval(interval(**fields), utc(at)) is in_utc  # UTC when no location is given


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc("2026-10-24T23:59"), False),  # 01:59 CEST
        (utc("2026-10-25T00:30"), True),  # 02:30 CEST
        (utc("2026-10-25T01:30"), True),  # 02:30 CET: the wall clock reads it again
        (utc("2026-10-25T02:00"), False),  # 03:00 CET
        (utc("2026-03-29T00:59"), False),  # 01:59 CET, then the clocks jump to 03:00
        (utc("2026-03-29T01:00"), False),  # 03:00 CEST
        (datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1), True),
    ],
)
def test_times_follow_the_wall_clock_of_the_location_across_dst(at: datetime, expected: bool) -> None:
    night = interval(times=[{"start_time": "02:00", "end_time": "03:00"}], location="Europe/Berlin")
    assert in_interval(night, at) is expected


def test_an_unknown_location_is_rejected() -> None:
    assert "unknown time zone 'Mars/Olympus'" in rejected({"location": "Mars/Olympus"})


# in_any and input checks


def test_in_any() -> None:
    weekend = interval(weekdays=["saturday", "sunday"])
    nights = interval(times=[{"start_time": "00:00", "end_time": "06:00"}])
    saturday_noon, monday_night, monday_noon = (
        utc("2026-01-10T12:00"),
        utc("2026-01-05T03:00"),
        utc("2026-01-05T12:00"),
    )
    assert in_any([weekend, nights], saturday_noon)
    assert in_any([weekend, nights], monday_night)
    assert not in_any([weekend, nights], monday_noon)
    assert not in_any([], saturday_noon)  # no intervals: nothing is muted


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        in_interval(interval(), datetime(2026, 1, 5, 12, 0))
    with pytest.raises(ValueError, match="no time zone"):
        in_any([], datetime(2026, 1, 5, 12, 0))


# The helpers, as their own unit


def test_parse_helpers() -> None:
    assert parse_clock("00:00") == 0
    assert parse_clock("24:00") == 1440
    assert parse_time_range("17:00", "24:00") == (1020, 1440)
    assert parse_weekday_range("monday:friday") == InclusiveRange(1, 5)
    assert parse_weekday_range("sunday") == InclusiveRange(0, 0)
    assert parse_day_of_month_range("-3:-1") == InclusiveRange(-3, -1)
    assert parse_month_range("5:august") == InclusiveRange(5, 8)
    assert parse_year_range("2026:2027") == InclusiveRange(2026, 2027)


# The YAML an SRE copies from alertmanager.yml


ALERTMANAGER_BLOCK = """
name: office-hours
time_intervals:
  - times:
      - start_time: "09:00"
        end_time: "18:00"
    weekdays: ['monday:friday']
    days_of_month: [1, '-3:-1', 10]
    months: ['january:march', 12]
    years: [2026, '2028:2029']
    location: Asia/Shanghai
"""


def test_an_alertmanager_block_loads_with_bare_numbers() -> None:
    named = NamedTimeIntervals.model_validate(yaml.safe_load(ALERTMANAGER_BLOCK))
    (office,) = named.time_intervals
    assert office.days_of_month == ["1", "-3:-1", "10"]
    assert office.years == ["2026", "2028:2029"]
    assert in_interval(office, utc("2026-01-01T02:00"))  # Thursday 1 January, 10:00 in Shanghai
    assert not in_interval(office, utc("2026-01-02T02:00"))  # the 2nd is not listed


@pytest.mark.parametrize(
    ("block", "message"),
    [
        # PyYAML (YAML 1.1) reads these unquoted values as base-60 numbers; Alertmanager's parser does not.
        (
            "times: [{start_time: 10:00, end_time: '18:00'}]",
            "YAML reads an unquoted 10:00 as the number 600; quote it: '10:00'",
        ),
        (
            "times: [{start_time: '08:00', end_time: 9:30}]",
            "unquoted 9:30 as the number 570; quote it: '09:30'",
        ),
        ("days_of_month: [1:5]", "YAML reads an unquoted 1:5 as the number 65; quote it: '1:5'"),
        ("months: [1:3]", "YAML reads an unquoted 1:3 as the number 63; quote it: '1:3'"),
    ],
)
def test_unquoted_yaml_times_and_ranges_are_explained(block: str, message: str) -> None:
    assert message in rejected(yaml.safe_load(block))

"""The one time grammar: every form it reads, DST days, Grafana's rounding, and errors that name
the parameter and the accepted forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.errors import InvalidInput
from app.times import (
    FORMS,
    Clock,
    InvalidTime,
    local_day,
    localize,
    names_a_day,
    parse_day,
    parse_range,
    parse_time,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
# A fixed "now": Sunday 2026-12-06 10:30:15.250 in Shanghai (02:30:15.250 UTC).
NOW = datetime(2026, 12, 6, 2, 30, 15, 250_000, tzinfo=UTC)
CLOCK = Clock(NOW, SHANGHAI)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06T09:30:00+08:00", utc(2026, 12, 6, 1, 30)),
        ("2026-12-06T01:30:00Z", utc(2026, 12, 6, 1, 30)),
        ("2026-12-06t01:30:00z", utc(2026, 12, 6, 1, 30)),
        ("2026-12-06T01:30:00.125Z", datetime(2026, 12, 6, 1, 30, 0, 125_000, tzinfo=UTC)),
        # no offset: a wall time of the configured zone
        ("2026-12-06T09:30:00", utc(2026, 12, 6, 1, 30)),
        ("2026-12-06 09:30", utc(2026, 12, 6, 1, 30)),
        # an unencoded '+' in a URL arrives as a space
        ("2026-12-06T09:30:00 08:00", utc(2026, 12, 6, 1, 30)),
        # a plain date: its local midnight
        ("2026-12-06", utc(2026, 12, 5, 16)),
        # epoch seconds and milliseconds
        ("1764988200", utc(2025, 12, 6, 2, 30)),
        ("1764988200000", utc(2025, 12, 6, 2, 30)),
        ("1764988200.5", datetime(2025, 12, 6, 2, 30, 0, 500_000, tzinfo=UTC)),
        ("  2026-12-06T01:30:00Z  ", utc(2026, 12, 6, 1, 30)),
    ],
)
def test_absolute_forms_are_read_in_the_configured_zone(text: str, expected: datetime) -> None:
    assert parse_time(text, "from", CLOCK) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("now-7d", NOW - timedelta(days=7)),
        ("now-1h", NOW - timedelta(hours=1)),
        ("now+5m", NOW + timedelta(minutes=5)),
        ("now 5m", NOW + timedelta(minutes=5)),  # '+' decoded to a space
        ("now-30s", NOW - timedelta(seconds=30)),
        ("now-h", NOW - timedelta(hours=1)),  # Grafana: no number means 1
        ("now-1w", NOW - timedelta(weeks=1)),
        ("now-1M", datetime(2026, 11, 6, 2, 30, 15, 250_000, tzinfo=UTC)),
        ("now-1y", datetime(2025, 12, 6, 2, 30, 15, 250_000, tzinfo=UTC)),
        ("now-1d-2h", NOW - timedelta(days=1, hours=2)),
        # rounding to the start of the unit, in Shanghai
        ("now/d", utc(2026, 12, 5, 16)),
        ("now-1d/d", utc(2026, 12, 4, 16)),
        ("now/h", utc(2026, 12, 6, 2)),
        ("now-1h/h", utc(2026, 12, 6, 1)),
        ("now/m", utc(2026, 12, 6, 2, 30)),
        ("now/s", utc(2026, 12, 6, 2, 30, 15)),
        ("now/w", utc(2026, 11, 29, 16)),  # Monday 2026-11-30, local midnight
        ("now/M", utc(2026, 11, 30, 16)),
        ("now/y", utc(2025, 12, 31, 16)),
        ("now/d+8h", utc(2026, 12, 6, 0)),
    ],
)
def test_relative_forms_step_and_round_like_grafana(text: str, expected: datetime) -> None:
    assert parse_time(text, "from", CLOCK) == expected


LAST_MS = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now/d", utc(2026, 12, 6, 16) - LAST_MS),
        ("now-1d/d", utc(2026, 12, 5, 16) - LAST_MS),
        ("now/h", utc(2026, 12, 6, 3) - LAST_MS),
        ("now/w", utc(2026, 12, 6, 16) - LAST_MS),  # Sunday is the week's last day
        ("now/M", utc(2026, 12, 31, 16) - LAST_MS),
        ("now/y", utc(2026, 12, 31, 16) - LAST_MS),
        ("2026-12-06", utc(2026, 12, 6, 16) - LAST_MS),  # a date as an end includes the day
        ("now-1h", NOW - timedelta(hours=1)),  # no rounding: round_up changes nothing
        ("2026-12-06T09:30:00", utc(2026, 12, 6, 1, 30)),
    ],
)
def test_an_end_rounds_up_to_the_last_millisecond_of_the_unit(text: str, expected: datetime) -> None:
    assert parse_time(text, "to", CLOCK, round_up=True) == expected


def test_an_open_ended_range_rounds_up_to_the_next_unit_s_start() -> None:
    assert parse_time("2026-12-06", "to", CLOCK, round_up=True, open_end=True) == utc(2026, 12, 6, 16)
    assert parse_time("now/w", "to", CLOCK, round_up=True, open_end=True) == utc(2026, 12, 6, 16)
    assert parse_time("now/h", "to", CLOCK, round_up=True, open_end=True) == utc(2026, 12, 6, 3)
    assert parse_time("now-1h", "to", CLOCK, round_up=True, open_end=True) == NOW - timedelta(hours=1)


def test_days_on_the_spring_forward_day_are_23_hours() -> None:
    # Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST.
    clock = Clock(datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    start = parse_time("now/d", "from", clock)
    end = parse_time("now/d", "to", clock, round_up=True)
    assert start == utc(2026, 3, 28, 23)
    assert end + LAST_MS - start == timedelta(hours=23)
    assert parse_time("2026-03-29", "to", clock, round_up=True) == end


def test_days_on_the_fall_back_day_are_25_hours() -> None:
    clock = Clock(datetime(2026, 10, 25, 12, tzinfo=UTC), BERLIN)
    start = parse_time("2026-10-25", "from", clock)
    end = parse_time("2026-10-25", "to", clock, round_up=True)
    assert end + LAST_MS - start == timedelta(hours=25)


def test_a_day_step_keeps_the_wall_time_across_dst_while_hours_are_exact() -> None:
    clock = Clock(datetime(2026, 3, 29, 10, tzinfo=UTC), BERLIN)  # 12:00 CEST, the 23-hour Sunday
    assert parse_time("now-1d", "from", clock) == utc(2026, 3, 28, 11)  # 12:00 CET on Saturday
    assert parse_time("now-24h", "from", clock) == utc(2026, 3, 28, 10)  # 11:00 CET on Saturday


def test_a_month_step_clamps_to_the_month_s_last_day() -> None:
    clock = Clock(datetime(2026, 3, 31, 4, tzinfo=UTC), SHANGHAI)  # 12:00 on March 31
    assert parse_time("now-1M", "from", clock) == utc(2026, 2, 28, 4)


def test_an_hour_rounds_on_the_local_wall_in_a_half_hour_zone() -> None:
    clock = Clock(datetime(2026, 12, 6, 2, 50, tzinfo=UTC), ZoneInfo("Asia/Kolkata"))  # 08:20 IST
    assert parse_time("now/h", "from", clock) == utc(2026, 12, 6, 2, 30)


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-12-06", False, date(2026, 12, 6)),
        ("2026-12-06", True, date(2026, 12, 6)),
        ("now", False, date(2026, 12, 6)),
        ("now-7d", False, date(2026, 11, 29)),
        ("now-1d/d", True, date(2026, 12, 5)),
        # a time at a local midnight ends the day before it (Grafana's ${__to} of whole days)
        ("2026-12-06T00:00:00+08:00", True, date(2026, 12, 5)),
        ("2026-12-06T00:00:00+08:00", False, date(2026, 12, 6)),
        ("1764950400000", True, date(2025, 12, 5)),  # 2025-12-06 00:00 Shanghai, in ms
        ("2026-12-05T23:00:00Z", False, date(2026, 12, 6)),  # 07:00 the next morning in Shanghai
    ],
)
def test_a_day_is_the_local_day_of_the_value(text: str, end: bool, expected: date) -> None:
    assert parse_day(text, "from", CLOCK, end=end) == expected


def test_a_range_defaults_and_reads_its_end_rounded_up() -> None:
    assert parse_range(None, None, CLOCK, default=timedelta(hours=1)) == (NOW - timedelta(hours=1), NOW)
    start, end = parse_range("now-1d/d", "now-1d/d", CLOCK, default=timedelta(hours=1))
    assert (start, end) == (utc(2026, 12, 4, 16), utc(2026, 12, 5, 16) - LAST_MS)
    start, end = parse_range("2026-12-01", "2026-12-01", CLOCK, default=timedelta(hours=1))
    assert end + LAST_MS - start == timedelta(days=1)


def test_a_reversed_range_names_from() -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_range("now", "now-1h", CLOCK, default=timedelta(hours=1))
    assert caught.value.extra == {"parameter": "from"}
    assert "is not before to" in caught.value.message


@pytest.mark.parametrize(
    "text",
    ["yesterday", "now-", "now-7x", "now-1d/", "now*2", "2026-13-01", "2026-02-30", "12:00", "", " ", "1e9"],
)
def test_bad_input_names_the_parameter_and_lists_the_forms(text: str) -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_time(text, "since", CLOCK)
    error = caught.value
    assert isinstance(error, InvalidInput)  # main.py answers it as 400 invalid_request
    assert error.message.startswith("query parameter 'since': ")
    assert FORMS in error.message
    assert error.body() == {"error": "invalid_request", "message": error.message, "parameter": "since"}


def test_a_bad_relative_time_says_what_it_could_not_read() -> None:
    with pytest.raises(InvalidTime, match=r"cannot read '\*2' after now"):
        parse_time("now*2", "from", CLOCK)


def test_an_option_or_a_form_field_is_named_as_such() -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_day("soon", "--to", CLOCK, end=True, source="option")
    assert caught.value.message.startswith("option '--to': 'soon' is not a time")
    assert caught.value.extra == {"parameter": "to"}
    with pytest.raises(InvalidTime) as caught:
        parse_time("soon", "start", CLOCK, source="")
    assert caught.value.message.startswith("start: 'soon'")


def test_out_of_range_values_are_bad_input_not_crashes() -> None:
    for text in ("99999999999999999999", "now+10000y", "9999-12-31", "0001-01-01T00:00:00+08:00"):
        with pytest.raises(InvalidTime):
            parse_time(text, "to", CLOCK, round_up=True)


def test_helpers_for_bodies_and_days() -> None:
    assert local_day(utc(2026, 12, 5, 16), SHANGHAI) == date(2026, 12, 6)
    assert local_day(utc(2026, 12, 5, 16), SHANGHAI, end=True) == date(2026, 12, 5)
    assert names_a_day(" 2026-12-06 ")
    assert not names_a_day("2026-12-06T00:00")
    assert localize(datetime(2026, 12, 6, 9, 30), SHANGHAI) == utc(2026, 12, 6, 1, 30)
    aware = datetime(2026, 12, 6, 9, 30, tzinfo=BERLIN)
    assert localize(aware, SHANGHAI) == aware.astimezone(UTC)
    with pytest.raises(ValueError, match="aware"):
        Clock(datetime(2026, 12, 6), SHANGHAI)

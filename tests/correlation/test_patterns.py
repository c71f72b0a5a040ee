"""Error log lines grouped by message pattern (what the pages' "top error logs" count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.correlation import service as correlation
from app.correlation.schemas import LogEntry

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def line(message: str | None, seconds: int, level: str = "error") -> LogEntry:
    return LogEntry(
        timestamp=T0 + timedelta(seconds=seconds),
        service="checkout",
        namespace="shop",
        pod=None,
        container=None,
        level=level,
        message=message,
        trace_id=None,
        span_id=None,
        index="logstash-2026.12.01",
        id=f"doc-{seconds}",
    )


@pytest.mark.parametrize(
    ("message", "pattern"),
    [
        ("order 8812 failed after 300ms", "order <n> failed after <n>ms"),
        ("db connection to 10.0.0.3:5432 refused", "db connection to <ip> refused"),
        ("user 3f2504e0-4f89-11d3-9a0c-0305e82c3301 not found", "user <id> not found"),
        ("trace 0af7651916cd43dd8448eb211c80319c dropped", "trace <id> dropped"),
        ("at 2026-12-01T08:00:01.123Z:   retry   #3", "at <time>: retry #<n>"),
        ("deadbeef cafe face", "deadbeef cafe face"),  # words that happen to be hex stay
    ],
)
def test_what_varies_between_occurrences_is_set_aside(message: str, pattern: str) -> None:
    assert correlation.message_pattern(message) == pattern


def test_groups_are_counted_most_frequent_first_each_with_its_newest_line() -> None:
    logs = [
        line("order 8810 failed after 301ms", 1),
        line("panic: nil map", 2, "fatal"),
        line("order 8811 failed after 299ms", 3),
        line("db connection to 10.0.0.3:5432 refused", 4),
        line("order 8812 failed after 300ms", 5),
        line("db connection to 10.0.0.4:5432 refused", 6),
        line(None, 7),
        line("timeout talking to payments", 8),
    ]
    groups = correlation.error_patterns(logs, 3)
    assert [(g.count, g.example) for g in groups] == [
        (3, "order 8812 failed after 300ms"),
        (2, "db connection to 10.0.0.4:5432 refused"),
        (1, "timeout talking to payments"),  # of the single ones, the newest
    ]
    assert groups[0].pattern == "order <n> failed after <n>ms"
    assert groups[0].last_seen == T0 + timedelta(seconds=5)
    assert correlation.error_patterns([], 3) == []


def test_long_lines_differing_only_in_a_numbers_length_share_their_pattern() -> None:
    """The pattern is cut after the numbers are set aside: ``request 7`` and ``request 12`` followed
    by the same long stack trace are one group, not two cut at different places."""
    trace = "".join(f"\n  at com.shop.Service.step{k}(Service.java:{100 + k})" for k in range(20))
    short, long = (correlation.message_pattern(f"panic: nil map in request {n}{trace}") for n in (7, 123456))
    assert short == long
    assert len(short) == correlation.PATTERN_CHARS
    assert short.startswith("panic: nil map in request <n> at com.shop.Service.step<n>(Service.java:<n>)")

"""PromQL building helpers: exact escaping, proven against the real Prometheus's parser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.backends.prometheus import PrometheusClient
from app.backends.promql import (
    duration,
    escape_label_value,
    matcher,
    regex_escape_literal,
    selector,
    validate_label_name,
)
from tests.harness.datasets import (
    ESCAPE_DECOYS,
    ESCAPE_PROBE_INTERVAL_S,
    ESCAPE_PROBE_METRIC,
    ESCAPE_TARGET,
    REGEX_PROBE,
    Dataset,
)
from tests.harness.prometheus import RunningPrometheus

AWKWARD = [
    "",
    "plain",
    'double "quotes"',
    "back\\slash and trailing \\",
    "new\nline",
    "crlf\r\n",
    "tab\t",
    "nul\x00 bell\x07 esc\x1b del\x7f",
    "c1 control\x85",
    "日本語 ✓ café 🙂",
    "zero\u200dwidth joiner, line\u2028separator",
    "plane-14 tag \U000e0041",
    "\\n is not a newline",
    '\\"',
    "'single' and `back`",
    "$1 ${2} {{ }}",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb", '"a\\nb"'),
        ("a\rb\tc", '"a\\rb\\tc"'),
        ("\x01\x7f", '"\\x01\\x7f"'),
        ("\x85", '"\\u0085"'),
        ("café 日本 🙂", '"café 日本 🙂"'),
        ("\u200d", '"\\u200d"'),
        ("\U000e0041", '"\\U000e0041"'),
    ],
)
def test_escape_label_value(value: str, expected: str) -> None:
    assert escape_label_value(value) == expected


def test_escaped_values_never_contain_a_raw_newline_or_unescaped_quote() -> None:
    for value in AWKWARD:
        literal = escape_label_value(value)
        body = literal[1:-1]
        assert "\n" not in literal
        assert re.fullmatch(r'(?:[^"\\]|\\.)*', body, flags=re.DOTALL), literal


def test_a_literal_escaped_for_a_regex_matches_itself_only() -> None:
    """Backslashes first, then the other operators: no escape is escaped twice."""
    operators = "\\.+*?()|[]{}^$"
    assert regex_escape_literal("\\.") == "\\\\\\."
    for value in [*AWKWARD, operators, operators[::-1], "a\\|b", "x" * 300 + operators]:
        escaped = regex_escape_literal(value)
        assert re.fullmatch(escaped, value, flags=re.DOTALL), value
        assert not re.fullmatch(escaped, value + "x", flags=re.DOTALL)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        escape_label_value("bad \ud800")


@pytest.mark.parametrize("name", ["job", "_x", "__name__", "a1_B2"])
def test_valid_label_names(name: str) -> None:
    assert validate_label_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a.b", "a b", "é", 'x"}'])
def test_invalid_label_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid label name"):
        validate_label_name(name)


def test_matchers_and_selectors() -> None:
    assert str(matcher("job", "=", 'a"b')) == 'job="a\\"b"'
    assert str(matcher("pod", "=~", "web-.*")) == 'pod=~"web-.*"'
    assert str(matcher("path", "!~", r"/api/v\d+")) == 'path!~"/api/v\\\\d+"'
    assert str(matcher("code", "!=", "200")) == 'code!="200"'
    assert selector("up") == "up"
    assert selector("up", job="node", instance="a:9100") == 'up{job="node",instance="a:9100"}'
    assert (
        selector("http_requests_total", matcher("code", "=~", "5.."), path="/")
        == 'http_requests_total{code=~"5..",path="/"}'
    )
    assert selector(None, matcher("__name__", "=~", "node_.+")) == '{__name__=~"node_.+"}'


def test_selectors_refuse_bad_names_and_operators() -> None:
    with pytest.raises(ValueError, match="invalid metric name"):
        selector('up{job="x"}')
    with pytest.raises(ValueError, match="invalid label name"):
        matcher('job="x",a', "=", "v")
    with pytest.raises(ValueError, match="operator"):
        matcher("job", "==", "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a metric name"):
        selector(None)


def test_regex_escape_literal_quotes_every_re2_operator() -> None:
    assert regex_escape_literal("a.b*c+d?(e)[f]{g}|h^i$j\\k") == (
        "a\\.b\\*c\\+d\\?\\(e\\)\\[f\\]\\{g\\}\\|h\\^i\\$j\\\\k"
    )
    assert regex_escape_literal("plain-text_1/é") == "plain-text_1/é"
    for value in AWKWARD:
        assert re.fullmatch(regex_escape_literal(value), value, flags=re.DOTALL)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (1, "1s"),
        (90, "1m30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90000, "1d1h"),
        (7 * 86400, "1w"),
        (90 * 86400, "90d"),
        (365 * 86400, "1y"),
        (timedelta(hours=25, milliseconds=5), "1d1h5ms"),
    ],
)
def test_duration(seconds: float | timedelta, expected: str) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_duration_refuses_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration(bad)


# --- against the real Prometheus ---------------------------------------------------------


@pytest.fixture
async def client(prometheus: RunningPrometheus) -> AsyncIterator[PrometheusClient]:
    prom = PrometheusClient(prometheus.settings(retries=0))
    yield prom
    await prom.aclose()


async def test_string_literals_round_trip_through_the_promql_parser(client: PrometheusClient) -> None:
    """A PromQL string literal evaluates to itself: Prometheus's own unquoting proves the escaping."""
    for value in AWKWARD:
        result = await client.query(escape_label_value(value))
        assert result.result_type == "string"
        assert result.string == value, (value, escape_label_value(value))


async def test_backfilled_awkward_label_value_is_found_by_its_selector_and_only_it(
    client: PrometheusClient, session_dataset: Dataset
) -> None:
    """The target value holds a double quote, a backslash and a newline; its decoys differ by
    one escape. It went through the OpenMetrics writer and promtool, and comes back by selector."""
    at = session_dataset.end
    for case, value in enumerate((ESCAPE_TARGET, *ESCAPE_DECOYS)):
        result = await client.query(selector(ESCAPE_PROBE_METRIC, value=value), at=at)
        assert [(s.labels["case"], s.labels["value"], s.value) for s in result.samples] == [
            (str(case), value, float(case))
        ]


async def test_regex_matchers_with_escaped_literals_match_exactly(
    client: PrometheusClient, session_dataset: Dataset
) -> None:
    at = session_dataset.end
    one = await client.query(
        selector(ESCAPE_PROBE_METRIC, matcher("value", "=~", regex_escape_literal(ESCAPE_TARGET))), at=at
    )
    assert [s.labels["value"] for s in one.samples] == [ESCAPE_TARGET]

    regex = await client.query(
        selector(ESCAPE_PROBE_METRIC, matcher("value", "=~", regex_escape_literal(REGEX_PROBE))), at=at
    )
    assert [s.labels["value"] for s in regex.samples] == [REGEX_PROBE]
    unescaped = await client.query(selector(ESCAPE_PROBE_METRIC, matcher("value", "=~", REGEX_PROBE)), at=at)
    assert [s.labels["value"] for s in unescaped.samples] == ["axcef{g}"]  # why escaping matters

    pair = "|".join(regex_escape_literal(v) for v in (ESCAPE_TARGET, ESCAPE_DECOYS[0]))
    both = await client.query(selector(ESCAPE_PROBE_METRIC, matcher("value", "=~", pair)), at=at)
    assert sorted(s.labels["value"] for s in both.samples) == sorted([ESCAPE_TARGET, ESCAPE_DECOYS[0]])

    others = await client.query(selector(ESCAPE_PROBE_METRIC, matcher("value", "!=", ESCAPE_TARGET)), at=at)
    assert ESCAPE_TARGET not in {s.labels["value"] for s in others.samples}
    assert len(others.samples) == len(ESCAPE_DECOYS)


async def test_compound_durations_are_understood_by_prometheus(
    client: PrometheusClient, session_dataset: Dataset
) -> None:
    window = 5400  # 1h30m
    at = session_dataset.end
    expr = f"count_over_time({selector(ESCAPE_PROBE_METRIC, case='0')}[{duration(window)}])"
    result = await client.query(expr, at=at)
    truth = session_dataset.one(ESCAPE_PROBE_METRIC, case="0")
    assert duration(window) == "1h30m"
    assert [s.value for s in result.samples] == [float(len(truth.between(at - window, at)))]
    assert len(truth.between(at - window, at)) == window // ESCAPE_PROBE_INTERVAL_S + 1

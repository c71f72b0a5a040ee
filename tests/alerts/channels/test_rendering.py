"""What every channel's rendering shares: escaping, URL guards, caps, time zones, order, the cut."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from app.alerts.channels import dingtalk, feishu, slack, wecom
from app.alerts.channels.dialects import (
    ELLIPSIS,
    LARK_MD,
    PLAIN,
    ROBOT_MARKDOWN,
    SLACK_MRKDWN,
    Dialect,
    safe_url,
)
from app.alerts.channels.render import fit
from app.alerts.channels.views import Prepared, format_time, ordered
from tests.alerts.channels.support import T0, alert, many_alerts, notification


@pytest.mark.parametrize(
    ("dialect", "hostile", "inert"),
    [
        (ROBOT_MARKDOWN, "<@all> [x](http://e) `c`", "＜@all＞ ［x］(http://e) ｀c｀"),
        (
            LARK_MD,
            "<at id=all></at> *b* [x](y)",
            "&#60;at id=all&#62;&#60;/at&#62; &#42;b&#42; &#91;x&#93;&#40;y&#41;",
        ),
        (SLACK_MRKDWN, "<!channel> a&b <@U1>", "&lt;!channel&gt; a&amp;b &lt;@U1&gt;"),
        (PLAIN, "<b>as is</b>", "<b>as is</b>"),
    ],
)
def test_each_format_makes_hostile_text_inert(dialect: Dialect, hostile: str, inert: str) -> None:
    assert dialect.text(hostile, 500) == inert


def test_text_is_folded_onto_one_line_without_controls_or_bidi_overrides() -> None:
    assert ROBOT_MARKDOWN.text("a\n# b\r\n> c\x00\u202e d", 100) == "a # b ＞ c d"
    assert PLAIN.text("line 1\n\n  line 2  ", 100, multiline=True) == "line 1\nline 2"


def test_the_cap_counts_escaped_characters_and_never_splits_an_entity() -> None:
    capped = LARK_MD.text("<" * 50, 22)

    assert capped == "&#60;" * 4 + ELLIPSIS
    assert len(capped) <= 22
    assert SLACK_MRKDWN.text("short", 5) == "short"
    assert SLACK_MRKDWN.text("longer", 5) == "long" + ELLIPSIS


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://p.example/ack/1", "https://p.example/ack/1"),
        ("http://prom:9090/graph?g0.expr=rate(x[5m])", "http://prom:9090/graph?g0.expr=rate%28x%5B5m%5D%29"),
        ("https://p.example/a b>c", "https://p.example/a%20b%3Ec"),
        ("javascript:alert(1)", None),
        ("file:///etc/passwd", None),
        ("/relative", None),
        ("", None),
        (None, None),
    ],
)
def test_only_http_urls_are_linked_and_they_cannot_close_the_link(url: str | None, safe: str | None) -> None:
    assert safe_url(url) == safe


def test_slack_links_carry_ampersands_as_entities() -> None:
    assert SLACK_MRKDWN.url("https://p.example/?a=1&b=2") == "https://p.example/?a=1&amp;b=2"


def test_times_are_shown_in_the_schedules_zone_across_a_dst_change() -> None:
    new_york = ZoneInfo("America/New_York")
    before = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)

    assert format_time(T0, ZoneInfo("Asia/Shanghai")) == "2026-01-05 09:30:00 UTC+08:00"
    assert format_time(before, new_york) == "2026-03-08 01:30:00 UTC-05:00"
    assert format_time(before + timedelta(hours=1), new_york) == "2026-03-08 03:30:00 UTC-04:00"
    assert format_time(T0.replace(tzinfo=None), ZoneInfo("UTC")) == "2026-01-05 01:30:00 UTC+00:00"


def test_an_unknown_zone_falls_back_to_utc() -> None:
    view = Prepared(notification(timezone="Mars/Olympus_Mons"), PLAIN).view()

    assert view.incident is not None
    assert view.incident.started_at == "2026-01-05 01:30:00 UTC+00:00"


def test_alerts_are_read_firing_first_then_most_severe_then_oldest() -> None:
    alerts = [
        alert("resolved-critical", status="resolved", severity="critical"),
        alert("info", severity="info"),
        alert("critical-new", severity="critical", starts_at=T0 + timedelta(minutes=5)),
        alert("no-severity", severity=None),
        alert("critical-old", severity="critical"),
        alert("warning", severity="WARNING"),
    ]

    assert [a.name for a in ordered(alerts)] == [
        "critical-old",
        "critical-new",
        "warning",
        "info",
        "no-severity",
        "resolved-critical",
    ]


def test_the_cut_finds_the_longest_message_that_fits() -> None:
    prepared = Prepared(notification(alerts=many_alerts(100)), PLAIN)
    sizes = {shown: len(prepared.view(shown).alerts) * 10 + 5 for shown in range(101)}

    best = fit(prepared, lambda shown: sizes[shown], lambda size: size <= 377)

    assert best == 375
    assert fit(prepared, lambda shown: sizes[shown], lambda size: size <= 4) is None


def test_a_view_counts_what_it_leaves_out_in_the_messages_language() -> None:
    prepared = Prepared(notification(alerts=many_alerts(5), locale="en"), PLAIN)

    assert prepared.view(4).more == "…and 1 more alert"
    assert prepared.view(2).more == "…and 3 more alerts"
    assert prepared.view().more == ""
    assert Prepared(notification(alerts=many_alerts(5)), PLAIN).view(2).more == "…以及另外 3 条告警"


def test_labels_show_the_useful_ones_first_and_count_the_rest() -> None:
    many_labels = {f"z{i:02d}": "v" for i in range(12)}
    view = Prepared(notification(alerts=[alert(labels={"pod": "pay-1", **many_labels})]), PLAIN).view()

    [item] = view.alerts
    assert [k for k, _ in item.labels][:3] == ["service", "namespace", "pod"]
    assert len(item.labels) == 8
    assert item.hidden_labels == 15 - 8
    assert all(k not in ("alertname", "severity") for k, _ in item.labels)


@pytest.mark.parametrize("status", ["acknowledged", "resolved"])
def test_only_a_triggered_incident_offers_its_ack_link(status: Literal["acknowledged", "resolved"]) -> None:
    view = Prepared(notification(status=status), PLAIN).view()

    assert view.incident is not None
    assert view.incident.ack_url is None
    assert view.incident.ack_button_url is None
    assert view.incident.incident_url is not None


def test_a_storm_sized_group_is_cut_to_each_robots_limit() -> None:
    storm = notification(alerts=many_alerts(5000), firing=5000)

    dingtalk_body = dingtalk.body(storm)
    wecom_content = wecom.content(storm)
    feishu_body = feishu.body(storm)
    slack_message = slack.build(storm)

    assert dingtalk_body is not None
    assert len(dingtalk_body) <= dingtalk.MAX_BODY_BYTES
    assert wecom_content is not None
    assert len(wecom_content.encode()) <= wecom.MAX_CONTENT_BYTES
    assert feishu_body is not None
    assert len(feishu_body) <= feishu.MAX_BODY_BYTES
    assert slack_message is not None
    assert slack.within_limits(slack_message)
    for text in (dingtalk_body.decode(), wecom_content, feishu_body.decode()):
        shown = len(re.findall(r"\*\*\d+\. PodCrashLooping\d{4}\*\*", text))
        assert f"…以及另外 {5000 - shown} 条告警" in text

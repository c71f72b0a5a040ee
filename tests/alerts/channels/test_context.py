"""A page's context (error lines, trace links, dashboard link) in every channel's format, inert,
within each channel's limits, in zh-CN and en."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.alerts import messages
from app.alerts.channels import dingtalk, email, feishu, slack, wecom
from app.alerts.channels.base import ErrorLine, Notification, PageContext, ServiceContext, TraceLink
from app.alerts.channels.config import ChannelConfig
from app.alerts.channels.dialects import ROBOT_MARKDOWN
from app.alerts.channels.render import fit, render
from app.alerts.channels.views import Prepared
from tests.alerts.channels.support import HOSTILE, many_alerts, notification

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACE_URL = f"https://panorama.example.com/traces/{TRACE}?view=dHJhY2U.1797166956.c2ln"
JAEGER_URL = f"https://jaeger.example.com/trace/{TRACE}"
CONTEXT_URL = "https://panorama.example.com/incidents/7/context?view=aW5jaWRlbnQ6Nw.1797166956.c2ln"
GRAFANA_URL = "https://grafana.example.com/d/panorama-service-history?from=1&to=now&var-service=pay"


def section(**changes: Any) -> ServiceContext:
    """One service's context (``pay``): two error lines (one hostile), two traces, both links."""
    base = {
        "service": "pay",
        "errors": [
            ErrorLine("card processor timed out after 300ms", 12),
            ErrorLine(HOSTILE["link"] + " " + HOSTILE["mention_slack"] + " " + HOSTILE["html"], 2),
        ],
        "traces": [
            TraceLink(TRACE, "pay.prod POST /charge", 480.4, True, TRACE_URL, JAEGER_URL),
            TraceLink(
                "1" * 32,
                "pay.prod GET /status",
                2300,
                False,
                "https://panorama.example.com/traces/" + "1" * 32,
            ),
        ],
        "grafana_url": GRAFANA_URL,
        "service_url": "https://panorama.example.com/services/pay?view=c2Vy.1797166956.c2ln",
        "missing": {},
    }
    return ServiceContext(**{**base, **changes})


def context(**changes: Any) -> PageContext:
    """A page's context of the one service ``pay``."""
    return PageContext(services=[section(**changes)], context_url=CONTEXT_URL)


def page(**changes: Any) -> Notification:
    return notification(**{"enrich": True, "context": context(), **changes})


def smtp_config() -> Any:
    adapter: TypeAdapter[ChannelConfig] = TypeAdapter(ChannelConfig)
    return adapter.validate_python(
        {"name": "mail", "type": "email", "smtp": {"host": "127.0.0.1", "port": 25}, "from": "p@example.com"}
    )


def rendered(channel: str, message: Notification) -> str:
    """The text each channel sends, as one string."""
    if channel == "dingtalk":
        data = dingtalk.body(message)
        assert data is not None
        assert len(data) <= dingtalk.MAX_BODY_BYTES
        text: str = json.loads(data)["markdown"]["text"]
        return text
    if channel == "wecom":
        found = wecom.content(message)
        assert found is not None
        assert len(found.encode()) <= wecom.MAX_CONTENT_BYTES
        return found
    if channel == "feishu":
        data = feishu.body(message)
        assert data is not None
        assert len(data) <= feishu.MAX_BODY_BYTES
        return str(json.loads(data)["card"]["elements"][0]["text"]["content"])
    if channel == "slack":
        built = slack.build(message)
        assert built is not None
        assert slack.within_limits(built)
        texts = [b.get("text", {}).get("text", "") for b in built["blocks"]]
        texts += [e["text"] for b in built["blocks"] if b["type"] == "context" for e in b["elements"]]
        return "\n".join(texts)
    mail = email.compose(smtp_config(), message, ["alice@example.com"])
    text_part, html_part = (part.get_content() for part in mail.iter_parts())
    return str(html_part if channel == "email-html" else text_part)


CHANNELS = ["dingtalk", "wecom", "feishu", "slack", "email-text", "email-html"]
# What a hostile log line must not become in each format.
HARMFUL = {
    "dingtalk": "](http://evil.example/phish)",
    "wecom": "](http://evil.example/phish)",
    "feishu": "](http://evil.example/phish)",
    "slack": "<!channel>",
    "email-html": "<script>",
}


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_shows_the_error_lines_and_trace_links(channel: str) -> None:
    text = rendered(channel, page())
    assert "排查线索" in text
    assert "12×" in text
    assert "card processor timed out after 300ms" in text
    assert "高频错误日志" in text
    assert "慢请求与失败链路" in text
    assert "pay.prod POST /charge · 480 ms · 失败" in text
    assert TRACE_URL.replace("&", "&amp;") in text or TRACE_URL in text
    assert JAEGER_URL in text
    assert "grafana.example.com/d/panorama-service-history" in text
    assert "2×" in text
    if channel in HARMFUL:  # a log line cannot add a link, a mention or markup
        assert HARMFUL[channel] not in text


@pytest.mark.parametrize("channel", CHANNELS)
def test_english_and_what_is_missing(channel: str) -> None:
    missing = context(errors=[], missing={"logs": "timeout"})
    text = rendered(channel, page(locale="en", context=missing))
    assert "Where to look" in text
    assert "Slowest and failed traces" in text
    assert "⚠️ Not included: error logs (Elasticsearch timed out)" in text
    assert "Top error logs" not in text
    assert "排查" not in text


def test_a_quiet_window_says_so() -> None:
    text = rendered("dingtalk", page(context=context(errors=[], traces=[])))
    assert "告警时段内没有错误日志和链路" in text


def test_a_storm_keeps_the_context_and_cuts_alerts() -> None:
    storm = page(alerts=many_alerts(400), firing=400, resolved=0)
    for channel in ("dingtalk", "wecom", "feishu", "slack"):
        text = rendered(channel, storm)
        assert "排查线索" in text, channel
        assert "…以及另外" in text, channel


def test_the_context_goes_when_even_the_bare_message_would_not_fit_with_it() -> None:
    prepared = Prepared(page(), ROBOT_MARKDOWN, dingtalk.mention)
    without = render("dingtalk.md.j2", v=Prepared(notification(), ROBOT_MARKDOWN).view(0), t=prepared.t)
    limit = len(without) + 200  # room for the mentions, not for the context

    def build(shown: int) -> str:
        view = prepared.view(shown)
        return render("dingtalk.md.j2", v=view, t=view.t)

    text = fit(prepared, build, lambda t: len(t) <= limit)
    assert text is not None
    assert "支付服务错误率升高" in text
    assert "排查线索" not in text


def test_the_context_survives_the_outbox() -> None:
    original = page()
    again = messages.from_json(messages.to_json(original))
    assert again == original


@pytest.mark.parametrize("kind", ["update", "resolve"])
def test_updates_and_resolutions_carry_no_context_in_any_channel(kind: str) -> None:
    bare = notification(kind=kind)
    for channel in ("dingtalk", "slack"):
        assert "排查线索" not in rendered(channel, bare)


def group(locale: str = "zh-CN", errors: int = 3) -> Notification:
    """A page of a group across five services: three sections (long error lines), two more counted."""
    long_line = "upstream connect error or disconnect/reset before headers, reset reason: overflow " * 3
    sections = [
        section(
            service=name,
            errors=[ErrorLine(f"{long_line} #{k}", 40 - k) for k in range(errors)],
            service_url=f"https://panorama.example.com/services/{name}?view=c2Vy.1797166956.c2ln",
        )
        for name in ("pay.prod", "cart.prod", "ship.prod")
    ]
    found = PageContext(services=sections, more=["search.prod", "user.prod"], context_url=CONTEXT_URL)
    return page(locale=locale, context=found)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_shows_each_services_section_and_counts_the_others(channel: str, locale: str) -> None:
    text = rendered(channel, group(locale, errors=1))
    title = "排查线索" if locale == "zh-CN" else "Where to look"
    sep = "：" if locale == "zh-CN" else ": "
    shown = [text.index(f"{title}{sep}{name}") for name in ("pay.prod", "cart.prod", "ship.prod")]
    assert shown == sorted(shown)  # in the order given: those most alerts name first
    more = "另有 2 个服务未展开：search.prod，user.prod" if locale == "zh-CN" else "2 more services not shown"
    assert more in text
    assert CONTEXT_URL in text.replace("&amp;", "&")
    assert "全部服务的排查线索" in text if locale == "zh-CN" else "Where to look, every service" in text
    for name in ("pay.prod", "cart.prod", "ship.prod"):
        assert f"https://panorama.example.com/services/{name}?view=" in text


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_robot_short_of_room_drops_the_last_services_before_the_first_alert(locale: str) -> None:
    """WeCom's 4,096 bytes hold the first alert and one or two sections, not three: the last sections
    give way (counted with the services left out, the link to all of them kept), the first alert stays."""
    text = rendered("wecom", group(locale))
    title = "排查线索" if locale == "zh-CN" else "Where to look"
    shown = [
        name for name in ("pay.prod", "cart.prod", "ship.prod") if f"{title}" in text and name + "\n" in text
    ]
    assert "pay.prod" in text
    assert "HighErrorRate" in text  # the first alert
    assert 1 <= len(shown) < 3, text
    left = 5 - len(shown)
    more = f"另有 {left} 个服务未展开" if locale == "zh-CN" else f"{left} more services not shown"
    assert more in text
    assert CONTEXT_URL in text
    # The others have room for all three.
    for channel in ("dingtalk", "feishu", "slack", "email-text"):
        found = rendered(channel, group(locale))
        assert all(name in found for name in ("pay.prod", "cart.prod", "ship.prod")), channel


def test_a_row_kept_before_pages_carried_several_services_is_still_read() -> None:
    """An outbox row written by the previous release holds one service's context at the top."""
    old = json.loads(messages.to_json(page()))
    one = old["context"]["services"][0]
    old["context"] = one
    again = messages.from_json(json.dumps(old))
    assert again.context is not None
    assert [s.service for s in again.context.services] == ["pay"]
    assert again.context.services[0] == section()
    assert again.context.more == []
    assert "排查线索：pay" in rendered("dingtalk", again)


@pytest.mark.parametrize("channel", CHANNELS)
def test_counts_of_a_full_sample_say_so(channel: str) -> None:
    sampled = PageContext(services=[section(sampled=200)])
    assert "高频错误日志（按最近 200 条统计）" in rendered(channel, page(context=sampled))
    assert "Top error logs (of the newest 200)" in rendered(channel, page(context=sampled, locale="en"))

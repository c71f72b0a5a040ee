"""A page's context (error lines, trace links, dashboard link) in every channel's format, inert,
within each channel's limits, in zh-CN and en."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.alerts import messages
from app.alerts.channels import dingtalk, email, feishu, slack, wecom
from app.alerts.channels.base import ErrorLine, Notification, PageContext, TraceLink
from app.alerts.channels.config import ChannelConfig
from app.alerts.channels.dialects import ROBOT_MARKDOWN
from app.alerts.channels.render import fit, render
from app.alerts.channels.views import Prepared
from tests.alerts.channels.support import HOSTILE, many_alerts, notification

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACE_URL = f"https://panorama.example.com/traces/{TRACE}?view=dHJhY2U.1797166956.c2ln"
JAEGER_URL = f"https://jaeger.example.com/trace/{TRACE}"
GRAFANA_URL = "https://grafana.example.com/d/panorama-service-history?from=1&to=now&var-service=pay"


def context(**changes: Any) -> PageContext:
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
    return PageContext(**{**base, **changes})


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

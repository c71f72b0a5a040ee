"""Messages for the channel tests: a realistic incident, many alerts, hostile label values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.alerts.channels.base import AlertView, Digest, Notification, Person

T0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
"""09:30 in Asia/Shanghai."""
T0_SHANGHAI = "2026-01-05 09:30:00 UTC+08:00"
INCIDENT_URL = "https://panorama.example.com/incidents/42"
ACK_URL = "https://panorama.example.com/ack/42.eyJ0b2tlbiI6IjEifQ.c2ln"

ALICE = Person(
    "alice",
    mobile="13800000001",
    email="alice@example.com",
    wecom_userid="alice.w",
    feishu_user_id="ou_alice0123456789",
    slack_user_id="U0ALICE01",
)
BOB = Person("bob", mobile="13800000002", email="bob@example.com")

HOSTILE = {
    "link": "[click me](http://evil.example/phish)",
    "image": "![x](http://evil.example/pixel.png)",
    "mention_wecom": "<@all>",
    "mention_feishu": "<at id=all></at>",
    "mention_slack": "<!channel> <@U0EVIL>",
    "html": "<script>alert(1)</script><b>bold</b>",
    "heading": "ok\n# Injected heading\n> quote",
    "font": '<font color="warning">fake severity</font>',
}


def alert(
    name: str = "HighErrorRate",
    *,
    status: Literal["firing", "resolved"] = "firing",
    severity: str | None = "critical",
    summary: str | None = "5xx ratio above 5% on pay",
    description: str | None = "Error ratio 7.2% over 5m",
    labels: dict[str, str] | None = None,
    starts_at: datetime = T0,
    ends_at: datetime | None = None,
) -> AlertView:
    return AlertView(
        name=name,
        status=status,
        severity=severity,
        summary=summary,
        description=description,
        labels={"alertname": name, "service": "pay", "namespace": "prod", **(labels or {})},
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url="http://prometheus:9090/graph?g0.expr=rate%28http_errors_total%5B5m%5D%29",
    )


def notification(**changes: Any) -> Notification:
    """A triggered incident of two alerts (one firing, one resolved) paging alice and bob, in zh-CN."""
    base = Notification(
        kind="trigger",
        incident_id=42,
        title="支付服务错误率升高",
        status="triggered",
        severity="critical",
        services=["pay", "cart"],
        started_at=T0,
        incident_url=INCIDENT_URL,
        ack_url=ACK_URL,
        alerts=[
            alert(),
            alert("SlowCheckout", status="resolved", severity="warning", ends_at=T0 + timedelta(minutes=7)),
        ],
        firing=1,
        resolved=1,
        mentions=[ALICE, BOB],
        locale="zh-CN",
        timezone="Asia/Shanghai",
    )
    return replace(base, **changes)


def many_alerts(
    count: int, *, text: str = "服务响应变慢，请检查下游依赖与连接池配置。" * 4
) -> list[AlertView]:
    """``count`` firing alerts with long Chinese annotations (3 bytes a character)."""
    return [
        alert(
            f"PodCrashLooping{i:04d}",
            summary=f"pod pay-{i} {text}",
            description=text,
            labels={"pod": f"pay-{i:04d}", "instance": f"10.0.{i // 250}.{i % 250}:8080"},
            starts_at=T0 + timedelta(seconds=i),
        )
        for i in range(count)
    ]


def hostile_alert() -> AlertView:
    """Every hostile value in an annotation or a label."""
    return alert(
        "Hostile" + HOSTILE["mention_wecom"],
        summary=" ".join(HOSTILE.values()),
        description=HOSTILE["heading"],
        labels={f"x{i}": value for i, value in enumerate(HOSTILE.values())},
    )


def digest(count: int = 3, **changes: Any) -> Digest:
    """``count`` notifications of different incidents, merged for a rate-limited robot."""
    items = [
        notification(incident_id=100 + i, title=f"incident {i}", incident_url=f"{INCIDENT_URL}{i}")
        for i in range(count)
    ]
    return Digest(items=items, **changes)

"""The words of every notification, in zh-CN (the default) and en.

Templates say ``{{ t.severity }}`` rather than carrying both languages, so a
template reads as one message and a translation is one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Locale = Literal["zh-CN", "en"]


@dataclass(frozen=True)
class Strings:
    headline: dict[str, str]
    status: dict[str, str]
    alert_status: dict[str, str]
    severity: dict[str, str]
    unknown_severity: str
    severity_label: str
    status_label: str
    services: str
    started_at: str
    ended_at: str
    alerts_count: str
    firing_resolved: str
    acknowledged_by: str
    link_actor: str  # a group's ack link, as "acknowledged by" shows it
    call_actor: str  # an unnamed phone call ({number})
    incident_link: str
    ack_link: str
    source_link: str
    oncall: str
    no_handle: str
    more_alerts: tuple[str, str]
    more_items: tuple[str, str]
    more_lines: tuple[str, str]
    digest_title: str
    footer: str
    sep: str
    lang: str
    context_title: str
    context_errors: str
    context_errors_sampled: str
    context_traces: str
    context_failed: str
    context_none: str
    context_service: str
    context_grafana: str
    context_missing: str
    context_parts: dict[str, str]
    context_reasons: dict[str, str]
    context_more: tuple[str, str]
    context_all: str
    list_sep: str

    def more(self, count: int, *, items: bool = False, lines: bool = False) -> str:
        """ "…and N more alerts" (or notifications, in a digest; or lines, of a notice cut to fit),
        in this locale."""
        one, many = self.more_lines if lines else self.more_items if items else self.more_alerts
        return (one if count == 1 else many).format(n=count)

    def more_services(self, names: list[str], count: int) -> str:
        """ "…and K more services: a, b" (``names``: those shown of the ``count`` left out)."""
        one, many = self.context_more
        listed = self.list_sep.join(names) + ("…" if len(names) < count else "")
        return (one if count == 1 else many).format(n=count, names=listed)

    def counts(self, firing: int, resolved: int) -> str:
        return self.firing_resolved.format(firing=firing, resolved=resolved)

    def missing(self, parts: dict[str, str]) -> str:
        """The one line saying what a page's context lacks: "⚠️ 未附上：错误日志（Elasticsearch 超时）"."""
        shown = []
        for part, reason in sorted(parts.items()):
            backend = _BACKENDS.get(part, part)
            why = self.context_reasons.get(reason, self.context_reasons["unreachable"])
            name = self.context_parts.get(part, part)
            shown.append(
                f"{name}（{backend} {why}）" if self.lang == "zh-CN" else f"{name} ({backend} {why})"
            )
        return self.context_missing.format(parts=self.list_sep.join(shown))


_BACKENDS = {"logs": "Elasticsearch", "traces": "Jaeger"}


ICONS: dict[str, str] = {
    "trigger": "🔴",
    "update": "🔁",
    "resolve": "✅",
    "escalate": "⏫",
    "heartbeat": "💔",
    "digest": "📋",
}

_ZH = Strings(
    headline={
        "trigger": "告警触发",
        "update": "告警更新：有新告警加入",
        "resolve": "告警已恢复",
        "escalate": "告警升级：仍未确认",
        "heartbeat": "心跳丢失：告警链路可能中断",
        "digest": "告警汇总",
    },
    status={"triggered": "未确认", "acknowledged": "已确认", "resolved": "已恢复"},
    alert_status={"firing": "告警中", "resolved": "已恢复"},
    severity={"critical": "严重", "error": "错误", "warning": "警告", "info": "提示"},
    unknown_severity="未知",
    severity_label="级别",
    status_label="状态",
    services="影响服务",
    started_at="开始时间",
    ended_at="结束时间",
    alerts_count="告警数",
    firing_resolved="告警中 {firing} 条，已恢复 {resolved} 条",
    acknowledged_by="确认人",
    link_actor="确认链接",
    call_actor="电话（{number}）",
    incident_link="查看事件",
    ack_link="一键确认",
    source_link="来源",
    oncall="通知",
    no_handle="（未配置账号，无法 @）",
    more_alerts=("…以及另外 {n} 条告警", "…以及另外 {n} 条告警"),
    more_items=("…以及另外 {n} 条通知", "…以及另外 {n} 条通知"),
    more_lines=("…另有 {n} 行未显示（消息长度受限）", "…另有 {n} 行未显示（消息长度受限）"),
    digest_title="{n} 条通知",
    footer="来自 Panorama",
    sep="：",
    lang="zh-CN",
    context_title="排查线索",
    context_errors="高频错误日志",
    context_errors_sampled="高频错误日志（按最近 {n} 条统计）",
    context_traces="慢请求与失败链路",
    context_failed="失败",
    context_none="告警时段内没有错误日志和链路",
    context_service="服务概览",
    context_grafana="Grafana 看板",
    context_missing="⚠️ 未附上：{parts}",
    context_parts={"logs": "错误日志", "traces": "链路"},
    context_reasons={
        "timeout": "超时",
        "unreachable": "无法连接",
        "not_configured": "未配置",
        "bad_query": "查询出错",
        "bad_response": "应答异常",
        "unauthorized": "拒绝访问",
    },
    context_more=("另有 {n} 个服务未展开：{names}", "另有 {n} 个服务未展开：{names}"),
    context_all="全部服务的排查线索",
    list_sep="，",
)

_EN = Strings(
    headline={
        "trigger": "Alert firing",
        "update": "Alert update: new alerts joined",
        "resolve": "Resolved",
        "escalate": "Escalation: still not acknowledged",
        "heartbeat": "Heartbeat missing: the alert pipeline may be broken",
        "digest": "Digest",
    },
    status={"triggered": "triggered", "acknowledged": "acknowledged", "resolved": "resolved"},
    alert_status={"firing": "firing", "resolved": "resolved"},
    severity={"critical": "critical", "error": "error", "warning": "warning", "info": "info"},
    unknown_severity="unknown",
    severity_label="Severity",
    status_label="Status",
    services="Services",
    started_at="Started",
    ended_at="Ended",
    alerts_count="Alerts",
    firing_resolved="{firing} firing, {resolved} resolved",
    acknowledged_by="Acknowledged by",
    link_actor="the ack link",
    call_actor="a phone call ({number})",
    incident_link="Open incident",
    ack_link="Acknowledge",
    source_link="Source",
    oncall="Paging",
    no_handle=" (no handle configured, cannot mention)",
    more_alerts=("…and {n} more alert", "…and {n} more alerts"),
    more_items=("…and {n} more notification", "…and {n} more notifications"),
    more_lines=(
        "…and {n} more line (the message is size-limited)",
        "…and {n} more lines (the message is size-limited)",
    ),
    digest_title="{n} notifications",
    footer="Sent by Panorama",
    sep=": ",
    lang="en",
    context_title="Where to look",
    context_errors="Top error logs",
    context_errors_sampled="Top error logs (of the newest {n})",
    context_traces="Slowest and failed traces",
    context_failed="failed",
    context_none="No error logs or traces in the alert's window",
    context_service="Service overview",
    context_grafana="Grafana dashboard",
    context_missing="⚠️ Not included: {parts}",
    context_parts={"logs": "error logs", "traces": "traces"},
    context_reasons={
        "timeout": "timed out",
        "unreachable": "unreachable",
        "not_configured": "not configured",
        "bad_query": "refused the query",
        "bad_response": "answered oddly",
        "unauthorized": "refused access",
    },
    context_more=("{n} more service not shown: {names}", "{n} more services not shown: {names}"),
    context_all="Where to look, every service",
    list_sep=", ",
)

STRINGS: dict[str, Strings] = {"zh-CN": _ZH, "en": _EN}


def strings(locale: str) -> Strings:
    """The strings of ``locale``; zh-CN for anything unknown."""
    return STRINGS.get(locale, _ZH)

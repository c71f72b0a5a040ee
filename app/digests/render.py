"""The words of a digest, in zh-CN and en, as a :class:`~app.alerts.channels.base.Notice`:
a title, one line per figure under a few section lines, and links to Panorama's pages. Each
channel lays the notice out in its own format (DingTalk/WeCom markdown, a Feishu card, Slack
blocks, e-mail, a webhook's JSON) and escapes each line for it.

A figure that was not rolled up is written as missing ("无数据" / "no data"), never as 0. A digest
sent while the alert journal still held webhooks of its period (stuck past the hold) says so first.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from app.alerts.channels.base import Notice
from app.digests.config import DigestConfig
from app.digests.schemas import DigestOut, Incidents, Traffic

WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "daily": "运维日报 · {name} · {day}（{weekday}）",
        "weekly": "运维周报 · {name} · {first} 至 {last}",
        "weekdays": "周一 周二 周三 周四 周五 周六 周日",
        "journal": "⚠️ 可能不完整：告警日志中仍有 {since} 起收到、尚未处理的 webhook（告警接收可能卡住了），"
        "以下事件数字可能未包含它们",
        "traffic": "【流量】",
        "traffic_line": "请求 {requests} · 错误率 {error_rate} · p99 {p99}",
        "compared": "对比{when}：请求 {requests} · 错误率 {error_rate} · p99 {p99}",
        "when_daily": "上周同日 {day}",
        "when_weekly": "上一周 {first} 至 {last}",
        "missing": "没有 {first}{to} 的汇总数据（rollup 未运行或失败）：此处不给出数字",
        "no_prometheus": "没有 {first}{to} 的流量数据：未配置 Prometheus（只汇总了值班历史），此处不给出数字",
        "to": " 至 {last}",
        "partial": "只有 {days}/{of} 天的汇总数据，以下为这些天的数字",
        "missing_previous": "没有{when}的汇总数据，无法对比",
        "top": "【服务 Top {n}（按请求数）】",
        "service": "{i}. {name}：请求 {requests} · 错误率 {error_rate} · p99 {p99}",
        "no_services": "范围内没有服务的汇总数据",
        "regressions": "【退化（对比{when}，超过 {ratio} 倍）】",
        "regression_p99": "{name} p99 {before} → {after}（×{ratio}）",
        "regression_rate": "{name} 错误率 {before} → {after}（×{ratio}）",
        "new": "此前为 0",
        "none": "无",
        "slo": "【SLO】",
        "slo_availability": "可用性",
        "slo_latency_p99_ms": "p99 延迟",
        "slo_line": "{service} {objective}：{achieved}（目标 {target}）{met} · 错误预算剩余 {budget}",
        "window": "（{window} 天窗口，{days} 天有数据）",
        "met": "✅ 达标",
        "not_met": "❌ 未达标",
        "budget_minutes": "{share}（约 {minutes}）",
        "exhausted": "已耗尽（{share}）",
        "no_data": "无数据",
        "incidents": "【事件】",
        "opened": "新事件 {n} 个：{severities}",
        "no_incidents": "没有新事件",
        "ack": "已确认 {n} 个，平均确认用时 {mean}，最长 {max}",
        "resolved": "已恢复 {n} 个，平均恢复用时 {mean}，最长 {max}；仍未恢复 {open} 个",
        "noisiest": "最频繁的告警：{alerts}",
        "noisy": "{name} ×{alerts}（{incidents} 个事件）",
        "oncall": "【今日值班】",
        "oncall_line": "{schedule}：{user}",
        "nobody": "无人值班",
        "load": "【值班负载（全体，来自值班历史）】",
        "load_line": "{user}：呼叫 {pages} 次（夜间 {night}）· 确认 {acks}{before}",
        "load_before": " · {when}：{pages} 次",
        "load_none": "没有人被呼叫",
        "load_pending": "值班历史尚未汇总完（告警日志仍有未处理的 webhook）：此处负载不完整",
        "severity": "critical=严重 error=错误 warning=警告 info=提示 none=未分级",
        "incidents_page": "事件列表",
        "ms": "{v} ms",
        "s": "{v} s",
        "default_links": "注意：未设置 alerts.public_url，链接使用默认地址 {base}"
        "（服务在别的地址运行时请设置它）",
    },
    "en": {
        "daily": "Daily digest · {name} · {day} ({weekday})",
        "weekly": "Weekly digest · {name} · {first} to {last}",
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
        "journal": "⚠️ May be incomplete: the alert journal still holds webhooks received since {since}, "
        "not applied yet (alert intake may be stuck); the incident figures below may miss them",
        "traffic": "▌Traffic",
        "traffic_line": "Requests {requests} · error rate {error_rate} · p99 {p99}",
        "compared": "Compared with {when}: requests {requests} · error rate {error_rate} · p99 {p99}",
        "when_daily": "the same day last week ({day})",
        "when_weekly": "the week before ({first} to {last})",
        "missing": "No rollup for {first}{to} (not run, or failed): no figures are given here",
        "no_prometheus": "No traffic figures for {first}{to}: Prometheus is not configured (only the on-call "
        "history was rolled up), so no figures are given here",
        "to": " to {last}",
        "partial": "Only {days} of {of} days are rolled up; the figures cover those days",
        "missing_previous": "No rollup for {when}: nothing to compare with",
        "top": "▌Top {n} services (by requests)",
        "service": "{i}. {name}: requests {requests} · error rate {error_rate} · p99 {p99}",
        "no_services": "No service of the scope has rolled-up figures",
        "regressions": "▌Regressions (vs {when}, more than ×{ratio})",
        "regression_p99": "{name} p99 {before} → {after} (×{ratio})",
        "regression_rate": "{name} error rate {before} → {after} (×{ratio})",
        "new": "was 0",
        "none": "None",
        "slo": "▌SLOs",
        "slo_availability": "availability",
        "slo_latency_p99_ms": "p99 latency",
        "slo_line": "{service} {objective}: {achieved} (target {target}) {met} · error budget left {budget}",
        "window": " ({window}-day window, {days} days of data)",
        "met": "✅ met",
        "not_met": "❌ missed",
        "budget_minutes": "{share} (about {minutes})",
        "exhausted": "none, overspent ({share})",
        "no_data": "no data",
        "incidents": "▌Incidents",
        "opened": "{n} new incidents: {severities}",
        "no_incidents": "No new incident",
        "ack": "{n} acknowledged, in {mean} on average, {max} at most",
        "resolved": "{n} resolved, in {mean} on average, {max} at most; {open} still open",
        "noisiest": "Noisiest alerts: {alerts}",
        "noisy": "{name} ×{alerts} ({incidents} incidents)",
        "oncall": "▌On call today",
        "oncall_line": "{schedule}: {user}",
        "nobody": "nobody",
        "load": "▌On-call load (whole team, from the on-call history)",
        "load_line": "{user}: paged {pages} times ({night} at night) · {acks} acks{before}",
        "load_before": " · {when}: {pages}",
        "load_none": "Nobody was paged",
        "load_pending": "On-call history pending (the alert journal still holds webhooks): load incomplete",
        "severity": "critical=critical error=error warning=warning info=info none=unrated",
        "incidents_page": "Incidents",
        "ms": "{v} ms",
        "s": "{v} s",
        "default_links": "Note: alerts.public_url is not set, so the links use the default base {base} "
        "(set it when the service runs at another address)",
    },
}
MAX_SERVICE_LINKS = 5


def count(value: float | None, w: dict[str, str]) -> str:
    return w["no_data"] if value is None else f"{round(value):,}"


def percent(value: float | None, w: dict[str, str]) -> str:
    if value is None:
        return w["no_data"]
    if value == 0:
        return "0%"
    if value < 0.0001:
        return "<0.01%"
    return f"{value * 100:.2f}%"


def millis(value: float | None, w: dict[str, str]) -> str:
    if value is None:
        return w["no_data"]
    if value >= 1000:
        return w["s"].format(v=f"{value / 1000:.2f}")
    return w["ms"].format(v=f"{value:.0f}" if value >= 10 else f"{value:.1f}")


def duration(seconds: float | None, w: dict[str, str]) -> str:
    if seconds is None:
        return w["no_data"]
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _budget(share: float | None, minutes: float | None, w: dict[str, str]) -> str:
    """What is left of an error budget: a share (and minutes of the window), or that it is spent."""
    if share is None:
        return w["no_data"]
    if share <= 0:
        return w["exhausted"].format(share=f"{share * 100:.0f}%")
    text = f"{share * 100:.1f}%"
    return (
        text if minutes is None else w["budget_minutes"].format(share=text, minutes=duration(minutes * 60, w))
    )


def _traffic(template: str, t: Traffic, w: dict[str, str], **extra: str) -> str:
    return w[template].format(
        requests=count(t.requests, w),
        error_rate=percent(t.error_rate, w),
        p99=millis(t.latency_p99_ms, w),
        **extra,
    )


def _severities(incidents: Incidents, w: dict[str, str]) -> str:
    names = dict(pair.split("=", 1) for pair in w["severity"].split())
    return " · ".join(f"{names.get(s, s)} {n}" for s, n in incidents.by_severity.items())


def notice(report: DigestOut, config: DigestConfig) -> Notice:
    """The digest as a notice for the outbox (and for the dry run's text)."""
    w = WORDS[report.locale]
    if report.weekly:
        title = w["weekly"].format(name=report.name, first=report.first, last=report.last)
        when = w["when_weekly"].format(first=report.compared_with[0], last=report.compared_with[1])
    else:
        weekday = w["weekdays"].split()[report.day.weekday()]
        title = w["daily"].format(name=report.name, day=report.day, weekday=weekday)
        when = w["when_daily"].format(day=report.compared_with[0])
    lines = []
    if report.journal_waiting_since is not None:  # sent although intake lags: said first
        since = report.journal_waiting_since.astimezone(ZoneInfo(report.timezone))
        lines.append(w["journal"].format(since=since.strftime("%Y-%m-%d %H:%M:%S")))
    lines.append(w["traffic"])
    if report.scope is None:
        to = w["to"].format(last=report.last) if report.weekly else ""
        missing = "no_prometheus" if "prometheus" in report.missing else "missing"
        lines.append(w[missing].format(first=report.first, to=to))
    else:
        if report.scope.days < (report.last - report.first).days + 1:
            lines.append(
                w["partial"].format(days=report.scope.days, of=(report.last - report.first).days + 1)
            )
        line = _traffic("traffic_line", report.scope, w)
        lines.append(line)
        if report.scope_previous is None:
            lines.append(w["missing_previous"].format(when=when))
        else:
            lines.append(_traffic("compared", report.scope_previous, w, when=when))
    lines.append(w["top"].format(n=config.top))
    if not report.services:
        lines.append(w["no_services"])
    for i, s in enumerate(report.services, start=1):
        lines.append(_traffic("service", s.current, w, i=str(i), name=s.name))
    lines.append(w["regressions"].format(when=when, ratio=f"{config.regression.ratio:g}"))
    if not report.regressions:
        lines.append(w["none"] if report.scope_previous is not None else w["no_data"])
    for r in report.regressions:
        name = next((s.name for s in report.services if s.service == r.service), None) or r.service
        fmt = millis if r.figure == "latency_p99_ms" else percent
        ratio = w["new"] if r.ratio is None else f"{r.ratio:.1f}"
        key = "regression_p99" if r.figure == "latency_p99_ms" else "regression_rate"
        lines.append(w[key].format(name=name, before=fmt(r.before, w), after=fmt(r.after, w), ratio=ratio))
    if report.slo:
        lines.append(w["slo"])
    for o in report.slo:
        as_share = o.objective == "availability"
        budget = _budget(o.error_budget_remaining, o.error_budget_remaining_minutes, w)
        lines.append(
            w["slo_line"].format(
                service=o.name,
                objective=w.get(f"slo_{o.objective}", o.objective),
                achieved=percent(o.achieved, w) if as_share else millis(o.achieved, w),
                target=percent(o.target, w) if as_share else millis(o.target, w),
                met="" if o.met is None else (w["met"] if o.met else w["not_met"]),
                budget=budget,
            )
        )
        if o.data_days < o.window_days:
            lines[-1] += w["window"].format(window=o.window_days, days=o.data_days)
    lines.append(w["incidents"])
    incidents = report.incidents
    if incidents.opened == 0:
        lines.append(w["no_incidents"])
    else:
        lines.append(w["opened"].format(n=incidents.opened, severities=_severities(incidents, w)))
        lines.append(
            w["ack"].format(
                n=incidents.acknowledged,
                mean=duration(incidents.mean_ack_seconds, w),
                max=duration(incidents.max_ack_seconds, w),
            )
        )
        lines.append(
            w["resolved"].format(
                n=incidents.resolved,
                mean=duration(incidents.mean_resolve_seconds, w),
                max=duration(incidents.max_resolve_seconds, w),
                open=incidents.still_open,
            )
        )
        if incidents.noisiest:
            noisy = " · ".join(
                w["noisy"].format(name=n.alertname, alerts=n.alerts, incidents=n.incidents)
                for n in incidents.noisiest
            )
            lines.append(w["noisiest"].format(alerts=noisy))
        lines.extend(f"#{i.id} [{i.severity or '-'}] {i.title}" for i in incidents.listed)
    if report.on_call:
        lines.append(w["oncall"])
        lines.append(
            " · ".join(
                w["oncall_line"].format(schedule=o.schedule, user=o.user or w["nobody"])
                for o in report.on_call
            )
        )
    lines.append(w["load"])
    if "oncall_history" in report.missing:
        lines.append(w["load_pending"])
    elif not report.load:
        lines.append(w["no_data"] if "rollup" in report.missing else w["load_none"])
    for p in report.load:
        before = "" if p.pages_before is None else w["load_before"].format(when=when, pages=p.pages_before)
        lines.append(
            w["load_line"].format(user=p.user, pages=p.pages, night=p.night_pages, acks=p.acks, before=before)
        )
    links = [(s.name, s.url) for s in report.services[:MAX_SERVICE_LINKS]]
    links += [(f"#{i.id}", i.url) for i in incidents.listed]
    links.append((w["incidents_page"], incidents.url))
    return Notice(
        kind="digest", title=title, lines=lines, links=links, locale=report.locale, timezone=report.timezone
    )

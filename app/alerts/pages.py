"""The small HTML pages behind one-click acknowledge links (work from any phone's browser)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from app.alerts.models import Incident

TEXT = {
    "zh-CN": {
        "title": "确认告警", "status": "状态", "confirm": "确认（认领）此告警",
        "triggered": "未确认", "acknowledged": "已确认", "resolved": "已恢复",
        "ask": "确认此告警？", "done": "已确认，升级已停止。", "already": "此告警无需再确认。",
        "invalid": "链接无效", "expired": "链接已过期", "missing": "找不到该告警",
        "open_panorama": "请在 Panorama 中处理。",
    },
    "en": {
        "title": "Acknowledge incident", "status": "Status", "confirm": "Acknowledge this incident",
        "triggered": "triggered", "acknowledged": "acknowledged", "resolved": "resolved",
        "ask": "Acknowledge this incident?", "done": "Acknowledged: the escalation has stopped.",
        "already": "There is nothing to acknowledge.", "invalid": "This link is not valid",
        "expired": "This link has expired", "missing": "No such incident",
        "open_panorama": "Please use Panorama.",
    },
}  # fmt: skip

_environment = Environment(
    loader=PackageLoader("app.alerts", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)


def render(
    locale: str,
    heading_key: str,
    *,
    incident: Incident | None = None,
    confirm: bool = False,
    note_key: str | None = None,
) -> str:
    text: dict[str, Any] = TEXT.get(locale, TEXT["en"])
    return _environment.get_template("ack.html").render(
        lang=locale,
        t=text,
        heading=text[heading_key],
        incident=incident,
        confirm=confirm,
        note=text[note_key] if note_key else None,
    )

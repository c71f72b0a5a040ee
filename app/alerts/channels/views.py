"""What a template is given: a notification or a digest with every user-controlled
string already made inert for the channel's format (see :mod:`dialects`), alerts in
the order an on-call engineer should read them, and the cut applied.

A message is prepared once (:class:`Prepared`); :meth:`Prepared.view` then shows
its first ``shown`` alerts (or, for a digest, notifications) and counts the rest,
so a channel can look for the longest message that fits its size limit without
escaping everything again for each try.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.alerts import actors
from app.alerts.channels.base import AlertView, Digest, Message, Notification, Person, ServiceContext
from app.alerts.channels.dialects import PLAIN, Dialect
from app.alerts.channels.strings import ICONS, Strings, strings

TITLE_CHARS = 120
PLAIN_TITLE_CHARS = 100
NAME_CHARS = 100
SUMMARY_CHARS = 300
DESCRIPTION_CHARS = 500
LABEL_KEY_CHARS = 40
LABEL_VALUE_CHARS = 120
MAX_LABELS = 8
SERVICE_CHARS = 60
MAX_SERVICES = 10
PERSON_CHARS = 40
ERROR_LINE_CHARS = 160
OPERATION_CHARS = 80
MORE_SERVICE_NAMES = 5  # services named in a context's "and K more" line

_SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
_HIDDEN_LABELS = {"alertname", "severity"}
_FIRST_LABELS = ("service", "namespace", "pod", "instance", "job", "cluster", "node")

Mentioner = Callable[[Person], str | None]
"""A person's mention in the channel's syntax, or None when they have no handle there."""


@dataclass(frozen=True)
class AlertItem:
    """One alert as a template shows it; every string is escaped for the channel's format."""

    name: str
    firing: bool
    status: str
    severity: str
    summary: str
    description: str
    labels: Sequence[tuple[str, str]]
    hidden_labels: int
    starts_at: str
    ends_at: str | None
    source_url: str | None


@dataclass(frozen=True)
class IncidentItem:
    """A notification's incident as a template shows it.

    Strings are escaped for the channel's format, except ``title_plain`` (plain
    text, for headers and titles that are not markup) and the ``*_button_url``
    fields (bare URLs, for JSON fields such as a card's button).
    """

    kind: str
    icon: str
    headline: str
    title: str
    title_plain: str
    status: str
    severity: str
    severity_key: str
    services: str
    started_at: str
    firing: int
    resolved: int
    counts: str
    incident_url: str | None
    ack_url: str | None
    incident_button_url: str | None
    ack_button_url: str | None
    acknowledged_by: str | None


@dataclass(frozen=True)
class TraceItem:
    """A trace link of a page's context: ``label`` escaped, URLs safe for the format's links."""

    label: str
    short_id: str
    failed: bool
    url: str | None
    jaeger_url: str | None
    button_url: str | None  # bare, for a JSON field such as a card's button


@dataclass(frozen=True)
class ContextItem:
    """Where to look for one service (a section of a page's context), escaped for the channel's format."""

    service: str
    title: str
    errors_title: str  # "Top error logs", saying when they were counted in a sample
    errors: Sequence[tuple[int, str]]
    traces: Sequence[TraceItem]
    grafana_url: str | None
    service_url: str | None
    missing: str  # one line, "" when nothing is missing
    empty: bool  # nothing found and nothing missing: the window was quiet

    @property
    def links(self) -> bool:
        return bool(self.grafana_url or self.service_url)


@dataclass(frozen=True)
class ContextView:
    """A page's context as shown: a section per service, then the line counting the services left
    out (``more``, "" when none is) with the link to the incident's context, which shows them all."""

    sections: Sequence[ContextItem]
    more: str
    more_url: str | None


@dataclass(frozen=True)
class View:
    """What a template renders: one incident with its first alerts, or a digest's first items."""

    t: Strings
    digest: bool
    icon: str
    headline: str
    title: str
    title_plain: str
    severity_key: str
    incident: IncidentItem | None
    alerts: Sequence[AlertItem]
    items: Sequence[IncidentItem]
    omitted: int
    more: str
    mentions: Sequence[str]
    unreachable: Sequence[str]
    context: ContextView | None = None

    @property
    def paging(self) -> str:
        """Who this message pages: the mentions, then the names of those who have no handle here."""
        return " ".join([*self.mentions, *(f"{name}{self.t.no_handle}" for name in self.unreachable)])


class Prepared:
    """``message`` with its strings escaped for ``dialect``; :meth:`view` cuts it.

    Alerts (or a digest's notifications) are escaped on first use, so that cutting
    a group of thousands down to the few dozen a robot takes costs what is shown.
    """

    def __init__(
        self,
        message: Message,
        dialect: Dialect,
        mention: Mentioner | None = None,
        *,
        multiline: bool = False,
    ) -> None:
        self.t = strings(message.locale)
        self._dialect = dialect
        self._zone = _zone(message.timezone)
        self._multiline = multiline
        self._items: list[IncidentItem] = []
        self._alerts: list[AlertItem] = []
        self._sections: list[ContextItem] = []
        self._left_out: list[str] = []  # services of the context not shown (escaped names)
        self._context_url: str | None = None
        if isinstance(message, Notification) and message.context is not None:
            found = message.context
            self._sections = [_context(section, dialect, self.t) for section in found.services]
            self._left_out = [dialect.text(name, SERVICE_CHARS) for name in found.more]
            self._context_url = found.context_url
        if isinstance(message, Digest):
            self.incident: IncidentItem | None = None
            self._notifications = list(message.items)
            self._raw_alerts: list[AlertView] = []
            people = message.mentions
        else:
            self.incident = _incident(message, dialect, self.t, self._zone)
            self._notifications = []
            self._raw_alerts = ordered(message.alerts)
            people = _unique(message.mentions)
        self.mentions: list[str] = []
        self.unreachable: list[str] = []
        for person in people:
            token = mention(person) if mention is not None else None
            if token is not None:
                self.mentions.append(token)
            else:
                self.unreachable.append(dialect.text(person.name, PERSON_CHARS))

    @property
    def total(self) -> int:
        """How many units (alerts, or a digest's notifications) the message has."""
        return len(self._notifications) if self.incident is None else len(self._raw_alerts)

    def view(self, shown: int | None = None) -> View:
        shown = self.total if shown is None else max(0, min(shown, self.total))
        omitted = self.total - shown
        if self.incident is None:
            title = self.t.digest_title.format(n=len(self._notifications))
            worst = min(
                (_rank(_severity_key(item.severity)) for item in self._notifications),
                default=len(_SEVERITY_RANK),
            )
            return View(
                t=self.t,
                digest=True,
                icon=ICONS["digest"],
                headline=self.t.headline["digest"],
                title=title,
                title_plain=title,
                severity_key=_key_of_rank(worst),
                incident=None,
                alerts=[],
                items=self._digest_items(shown),
                omitted=omitted,
                more=self.t.more(omitted, items=True) if omitted else "",
                mentions=self.mentions,
                unreachable=self.unreachable,
            )
        incident = self.incident
        return View(
            t=self.t,
            digest=False,
            icon=incident.icon,
            headline=incident.headline,
            title=incident.title,
            title_plain=incident.title_plain,
            severity_key=incident.severity_key,
            incident=incident,
            alerts=self._alert_items(shown),
            items=[],
            omitted=omitted,
            more=self.t.more(omitted) if omitted else "",
            mentions=self.mentions,
            unreachable=self.unreachable,
            context=self.context,
        )

    @property
    def context(self) -> ContextView | None:
        """The context as it is shown now (None once every section is dropped, or without one)."""
        if not self._sections:
            return None
        left_out = self._left_out
        more = ""
        if left_out:
            more = self.t.more_services(left_out[:MORE_SERVICE_NAMES], len(left_out))
        return ContextView(
            sections=list(self._sections),
            more=more,
            more_url=self._dialect.url(self._context_url) if more else None,
        )

    def drop_context(self) -> bool:
        """Leaves the context's last service out (counted with the others left out), the whole context
        once no section is left; False if nothing was left to drop."""
        if not self._sections:
            return False
        dropped = self._sections.pop()
        self._left_out.insert(0, dropped.service)
        return True

    def _alert_items(self, count: int) -> list[AlertItem]:
        for alert in self._raw_alerts[len(self._alerts) : count]:
            self._alerts.append(_alert(alert, self._dialect, self.t, self._zone, multiline=self._multiline))
        return self._alerts[:count]

    def _digest_items(self, count: int) -> list[IncidentItem]:
        for item in self._notifications[len(self._items) : count]:
            self._items.append(_incident(item, self._dialect, self.t, self._zone))
        return self._items[:count]


def ordered(alerts: Sequence[AlertView]) -> list[AlertView]:
    """Firing before resolved, then the most severe, then the oldest: what to read first."""
    return sorted(
        alerts,
        key=lambda a: (
            a.status != "firing",
            _rank(_severity_key(a.severity)),
            _utc(a.starts_at),
            a.name,
        ),
    )


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """``2026-01-05 09:00:00 UTC+08:00``: local time of the schedule's zone, with its offset."""
    local = _utc(moment).astimezone(zone)
    offset = local.strftime("%z") or "+0000"
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]}"


def _acknowledged_by(name: str | None, dialect: Dialect, t: Strings) -> str | None:
    """Who acknowledged, in the message's language ("确认链接", not the stored "ack link")."""
    if not name:
        return None
    return dialect.text(actors.actor_label(name, link=t.link_actor, call=t.call_actor), PERSON_CHARS)


def _incident(item: Notification, dialect: Dialect, t: Strings, zone: ZoneInfo) -> IncidentItem:
    """The incident's part of a message; only a triggered incident offers its ack link."""
    key = _severity_key(item.severity)
    services = [dialect.text(s, SERVICE_CHARS) for s in item.services[:MAX_SERVICES]]
    if len(item.services) > MAX_SERVICES:
        services.append(f"+{len(item.services) - MAX_SERVICES}")
    incident_url = dialect.url(item.incident_url)
    ack_url = dialect.url(item.ack_url) if item.status == "triggered" else None
    return IncidentItem(
        kind=item.kind,
        icon=ICONS.get(item.kind, ICONS["trigger"]),
        headline=t.headline.get(item.kind, t.headline["trigger"]),
        title=dialect.text(item.title, TITLE_CHARS),
        title_plain=PLAIN.text(item.title, PLAIN_TITLE_CHARS),
        status=t.status.get(item.status, dialect.text(item.status, 20)),
        severity=_severity_label(item.severity, dialect, t),
        severity_key=key,
        services=", ".join(services),
        started_at=format_time(item.started_at, zone),
        firing=item.firing,
        resolved=item.resolved,
        counts=t.counts(item.firing, item.resolved),
        incident_url=incident_url,
        ack_url=ack_url,
        incident_button_url=PLAIN.url(item.incident_url),
        ack_button_url=PLAIN.url(item.ack_url) if ack_url is not None else None,
        acknowledged_by=_acknowledged_by(item.acknowledged_by, dialect, t),
    )


def _alert(alert: AlertView, dialect: Dialect, t: Strings, zone: ZoneInfo, *, multiline: bool) -> AlertItem:
    shown = [(k, v) for k, v in _label_order(alert.labels) if k not in _HIDDEN_LABELS]
    return AlertItem(
        name=dialect.text(alert.name, NAME_CHARS),
        firing=alert.status == "firing",
        status=t.alert_status.get(alert.status, dialect.text(alert.status, 20)),
        severity=_severity_label(alert.severity, dialect, t),
        summary=dialect.text(alert.summary, SUMMARY_CHARS),
        description=dialect.text(alert.description, DESCRIPTION_CHARS, multiline=multiline),
        labels=[
            (dialect.text(k, LABEL_KEY_CHARS), dialect.text(v, LABEL_VALUE_CHARS))
            for k, v in shown[:MAX_LABELS]
        ],
        hidden_labels=max(0, len(shown) - MAX_LABELS),
        starts_at=format_time(alert.starts_at, zone),
        ends_at=format_time(alert.ends_at, zone)
        if alert.ends_at is not None and alert.status == "resolved"
        else None,
        source_url=dialect.url(alert.generator_url),
    )


def _context(context: ServiceContext, dialect: Dialect, t: Strings) -> ContextItem:
    traces = []
    for trace in context.traces:
        label = dialect.text(f"{trace.operation} · {trace.duration_ms:.0f} ms", OPERATION_CHARS)
        if trace.failed:
            label += f" · {t.context_failed}"
        traces.append(
            TraceItem(
                label=label,
                short_id=trace.trace_id[:8],
                failed=trace.failed,
                url=dialect.url(trace.url),
                jaeger_url=dialect.url(trace.jaeger_url),
                button_url=PLAIN.url(trace.url),
            )
        )
    service = dialect.text(context.service, SERVICE_CHARS)
    return ContextItem(
        service=service,
        title=f"{t.context_title}{t.sep}{service}",
        errors_title=(
            t.context_errors_sampled.format(n=context.sampled) if context.sampled else t.context_errors
        ),
        errors=[(e.count, dialect.text(e.text, ERROR_LINE_CHARS)) for e in context.errors],
        traces=traces,
        grafana_url=dialect.url(context.grafana_url),
        service_url=dialect.url(context.service_url),
        missing=t.missing(context.missing) if context.missing else "",
        empty=not context.errors and not context.traces and not context.missing,
    )


def _label_order(labels: dict[str, str]) -> list[tuple[str, str]]:
    first = [(k, labels[k]) for k in _FIRST_LABELS if k in labels]
    rest = sorted((k, v) for k, v in labels.items() if k not in _FIRST_LABELS)
    return first + rest


def _severity_key(severity: str | None) -> str:
    value = (severity or "").lower()
    return value if value in _SEVERITY_RANK else ("none" if not value else "other")


def _severity_label(severity: str | None, dialect: Dialect, t: Strings) -> str:
    if not severity:
        return t.unknown_severity
    return t.severity.get(severity.lower(), dialect.text(severity, 30))


def _rank(key: str) -> int:
    if key == "none":
        return len(_SEVERITY_RANK) + 1
    return _SEVERITY_RANK.get(key, len(_SEVERITY_RANK))


def _key_of_rank(rank: int) -> str:
    for key, value in _SEVERITY_RANK.items():
        if value == rank:
            return key
    return "other"


def _unique(people: Sequence[Person]) -> list[Person]:
    seen: dict[str, Person] = {}
    for person in people:
        seen.setdefault(person.name, person)
    return list(seen.values())


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")

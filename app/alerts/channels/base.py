"""What every notification channel shares: the message it is given and the result it reports.

A channel module (``dingtalk.py``, ``wecom.py``, ...) holds its config model and
``async def send(config, message, http) -> SendResult``. ``send`` never raises for a
failed delivery: it reports failure and whether retrying can help (the contract of
Alertmanager's notifiers), e.g. DingTalk's HTTP 200 with ``errcode`` 130101 (too
fast) is a retryable failure, 310000 (bad signature) is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.alerts.failures import Failure, failure, people

MessageKind = Literal["trigger", "update", "resolve", "escalate", "heartbeat"]


@dataclass(frozen=True)
class Person:
    """Someone to mention, with the handles each chat tool uses."""

    name: str
    mobile: str | None = None
    email: str | None = None
    wecom_userid: str | None = None
    feishu_user_id: str | None = None
    slack_user_id: str | None = None
    ntfy_topic: str | None = None
    phone: str | None = None
    sms: str | None = None


@dataclass(frozen=True)
class AlertView:
    name: str
    status: Literal["firing", "resolved"]
    severity: str | None
    summary: str | None
    description: str | None
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str | None = None


@dataclass(frozen=True)
class ErrorLine:
    """One group of the service's error log lines (same message but for ids and numbers)."""

    text: str  # the newest line of the group
    count: int


@dataclass(frozen=True)
class TraceLink:
    """One of the service's slowest or failed traces, with where to open it."""

    trace_id: str
    operation: str  # "<root service> <root operation>"
    duration_ms: float
    failed: bool
    url: str  # Panorama's trace page (with a view token when the page carries one)
    jaeger_url: str | None = None


@dataclass(frozen=True)
class ServiceContext:
    """Where to look for one service of the page's group.

    ``service`` is the canonical spelling (``name.namespace`` when the alerts naming it agree on a
    namespace, else the name). ``missing`` names what could not be fetched in time:
    ``{"logs": "timeout", "traces": "unreachable"}`` (reasons are a backend error's kind).
    """

    service: str
    errors: list[ErrorLine] = field(default_factory=list)
    traces: list[TraceLink] = field(default_factory=list)
    grafana_url: str | None = None
    service_url: str | None = None
    missing: dict[str, str] = field(default_factory=dict)
    sampled: int = 0  # the error lines were counted in the window's newest this many (0: in all of them)


@dataclass(frozen=True)
class PageContext:
    """Where to look, added under the alerts when a page is rendered for delivery: one section per
    service of the group, those most alerts name first, at most a few; ``more`` names the group's
    other services (counted "and K more", their context on the incident's page, ``context_url``)."""

    services: list[ServiceContext] = field(default_factory=list)
    more: list[str] = field(default_factory=list)
    context_url: str | None = None

    @property
    def missing(self) -> bool:
        """Whether a part of any service's context could not be fetched."""
        return any(s.missing for s in self.services)


@dataclass(frozen=True)
class Notification:
    """One incident event to tell people about."""

    kind: MessageKind
    incident_id: int
    title: str
    status: Literal["triggered", "acknowledged", "resolved"]
    severity: str | None
    services: list[str]
    started_at: datetime
    incident_url: str
    ack_url: str | None
    alerts: list[AlertView]
    firing: int
    resolved: int
    mentions: list[Person] = field(default_factory=list)
    locale: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "UTC"
    acknowledged_by: str | None = None
    enrich: bool = False  # a trigger or escalation of a route that wants context: added at delivery
    context: PageContext | None = None


@dataclass(frozen=True)
class Digest:
    """Several notifications for one rate-limited robot, merged into one message."""

    items: list[Notification]
    locale: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "UTC"

    @property
    def mentions(self) -> list[Person]:
        seen: dict[str, Person] = {}
        for item in self.items:
            for person in item.mentions:
                seen.setdefault(person.name, person)
        return list(seen.values())


Message = Notification | Digest


NoticeKind = Literal["shift_start", "shift_end", "swap_offered", "swap_taken", "digest"]


@dataclass(frozen=True)
class Notice:
    """Something to tell people that is not an incident: a hand-over, a swap, the daily digest.

    Its words are already in ``locale`` (chosen where it is made); a channel only lays them out,
    escaping each line for its format. ``links`` are (label, URL) pairs.
    """

    kind: NoticeKind
    title: str
    lines: list[str]
    mentions: list[Person] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    locale: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "UTC"


Outgoing = Message | Notice
"""Anything the outbox holds: a page (or a digest of pages), or a notice."""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retryable: bool = False
    detail: str = ""
    status: int | None = None
    timeout: bool = False  # no answer in time (the failure class ``timeout``)
    problem: Failure | None = None  # ``detail`` as data, for pages (app.alerts.failures)

    @classmethod
    def success(cls, detail: str = "", status: int | None = None) -> SendResult:
        return cls(True, False, detail, status)

    @classmethod
    def failure(
        cls,
        detail: str,
        *,
        retryable: bool,
        status: int | None = None,
        timeout: bool = False,
        problem: Failure | None = None,
    ) -> SendResult:
        """A failed delivery: ``detail`` in English (the API, the logs), ``problem`` the same as
        data with the far end's own words apart (the pages say it in their reader's language)."""
        return cls(False, retryable, detail, status, timeout, problem)

    @classmethod
    def no_contact(cls, channel: str, message: Outgoing, contact: str) -> SendResult:
        """A page the paged people cannot get on this channel: none of them has ``contact`` (``sms
        number``, ``phone``) in the directory. Not retryable."""
        names = [p.name for p in message.mentions]
        return cls.failure(
            f"{channel}: the paged person ({', '.join(names) or 'nobody'}) has no {contact}",
            retryable=False,
            problem=failure("no_contact", people=people(names), contact=contact.split()[0]),
        )

    @property
    def failure_class(self) -> str:
        """A failure's class, as metrics count it (Alertmanager's notifiers count client and server
        errors apart): ``4xx``, ``5xx`` (any HTTP status class), ``timeout``, ``errcode`` (refused
        inside an HTTP 2xx answer: a robot's ``errcode``), ``other`` (no answer: refused connection,
        DNS, TLS, a bug)."""
        if self.timeout:
            return "timeout"
        if self.status is None:
            return "other"
        if 200 <= self.status <= 299:
            return "errcode"
        return f"{self.status // 100}xx"

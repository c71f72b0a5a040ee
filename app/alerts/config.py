"""The alerting sections of the configuration: ``alerts``, ``users``, ``channels``, ``schedules``,
``escalations``, ``routes``, ``time_intervals`` and ``maintenance``.

The shape follows Alertmanager's where it can (matchers, mute time intervals,
first-match routing with ``continue``), so that an SRE reads it without a manual.
Cross references (a route's escalation, a step's channels and users, a
rotation's users) are checked when the file is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, field_validator, model_validator

from app.alerts import timeintervals
from app.alerts.channels.config import ChannelConfig
from app.alerts.matchers import Matcher
from app.alerts.oncall import parse_window
from app.config_types import Duration, Model, unknown

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME)]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
    return value


class BasicAuth(Model):
    username: str
    password: SecretStr


class AlertsSettings(Model):
    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager sends (http_config.authorization)"
    )
    webhook_basic_auth: BasicAuth | None = Field(
        default=None, description="Or basic auth (http_config.basic_auth)"
    )
    public_url: str = Field(default="http://127.0.0.1:8000", description="Base of the links in notifications")
    locale: Literal["zh-CN", "en"] = "zh-CN"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Larger webhook bodies get 413")
    max_delivery_age: Duration = Field(
        default=timedelta(hours=1), description="Undelivered notifications are dead-lettered after this"
    )
    ack_link_ttl: Duration = Field(default=timedelta(hours=24), description="How long an ack link works")
    calendar_feed_ttl: Duration = Field(
        default=timedelta(days=365),
        description="How long a calendar feed URL works (revoke one sooner with .../calendar/revoke)",
    )
    signing_key: SecretStr | None = Field(
        default=None, description="Signs ack links; default: a key generated once and kept in the database"
    )
    worker: bool = Field(
        default=True,
        description="Run escalations and deliveries (the sending) in this process; the alert journal "
        "(webhooks answered 202) is applied in every process whatever this says",
    )
    worker_interval: Duration = Field(
        default=timedelta(seconds=2), description="How often escalations and deliveries are looked at"
    )
    enrich_timeout: Duration = Field(
        default=timedelta(seconds=3),
        description="How long a page waits for its error logs and traces (Elasticsearch, Jaeger) "
        "when it is rendered for delivery; past it, the page goes without them and says so",
    )

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("enrich_timeout")
    @classmethod
    def _enrich_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=30):
            raise ValueError("must be longer than 0s and at most 30s (a page waits for it)")
        return value


PHONE = r"^\+?[0-9][0-9 -]{4,19}$"
NTFY_TOPIC = r"^[A-Za-z0-9_-]{1,64}$"


class RuleStep(Model):
    """One way of reaching the person: a channel, so long after the page began (if still unacknowledged)."""

    channel: str
    after: Duration = Field(default=timedelta(0), description="Since the person was paged, e.g. 5m")


class NotificationRule(Model):
    """How a person wants to be reached for incidents of some severities (first matching rule wins)."""

    severities: list[str] = Field(
        default_factory=list, description="e.g. [critical]; empty: any severity (a catch-all rule)"
    )
    steps: list[RuleStep] = Field(min_length=1, description="Run in the order of their `after`")

    @field_validator("severities")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [s.strip().lower() for s in value]


class User(Model):
    name: Name
    mobile: str | None = Field(default=None, description="For DingTalk @-mentions")
    email: str | None = None
    wecom_userid: str | None = Field(default=None, description="For WeCom <@userid> mentions")
    feishu_user_id: str | None = Field(default=None, description="For Feishu <at user_id=...> mentions")
    slack_user_id: str | None = Field(default=None, description="For Slack <@U...> mentions")
    ntfy_topic: str | None = Field(
        default=None, pattern=NTFY_TOPIC, description="The person's topic on the team's ntfy server"
    )
    phone: str | None = Field(default=None, pattern=PHONE, description="Called by voice channels (E.164)")
    sms: str | None = Field(default=None, pattern=PHONE, description="Texted by SMS channels (E.164)")
    rules: list[NotificationRule] = Field(
        default_factory=list,
        description="How an escalation step that names this person (or finds them on call) reaches them",
    )

    def rule_for(self, severity: str | None) -> NotificationRule | None:
        """The first rule naming ``severity``, else the first catch-all rule."""
        wanted = (severity or "").lower()
        return next((r for r in self.rules if not r.severities or wanted in r.severities), None)


def _window(value: str) -> str:
    parse_window(value)
    return value


class Rotation(Model):
    users: list[str] = Field(min_length=1)
    length: Duration = Field(description="Shift length, e.g. 1d or 1w")
    start: datetime = Field(description="First handoff, local time of the schedule (no offset)")
    active: list[Annotated[str, AfterValidator(_window)]] = Field(
        default_factory=list,
        description="Hours of the day this layer covers (e.g. 09:00-18:00); empty: all day",
    )

    @field_validator("start")
    @classmethod
    def _naive(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            raise ValueError("write the start without an offset: it is read in the schedule's time zone")
        return value

    @field_validator("length")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a shift lasts at least 1m")
        return value


class Schedule(Model):
    name: Name
    timezone: str = "UTC"
    rotations: list[Rotation] = Field(min_length=1, description="Later layers win where they are active")
    notices: list[str] = Field(
        default_factory=list,
        description="Channels that tell people at hand-over (incoming, outgoing) and about swaps",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class NotifyStep(Model):
    schedule: str | None = None
    users: list[str] = Field(default_factory=list)
    channels: list[str] = Field(
        default_factory=list,
        description="Group channels told (mentioning those paged); the people also follow their own rules",
    )

    @model_validator(mode="after")
    def _someone(self) -> NotifyStep:
        if not self.channels and not self.users and self.schedule is None:
            raise ValueError("notify needs channels, users or a schedule")
        return self


class Step(Model):
    notify: NotifyStep | None = None
    wait: Duration | None = None
    active_time_intervals: list[str] = Field(
        default_factory=list, description="The step runs only inside one of these time intervals"
    )
    mute_time_intervals: list[str] = Field(
        default_factory=list, description="The step is skipped inside any of these time intervals"
    )

    @model_validator(mode="after")
    def _one(self) -> Step:
        if (self.notify is None) == (self.wait is None):
            raise ValueError("a step is either notify: {...} or wait: <duration>")
        return self


class Escalation(Model):
    name: Name
    steps: list[Step] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=100, description="How many more times the chain runs")


def _yaml_clock(value: object) -> object:
    """Take ``time`` objects; explain what PyYAML makes of an unquoted ``10:00``: the base-60 number 600."""
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError("a time of day is HH:MM here, without seconds or offset")
        return value.strftime("%H:%M")
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 60:
            raise ValueError(
                f"YAML reads an unquoted {value // 60}:{value % 60:02d} as the number {value}; "
                f"quote it: '{value // 60:02d}:{value % 60:02d}'"
            )
        raise ValueError("write the time of day as HH:MM, in quotes")
    return value


def _clock(value: str) -> str:
    minutes = timeintervals.parse_clock(value)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _number(value: object) -> object:
    """``days_of_month: [1, -1]`` and ``years: [2026]`` are numbers to YAML: take them as written."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _day_or_month(value: object) -> object:
    """Also explain what PyYAML makes of an unquoted range such as ``1:5``: the base-60 number 65."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 60:
        text = f"{value // 60}:{value % 60}"
        raise ValueError(f"YAML reads an unquoted {text} as the number {value}; quote it: '{text}'")
    return _number(value)


def _parsed_by(parse: Callable[[str], object]) -> AfterValidator:
    def check(value: str) -> str:
        parse(value)
        return value

    return AfterValidator(check)


ClockTime = Annotated[str, BeforeValidator(_yaml_clock), AfterValidator(_clock)]
WeekdayRange = Annotated[str, _parsed_by(timeintervals.parse_weekday_range)]
DayOfMonthRange = Annotated[
    str, BeforeValidator(_day_or_month), _parsed_by(timeintervals.parse_day_of_month_range)
]
MonthRange = Annotated[str, BeforeValidator(_day_or_month), _parsed_by(timeintervals.parse_month_range)]
YearRange = Annotated[str, BeforeValidator(_number), _parsed_by(timeintervals.parse_year_range)]


class TimeRange(Model):
    """``HH:MM`` (normalised), start inclusive, end exclusive; ``24:00`` ends the day."""

    start_time: ClockTime
    end_time: ClockTime

    @model_validator(mode="after")
    def _order(self) -> TimeRange:
        timeintervals.parse_time_range(self.start_time, self.end_time)
        return self


class TimeInterval(Model):
    """Alertmanager's time interval: every given field must match (empty fields match all).

    Read by :mod:`app.alerts.timeintervals`, which documents the syntax.
    """

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[WeekdayRange] = Field(default_factory=list, description="e.g. monday:friday, saturday")
    days_of_month: list[DayOfMonthRange] = Field(default_factory=list, description="e.g. 1:5, -1, -3:-1")
    months: list[MonthRange] = Field(default_factory=list, description="e.g. january:march, 12")
    years: list[YearRange] = Field(default_factory=list, description="e.g. 2026:2027")
    location: str = "UTC"

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class NamedTimeIntervals(Model):
    name: Name
    time_intervals: list[TimeInterval] = Field(min_length=1)


class Heartbeat(Model):
    interval: Duration = Field(description="Page when the alert has not arrived for this long")
    escalation: str | None = Field(default=None, description="Default: the route's escalation")


class Route(Model):
    matchers: list[Matcher] = Field(default_factory=list)
    escalation: str | None = Field(default=None, description="None: record, page nobody")
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: list[str] = Field(default_factory=list)
    heartbeat: Heartbeat | None = None
    enrich: bool = Field(
        default=True,
        description="Pages of this route carry the service's top error logs, traces and dashboard link "
        "(false: the alert alone)",
    )


class MaintenanceWindow(Model):
    matchers: list[Matcher] = Field(min_length=1)
    start: datetime
    end: datetime
    comment: str = ""

    @model_validator(mode="after")
    def _order(self) -> MaintenanceWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone offset, e.g. 2026-12-01T02:00:00+08:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AlertingSections(Protocol):
    """What :func:`cross_check` reads: the top-level alerting keys of the settings."""

    @property
    def users(self) -> list[User]: ...
    @property
    def channels(self) -> list[ChannelConfig]: ...
    @property
    def schedules(self) -> list[Schedule]: ...
    @property
    def escalations(self) -> list[Escalation]: ...
    @property
    def routes(self) -> list[Route]: ...
    @property
    def time_intervals(self) -> list[NamedTimeIntervals]: ...


def cross_check(sections: AlertingSections) -> list[str]:
    """Every dangling or duplicated name, each with the path of the key that holds it."""
    problems: list[str] = []
    users = _unique("users", [u.name for u in sections.users], problems)
    channels = _unique("channels", [c.name for c in sections.channels], problems)
    channel_types = {c.name: c.type for c in sections.channels}
    schedules = _unique("schedules", [s.name for s in sections.schedules], problems)
    escalations = _unique("escalations", [e.name for e in sections.escalations], problems)
    intervals = _unique("time_intervals", [t.name for t in sections.time_intervals], problems)
    for i, person in enumerate(sections.users):
        for j, rule in enumerate(person.rules):
            for k, rule_step in enumerate(rule.steps):
                where = f"users[{i}].rules[{j}].steps[{k}].channel"
                kind = channel_types.get(rule_step.channel)
                if rule_step.channel not in channels:
                    problems.append(f"{where}: {unknown('channel', rule_step.channel, channels)}")
                elif (need := CONTACT_OF.get(kind or "")) and getattr(person, need[0]) is None:
                    problems.append(f"{where}: {rule_step.channel!r} ({kind}) needs the user's {need[1]}")
    for i, schedule in enumerate(sections.schedules):
        for j, rotation in enumerate(schedule.rotations):
            for k, user in enumerate(rotation.users):
                if user not in users:
                    problems.append(
                        f"schedules[{i}].rotations[{j}].users[{k}]: {unknown('user', user, users)}"
                    )
        for k, name in enumerate(schedule.notices):
            if name not in channels:
                problems.append(f"schedules[{i}].notices[{k}]: {unknown('channel', name, channels)}")
            elif channel_types[name] in NO_NOTICES:
                problems.append(
                    f"schedules[{i}].notices[{k}]: a {channel_types[name]} channel cannot carry shift notices"
                )
    for i, escalation in enumerate(sections.escalations):
        for j, step in enumerate(escalation.steps):
            for field in ("active_time_intervals", "mute_time_intervals"):
                problems.extend(
                    f"escalations[{i}].steps[{j}].{field}[{k}]: {unknown('time interval', name, intervals)}"
                    for k, name in enumerate(getattr(step, field))
                    if name not in intervals
                )
            if step.notify is None:
                continue
            where = f"escalations[{i}].steps[{j}].notify"
            if not step.notify.channels:
                _check_rules_reach(sections, step.notify, where, problems)
            if step.notify.schedule is not None and step.notify.schedule not in schedules:
                problems.append(f"{where}.schedule: {unknown('schedule', step.notify.schedule, schedules)}")
            problems.extend(
                f"{where}.users[{k}]: {unknown('user', u, users)}"
                for k, u in enumerate(step.notify.users)
                if u not in users
            )
            problems.extend(
                f"{where}.channels[{k}]: {unknown('channel', c, channels)}"
                for k, c in enumerate(step.notify.channels)
                if c not in channels
            )
    for i, route in enumerate(sections.routes):
        if route.escalation is not None and route.escalation not in escalations:
            problems.append(f"routes[{i}].escalation: {unknown('escalation', route.escalation, escalations)}")
        if route.heartbeat and route.heartbeat.escalation and route.heartbeat.escalation not in escalations:
            problems.append(
                f"routes[{i}].heartbeat.escalation: "
                f"{unknown('escalation', route.heartbeat.escalation, escalations)}"
            )
        if route.heartbeat and not (route.heartbeat.escalation or route.escalation):
            problems.append(f"routes[{i}].heartbeat: name an escalation (here or on the route) to page")
        for k, name in enumerate(route.mute_time_intervals):
            if name not in intervals:
                problems.append(
                    f"routes[{i}].mute_time_intervals[{k}]: {unknown('time interval', name, intervals)}"
                )
    return problems


# Channel types that address the paged person through a contact of theirs: (User field, what to call it).
CONTACT_OF = {
    "twilio_call": ("phone", "phone"),
    "aliyun_call": ("phone", "phone"),
    "twilio_sms": ("sms", "sms number"),
    "aliyun_sms": ("sms", "sms number"),
}
# Channel types that page only (a call or a template-bound SMS cannot say "you are on call").
NO_NOTICES = frozenset({"twilio_call", "aliyun_call", "aliyun_sms"})


def _check_rules_reach(
    sections: AlertingSections, notify: NotifyStep, where: str, problems: list[str]
) -> None:
    """A step without channels reaches people only through their rules: each must have one."""
    by_name = {u.name: u for u in sections.users}
    named = list(notify.users)
    if notify.schedule is not None:
        schedule = next((s for s in sections.schedules if s.name == notify.schedule), None)
        named += [u for r in (schedule.rotations if schedule else []) for u in r.users]
    for name in dict.fromkeys(named):
        user = by_name.get(name)
        if user is not None and not user.rules:
            problems.append(
                f"{where}: it has no channels, and user {name!r} has no rules: "
                "name channels here or give the user rules"
            )


def _unique(section: str, names: list[str], problems: list[str]) -> set[str]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            problems.append(f"{section}[{i}].name: {name!r} is defined twice")
        seen.add(name)
    return seen

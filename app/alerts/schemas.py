"""The Alertmanager webhook payload, and the request and answer bodies of the alerting API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from app.alerts.matchers import Matcher
from app.servicenames import ServiceName

ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


class WebhookAlert(BaseModel):
    """One alert of the payload; extra fields (Grafana's, newer Alertmanager's) are kept out of the way."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: dt.datetime  # noqa: N815 - the wire name
    endsAt: dt.datetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    @property
    def ends(self) -> dt.datetime | None:
        """``endsAt`` unless it is Alertmanager's zero time (the alert has not ended)."""
        if self.endsAt is None or self.endsAt <= ZERO_TIME + dt.timedelta(days=1):
            return None
        return self.endsAt


class WebhookPayload(BaseModel):
    """Alertmanager's webhook body, ``version: "4"`` (see its notify/webhook package)."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str = Field(min_length=1)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str | None = None  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    alerts: list[WebhookAlert]

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _version_4(value)


def _version_4(value: str) -> str:
    if value != "4":
        raise ValueError(f'this is webhook version {value!r}; Panorama reads Alertmanager\'s version "4"')
    return value


class _AlertShape(TypedDict):
    """:class:`WebhookAlert` as a TypedDict: the same fields, types, defaults and constraints."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    startsAt: dt.datetime
    endsAt: NotRequired[dt.datetime | None]
    generatorURL: NotRequired[str | None]
    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]


class _PayloadShape(TypedDict):
    """:class:`WebhookPayload` as a TypedDict (extra keys ignored, as there)."""

    version: Annotated[str, AfterValidator(_version_4)]
    groupKey: Annotated[str, Field(min_length=1)]
    status: Literal["firing", "resolved"]
    receiver: NotRequired[str]
    groupLabels: NotRequired[dict[str, str]]
    commonLabels: NotRequired[dict[str, str]]
    commonAnnotations: NotRequired[dict[str, str]]
    externalURL: NotRequired[str | None]
    truncatedAlerts: NotRequired[int]
    alerts: list[_AlertShape]


_PAYLOAD_SHAPE: TypeAdapter[_PayloadShape] = TypeAdapter(_PayloadShape)


def check_webhook(raw: bytes) -> tuple[str, int]:
    """The ``groupKey`` and the number of alerts of a webhook body :class:`WebhookPayload` reads;
    raises its ``ValidationError`` (naming every problem) for a body it does not read.

    Why not the model itself: the webhook only answers (the applier reads the body again, with the
    model), and building the models — a payload, ten alerts, their dicts and datetimes — was the
    largest part of its own CPU in a storm: 35–45 µs a webhook more than ``orjson.loads`` alone,
    against 10–20 µs for the same validation into plain dicts (``bench/alert_storm.py``, the
    answering path in-process). The shape is the model's, field for field, in the same JSON mode
    (tests/alerts/test_webhook_shape.py holds them to it); a body it refuses is read by the model,
    whose verdict and messages are what the webhook answers, so the 4xx stay as they were and a
    body is accepted only when the model accepts it."""
    try:
        shape = _PAYLOAD_SHAPE.validate_json(raw)
    except ValidationError:
        payload = WebhookPayload.model_validate_json(raw)  # raises, naming the problems (or reads it)
        return payload.groupKey, len(payload.alerts)
    return shape["groupKey"], len(shape["alerts"])


class IncidentSummary(BaseModel):
    id: int
    status: Literal["triggered", "acknowledged", "resolved"]
    title: str
    severity: str | None
    services: list[str]
    group_key: str
    receiver: str
    created_at: dt.datetime
    updated_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    snoozed_until: dt.datetime | None
    muted: str | None
    firing: int
    url: str


class AlertOut(BaseModel):
    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    generator_url: str | None


class TimelineOut(BaseModel):
    at: dt.datetime
    kind: str = Field(
        description="received, routed, notified, delivery_failed, delivery_retried, dead_lettered, "
        "escalated, acknowledged, snoozed, resolved, muted, updated"
    )
    actor: str | None
    detail: dict[str, Any] = Field(
        description="What the entry records; a failed delivery's has the English `error` (a dead "
        "letter's also `reason`) and, when recorded with one, `failure`: `{kind, said, ...}` (the kind "
        "of failure and its values; `said` is the far end's own words) and a dead letter's `gave_up`"
    )


class IncidentDetail(IncidentSummary):
    external_url: str | None = Field(default=None, description="Alertmanager's externalURL for this group")
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    alerts: list[AlertOut]
    timeline: list[TimelineOut]


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(ge=1, le=7 * 24 * 60)


def _same_kind(start: dt.datetime, end: dt.datetime) -> bool:
    """Both aware or both naive: comparable here. A naive time is read in the schedule's (or the
    configured) zone by the route (app.times.localize), which checks the order again."""
    return (start.utcoffset() is None) == (end.utcoffset() is None)


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _check(self) -> OverrideRequest:
        if _same_kind(self.start, self.end) and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OverrideOut(BaseModel):
    id: int
    schedule: str
    user: str
    start: dt.datetime
    end: dt.datetime
    created_by: str


class OnCall(BaseModel):
    schedule: str
    at: dt.datetime
    user: str | None = Field(description="Who is on call; null when nobody is")
    source: Literal["rotation", "override"] | None = None


class ShiftOut(BaseModel):
    user: str
    start: dt.datetime = Field(
        description="When the shift really starts (before `from` for the one under way then)"
    )
    end: dt.datetime = Field(
        description="When the shift really ends: the hand-over, after `to` for the one under way then; "
        "with `runs_on`, only as far as its end was looked for"
    )
    source: Literal["rotation", "override"]
    runs_on: bool = Field(
        default=False,
        description="true: the shift is still under way at `end`, which is not a hand-over but as far as "
        "its end was looked for (four weeks after `to`, or the schedule's longest rotation and a day if "
        "that is longer); it ends later, if ever (a cover of months, the schedule's only person)",
    )


class Shifts(BaseModel):
    schedule: str
    timezone: str
    shifts: list[ShiftOut]


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[Matcher] = Field(min_length=1)
    start: dt.datetime
    end: dt.datetime
    comment: str = ""

    @model_validator(mode="after")
    def _check(self) -> MaintenanceRequest:
        if _same_kind(self.start, self.end) and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MaintenanceOut(BaseModel):
    id: int | None
    matchers: list[str]
    start: dt.datetime
    end: dt.datetime
    comment: str
    source: Literal["api", "config"]
    created_by: str | None


class MaintenanceList(BaseModel):
    maintenance: list[MaintenanceOut]


class Accepted(BaseModel):
    """The webhook's answer (202): the body is journaled (committed); incidents follow right behind."""

    status: Literal["accepted"] = "accepted"
    id: int = Field(description="The journal row that holds the body")
    alerts: int = Field(description="How many alerts the body holds")
    url: str = Field(description="Where the row's outcome is told: GET /api/v1/alerts/intake/{id}")


class IntakeStatus(BaseModel):
    """What became of one journaled webhook."""

    id: int
    status: Literal["queued", "applied", "failed"] = Field(
        description="queued: waiting to be applied; applied: incidents updated; failed: given up (see error)"
    )
    received_at: dt.datetime
    applied_at: dt.datetime | None = Field(description="When it was applied (or given up)")
    alerts: int
    attempts: int = Field(
        description="Failed applies so far (a database that could not take a write is not counted)"
    )
    incident_id: int | None = Field(
        description="The incident it opened or updated; None when it changed none (e.g. heartbeats only)"
    )
    incident_url: str | None = Field(description="The incident in the API: GET /api/v1/incidents/{id}")
    error: str | None


class CalendarLink(BaseModel):
    """A calendar feed to subscribe to: calendar apps poll ``url`` (it carries its own token)."""

    feed: str = Field(description="schedule:<name> or user:<name>")
    url: str = Field(description="The .ics feed, with its signed token")
    webcal_url: str = Field(description="The same for apps that open webcal:// links")
    expires: dt.datetime
    generation: int = Field(description="Revoking the feed moves this on; older URLs stop working")


class SwapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="Who gives the shift (it must be theirs for the whole range)")
    start: dt.datetime
    end: dt.datetime
    note: str = Field(default="", max_length=500)
    taken_by: str | None = Field(default=None, description="Take it at once for this person (a swap)")

    @model_validator(mode="after")
    def _check(self) -> SwapRequest:
        if _same_kind(self.start, self.end) and self.end <= self.start:
            # its own type, so that a page can say it in its language (the message stays the API's)
            raise PydanticCustomError("end_before_start", "end must be after start")
        return self


class TakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="Who takes the shift")


class SwapOut(BaseModel):
    id: int
    schedule: str
    user: str
    start: dt.datetime
    end: dt.datetime
    note: str
    status: Literal["open", "taken", "cancelled"]
    created_by: str
    taken_by: str | None
    taken_at: dt.datetime | None
    override_id: int | None


class IncidentActivity(BaseModel):
    """An incident as the on-call history counts it (``service.oncall_activity``)."""

    id: int
    severity: str | None
    services: list[str]
    schedules: list[str] = Field(
        description="The schedules its escalation chains paged, as configured when it was routed"
    )
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None


class PageActivity(BaseModel):
    """One page (a trigger, escalation or heartbeat notification to one channel)."""

    incident_id: int
    sent_at: dt.datetime
    delivered_at: dt.datetime | None


class PersonPaged(BaseModel):
    """A step of an escalation (or of the person's own rule) that reached a person."""

    incident_id: int
    user: str
    at: dt.datetime


class OncallActivity(BaseModel):
    """What happened on call in ``[first, last)``: the incidents opened, acknowledged or resolved
    in it (and those its pages are about), the pages written or delivered in it, and who was paged."""

    first: dt.datetime
    last: dt.datetime
    incidents: list[IncidentActivity]
    pages: list[PageActivity]
    paged: list[PersonPaged]


class IncidentSpan(BaseModel):
    """When an incident's alerts fired: the earliest ``startsAt`` of its alerts and, once it is
    resolved, the latest ``endsAt`` (the times Alertmanager reports, not when webhooks arrived)."""

    incident: IncidentSummary
    started_at: dt.datetime
    ended_at: dt.datetime | None
    services: list[ServiceName] = Field(
        default_factory=list,
        description="Its services, each in the namespace of the alerts naming it (any of its alerts)",
    )

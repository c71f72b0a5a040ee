"""What the digest routes answer: the figures of a digest and its rendered text."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class Traffic(BaseModel):
    """Requests, error rate and p99 over a period (None: not rolled up, never 0 in its place)."""

    requests: float | None
    errors: float | None
    error_rate: float | None
    latency_p99_ms: float | None
    days: int = Field(description="Days of the period with rolled-up figures")


class ServiceFigures(BaseModel):
    service: str = Field(description="The rolled-up name (Istio's destination_service)")
    name: str = Field(description="Its short name, app.namespace")
    current: Traffic
    previous: Traffic | None = Field(description="The same period a week before; null: not rolled up")
    url: str


class Regression(BaseModel):
    service: str
    figure: Literal["latency_p99_ms", "error_rate"]
    before: float
    after: float
    ratio: float | None = Field(description="after / before; null when before was 0")


class SloFigures(BaseModel):
    service: str
    name: str = Field(description="Its short name, app.namespace")
    objective: str
    target: float
    achieved: float | None
    met: bool | None
    error_budget_remaining: float | None
    error_budget_remaining_minutes: float | None
    window_days: int
    data_days: int


class NoisyAlert(BaseModel):
    alertname: str
    alerts: int = Field(description="Alerts of that name in the period's incidents")
    incidents: int


class IncidentLine(BaseModel):
    id: int
    title: str
    severity: str | None
    status: str
    url: str


class Incidents(BaseModel):
    opened: int
    by_severity: dict[str, int]
    acknowledged: int
    resolved: int
    still_open: int
    mean_ack_seconds: float | None
    max_ack_seconds: float | None
    mean_resolve_seconds: float | None
    max_resolve_seconds: float | None
    noisiest: list[NoisyAlert]
    listed: list[IncidentLine]
    url: str = Field(description="The incidents page, listing those opened since the period began")


class OnCallNow(BaseModel):
    schedule: str
    at: dt.datetime
    user: str | None


class PersonLoad(BaseModel):
    """How often one person was paged over the period, from the three-year on-call history."""

    user: str
    pages: int
    night_pages: int = Field(description="Pages between 22:00 and 07:00 local time")
    acks: int
    pages_before: int | None = Field(description="Pages over the period compared with; null: not rolled up")


class DigestOut(BaseModel):
    name: str
    day: dt.date = Field(description="The day covered (the last day of a weekly digest)")
    first: dt.date = Field(description="First day covered")
    last: dt.date
    weekly: bool
    compared_with: tuple[dt.date, dt.date] = Field(description="The period compared with, a week before")
    timezone: str
    locale: Literal["zh-CN", "en"]
    channels: list[str]
    missing: list[str] = Field(
        description="What could not be said, and why: rollup (no rollup for the period), prometheus "
        "(beside rollup: the period was rolled up without Prometheus, none being configured), "
        "rollup_partial (some days only), rollup_previous (none for the period compared with), "
        "alert_journal (webhooks received before the period ended still wait in the alert journal: "
        "the incident figures may miss them), oncall_history (a day's on-call history is pending: "
        "the alert journal had not moved past it; the load is incomplete)"
    )
    scope: Traffic | None = Field(description="The scope's figures; null: no rollup for the period")
    scope_previous: Traffic | None
    services: list[ServiceFigures] = Field(description="The busiest services of the scope")
    regressions: list[Regression]
    slo: list[SloFigures]
    incidents: Incidents
    on_call: list[OnCallNow]
    load: list[PersonLoad] = Field(
        description="Pages per on-call person (the whole team), busiest first, from the on-call "
        "history the daily rollup keeps (empty: nobody was paged, or the period is not rolled up: "
        "see missing)"
    )
    journal_waiting_since: dt.datetime | None = Field(
        default=None,
        description="When the oldest webhook still waiting in the alert journal was received, if "
        "before the period ended (null: every webhook of the period is applied)",
    )
    title: str
    text: str = Field(description="Rendered as plain text (e-mail)")
    markdown: str = Field(description="Rendered as DingTalk/WeCom markdown")
    sent: dt.datetime | None = Field(description="When it was sent for this day; null: not yet")


class SendOut(BaseModel):
    name: str
    day: dt.date
    sent: bool = Field(description="Queued for its channels now")
    already_sent: bool = Field(description="It had been sent for that day (and force was not given)")
    sends: int = Field(description="Times it has been sent for that day, this one included")
    channels: list[str]
    digest: DigestOut

"""The ``digests`` section: which digests go out, when, to which channels, about what.

A digest names channels of the ``channels`` section (checked in :func:`cross_check`, like the
alerts' references) and is sent once per digest and covered day (``digest_sends``).
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from app.config_types import Model, unknown

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# Channels that reach one person about one page (a call, a text message) carry no digest.
NO_DIGESTS = frozenset({"twilio_call", "twilio_sms", "aliyun_call", "aliyun_sms", "ntfy"})


def _unique(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed twice: {', '.join(repeated)}")
    if any(not v.strip() for v in values):
        raise ValueError("names cannot be empty")
    return values


class DigestScope(Model):
    namespaces: list[str] = Field(default_factory=list, description="Only services of these namespaces")
    services: list[str] = Field(
        default_factory=list, description="Only these services (checkout, checkout.shop or the FQDN)"
    )

    _lists = field_validator("namespaces", "services")(_unique)

    @property
    def everything(self) -> bool:
        return not self.namespaces and not self.services


class Regression(Model):
    ratio: float = Field(
        default=1.5,
        gt=1,
        le=100,
        description="A p99 or error rate this many times last week's is a regression",
    )
    min_requests: int = Field(
        default=100, ge=0, description="Services with fewer requests in the period are not compared"
    )


class DigestConfig(Model):
    name: str = Field(pattern=NAME)
    schedule: time = Field(default=time(9, 0), description='Local time it is sent, e.g. "09:00" (quote it)')
    timezone: str | None = Field(
        default=None, description="IANA zone of its day and time (default: timezone)"
    )
    channels: list[str] = Field(min_length=1, description="Channels it is sent to (the channels section)")
    scope: DigestScope = Field(default_factory=DigestScope, description="Empty: every service")
    locale: Literal["zh-CN", "en"] = "zh-CN"
    top: int = Field(default=10, ge=1, le=50, description="Busiest services listed")
    weekly: Weekday | None = Field(
        default=None, description="On this weekday the digest covers the past 7 days, compared week over week"
    )
    regression: Regression = Field(default_factory=Regression)
    schedules: list[str] = Field(
        default_factory=list, description="On-call schedules it names; empty: all of them"
    )

    _lists = field_validator("channels", "schedules")(_unique)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    def zone(self, default: str) -> ZoneInfo:
        return ZoneInfo(self.timezone or default)

    @property
    def weekly_day(self) -> int | None:
        """The weekday (Monday 0) the weekly variant is sent on."""
        return None if self.weekly is None else WEEKDAYS.index(self.weekly)


def cross_check(
    digests: list[DigestConfig], channel_types: dict[str, str], schedules: list[str]
) -> list[str]:
    """Dangling or duplicated names of the ``digests`` section, each with its key path."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, digest in enumerate(digests):
        if digest.name in seen:
            problems.append(f"digests[{i}].name: {digest.name!r} is used twice")
        seen.add(digest.name)
        for k, channel in enumerate(digest.channels):
            kind = channel_types.get(channel)
            if kind is None:
                problems.append(f"digests[{i}].channels[{k}]: {unknown('channel', channel, channel_types)}")
            elif kind in NO_DIGESTS:
                problems.append(f"digests[{i}].channels[{k}]: a {kind} channel cannot carry a digest")
        problems.extend(
            f"digests[{i}].schedules[{k}]: {unknown('schedule', name, schedules)}"
            for k, name in enumerate(digest.schedules)
            if name not in schedules
        )
    return problems

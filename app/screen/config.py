"""The ``screen`` section: what the ops room's wall screen shows, how often it asks, and its colours.

Thresholds colour figures on the wall (and only there): below ``warning`` is fine, from
``warning`` amber, from ``critical`` red. They never page anyone; alerting rules do that.
"""

from __future__ import annotations

from datetime import time, timedelta

from pydantic import Field, field_validator, model_validator

from app.config_types import Duration, Model, unknown

MIN_WINDOW = timedelta(seconds=5)
MAX_WINDOW = timedelta(hours=1)


class Threshold(Model):
    warning: float = Field(ge=0, description="From this value the figure is amber")
    critical: float = Field(ge=0, description="From this value the figure is red")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning:g}) is above critical ({self.critical:g})")
        return self

    def level(self, value: float | None) -> str | None:
        """``ok``, ``warning`` or ``critical`` for a value; None when there is no value."""
        if value is None:
            return None
        if value >= self.critical:
            return "critical"
        return "warning" if value >= self.warning else "ok"


class Thresholds(Model):
    error_rate: Threshold = Field(
        default=Threshold(warning=0.01, critical=0.05), description="Share of 5xx answers (0.01 = 1%)"
    )
    latency_p99_ms: Threshold = Field(
        default=Threshold(warning=500, critical=1000), description="p99 latency in milliseconds"
    )
    cpu_utilization: Threshold = Field(
        default=Threshold(warning=0.75, critical=0.9), description="Cluster CPU in use (0..1)"
    )
    memory_utilization: Threshold = Field(
        default=Threshold(warning=0.8, critical=0.9), description="Cluster memory in use (0..1)"
    )


class ScreenSettings(Model):
    title: str | None = Field(
        default=None,
        max_length=40,
        description="Shown at the top of the wall; default: 平台运行监控 / Platform",
    )
    refresh_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="How often the page asks for data; each backend query runs at most once per interval",
    )
    window: Duration = Field(
        default=timedelta(minutes=2),
        description="Rate window of the live figures, the top services and the graph (≥ 4 scrape intervals)",
    )
    history: Duration = Field(default=timedelta(hours=1), description="How far back the live lines go")
    top_services: int = Field(default=5, ge=1, le=10, description="Services in each top list and the trends")
    services: list[str] = Field(
        default_factory=list,
        description="Only these services (checkout, checkout.shop or the FQDN); empty: the busiest ones",
    )
    schedules: list[str] = Field(
        default_factory=list, description="On-call schedules shown; empty: all of them"
    )
    max_incidents: int = Field(
        default=8, ge=1, le=20, description="Open incidents listed (the rest are counted)"
    )
    max_graph_nodes: int = Field(default=24, ge=2, le=100, description="Busiest services drawn in the graph")
    trend_days: int = Field(default=30, ge=7, le=90, description="Days of the daily-rollup trends")
    trend_refresh: Duration = Field(
        default=timedelta(minutes=10), description="How often the trends are read again (they change daily)"
    )
    timeout: Duration = Field(
        default=timedelta(seconds=5), description="Longest wait for one panel's backend; then it shows stale"
    )
    reload_at: time | None = Field(
        default=time(4, 0),
        description="Local time of the page's daily self-reload (a quiet hour; quote it); null: never",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if not MIN_WINDOW <= value <= MAX_WINDOW:
            raise ValueError("must be between 5s and 1h")
        return value

    @field_validator("history")
    @classmethod
    def _history(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=5) <= value <= timedelta(hours=24):
            raise ValueError("must be between 5m and 24h")
        return value

    @field_validator("trend_refresh")
    @classmethod
    def _trend_refresh(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1s and 1d")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(minutes=1):
            raise ValueError("must be between 100ms and 1m")
        return value

    @field_validator("services", "schedules")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"listed twice: {', '.join(repeated)}")
        if any(not v.strip() for v in value):
            raise ValueError("names cannot be empty")
        return value


def cross_check(screen: ScreenSettings, schedules: list[str]) -> list[str]:
    """Schedules the screen names that are not configured, each with its key path."""
    return [
        f"screen.schedules[{i}]: {unknown('schedule', name, schedules)}"
        for i, name in enumerate(screen.schedules)
        if name not in schedules
    ]

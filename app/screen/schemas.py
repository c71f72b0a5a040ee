"""The wall screen's one JSON answer (``GET /api/v1/screen``): every panel with its own status."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["ok", "warning", "critical"]
Status = Literal["ok", "stale", "error"]


class PanelPhrase(BaseModel):
    key: str = Field(
        description="A key of Panorama's catalogue: problem.backend.unreachable, problem.database…"
    )
    values: dict[str, str] = Field(
        description="What the key's text is filled with, each `{name}` by name: the backend's display "
        "name, its own words as `detail`, the setting and environment variable to set…"
    )


class PanelProblem(BaseModel):
    backend: str = Field(description="What failed: prometheus, database, jaeger… (or panorama)")
    message: str = Field(description="What went wrong, for people (English, machine-stable)")
    phrase: PanelPhrase | None = Field(
        None,
        description="The same as a catalogue key and its values, for a screen to say in its reader's "
        "language (the wall does; it shows `backend: message` for a key it does not know); absent or "
        "null when there is none. The answer is the same for every language: the values are plain "
        "strings, never words of one language",
    )


class PanelMeta(BaseModel):
    status: Status = Field(
        description="ok: fresh; stale: the last refresh failed, the data is the last good one; "
        "error: no data at all"
    )
    fetched_at: dt.datetime | None = Field(description="When the data shown was fetched")
    age_s: float | None = Field(description="Seconds since fetched_at when this answer was made")
    error: PanelProblem | None = Field(description="Why the last refresh failed (stale or error)")


# --- platform health ------------------------------------------------------------------------------


class HealthFigure(BaseModel):
    key: str
    value: float | None = Field(description="null: the series are absent (the exporter is missing)")
    source: str = Field(description="The exporter the figure reads: kube-state-metrics or node_exporter")
    level: Level | None = None


class Health(BaseModel):
    figures: list[HealthFigure]


class HealthPanel(PanelMeta):
    data: Health | None


# --- live traffic ---------------------------------------------------------------------------------


class TrafficFigure(BaseModel):
    key: Literal["requests_per_s", "error_rate", "latency_p99_ms"]
    value: float | None = Field(description="The latest value; null when there is none")
    level: Level | None = None
    points: list[float | None] = Field(description="One value per time of `times` (null: none)")


class Traffic(BaseModel):
    times: list[float] = Field(description="Epoch seconds of the points, `screen.history` back to now")
    present: bool = Field(description="False when Prometheus has no Istio request metrics at all")
    figures: list[TrafficFigure]


class TrafficPanel(PanelMeta):
    data: Traffic | None


# --- top services ---------------------------------------------------------------------------------


class ServiceRow(BaseModel):
    name: str = Field(description="<app>.<namespace>, as the graph and the sidecars name it")
    service: str = Field(description="destination_service, as the rollups name it")
    requests_per_s: float
    error_rate: float | None
    latency_p99_ms: float | None
    level: Level
    error_level: Level | None
    latency_level: Level | None


class Services(BaseModel):
    by_traffic: list[ServiceRow]
    by_error_rate: list[ServiceRow]
    total: int = Field(description="Services with traffic in the window (after `screen.services`)")


class ServicesPanel(PanelMeta):
    data: Services | None


# --- incidents --------------------------------------------------------------------------------------


class IncidentRow(BaseModel):
    id: int
    title: str
    status: Literal["triggered", "acknowledged"]
    severity: str | None
    services: list[str]
    started_at: dt.datetime
    acknowledged_by: str | None
    muted: bool
    on_call: list[str] = Field(description="Who is on call for it now (its escalations' schedules)")
    url: str


class Incidents(BaseModel):
    open: list[IncidentRow] = Field(description="Critical first, then newest; at most screen.max_incidents")
    total_open: int
    triggered: int
    critical_unacknowledged: list[IncidentRow] = Field(
        description="What the banner shows: critical, not acknowledged, not muted (maintenance), newest first"
    )


class IncidentsPanel(PanelMeta):
    data: Incidents | None


# --- on call ---------------------------------------------------------------------------------------


class OnCallRow(BaseModel):
    schedule: str
    user: str | None = Field(description="null: nobody is on call now")
    source: Literal["rotation", "override"] | None
    until: dt.datetime | None = Field(
        description="End of the current shift (null: nobody on call, or it runs past the next 14 days)"
    )
    next_user: str | None
    next_at: dt.datetime | None


class OnCallData(BaseModel):
    schedules: list[OnCallRow]


class OnCallPanel(PanelMeta):
    data: OnCallData | None


# --- dependency graph -----------------------------------------------------------------------------


class GraphNode(BaseModel):
    id: str
    requests_per_s: float
    error_rate: float | None
    level: Level | None
    x: float
    y: float


class GraphEdge(BaseModel):
    source: str
    target: str
    requests_per_s: float
    error_rate: float | None
    level: Level | None


class GraphData(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    hidden: int = Field(description="Quieter services left out (screen.max_graph_nodes)")


class GraphPanel(PanelMeta):
    data: GraphData | None


# --- 30-day trends --------------------------------------------------------------------------------


class TrendLine(BaseModel):
    name: str
    entity: str
    requests: list[float | None]
    error_rate: list[float | None]
    latency_p99_ms: list[float | None]


class Trends(BaseModel):
    days: list[dt.date]
    platform: TrendLine | None = Field(description="null: no platform rollups yet")
    services: list[TrendLine]


class TrendsPanel(PanelMeta):
    data: Trends | None


# --- the answer -------------------------------------------------------------------------------------


class Panels(BaseModel):
    health: HealthPanel
    traffic: TrafficPanel
    services: ServicesPanel
    incidents: IncidentsPanel
    oncall: OnCallPanel
    graph: GraphPanel
    trends: TrendsPanel


class ScreenData(BaseModel):
    generated_at: dt.datetime
    refresh_seconds: int
    timezone: str
    reload_at: dt.datetime | None = Field(description="When the page reloads itself next (screen.reload_at)")
    panels: Panels

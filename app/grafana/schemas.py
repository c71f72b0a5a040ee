"""The bodies Grafana's JSON datasource sends, and the answers it reads.

Requests are read tolerantly: Grafana adds fields from release to release
(``app``, ``requestId``, ``timezone``, ``startTime``, ``scopedVars``, ``dashboardUID``…),
so unknown fields are kept and ignored. The field names are Grafana's (camelCase,
as aliases).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GrafanaBody(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TimeRange(GrafanaBody):
    """``{"from": ISO, "to": ISO, "raw": {"from": "now-6h", "to": "now"}}``."""

    start: datetime = Field(alias="from", examples=["2026-08-28T00:00:00.000Z"])
    end: datetime = Field(alias="to", examples=["2026-11-26T09:30:00.000Z"])
    raw: dict[str, Any] | None = None


class Target(GrafanaBody):
    ref_id: str = Field(default="A", alias="refId")
    target: str | int | float | None = Field(
        default=None, description="The metric (`service.latency_p99_ms`), regex-interpolated"
    )
    payload: dict[str, Any] | str | None = Field(
        default=None,
        description="entity, granularity (day|week|month|year), format (table), objective; "
        "kind: incidents or partial_days (annotations), lang (zh-CN|en: partial days)",
    )
    hide: bool = False
    datasource: Any = None
    editor_mode: str | None = Field(default=None, alias="editorMode")


class QueryRequest(GrafanaBody):
    range: TimeRange
    targets: list[Target] = Field(default_factory=list)
    max_data_points: int | None = Field(default=None, alias="maxDataPoints")
    interval: str | None = None
    interval_ms: int | None = Field(default=None, alias="intervalMs")
    filters: list[Any] | None = Field(default=None, description="Ad hoc filters (Grafana ≥ 10)")
    adhoc_filters: list[Any] | None = Field(
        default=None, alias="adhocFilters", description="Ad hoc filters (plugin ≤ 0.6)"
    )
    scoped_vars: dict[str, Any] | None = Field(default=None, alias="scopedVars")


class MetricsRequest(GrafanaBody):
    metric: str | None = None
    payload: dict[str, Any] | str | None = None


class PayloadOptionsRequest(GrafanaBody):
    metric: str
    name: str
    payload: dict[str, Any] | str | None = None


class VariableRequest(GrafanaBody):
    payload: dict[str, Any] | str | None = Field(
        default=None, description='{"target": "services"} (or the raw JSON the variable editor holds)'
    )
    target: str | None = Field(default=None, description="Older plugins: the query text itself")
    range: TimeRange | None = None


class TagValuesRequest(GrafanaBody):
    key: str


# --- answers (documentation; the routes build them as plain JSON) -------------------------


class Health(BaseModel):
    status: str
    service: str
    version: str
    timezone: str
    metrics: int


class PayloadOption(BaseModel):
    label: str
    value: str


class PayloadConfig(BaseModel):
    name: str
    label: str
    type: str = Field(description="select, multi-select, input or textarea")
    placeholder: str | None = None
    reload_metric: bool = Field(default=False, alias="reloadMetric")
    width: int | None = None
    options: list[PayloadOption] | None = None


class MetricOut(BaseModel):
    label: str
    value: str
    payloads: list[PayloadConfig]


class TimeSeries(BaseModel):
    target: str
    datapoints: list[tuple[float | None, int]] = Field(description="[value, epoch ms of the period start]")
    ref_id: str = Field(alias="refId")
    title: str
    unit: str | None = None
    tags: dict[str, str]


class Column(BaseModel):
    text: str
    type: str
    unit: str | None = None


class Table(BaseModel):
    type: str = "table"
    ref_id: str = Field(alias="refId")
    columns: list[Column]
    rows: list[list[Any]]


class FrameField(BaseModel):
    name: str
    type: str
    values: list[Any]


class Frame(BaseModel):
    """A data frame (annotations: time, timeEnd, title, text, tags)."""

    ref_id: str = Field(alias="refId")
    name: str
    fields: list[FrameField]


class VariableValue(BaseModel):
    text: str = Field(alias="__text")
    value: str = Field(alias="__value")


class TagKey(BaseModel):
    type: str
    text: str


class TagValue(BaseModel):
    text: str


class GrafanaError(BaseModel):
    message: str

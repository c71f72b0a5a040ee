"""What Grafana does with the datasource's answers, ported from @grafana/data and the plugin.

simpod-json-datasource 0.6 maps every element of a ``/query`` answer through
``toDataFrame`` (packages/grafana-data/src/dataframe/processDataFrame.ts), and turns a
``/variable`` answer into ``{text, value}`` options with its ``ResponseParser``
(src/response_parser.ts). These functions follow those branches and raise where
Grafana would throw or silently lose data, so a test can assert on the frames a
panel, an annotation or a variable really gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FIELD_TYPES = {
    "time",
    "number",
    "string",
    "boolean",
    "trace",
    "geo",
    "enum",
    "other",
    "frame",
    "nestedFrames",
}


class NotAFrame(AssertionError):
    """Grafana's toDataFrame would throw ('Unsupported data format') or lose data."""


@dataclass
class Field:
    name: str
    type: str
    values: list[Any]
    config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] | None = None


@dataclass
class Frame:
    name: str | None
    ref_id: str | None
    fields: list[Field]

    def field(self, name: str) -> Field:
        found = [f for f in self.fields if f.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} fields named {name!r} in {[f.name for f in self.fields]}")
        return found[0]

    @property
    def length(self) -> int:
        return len(self.fields[0].values) if self.fields else 0

    def display_name(self) -> str:
        """The legend of a time series frame: displayNameFromDS, else the frame name."""
        value = self.fields[1]
        return str(value.config.get("displayNameFromDS") or self.name or value.name)


def to_data_frame(data: Any) -> Frame:
    """``toDataFrame(data)``: a DataFrameDTO, a time series or a table; anything else throws."""
    if not isinstance(data, dict):
        if isinstance(data, list):
            return array_to_data_frame(data)
        raise NotAFrame(f"cannot convert {type(data).__name__}")
    if "fields" in data:
        return _frame_dto(data)
    if "datapoints" in data or "target" in data:
        return _time_series(data)
    if "columns" in data:
        return _table(data)
    raise NotAFrame(f"unsupported data format: keys {sorted(data)}")


def _frame_dto(data: dict[str, Any]) -> Frame:
    fields = []
    lengths = set()
    for raw in data["fields"]:
        if not isinstance(raw.get("name"), str):
            raise NotAFrame(f"a frame field needs a name: {raw}")
        values = raw.get("values", [])
        if not isinstance(values, list):
            raise NotAFrame(f"field {raw['name']}: values must be an array")
        kind = raw.get("type", "other")
        if kind not in FIELD_TYPES:
            raise NotAFrame(f"field {raw['name']}: unknown type {kind!r}")
        if kind == "time" and not all(isinstance(v, int | float) for v in values):
            raise NotAFrame(f"time field {raw['name']}: values must be epoch milliseconds")
        lengths.add(len(values))
        fields.append(Field(raw["name"], kind, values, raw.get("config", {}), raw.get("labels")))
    if len(lengths) > 1:
        raise NotAFrame(f"fields of different lengths {lengths}")
    return Frame(data.get("name"), data.get("refId"), fields)


def _time_series(data: dict[str, Any]) -> Frame:
    points = data.get("datapoints")
    if not isinstance(points, list):
        raise NotAFrame("datapoints must be an array of [value, epoch ms]")
    times, values = [], []
    for point in points:
        if not isinstance(point, list) or len(point) != 2:
            raise NotAFrame(f"a datapoint is [value, epoch ms], got {point!r}")
        value, moment = point
        if not isinstance(moment, int) or isinstance(moment, bool):
            raise NotAFrame(f"datapoint time must be integer epoch milliseconds, got {moment!r}")
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value)):
            raise NotAFrame(f"datapoint value must be a finite number or null, got {value!r}")
        times.append(moment)
        values.append(value)
    if times != sorted(times):
        raise NotAFrame("datapoints must be in time order")
    config: dict[str, Any] = {"unit": data.get("unit")}
    if data.get("title"):
        config["displayNameFromDS"] = data["title"]
    tags = data.get("tags")
    if tags is not None and not all(isinstance(v, str) for v in tags.values()):
        raise NotAFrame("tags become labels: string values only")
    return Frame(
        data.get("target") or data.get("name"),
        data.get("refId"),
        [Field("Time", "time", times), Field("Value", "number", values, config, tags)],
    )


def _table(data: dict[str, Any]) -> Frame:
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise NotAFrame(f"Expected table rows to be array, got {type(rows).__name__}.")
    fields = []
    for column in data["columns"]:
        text = column.get("text")
        if not isinstance(text, str) or not text:
            raise NotAFrame(f"a table column needs a text: {column}")
        kind = column.get("type") if column.get("type") in FIELD_TYPES else "other"
        config = {k: v for k, v in column.items() if k not in ("text", "type")}
        fields.append(Field(text, kind, [], config))
    for row in rows:
        if not isinstance(row, list) or len(row) != len(fields):
            raise NotAFrame(f"a row must have one cell per column ({len(fields)}), got {row!r}")
        for f, cell in zip(fields, row, strict=True):
            f.values.append(cell)
    return Frame(data.get("name"), data.get("refId"), fields)


def array_to_data_frame(items: list[Any]) -> Frame:
    """``arrayToDataFrame``: the fields are the keys of the first object."""
    if not items:
        return Frame(None, None, [])
    first = items[0]
    if not isinstance(first, dict):
        return Frame(None, None, [Field("Value", "other", list(items))])
    return Frame(None, None, [Field(key, "other", [item.get(key) for item in items]) for key in first])


def variable_options(answer: Any) -> list[dict[str, str]]:
    """The plugin's ``transformMetricFindResponse``: ``[{text, value}]`` from a /variable answer."""
    frame = to_data_frame(answer)
    names = [f.name for f in frame.fields]
    if "__text" in names and "__value" in names:
        texts, values = frame.field("__text").values, frame.field("__value").values
        return [{"text": str(t), "value": str(v)} for t, v in zip(texts, values, strict=True)]
    return [{"text": str(v), "value": str(v)} for f in frame.fields for v in f.values]


def annotation_events(frame: Frame) -> list[dict[str, Any]]:
    """Grafana's default annotation field mapping: time, timeEnd, title, text, tags."""
    names = {f.name for f in frame.fields}
    missing = {"time", "timeEnd", "title", "text", "tags"} - names
    if missing:
        raise NotAFrame(f"an annotation frame lacks {sorted(missing)}")
    return [{f.name: f.values[i] for f in frame.fields} for i in range(frame.length)]

"""Traces and log documents written the ways real platforms write them, for the correlation tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.backends.traces import Span, TagValue, make_trace
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger

NAMESPACE = "shop"


def backend(url: str) -> dict[str, Any]:
    """Backend settings for a fake: no retries, a short timeout."""
    return {"url": url, "retries": 0, "timeout_s": 5}


def at(base: datetime, ms: float) -> datetime:
    return base + timedelta(milliseconds=ms)


def span(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    service: str,
    operation: str,
    start: datetime,
    duration_ms: float,
    *,
    error: bool = False,
    tags: Mapping[str, TagValue] | None = None,
    kind: str | None = "server",
) -> Span:
    all_tags = dict(tags or {})
    if error:
        all_tags.setdefault("error", True)  # what Envoy and the Jaeger clients set on a failed span
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        service=service,
        operation=operation,
        start=start,
        duration_us=round(duration_ms * 1000),
        error=error,
        tags=all_tags,
        kind=kind,
    )


def store_trace(jaeger: FakeJaeger, *spans: Span) -> None:
    jaeger.add_trace(make_trace(spans[0].trace_id, list(spans)))


def index_of(moment: datetime) -> str:
    """Fluent Bit's logstash_format index: the record's UTC day."""
    return moment.astimezone(UTC).strftime("logstash-%Y.%m.%d")


def iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def kubernetes(app: str, *, namespace: str = NAMESPACE, container: str = "app") -> dict[str, Any]:
    """The `kubernetes` object of Fluent Bit's kubernetes filter (labels on, dots replaced)."""
    return {
        "namespace_name": namespace,
        "pod_name": f"{app}-7d9f8b-x2x4z",
        "container_name": container,
        "host": "node-1",
        "labels": {"app": app, "pod-template-hash": "7d9f8b"},
    }


def cri_line(moment: datetime, text: str, app: str, **extra: Any) -> dict[str, Any]:
    """A plain-text container line, as the CRI parser ships it: the body in `log`."""
    return {
        "@timestamp": iso(moment),
        "stream": "stdout",
        "log": text,
        "kubernetes": kubernetes(app, container=extra.pop("container", "app")),
        **extra,
    }


def json_line(
    moment: datetime, app: str, fields: Mapping[str, Any], *, text: str | None = None
) -> dict[str, Any]:
    """A JSON line merged by Fluent Bit (Merge_Log On): its keys at the top level, the raw line in `log`."""
    return {
        "@timestamp": iso(moment),
        "log": text if text is not None else " ".join(f"{k}={v}" for k, v in fields.items()),
        "kubernetes": kubernetes(app),
        **fields,
    }


def ecs_line(
    moment: datetime, app: str, message: str, *, trace_id: str, span_id: str | None = None
) -> dict[str, Any]:
    """An ECS-formatted line (e.g. the Elastic APM agents' log correlation): `trace.id`, `span.id`."""
    doc: dict[str, Any] = {
        "@timestamp": iso(moment),
        "message": message,
        "trace": {"id": trace_id},
        "service": {"name": app},
        "kubernetes": kubernetes(app),
    }
    if span_id:
        doc["span"] = {"id": span_id}
    return doc


def store_logs(es: FakeElasticsearch, *docs: dict[str, Any]) -> list[str]:
    """Indexes each document into its day's index; returns their ids in order."""
    ids = []
    for doc in docs:
        moment = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        ids.append(es.add_document(index_of(moment), doc))
    return ids

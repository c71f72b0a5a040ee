"""Stored days for the datasource tests, and the request bodies Grafana sends.

The bodies are those Grafana 10/11 with simpod-json-datasource 0.6.x put on the wire
(the plugin sends Grafana's whole DataQueryRequest after interpolating its targets:
builder-mode payload values in the *regex* format, code-mode payloads parsed from JSON
written with the *json* format, hidden targets not sent, ``adhocFilters`` added by the
plugin and ``filters`` by Grafana ≥ 10.4's scenes).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.rollups import repository
from app.rollups.builtin import RESPONSE_BOUNDS_S
from app.rollups.compute import FamilyValue
from app.rollups.days import days_between

CHECKOUT = "checkout.shop.svc.cluster.local"
PAYMENTS = "payments.shop.svc.cluster.local"
SEARCH = "search.catalog.svc.cluster.local"
SERVICES = (CHECKOUT, PAYMENTS, SEARCH)
NAMESPACES = ("catalog", "shop")
FIRST = date(2025, 1, 1)  # a Wednesday
LAST = date(2025, 3, 31)
GAP = (PAYMENTS, date(2025, 2, 10))
"""payments was not rolled up that day: its daily series has a null there."""
BOUNDS = (10.0, 100.0, 1000.0, math.inf)
SLO = [
    {"service": CHECKOUT, "availability": 0.99, "latency_p99_ms": 500, "window_days": 7},
    {"service": PAYMENTS, "availability": 0.95, "window_days": 7},
]


def service_day(service: str, day: date) -> list[FamilyValue]:
    """Odd days many fast requests, even days few slow ones: averages of daily figures are wrong."""
    odd = day.toordinal() % 2 == 1
    scale = {CHECKOUT: 10.0, PAYMENTS: 5.0, SEARCH: 1.0}[service]
    requests = scale * (100.0 if odd else 10.0)
    errors = scale * (1.0 if odd else 2.0)
    shares = (0.9, 1.0, 1.0, 1.0) if odd else (0.0, 0.2, 0.9, 1.0)
    buckets = {bound: requests * share for bound, share in zip(BOUNDS, shares, strict=True)}
    samples = 288 if odd else 144
    qps = requests / 86400
    return [
        FamilyValue("service", service, "requests", total=requests),
        FamilyValue("service", service, "errors", total=errors),
        FamilyValue("service", service, "latency_sum_ms", total=requests * (8 if odd else 400)),
        FamilyValue("service", service, "latency_count", total=requests),
        FamilyValue("service", service, "latency", buckets=buckets),
        FamilyValue(
            "service",
            service,
            "qps",
            total=qps * samples,
            samples=samples,
            peak=qps * (3 if day.day == 15 else 2),
        ),
    ]


def other_day(day: date) -> list[FamilyValue]:
    load = 1 + (day.toordinal() % 7) / 10
    return [
        FamilyValue("namespace", "shop", "cpu_cores", total=2.0 * load * 288, samples=288, peak=3.0 * load),
        FamilyValue("namespace", "shop", "memory_bytes", total=1e9 * 288, samples=288, peak=1.5e9),
        FamilyValue("namespace", "catalog", "cpu_cores", total=0.5 * 288, samples=288, peak=0.8),
        FamilyValue("namespace", "catalog", "memory_bytes", total=2e8 * 288, samples=288, peak=3e8),
        FamilyValue("cluster", "cluster", "cpu_utilization", total=0.4 * load * 288, samples=288, peak=0.9),
        FamilyValue("cluster", "cluster", "memory_utilization", total=0.6 * 288, samples=288, peak=0.7),
    ]


async def store_days(session: AsyncSession, first: date = FIRST, last: date = LAST) -> None:
    for day in days_between(first, last):
        values = other_day(day)
        for service in SERVICES:
            if (service, day) != GAP:
                values.extend(service_day(service, day))
        await repository.replace_day(session, day, values)


def oncall_day(day: date) -> list[FamilyValue]:
    """A day of on-call history as the daily rollup stores it (``app/rollups/oncall.py``)."""
    pages = float(1 + day.toordinal() % 3)
    values: list[FamilyValue] = []
    for kind, entity in (("oncall", "oncall"), ("oncall_service", "checkout"), ("oncall_schedule", "sre")):
        counters = {"incidents": pages, "incidents_critical": pages, "pages_sent": pages}
        counters |= {"pages_delivered": pages, "acks": pages, "ack_seconds": 120 * pages}
        counters |= {"resolves": pages, "resolve_seconds": 1800 * pages}
        for name in ("incidents_warning", "incidents_info", "incidents_other"):
            counters[name] = 0.0
        values += [FamilyValue(kind, entity, name, total=total) for name, total in counters.items()]
        for family, seconds in (("ack_time", 120.0), ("resolve_time", 1800.0)):
            buckets = {bound: pages if seconds <= bound else 0.0 for bound in RESPONSE_BOUNDS_S}
            values.append(FamilyValue(kind, entity, family, buckets=buckets))
    for name, total in {"pages": pages, "night_pages": 1.0, "incidents": pages, "acks": pages}.items():
        values.append(FamilyValue("oncall_person", "alice", name, total=total))
    values.append(FamilyValue("oncall_person", "alice", "ack_seconds", total=120 * pages))
    return values


async def store_oncall_days(session: AsyncSession, first: date = FIRST, last: date = LAST) -> None:
    for day in days_between(first, last):
        await repository.replace_day(session, day, oncall_day(day), kinds=["oncall", *ONCALL_KINDS])


ONCALL_KINDS = ("oncall_service", "oncall_schedule", "oncall_person")


def grafana_range(start: str, end: str, raw: tuple[str, str] = ("now-90d", "now")) -> dict[str, Any]:
    return {"from": start, "to": end, "raw": {"from": raw[0], "to": raw[1]}}


PANORAMA = {"type": "simpod-json-datasource", "uid": "panorama"}


def builder_target(ref_id: str, target: str, **payload: Any) -> dict[str, Any]:
    """A builder-mode target as the plugin sends it (payload values already regex-interpolated)."""
    return {
        "datasource": PANORAMA,
        "editorMode": "builder",
        "payload": payload,
        "refId": ref_id,
        "target": target,
    }


def code_target(ref_id: str, target: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A code-mode target: the payload JSON text, variables in json format, parsed by the plugin."""
    return {
        "datasource": PANORAMA,
        "editorMode": "code",
        "payload": payload,
        "refId": ref_id,
        "target": target,
    }


def query_body(
    targets: list[dict[str, Any]],
    *,
    start: str = "2025-01-01T00:00:00.000Z",
    end: str = "2025-04-01T00:00:00.000Z",
    max_data_points: int = 1182,
    filters: list[dict[str, Any]] | None = None,
    grafana: int = 11,
    scoped_vars: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``POST /query`` as Grafana ``grafana`` (10 or 11) with the plugin 0.6.x sends it."""
    body: dict[str, Any] = {
        "app": "dashboard",
        "requestId": "SQR108" if grafana == 11 else "Q108",
        "timezone": "browser",
        "range": grafana_range(start, end),
        "interval": "2h",
        "intervalMs": 7_200_000,
        "targets": targets,
        "maxDataPoints": max_data_points,
        "scopedVars": {
            "__interval": {"text": "2h", "value": "2h"},
            "__interval_ms": {"text": "7200000", "value": 7_200_000},
            **(scoped_vars or {}),
        },
        "startTime": 1_764_151_200_000,
        "rangeRaw": {"from": "now-90d", "to": "now"},
        "dashboardUID": "panorama-service-history",
        "panelId": 2,
        "adhocFilters": filters or [],
    }
    if grafana == 11:
        body |= {
            "panelName": "p99 latency",
            "panelPluginId": "timeseries",
            "queryGroupId": "Q-7c1e2b3f-0f4b-4bd2-9a57-6d4bb5a1f0a2-0",
            "filters": filters or [],
        }
    else:
        body |= {"dashboardId": 7, "cacheTimeout": None, "queryCachingTTL": None, "liveStreaming": False}
    return body


def multi_var(*values: str) -> dict[str, Any]:
    """A multi-value variable's scopedVars entry (the plugin's getVariables())."""
    return {"selected": False, "text": " + ".join(values), "value": list(values)}


def regex(*values: str) -> str:
    """Grafana's regex format of a variable's value(s)."""
    escaped = ["".join(f"\\{c}" if c in "\\^$*+?.()|[]{}/" else c for c in value) for value in values]
    return escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"

"""What the rollup tests share: settings over the session Prometheus, the dataset's days, truths."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import ack, journal
from app.backends.prometheus import PrometheusClient
from app.config import Settings
from tests.alerts.support import alert, payload
from tests.harness.app import settings_for
from tests.harness.datasets import (
    DAY_S,
    DST_PROBE_METRIC,
    EDGES,
    NAMESPACE,
    SCRAPE_INTERVAL_S,
    SESSION_FILES,
    Dataset,
    session_timeline,
    write_dataset,
)
from tests.harness.openmetrics import Grid
from tests.harness.prometheus import RunningPrometheus

CHECKOUT = EDGES[0].labels("destination", "200")["destination_service"]
PAYMENTS = EDGES[1].labels("destination", "200")["destination_service"]


def rollup_settings(prometheus_url: str, database_url: str, **sections: Any) -> Settings:
    rollups = {"enabled": False, **sections.pop("rollups", {})}
    return settings_for(
        database_url, prometheus={"url": prometheus_url}, rollups=rollups, timezone="UTC", **sections
    )


def dataset_of(prometheus: RunningPrometheus) -> Dataset:
    assert prometheus.dataset is not None
    return prometheus.dataset


def utc_days(dataset: Dataset) -> list[date]:
    """The whole UTC days the session dataset covers."""
    return [datetime.fromtimestamp(start, UTC).date() for start in dataset.day_starts]


def client_for(prometheus: RunningPrometheus) -> PrometheusClient:
    return PrometheusClient(prometheus.settings(timeout_s=60))


def requests_truth(dataset: Dataset, service: str, t0: float, t1: float, *, code: str | None = None) -> float:
    """Requests the destination sidecars of ``service`` counted in ``(t0, t1]``, exactly as generated."""
    labels = {"reporter": "destination", "destination_service": service}
    if code is not None:
        labels["response_code"] = code
    return sum(s.counter_increase(t0, t1) for s in dataset.select("istio_requests_total", **labels))


def history_from_noon(directory: Path) -> tuple[Dataset, date, date]:
    """Istio's history starting at noon, as when Prometheus's retention has cut a day: the dataset,
    the cut day and the whole day after it."""
    now = datetime.now(UTC).timestamp()
    whole = session_timeline(now, days=2)
    noon = Grid(whole.start + DAY_S / 2, whole.end, SCRAPE_INTERVAL_S)
    dataset = write_dataset(directory, noon, {"istio.om": SESSION_FILES["istio.om"]}, now=now)
    cut, full = (datetime.fromtimestamp(whole.start + i * DAY_S, UTC).date() for i in (0, 1))
    return dataset, cut, full


# A user-defined entity kind over the DST probe of the dataset: a counter, a gauge, a derived figure.
PROBE_ROLLUPS = {
    "entities": [{"name": "probe", "labels": ["probe"], "selector": DST_PROBE_METRIC}],
    "definitions": [
        {
            "name": "ticks",
            "entity": "probe",
            "kind": "counter",
            "query": f"sum by (probe) (increase({DST_PROBE_METRIC}{{$filter}}[$range]))",
        },
        {
            "name": "tick_rate",
            "entity": "probe",
            "kind": "gauge",
            "query": f"sum by (probe) (rate({DST_PROBE_METRIC}{{$filter}}[5m]))",
        },
    ],
    "derived": [{"name": "ticks_per_s", "entity": "probe", "expr": "ticks / seconds"}],
}


__all__ = ["CHECKOUT", "NAMESPACE", "PAYMENTS"]


async def journal_stuck_at_noon(sessions: async_sessionmaker[AsyncSession], day: date) -> datetime:
    """A webhook received at noon of ``day`` (answered 202) that the journal has not applied."""
    noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    body = payload("CheckoutDown", [alert("CheckoutDown", service=CHECKOUT)])
    await journal.insert(sessions, [journal.Received(noon, body["groupKey"], orjson.dumps(body), 1)])
    return noon


async def drain_journal(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    key = await ack.signing_key(sessions, settings)
    applied = await journal.apply_next(sessions, settings, key, limit=64)
    assert applied.applied == 1

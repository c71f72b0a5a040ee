"""A digest of a day rolled up from a real Prometheus (the session's generated history): its
figures are what was generated, computed here from the written series; the same day a week
before was never rolled up, and the digest says so."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.digests import service
from app.rollups import service as rollups
from tests.digests.support import digest_config, quantile
from tests.harness.datasets import DAY_S
from tests.harness.prometheus import RunningPrometheus
from tests.rollups.support import (
    CHECKOUT,
    PAYMENTS,
    client_for,
    dataset_of,
    requests_truth,
    rollup_settings,
    utc_days,
)

HISTOGRAM = "istio_request_duration_milliseconds"


async def test_a_generated_day_has_the_generated_figures_and_says_last_week_is_missing(
    prometheus: RunningPrometheus, migrated_engine: AsyncEngine, database_url: str
) -> None:
    dataset = dataset_of(prometheus)
    config = digest_config(scope={"namespaces": ["shop"]})
    config.pop("timezone")  # UTC, as the rollup tests' settings say
    settings = rollup_settings(prometheus.url, database_url, **config)
    sessions = db.create_session_factory(migrated_engine)
    day = utc_days(dataset)[1]
    outcome = await rollups.run_day(sessions, client_for(prometheus), settings, day, trigger="test")
    assert outcome.status == "ok"

    report = await service.digest(sessions, settings, "daily", day.isoformat(), now=None)

    t0 = dataset.day_starts[1]
    t1 = t0 + DAY_S
    services = [CHECKOUT, PAYMENTS]
    requests = sum(requests_truth(dataset, s, t0, t1) for s in services)
    errors = sum(requests_truth(dataset, s, t0, t1, code="503") for s in services)
    buckets: dict[float, float] = {}
    for histogram in dataset.histograms:
        labels = histogram.labels
        if histogram.name != HISTOGRAM or labels.get("reporter") != "destination":
            continue
        if labels.get("destination_service") in services:
            for le, series in histogram.buckets.items():
                bound = math.inf if le == "+Inf" else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + series.counter_increase(t0, t1)
    assert report.scope is not None
    assert report.scope.requests == pytest.approx(requests, rel=2e-3)
    assert report.scope.errors == pytest.approx(errors, rel=2e-2, abs=2)
    assert report.scope.error_rate == pytest.approx(errors / requests, rel=3e-2)
    assert report.scope.latency_p99_ms == pytest.approx(quantile(0.99, buckets), rel=2e-2)
    assert {s.service for s in report.services} == set(services)
    busiest = max(services, key=lambda s: requests_truth(dataset, s, t0, t1))
    assert report.services[0].service == busiest
    assert report.scope_previous is None
    assert "rollup_previous" in report.missing
    week_before = day - timedelta(days=7)
    assert f"No rollup for the same day last week ({week_before}): nothing to compare with" in report.text
    assert report.regressions == []
    requests_found = report.scope.requests
    assert requests_found is not None
    assert f"Requests {round(requests_found):,}" in report.text

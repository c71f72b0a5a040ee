"""The rollups and slo configuration sections: defaults, extensions, and errors naming their key."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.rollups.catalog import build_catalog, evaluate
from app.rollups.config import Definition


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    return [str(p) for p in caught.value.problems]


def test_defaults() -> None:
    settings = load_settings(None, {})
    rollups = settings.rollups
    assert (rollups.schedule, rollups.backfill_days, rollups.retention_days) == (time(0, 15), 30, 1096)
    assert rollups.step == timedelta(minutes=5)
    catalog = build_catalog(rollups)
    assert catalog.figure_names("namespace") == [
        "cpu_cores_avg", "cpu_cores_peak", "memory_bytes_avg", "memory_bytes_peak"
    ]  # fmt: skip
    assert catalog.figure_names("cluster") == [
        "cpu_utilization_avg", "cpu_utilization_peak", "memory_utilization_avg", "memory_utilization_peak"
    ]  # fmt: skip
    assert "latency_p99_ms" in catalog.figure_names("service")


def test_user_definitions_extend_and_replace_builtins(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        """
rollups:
  schedule: 01:30
  entities:
    - {name: topic, labels: [topic], selector: kafka_consumergroup_lag}
  definitions:
    - name: lag
      entity: topic
      kind: gauge
      step: 1m
      query: 'sum by (topic) (kafka_consumergroup_lag{$filter})'
    - name: requests
      entity: service
      kind: counter
      query: >-
        sum by (destination_service)
        (increase(istio_requests_total{reporter="source",$filter}[$range]))
  derived:
    - {name: lag_spread, entity: topic, expr: "lag_peak - lag_avg"}
slo:
  - {service: checkout, availability: 0.999}
"""
    )
    settings = load_settings(path, {})
    catalog = build_catalog(settings.rollups)
    assert settings.rollups.schedule == time(1, 30)
    assert catalog.figure_names("topic") == ["lag_avg", "lag_peak", "lag_spread"]
    requests = catalog.family("service", "requests")
    assert isinstance(requests, Definition)  # queried from Prometheus (not a recorded family)
    assert 'reporter="source"' in requests.query
    assert len([d for d in catalog.definitions if (d.entity, d.name) == ("service", "requests")]) == 1
    assert settings.slo[0].window_days == 30


def test_mistakes_are_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
rollups:
  schedule: 25:30
  step: 5 minutes
  definitions:
    - {name: a, entity: service, kind: counter, query: 'sum(x)'}
    - {name: b, entity: service, kind: gauge, query: 'sum(x[$range])'}
    - {name: c, entity: service, kind: histogram, query: 'x[$range]', figures: {c_avg: avg}}
    - {name: d, entity: service, kind: sum, query: 'x'}
  derived:
    - {name: evil, entity: service, expr: "__import__('os')"}
slo:
  - {service: checkout}
  - {service: checkout, availability: 1.5}
""",
    )
    assert any(p.startswith("rollups.schedule: Input should be in a valid time format") for p in found)
    assert any(p.startswith("rollups.step: '5 minutes' is not a duration") for p in found)
    assert "rollups.definitions[0]: a counter query must use $range (the day's window)" in found
    assert "rollups.definitions[1]: a gauge query is sampled by a range query; it cannot use $range" in found
    assert "rollups.definitions[2]: figure 'c_avg': 'avg' is not a statistic of a histogram" in found
    assert any(
        p.startswith("rollups.definitions[3].kind: Input should be 'counter', 'gauge' or") for p in found
    )
    assert any(
        p.startswith("rollups.derived[0].expr: ") and "only + - * / ( ), numbers and figure names" in p
        for p in found
    )
    assert "slo[0]: set availability and/or latency_p99_ms" in found
    assert any(p.startswith("slo[1].availability: Input should be less than 1") for p in found)


def test_catalog_mistakes_are_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
rollups:
  definitions:
    - {name: x, entity: queue, kind: counter, query: 'sum(increase(x[$range]))'}
  derived:
    - {name: ratio, entity: service, expr: "errors / nothing"}
""",
    )
    assert found == [
        "rollups: definition 'x': unknown entity kind 'queue'; derived 'ratio': nothing is not a figure "
        "or counter of 'service' defined before it"
    ]


def test_the_on_call_history_kinds_are_panoramas_own(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
rollups:
  entities:
    - {name: oncall_person, labels: [user]}
  definitions:
    - {name: pages, entity: oncall_service, kind: counter, query: 'sum(increase(pages[$range]))'}
""",
    )
    assert found == [
        "rollups: entity kind 'oncall_person' is Panorama's on-call history; give yours another name; "
        "definition 'pages': 'oncall_service' is recorded by Panorama, not queried from Prometheus"
    ]
    path = tmp_path / "derived.yaml"
    path.write_text(
        "rollups:\n  derived:\n    - {name: night_share, entity: oncall_person, expr: night_pages / pages}\n"
    )
    catalog = build_catalog(load_settings(path, {}).rollups)
    assert catalog.figure_names("oncall_person")[-1] == "night_share"  # derived over recorded figures
    assert [d.entity for d in catalog.definitions if d.entity.startswith("oncall")] == []  # never queried


def test_expressions() -> None:
    assert evaluate("1 - errors / requests", {"errors": 5.0, "requests": 100.0}) == pytest.approx(0.95)
    assert evaluate("errors / requests", {"errors": 5.0, "requests": 0.0}) is None
    assert evaluate("errors / requests", {"errors": None, "requests": 3.0}) is None
    assert evaluate("-(a + b) * 2", {"a": 1.0, "b": 2.0}) == -6.0

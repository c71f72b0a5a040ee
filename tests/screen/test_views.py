"""Reading Prometheus's answers for the wall, naming services, and laying out the graph."""

from __future__ import annotations

import math

from app.backends.prometheus import Sample, Series
from app.screen import queries, views


def tagged(figure: str, value: float, **labels: str) -> Sample:
    return Sample({queries.FIGURE_LABEL: figure, **labels}, value, 0.0)


def test_each_panel_is_one_query_whose_figures_are_tagged() -> None:
    from datetime import timedelta

    health = queries.health_query(timedelta(minutes=2))
    assert health.count("label_replace(") == len(queries.HEALTH)
    assert 'rate(node_cpu_seconds_total{mode="idle"}[2m])' in health
    assert "{window}" not in health
    for text in (queries.traffic_query(timedelta(seconds=30)), queries.services_query(timedelta(seconds=30))):
        assert text.count('reporter="destination"') >= 3  # each request once, as the rollups count it
        assert "[30s]" in text


def test_a_count_of_nothing_is_zero_only_when_what_it_counts_is_there() -> None:
    present = queries.health_values([tagged("nodes", 3), tagged("pods", 40), tagged("cpu_utilization", 0.4)])
    assert present["nodes_ready"] == 0.0  # kube-state-metrics is there, no node is ready
    assert present["pods_not_ready"] == 0.0
    assert present["memory_utilization"] is None  # node_exporter's memory series are absent
    absent = queries.health_values([tagged("cpu_utilization", math.nan)])
    assert absent == dict.fromkeys(absent)  # no kube-state-metrics; NaN is no value either


def test_traffic_lines_drop_nan_and_keep_each_figure_apart() -> None:
    lines = queries.traffic_lines(
        [
            Series({queries.FIGURE_LABEL: "requests_per_s"}, [(1.0, 10.0), (2.0, 12.0)]),
            Series({queries.FIGURE_LABEL: "error_rate"}, [(1.0, math.nan), (2.0, 0.01)]),
        ]
    )
    assert lines == {
        "requests_per_s": {1.0: 10.0, 2.0: 12.0},
        "error_rate": {1.0: None, 2.0: 0.01},
        "latency_p99_ms": {},
    }


def test_services_busiest_first_with_their_error_rate() -> None:
    found = queries.service_figures(
        [
            tagged("requests_per_s", 5.0, destination_service="a.shop.svc.cluster.local"),
            tagged("requests_per_s", 50.0, destination_service="b.shop.svc.cluster.local"),
            tagged("errors_per_s", 1.0, destination_service="a.shop.svc.cluster.local"),
            tagged("latency_p99_ms", math.nan, destination_service="b.shop.svc.cluster.local"),
        ]
    )
    assert [(f.service, f.error_rate, f.latency_p99_ms) for f in found] == [
        ("b.shop.svc.cluster.local", 0.0, None),
        ("a.shop.svc.cluster.local", 0.2, None),
    ]


def test_the_graph_reads_left_to_right_from_the_callers_and_survives_cycles() -> None:
    edges = [("ingress", "web"), ("web", "api"), ("web", "cache"), ("api", "db"), ("db", "api")]
    place = views.layered(["ingress", "web", "api", "cache", "db"], edges)
    assert {node: x for node, (x, _) in place.items()} == {
        "ingress": 0,
        "web": 1,
        "api": 2,
        "cache": 2,
        "db": 3,
    }
    assert sorted(y for node, (x, y) in place.items() if x == 2) == [-0.5, 0.5]  # centred
    loop = views.layered(["a", "b"], [("a", "b"), ("b", "a")])  # nobody outside calls them
    assert set(loop) == {"a", "b"}
    assert views.layered(["alone"], []) == {"alone": (0.0, 0.0)}

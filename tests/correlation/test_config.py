"""The `correlation` configuration section: defaults, and errors that name their key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "panorama.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    return [str(p) for p in caught.value.problems]


def test_defaults_fit_fluent_bit_and_istio() -> None:
    settings = load_settings(None, {}).correlation
    assert settings.skew == timedelta(seconds=5)
    assert settings.trace_id_fields == ["trace.id", "trace_id", "traceId", "traceID"]
    assert settings.message_fields == ["log", "message"]
    assert settings.index_format == "logstash-%Y.%m.%d"
    assert settings.log_fields.namespace[0] == "kubernetes.namespace_name"


def test_values_are_read_and_durations_written_back(tmp_path: Path) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(
        "correlation:\n  skew: 2s\n  trace_id_fields: [traceid]\n  log_fields:\n    pod: [k8s.pod]\n"
    )
    settings = load_settings(path, {})
    assert settings.correlation.skew == timedelta(seconds=2)
    assert settings.correlation.trace_id_fields == ["traceid"]
    assert settings.correlation.log_fields.pod == ["k8s.pod"]
    assert settings.model_dump(mode="json")["correlation"]["skew"] == "2s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("correlation:\n  skew: 2 hours\n", "correlation.skew: "),
        ("correlation:\n  skew: 2h\n", "correlation.skew: at most 1h"),
        ("correlation:\n  trace_id_fields: []\n", "correlation.trace_id_fields: list at least one field"),
        (
            "correlation:\n  message_fields: [log, log]\n",
            "correlation.message_fields: a field is listed twice",
        ),
        ("correlation:\n  trace_id_patterns: ['trace=(\\w+)']\n", "has no (?P<trace_id>...) group"),
        ("correlation:\n  trace_id_patterns: ['(?P<trace_id>[']\n", "is not a valid regex"),
        ("correlation:\n  index_format: logs-%Y.%m\n", "correlation.index_format: "),
        ("correlation:\n  index_format: Logs-%Y.%m.%d\n", "valid Elasticsearch index name"),
        ("correlation:\n  max_log_limit: 50\n", "default_log_limit (100) is above max_log_limit (50)"),
        ("correlation:\n  cursor_keep_alive: 2h\n", "correlation.cursor_keep_alive: must be between"),
        ("correlation:\n  log_fields:\n    pod: [kubernetes..pod]\n", "correlation.log_fields.pod: "),
        ("correlation:\n  log_fields:\n    podd: [x]\n", "correlation.log_fields.podd: unknown key"),
        ("correlation:\n  skews: 5s\n", "correlation.skews: unknown key"),
    ],
)
def test_each_problem_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    problems = _problems(tmp_path, text)
    assert any(expected in problem for problem in problems), problems

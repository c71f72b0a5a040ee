"""The ``screen`` section: defaults, and mistakes named by their key."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

from app.config import load_settings
from tests.test_config import problems


def test_defaults() -> None:
    screen = load_settings(None, {}).screen
    assert (screen.refresh_seconds, screen.window, screen.history) == (
        10,
        timedelta(minutes=2),
        timedelta(hours=1),
    )
    assert screen.reload_at == time(4, 0)
    assert (screen.thresholds.error_rate.warning, screen.thresholds.error_rate.critical) == (0.01, 0.05)
    assert screen.thresholds.latency_p99_ms.level(999) == "warning"
    assert screen.thresholds.latency_p99_ms.level(1000) == "critical"
    assert screen.thresholds.error_rate.level(None) is None


def test_a_quoted_quiet_hour_and_yaml_times(tmp_path: Path) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(
        'screen:\n  reload_at: "05:45"\n  refresh_seconds: 30\n  services: [checkout, payments.shop]\n'
    )
    screen = load_settings(path, {}).screen
    assert (screen.reload_at, screen.refresh_seconds, screen.services) == (
        time(5, 45),
        30,
        ["checkout", "payments.shop"],
    )
    path.write_text("screen:\n  reload_at: null\n")
    assert load_settings(path, {}).screen.reload_at is None


def test_mistakes_are_named_by_their_key(tmp_path: Path) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text(
        """
screen:
  refresh_seconds: 0
  window: 1s
  reload_at: "25:00"
  services: [checkout, checkout]
  thresholds:
    error_rate: {warning: 0.2, critical: 0.1}
    latency_p99_ms: {warning: 100}
  colour: blue
"""
    )
    found = problems(path)
    assert any(
        p.startswith("screen.refresh_seconds: Input should be greater than or equal to 1") for p in found
    )
    assert "screen.window: must be between 5s and 1h" in found
    assert any(p.startswith("screen.reload_at: ") for p in found)
    assert "screen.services: listed twice: checkout" in found
    assert "screen.thresholds.error_rate: warning (0.2) is above critical (0.1)" in found
    assert "screen.thresholds.latency_p99_ms.critical: Field required" in found
    assert any(p.startswith("screen.colour: unknown key") for p in found)


def test_a_schedule_the_screen_names_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "panorama.yaml"
    path.write_text("screen:\n  schedules: [sre, dba]\n")
    assert problems(path) == [
        "screen.schedules[0]: unknown schedule 'sre': none is configured",
        "screen.schedules[1]: unknown schedule 'dba': none is configured",
    ]

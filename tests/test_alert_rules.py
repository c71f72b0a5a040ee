"""The platform's alerting rules (``alert_rules/``), checked by the real ``promtool``.

``promtool check rules`` validates every rule file and ``promtool test rules`` runs the unit
tests under ``alert_rules/tests/``. promtool passes a test that expects no alert under a
misspelt name, and it never notices a rule that no test mentions. So the rest of this module
reads the YAML and checks coverage: every alert has a case where it fires and one where it
stays quiet (only the Watchdog has none, since it always fires). It also checks that the labels
those cases assert are what Panorama's routes match on.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.alerts.matchers import matches_all, parse_matcher
from tests.harness.processes import require_binaries

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "alert_rules"
UNIT_TESTS_DIR = RULES_DIR / "tests"
SEVERITIES = frozenset({"critical", "warning", "info", "none"})
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
ALWAYS_FIRING = frozenset({"Watchdog"})
PROMTOOL_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class AlertCase:
    """One ``alert_rule_test`` entry: which alert, when, and what promtool must see firing."""

    where: str
    alertname: str
    expected: tuple[Mapping[str, Any], ...]

    @property
    def fires(self) -> bool:
        return bool(self.expected)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def unit_test_files() -> list[Path]:
    return sorted(UNIT_TESTS_DIR.glob("*.test.yml"))


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.relative_to(ROOT)}: not a YAML mapping"
    return data


def rules_of(path: Path) -> list[dict[str, Any]]:
    groups = load_yaml(path).get("groups") or []
    return [rule for group in groups for rule in group.get("rules") or []]


def alerting_rules() -> dict[str, list[dict[str, Any]]]:
    """Alerting rules by alert name (a name may have several rules, e.g. one per severity)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in rule_files():
        for rule in rules_of(path):
            if "alert" in rule:
                found.setdefault(str(rule["alert"]), []).append(rule)
    return found


def alert_cases() -> list[AlertCase]:
    cases = []
    for path in unit_test_files():
        for number, test in enumerate(load_yaml(path).get("tests") or []):
            name = test.get("name") or f"tests[{number}]"
            for case in test.get("alert_rule_test") or []:
                cases.append(
                    AlertCase(
                        where=f"{path.relative_to(ROOT)}: {name} @ {case.get('eval_time')}",
                        alertname=str(case["alertname"]),
                        expected=tuple(case.get("exp_alerts") or ()),
                    )
                )
    return cases


def run_promtool(*args: str) -> str:
    """Runs promtool from the repository root; fails the test with its whole output unless it succeeds."""
    promtool = require_binaries("promtool")["promtool"]
    command = [promtool, *args]
    try:
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(command)}` did not finish in {PROMTOOL_TIMEOUT_S:.0f} s:\n{exc.output}")
    output = f"{result.stdout}{result.stderr}"
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{output}", pytrace=False)
    return output


def relative(paths: Sequence[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_promtool_checks_every_rule_file() -> None:
    files = rule_files()
    assert files, f"no rule files in {RULES_DIR}"
    output = run_promtool("check", "rules", *relative(files))

    # promtool read exactly the rules this module reads (nothing skipped by a YAML slip).
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", output)]
    expected = [len(rules_of(path)) for path in files]
    assert counts == expected, f"promtool found {counts} rules per file, the YAML has {expected}:\n{output}"


def test_promtool_unit_tests_pass() -> None:
    files = unit_test_files()
    assert files, f"no unit tests (*.test.yml) in {UNIT_TESTS_DIR}"
    output = run_promtool("test", "rules", *relative(files))
    assert output.count("SUCCESS") == len(files), output


def test_every_alert_fires_in_a_unit_test_and_stays_quiet_in_another() -> None:
    alerts = alerting_rules()
    cases = alert_cases()
    assert alerts, "no alerting rules found"

    unknown = sorted({f"{c.alertname} ({c.where})" for c in cases if c.alertname not in alerts})
    never_fire = sorted(name for name in alerts if not any(c.fires and c.alertname == name for c in cases))
    never_quiet = sorted(
        name
        for name in alerts
        if name not in ALWAYS_FIRING and not any(not c.fires and c.alertname == name for c in cases)
    )
    problems = []
    if unknown:
        problems.append(f"unit tests name alerts that no rule defines (a typo passes silently): {unknown}")
    if never_fire:
        problems.append(f"alerts without a unit test where they fire: {never_fire}")
    if never_quiet:
        problems.append(f"alerts without a unit test where they do not fire: {never_quiet}")
    assert not problems, "\n".join(problems)


def test_firing_cases_assert_the_routing_labels_and_every_annotation() -> None:
    alerts = alerting_rules()
    problems = []
    for case in (c for c in alert_cases() if c.fires and c.alertname in alerts):
        rule = alerts[case.alertname][0]
        wanted_annotations = set(rule.get("annotations") or {})
        for alert in case.expected:
            labels = alert.get("exp_labels") or {}
            for label in ("severity", "service"):
                if not labels.get(label):
                    problems.append(f"{case.where}: {case.alertname} is expected without `{label}`")
            annotations = set(alert.get("exp_annotations") or {})
            if annotations != wanted_annotations:
                problems.append(
                    f"{case.where}: {case.alertname} asserts annotations {sorted(annotations)}, "
                    f"the rule has {sorted(wanted_annotations)}"
                )
    assert not problems, "\n".join(problems)


def test_alerting_rules_carry_severity_service_and_annotations() -> None:
    alerts = alerting_rules()
    problems = []
    for name, rules in alerts.items():
        for rule in rules:
            labels = rule.get("labels") or {}
            annotations = rule.get("annotations") or {}
            if labels.get("severity") not in SEVERITIES:
                problems.append(
                    f"{name}: severity {labels.get('severity')!r} is not one of {sorted(SEVERITIES)}"
                )
            # `service` is either static or set by label_replace in the expression.
            if "service" not in labels and '"service"' not in str(rule.get("expr")):
                problems.append(f"{name}: no `service` label")
            missing = [key for key in REQUIRED_ANNOTATIONS if not annotations.get(key)]
            if missing:
                problems.append(f"{name}: missing annotations {missing}")
            if not str(annotations.get("runbook_url", "")).endswith(f"/{name}"):
                problems.append(
                    f"{name}: runbook_url {annotations.get('runbook_url')!r} is not the alert's page"
                )
    assert not problems, "\n".join(problems)
    assert alerts["Watchdog"][0]["labels"]["severity"] == "none"


def test_unit_tests_load_every_rule_file() -> None:
    loaded: set[Path] = set()
    for path in unit_test_files():
        for name in load_yaml(path).get("rule_files") or []:
            target = (path.parent / name).resolve()
            assert target.is_file(), f"{path.relative_to(ROOT)} loads {name}, which does not exist"
            loaded.add(target)
    untested = sorted(set(relative(rule_files())) - set(relative(sorted(loaded))))
    assert not untested, f"rule files no unit test loads: {untested}"


# Panorama's example routes (README.md): the labels the unit tests assert must route as meant.
HEARTBEAT_ROUTE = ['alertname="Watchdog"']
PAYMENTS_CRITICAL_ROUTE = ['severity="critical"', 'service=~"pay.*"']


def expected_alert_labels(alertname: str) -> list[dict[str, str]]:
    return [
        {"alertname": alertname, **{k: str(v) for k, v in (alert.get("exp_labels") or {}).items()}}
        for case in alert_cases()
        if case.alertname == alertname
        for alert in case.expected
    ]


def routes(matchers: Sequence[str], labels: Mapping[str, str]) -> bool:
    return matches_all([parse_matcher(text) for text in matchers], labels)


def test_alert_labels_match_panoramas_routes() -> None:
    watchdog = expected_alert_labels("Watchdog")
    assert watchdog
    assert all(routes(HEARTBEAT_ROUTE, labels) for labels in watchdog)

    errors = expected_alert_labels("ServiceHighErrorRate")
    payments = [labels for labels in errors if labels.get("service") == "payments"]
    assert payments, "the ServiceHighErrorRate tests should include the payments service"
    assert all(routes(PAYMENTS_CRITICAL_ROUTE, labels) for labels in payments)

    # A warning about payments, or a critical alert about another service, takes the catch-all route.
    latency = [
        labels for labels in expected_alert_labels("ServiceHighLatency") if labels["service"] == "payments"
    ]
    assert latency
    assert not any(routes(PAYMENTS_CRITICAL_ROUTE, labels) for labels in latency)
    node_full = expected_alert_labels("NodeFilesystemAlmostFull")
    assert node_full
    assert not any(routes(PAYMENTS_CRITICAL_ROUTE, labels) for labels in node_full)
    assert not any(routes(HEARTBEAT_ROUTE, labels) for labels in errors + latency + node_full)

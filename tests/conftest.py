"""Fixtures shared by the whole suite live in tests/harness/ and tests/fakes/."""

pytest_plugins = [
    "tests.harness.database",
    "tests.harness.app",
    "tests.harness.prometheus",
    "tests.harness.alertmanager",
    "tests.harness.browser",
    "tests.fakes.fixtures",
    "tests.fakes.robot_fixtures",
]

"""Fixtures of the failure drills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.terminal import TerminalReporter

from tests.drills.support import REPORTS, OwnPostgres


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL of the drill's own, which it may restart."""
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """What each drill injected and counted, after the run (also in artifacts/drills/)."""
    if REPORTS:
        terminalreporter.section("drill reports")
        for text in REPORTS:
            terminalreporter.write_line(text)

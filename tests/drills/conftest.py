"""Fixtures of the failure drills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.drills.support import OwnPostgres


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL of the drill's own, which it may restart."""
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()

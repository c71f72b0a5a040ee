"""Fixtures of the backend client tests."""

from __future__ import annotations

import pytest

from tests.backends.support import Calls


@pytest.fixture
def calls() -> Calls:
    """Records every call the client under test reports to its observer."""
    return Calls()

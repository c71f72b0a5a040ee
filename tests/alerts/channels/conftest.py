"""Fixtures of the channel tests: an HTTP client like the delivery worker's (the sinks' fixtures
come from the ``tests.fakes.robot_fixtures`` plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client the worker passes to ``send``: no redirects followed."""
    async with httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": "panorama"}) as client:
        yield client

"""The correlation tests run against every Jaeger release whose v3 quirks the fake models.

Each test that takes ``fake_jaeger`` runs once per :data:`tests.fakes.jaeger.MODELLED_VERSIONS`
(one release on each side of every quirk: plain-text "not found", base64 ids, ignored tags,
empty searches as 200 or 404): what Panorama shows must not depend on which one the platform runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fixtures import serve_fake
from tests.fakes.jaeger import MODELLED_VERSIONS, FakeJaeger


@pytest.fixture(params=MODELLED_VERSIONS)
def fake_jaeger(request: pytest.FixtureRequest) -> Iterator[tuple[FakeJaeger, str]]:
    """A fresh FakeJaeger behaving like the release ``request.param``, and its URL."""
    yield from serve_fake(FakeJaeger(version=request.param))

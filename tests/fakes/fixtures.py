"""Pytest fixtures serving the Elasticsearch and Jaeger fakes over real HTTP on loopback.

Each test gets its own fake and server (function scope): fakes hold state and
failure modes, and a loopback server starts in a few milliseconds. Stopping
one takes uvicorn ~0.15 s (its shutdown tick), so servers are stopped in the
background after each test and joined once at the end of the session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.server import LoopbackServer

Fake = TypeVar("Fake", FakeElasticsearch, FakeJaeger)
_stopping: list[threading.Thread] = []


@pytest.fixture(scope="session", autouse=True)
def _join_stopped_fake_servers() -> Iterator[None]:
    yield
    for thread in _stopping:
        thread.join()


def serve_fake(fake: Fake) -> Iterator[tuple[Fake, str]]:
    """Serves ``fake`` on loopback for one test: yields it and its URL, stops it afterwards."""
    server = LoopbackServer(fake)
    server.start()
    fake.bind_stop(server.stop)
    try:
        yield fake, server.url
    finally:
        fake.close()
        stopper = threading.Thread(target=server.stop, name="fake-server-stop", daemon=True)
        stopper.start()
        _stopping.append(stopper)


@pytest.fixture
def fake_elasticsearch() -> Iterator[tuple[FakeElasticsearch, str]]:
    """A fresh FakeElasticsearch and the URL it answers on."""
    fake = FakeElasticsearch()
    yield from serve_fake(fake)


@pytest.fixture
def fake_jaeger() -> Iterator[tuple[FakeJaeger, str]]:
    """A fresh FakeJaeger (Jaeger 2.x behaviour; set ``v1_only`` for 1.x) and its URL."""
    fake = FakeJaeger()
    yield from serve_fake(fake)

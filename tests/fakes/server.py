"""Serve an ASGI app on a free loopback port in a background thread, over real HTTP.

Fakes (Elasticsearch, Jaeger) and sinks (chat robots, Alertmanager receivers) run
this way so that Panorama's clients are tested over real sockets, independently
of the test's own event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT_S = 10.0


class LoopbackServer:
    """A uvicorn server bound to 127.0.0.1 on a port the OS picks."""

    def __init__(self, app: Any, *, lifespan: bool = False, port: int = 0) -> None:
        """``lifespan=True`` runs the app's startup and shutdown (to serve Panorama itself);
        ``port`` 0 lets the OS pick one."""
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on" if lifespan else "off",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="loopback-server", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_S)


@contextmanager
def serve(app: Any, *, lifespan: bool = False) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app, lifespan=lifespan)
    server.start()
    try:
        yield server
    finally:
        server.stop()

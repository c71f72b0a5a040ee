"""A TCP proxy on a loopback port in front of a real backend, switched by the test: the backend goes
away, hangs, or is held and then let through, without touching the backend or Panorama."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.harness.processes import free_port


class SwitchableProxy:
    """A TCP proxy on a loopback port in front of a backend, switched by the test: ``up`` forwards,
    ``down`` refuses (closes each connection at once), ``hang`` accepts and holds each connection
    until the mode changes; switched to ``up`` the held connections are forwarded, so ``hang`` then
    ``up`` holds requests back and then lets them through."""

    def __init__(self, target_port: int, mode: str = "up") -> None:
        self.target_port = target_port
        self.mode = mode
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="switchable-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.close()
            return
        while self.mode == "hang":
            await asyncio.sleep(0.1)
            if reader.at_eof():
                writer.close()
                return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

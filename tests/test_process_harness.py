"""The test harness's process start-up: a server counts as ready only when its own process listens
on the port. A free port handed out a moment ago can be taken by another test's server (two
replicas' drills, pytest workers) whose /healthz answers 200 as well; a test that took that server
for its own would talk to the wrong one (a drill once got 401s from another Panorama's webhook)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.harness.processes import ManagedProcess, free_port, listens_on, start_on_free_port

# A tiny HTTP server answering 200 to everything, on the port given; exits 98 if the port is taken
# (as a server that cannot bind does).
SERVER = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(sys.argv[2].encode())
    def log_message(self, *args): pass
try:
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok)
except OSError as exc:
    print(f"bind: {exc.strerror.lower()}", flush=True)
    sys.exit(98)
server.serve_forever()
"""


def server(tmp_path: Path, name: str, port: int) -> ManagedProcess:
    return ManagedProcess(
        name,
        [sys.executable, "-c", SERVER, str(port), name],
        log_path=tmp_path / f"{name}.log",
        ready_url=f"http://127.0.0.1:{port}/healthz",
        ready_timeout_s=10,
    )


@pytest.mark.timeout(30)
def test_a_process_listens_on_its_own_port_only(tmp_path: Path) -> None:
    port, own = start_on_free_port(lambda port: server(tmp_path, "own", port))
    try:
        assert own.pid is not None
        assert listens_on(own.pid, port)
        assert not listens_on(own.pid, free_port())
        with socket.socket() as elsewhere:  # a listening socket of this test process, not its
            elsewhere.bind(("127.0.0.1", 0))
            elsewhere.listen()
            assert not listens_on(own.pid, elsewhere.getsockname()[1])
    finally:
        own.stop()


@pytest.mark.timeout(30)
def test_a_port_taken_by_another_server_is_not_taken_for_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, other = start_on_free_port(lambda port: server(tmp_path, "other", port))
    ports = iter([taken])  # the first free port handed out is the one the other server holds
    real_free_port = free_port
    monkeypatch.setattr("tests.harness.processes.free_port", lambda: next(ports, None) or real_free_port())
    try:
        port, own = start_on_free_port(lambda port: server(tmp_path, "own", port))
        try:
            assert port != taken
            assert "address already in use" in (tmp_path / "own.log").read_text()
            assert own.pid is not None
            assert listens_on(own.pid, port)
        finally:
            own.stop()
    finally:
        other.stop()

"""Starting, watching and stopping the real servers the tests run (Prometheus, Alertmanager).

A :class:`ManagedProcess` runs one binary with its output captured to a log
file, waits until an HTTP readiness URL answers 200, and is stopped by its own
PID (SIGTERM, wait, SIGKILL). Fault tests can also kill, pause or restart it.
Every process still running when the interpreter exits is stopped then too, so
a crashed test run does not leave servers behind.

A :class:`RunningServer` is what a harness hands to tests (URL, port, process);
:func:`started_by_test` makes a factory fixture that stops every server it started.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 40
PORT_ATTEMPTS = 3

_running: set[ManagedProcess] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` or a descendant holds a TCP socket listening on ``port`` (Linux's
    /proc: the listening sockets' inodes in /proc/net/tcp{,6}, matched against the processes' open
    file descriptors). Without /proc it answers True: nothing to check with."""
    proc = Path("/proc")
    if not (proc / "net" / "tcp").exists():
        return True
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return False
    for member in _process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in (proc / str(member) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return True
    return False


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (by the parent PIDs in /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])  # after "pid (comm) state"
            children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        member = pending.pop()
        tree.append(member)
        pending.extend(children.get(member, []))
    return tree


def require_binaries(*names: str) -> dict[str, str]:
    """Absolute paths of ``names``; fails the test (never skips) when one is missing."""
    found = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found on PATH: these tests run the real servers. "
            "Run `make test`, which installs the Debian packages (prometheus, "
            "prometheus-alertmanager) through scripts/ensure-system-packages.sh.",
            pytrace=False,
        )
    return {name: path for name, path in found.items() if path is not None}


class ProcessFailed(RuntimeError):
    """A managed process did not start or did not become ready; the message ends with its log."""


class ManagedProcess:
    """One server process: started with ``argv``, logging to ``log_path``, ready when
    ``ready_url`` answers 200 (if given)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready_url: str | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_url = ready_url
        self.ready_timeout_s = ready_timeout_s
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> ManagedProcess:
        """Starts the process and waits until it is ready; raises ProcessFailed with its log tail."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- starting: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        env = {**os.environ, **self.env} if self.env is not None else None
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
            )
        except OSError as exc:
            self._close_log()
            raise ProcessFailed(f"{self.name} could not be started: {exc}") from exc
        _running.add(self)
        if self.ready_url is not None:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Polls ``ready_url`` until it answers 200; fails early if the process exits."""
        assert self.ready_url is not None, "no readiness URL configured"
        deadline = time.monotonic() + (self.ready_timeout_s if timeout_s is None else timeout_s)
        last = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            while True:
                code = self.returncode
                if code is not None:
                    raise ProcessFailed(
                        f"{self.name} exited with status {code} before it was ready.\n" + self.log_tail()
                    )
                try:
                    response = client.get(self.ready_url)
                    if response.status_code == 200 and self._owns(self.ready_url):
                        return
                    last = (
                        f"HTTP {response.status_code}"
                        if response.status_code != 200
                        else "HTTP 200 from another process listening on its port"
                    )
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise ProcessFailed(
                        f"{self.name} was not ready at {self.ready_url} in time (last: {last}).\n"
                        + self.log_tail()
                    )
                time.sleep(POLL_INTERVAL_S)

    def _owns(self, url: str) -> bool:
        """Whether the port of ``url`` is listened on by this process or one of its children: a
        free port handed out a moment ago may have been taken by another test's server, whose
        /healthz answers 200 too (then this process fails to bind and exits, and
        :func:`start_on_free_port` tries another port)."""
        port = httpx.URL(url).port
        assert self.pid is not None
        assert port is not None, url
        return listens_on(self.pid, port)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit status."""
        return self._end(grace_s=timeout_s)

    def kill(self) -> int | None:
        """SIGKILL at once (a crash, for fault tests). Returns the exit status."""
        return self._end(grace_s=None)

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung server, for timeout tests)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def restart(self) -> ManagedProcess:
        """Stops (if running) and starts again with the same arguments, data and port."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, for failure messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc.strerror})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail)

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        assert self._popen is not None
        self._popen.send_signal(sig)

    def _end(self, *, grace_s: float | None) -> int | None:
        """Ends the process: SIGTERM and up to ``grace_s`` to exit (None: none), then SIGKILL."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None and grace_s is not None:
            popen.terminate()
            popen.send_signal(signal.SIGCONT)  # a paused process only acts on SIGTERM once resumed
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=grace_s)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        self._finish()
        return popen.returncode

    def _finish(self) -> None:
        _running.discard(self)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def start_on_free_port(
    build: Callable[[int], ManagedProcess], *, attempts: int = PORT_ATTEMPTS
) -> tuple[int, ManagedProcess]:
    """Starts ``build(port)`` on a free port, trying another one when the port was taken
    between :func:`free_port` and the server binding it (the log says "address already in use")."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        process = build(port)
        try:
            process.start()
        except ProcessFailed:
            if attempt == attempts or "address already in use" not in process.log_tail():
                raise
            continue
        return port, process
    raise AssertionError("unreachable")


@dataclass
class RunningServer:
    """A real server a test uses: where it answers, and its process."""

    url: str
    port: int
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.process.restart()


Server = TypeVar("Server", bound=RunningServer)


def started_by_test(
    start: Callable[..., Server], tmp_path: Path, name: str
) -> Iterator[Callable[..., Server]]:
    """The body of a factory fixture (``yield from`` it): yields ``start`` taking the test's
    arguments after a fresh ``tmp_path / "<name>-<n>"``, and stops every server it started."""
    started: list[Server] = []

    def start_one(*args: Any, **kwargs: Any) -> Server:
        running = start(tmp_path / f"{name}-{len(started)}", *args, **kwargs)
        started.append(running)
        return running

    try:
        yield start_one
    finally:
        for running in started:
            running.process.stop()


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_running):
        process.stop(timeout_s=5.0)

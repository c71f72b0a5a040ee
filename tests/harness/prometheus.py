"""A real Prometheus (Debian's 2.42) for the tests, on a loopback port, fed by promtool backfill.

Fixtures:

- ``session_dataset``: the generated history of tests/harness/datasets.py and its truth;
- ``prometheus``: ONE Prometheus for the whole session, loaded with that dataset;
  tests must not stop or change it (use ``prometheus_factory`` for that);
- ``prometheus_factory``: starts Prometheus servers of the test's own, stopped at its end.

A selector carrying ``panorama_probe="warning"`` makes these servers answer with a
warning: the config has a remote-read endpoint, required only for that matcher,
that answers 404, and Prometheus reports a failing remote read as a warning.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.config import PrometheusSettings
from tests.harness.datasets import Dataset, build_session_dataset
from tests.harness.processes import (
    ManagedProcess,
    ProcessFailed,
    RunningServer,
    require_binaries,
    start_on_free_port,
    started_by_test,
)

BINARIES = ("prometheus", "promtool")
RETENTION = "10y"
"""Retention counts from the newest block, not from now: keep old backfilled blocks."""
MAX_BLOCK_DURATION = "744h"
"""Lets promtool write a few large blocks in one pass over the file instead of one pass
per 2h block (``--max-block-duration``, a Go duration: hidden from ``--help`` in 2.42
but supported; promtool rounds it down to one of its block ranges, 486h here)."""
BACKFILL_TIMEOUT_S = 300.0

WARNING_LABEL = ("panorama_probe", "warning")
WARNING_MATCHER = f'{WARNING_LABEL[0]}="{WARNING_LABEL[1]}"'
"""Put this matcher in a selector to get an answer that carries a warning."""


@dataclass
class RunningPrometheus(RunningServer):
    data_dir: Path
    config_file: Path
    dataset: Dataset | None = None

    def settings(self, **overrides: Any) -> PrometheusSettings:
        """Panorama's settings for this server (``retries``, ``timeout_s``… may be overridden)."""
        return PrometheusSettings(url=self.url, **overrides)


def prometheus_config(
    port: int, *, warning_probe: bool = True, scrape: Sequence[str] = (), scrape_interval: str = "1m"
) -> str:
    """A configuration without alerting; without ``scrape`` targets (``host:port`` serving
    ``/metrics``), with no scrape jobs either: the history then comes from backfill only."""
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        "  evaluation_interval: 1m",
    ]
    if scrape:
        lines += [
            "scrape_configs:",
            "  - job_name: live",
            f"    scrape_interval: {scrape_interval}",
            f"    scrape_timeout: {scrape_interval}",
            "    static_configs:",
            f"      - targets: [{', '.join(scrape)}]",
        ]
    else:
        lines.append("scrape_configs: []")
    if warning_probe:
        lines += [
            "remote_read:",
            f"  - url: http://127.0.0.1:{port}/panorama-warning-probe",
            "    name: panorama-warning-probe",
            "    read_recent: true",
            "    remote_timeout: 5s",
            "    required_matchers:",
            f"      {WARNING_LABEL[0]}: {WARNING_LABEL[1]}",
        ]
    return "\n".join(lines) + "\n"


def backfill(openmetrics: Sequence[Path], data_dir: Path) -> None:
    """``promtool tsdb create-blocks-from openmetrics`` for each file, in parallel, into ``data_dir``.

    Blocks of different files may overlap in time; Prometheus ≥2.39 merges
    overlapping blocks at query time (and compacts them later).
    """
    promtool = require_binaries("promtool")["promtool"]
    data_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for path in openmetrics:
        argv = [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            f"--max-block-duration={MAX_BLOCK_DURATION}",
            str(path),
            str(data_dir),
        ]
        running.append((argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    failures = []
    try:
        for argv, popen in running:
            try:
                output, _ = popen.communicate(timeout=BACKFILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                popen.kill()
                output, _ = popen.communicate()
            if popen.returncode != 0:
                failures.append(
                    f"{' '.join(argv)} → status {popen.returncode}:\n{output.decode(errors='replace')}"
                )
    finally:
        for _, popen in running:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    if failures:
        raise ProcessFailed("backfill failed:\n" + "\n".join(failures))


def start_prometheus(
    tmp_dir: Path,
    openmetrics: Path | Sequence[Path] | None = None,
    *,
    port: int | None = None,
    warning_probe: bool = True,
    extra_args: Sequence[str] = (),
    scrape: Sequence[str] = (),
    scrape_interval: str = "1m",
) -> RunningPrometheus:
    """Backfills ``openmetrics`` (one file or several) into a fresh TSDB under ``tmp_dir``
    and starts Prometheus on 127.0.0.1, returning once ``/-/ready`` answers. ``scrape`` lists
    live targets (``127.0.0.1:<port>``) scraped every ``scrape_interval``."""
    prometheus = require_binaries(*BINARIES)["prometheus"]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_dir / "data"
    data_dir.mkdir(exist_ok=True)
    if openmetrics is not None:
        backfill([openmetrics] if isinstance(openmetrics, Path) else list(openmetrics), data_dir)
    config_file = tmp_dir / "prometheus.yml"

    def build(port: int) -> ManagedProcess:
        config_file.write_text(
            prometheus_config(
                port, warning_probe=warning_probe, scrape=scrape, scrape_interval=scrape_interval
            )
        )
        argv = [
            prometheus,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *extra_args,
        ]
        return ManagedProcess(
            "prometheus",
            argv,
            log_path=tmp_dir / "prometheus.log",
            ready_url=f"http://127.0.0.1:{port}/-/ready",
        )

    if port is None:
        port, process = start_on_free_port(build)
    else:
        process = build(port).start()
    return RunningPrometheus(f"http://127.0.0.1:{port}", port, process, data_dir, config_file)


@pytest.fixture(scope="session")
def session_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The session dataset's truth (its files are removed once backfilled)."""
    return build_session_dataset(tmp_path_factory.mktemp("session-dataset"), now=time.time())


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, session_dataset: Dataset
) -> Iterator[RunningPrometheus]:
    """The session's Prometheus, holding ``session_dataset``. Read-only for tests."""
    running = start_prometheus(tmp_path_factory.mktemp("session-prometheus"), session_dataset.files)
    for path in session_dataset.files:
        os.unlink(path)
    running.dataset = session_dataset
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., RunningPrometheus]]:
    """Starts Prometheus servers this test owns (to stop, kill or restart); all stopped at its end.

    ``prometheus_factory(openmetrics=None, **kwargs)`` takes :func:`start_prometheus`'s arguments.
    """
    require_binaries(*BINARIES)
    yield from started_by_test(start_prometheus, tmp_path, "prometheus")

"""A real Alertmanager (Debian's 0.25) for the tests, on a loopback port, posting to a test's webhook.

``alertmanager_factory(webhook_url, ...)`` writes an alertmanager.yml whose only
route sends every alert to one webhook receiver (``send_resolved: true``, with
the given auth in ``http_config``) and starts Alertmanager with gossip disabled.
Timings are short (``group_wait``/``group_interval`` 1s) so a webhook arrives
within seconds of :meth:`RunningAlertmanager.post_alerts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.harness.processes import (
    ManagedProcess,
    RunningServer,
    require_binaries,
    start_on_free_port,
    started_by_test,
)

BINARY = "prometheus-alertmanager"
DEFAULT_RECEIVER = "panorama.webhook"
"""Has a dot on purpose: Alertmanager sends receiver names regex-quoted (``panorama\\.webhook``)."""
POST_TIMEOUT_S = 10.0


@dataclass
class RunningAlertmanager(RunningServer):
    config_file: Path
    receiver: str

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each alert ``{labels, annotations?, startsAt?, endsAt?,
        generatorURL?}``; without ``endsAt`` it resolves after ``resolve_timeout``."""
        with httpx.Client(timeout=POST_TIMEOUT_S) as client:
            response = client.post(f"{self.url}/api/v2/alerts", json=list(alerts))
        _check(response)

    async def apost_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`post_alerts` for async tests."""
        async with httpx.AsyncClient(timeout=POST_TIMEOUT_S) as client:
            response = await client.post(f"{self.url}/api/v2/alerts", json=list(alerts))
        _check(response)

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: what Alertmanager holds now."""
        with httpx.Client(timeout=POST_TIMEOUT_S) as client:
            response = client.get(f"{self.url}/api/v2/alerts")
        _check(response)
        found: list[dict[str, Any]] = response.json()
        return found


def _check(response: httpx.Response) -> None:
    if not response.is_success:
        raise AssertionError(
            f"Alertmanager answered {response.status_code} to {response.request.method} "
            f"{response.request.url}: {response.text}"
        )


def alertmanager_config(
    webhook_url: str,
    *,
    receiver: str = DEFAULT_RECEIVER,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    resolve_timeout: str = "5m",
    max_alerts: int = 0,
    also_to: Sequence[str] = (),
) -> dict[str, Any]:
    """The alertmanager.yml contents: one route, one webhook receiver (posting to ``webhook_url``
    and to each of ``also_to``, as an Alertmanager pointed at several replicas does)."""
    if bearer_token is not None and basic_auth is not None:
        raise ValueError("Alertmanager's http_config takes either authorization or basic_auth, not both")
    http_config: dict[str, Any] = {}
    if bearer_token is not None:
        http_config["authorization"] = {"type": "Bearer", "credentials": bearer_token}
    if basic_auth is not None:
        http_config["basic_auth"] = {"username": basic_auth[0], "password": basic_auth[1]}
    webhooks: list[dict[str, Any]] = []
    for url in (webhook_url, *also_to):
        webhook: dict[str, Any] = {"url": url, "send_resolved": True, "max_alerts": max_alerts}
        if http_config:
            webhook["http_config"] = http_config
        webhooks.append(webhook)
    return {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {
            "receiver": receiver,
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": receiver, "webhook_configs": webhooks}],
    }


def start_alertmanager(tmp_dir: Path, webhook_url: str, **config: Any) -> RunningAlertmanager:
    """Writes the config (see :func:`alertmanager_config` for the options) and starts
    Alertmanager on 127.0.0.1 without clustering, returning once ``/-/ready`` answers."""
    binary = require_binaries(BINARY)[BINARY]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    storage = tmp_dir / "storage"
    storage.mkdir(exist_ok=True)
    content = alertmanager_config(webhook_url, **config)
    config_file = tmp_dir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(content, sort_keys=False))

    def build(port: int) -> ManagedProcess:
        url = f"http://127.0.0.1:{port}"
        argv = [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
        ]
        return ManagedProcess(
            "alertmanager", argv, log_path=tmp_dir / "alertmanager.log", ready_url=f"{url}/-/ready"
        )

    port, process = start_on_free_port(build)
    receiver: str = content["route"]["receiver"]
    return RunningAlertmanager(f"http://127.0.0.1:{port}", port, process, config_file, receiver)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., RunningAlertmanager]]:
    """``alertmanager_factory(webhook_url, *, bearer_token=None, basic_auth=None,
    group_wait="1s", group_interval="1s", repeat_interval="1h", ...)`` starts an
    Alertmanager posting to ``webhook_url``; every one started is stopped at the test's end."""
    require_binaries(BINARY)
    yield from started_by_test(start_alertmanager, tmp_path, "alertmanager")

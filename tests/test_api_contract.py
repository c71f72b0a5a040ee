"""Schemathesis against Panorama's own /openapi.json: generated requests (authenticated, a bounded
number per operation) to a real `panorama serve` with its backends; no answer is a 5xx, and every
answer matches the documented status codes, content types and schemas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.alerts.support import alerting_config
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.harness.app import ADMIN_TOKEN, configured_tokens
from tests.harness.processes import ManagedProcess, start_on_free_port
from tests.harness.prometheus import RunningPrometheus

PANORAMA = Path(sys.executable).parent / "panorama"
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def panorama(
    tmp_path: Path,
    prometheus: RunningPrometheus,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> Iterator[str]:
    config = {
        **alerting_config(worker=False),
        "auth": {"tokens": configured_tokens()},
        "prometheus": backend(prometheus.url),
        "elasticsearch": backend(fake_elasticsearch[1]),
        "jaeger": backend(fake_jaeger[1]),
        "server": {"rate_limit": {"per_token_per_min": None}},
    }
    config["alerts"]["worker"] = False
    (tmp_path / "panorama.yaml").write_text(yaml.safe_dump(config))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PANORAMA_", "OTEL_"))},
        "PANORAMA_CONFIG": str(tmp_path / "panorama.yaml"),
        "PANORAMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
        "PANORAMA_LOG_LEVEL": "WARNING",
    }
    subprocess.run([str(PANORAMA), "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port, process = start_on_free_port(
        lambda port: ManagedProcess(
            "panorama",
            [str(PANORAMA), "serve", "--port", str(port)],
            log_path=tmp_path / "serve.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            env=env,
        )
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        assert process.returncode in (0, -signal.SIGTERM)


@pytest.mark.timeout(300)
def test_every_operation_answers_as_documented(panorama: str) -> None:
    schema = schemathesis.openapi.from_url(f"{panorama}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        found: Any = result
        operation: Any = found.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            case.call_and_validate(
                base_url=panorama,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                checks=CHECKS,
                timeout=30,
            )

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation is reported
            failures[operation.label] = str(exc)[:600]
    assert operations > 30
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())


# Error answers routes declare beyond the ones every route gets (400, 401/403 from its role, 429).
DECLARED_ERRORS = {
    ("post", "/api/v1/alerts/alertmanager"): {"400", "401", "413", "503"},
    ("get", "/api/v1/alerts/intake/{entry_id}"): {"404"},
    ("get", "/api/v1/incidents/{incident_id}"): {"404"},
    ("post", "/api/v1/incidents/{incident_id}/ack"): {"404", "409"},
    ("post", "/api/v1/incidents/{incident_id}/resolve"): {"404"},
    ("post", "/api/v1/incidents/{incident_id}/snooze"): {"404", "409"},
    ("get", "/api/v1/schedules/{name}/shifts"): {"404"},
    ("post", "/api/v1/schedules/{name}/swaps/{swap_id}/take"): {"404", "409"},
    ("delete", "/api/v1/maintenance/{window_id}"): {"404"},
    ("get", "/api/v1/traces/{trace_id}"): {"404", "502", "503", "504"},
    ("get", "/api/v1/rollups"): {"400", "404"},
    ("get", "/api/v1/reports/kinds/{kind}"): {"404"},
}


async def test_every_route_declares_its_error_answers(client: httpx.AsyncClient) -> None:
    """Each operation that needs credentials declares 401 (403 when it needs a role), each error
    answer has a body schema, and the routes that can answer 404/409/413/5xx say so."""
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation["security"]:
                assert "401" in responses, f"{method} {path}"
            if "x-required-role" in operation:
                assert "403" in responses, f"{method} {path}"
            for status, answer in responses.items():
                if status[0] in "45":
                    assert answer["description"], f"{method} {path} {status}"
                    assert "content" in answer, f"{method} {path} {status}"
    for (method, path), statuses in DECLARED_ERRORS.items():
        assert statuses <= set(document["paths"][path][method]["responses"]), f"{method} {path}"
    webhook = document["paths"]["/api/v1/alerts/alertmanager"]["post"]["responses"]
    assert webhook["413"]["description"] == "Larger than alerts.max_body_bytes"
    accepted = webhook["202"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(document["components"]["schemas"][accepted]["properties"]) == {"status", "id", "alerts", "url"}
    assert "200" not in webhook  # 202: journaled; the incident follows (GET the answer's url)
